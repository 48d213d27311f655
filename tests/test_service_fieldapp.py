"""The field app's server side: idempotent search requests (a retried request runs no second
search and writes no second audit entry), uploads judged as uploads, a supervisor's low-quality
investigation list with a reason, the phone's report of a wiped capture, and results pages and
receipts that say what happened (refused, no candidate, leads)."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from fieldid.access import Role
from fieldid.adjudication import idempotency
from fieldid.audit.ops import verify_store
from fieldid.clock import ManualClock
from fieldid.demo import astronaut_path, closer_crop
from fieldid.store.schema import SearchRecord, SearchRequest
from helpers_service import client, login, search, service_root, workspace_of

__all__ = ["client", "service_root"]  # fixtures

GOOD = closer_crop(astronaut_path())
PORTRAIT = astronaut_path().read_bytes()  # the repository's own portrait: 43 px between the eyes
FACES = Path(__file__).parent / "fixtures" / "faces"
REASON = "Only photo on file of a missing person; no other image exists."


def stranger() -> bytes:
    """A face not in the service workspace's gallery (a test face, closer crop)."""
    face = Image.open(FACES / "subject-0002" / "subject-0002_0001.jpg").convert("RGB")
    crop = face.crop((60, 55, 190, 185)).resize((300, 300), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (640, 480), (118, 124, 130))
    canvas.paste(crop, (170, 90))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def counts(c: TestClient, case: str) -> tuple[int, int]:
    """(search audit entries, persisted searches) for a case reference."""
    ws = workspace_of(c)
    entries = sum(1 for e in ws.store.audit_entries("search") if e.case_ref == case)
    with ws.store.read() as s:
        rows = s.scalar(select(func.count()).where(SearchRecord.case_ref == case))
    return entries, int(rows or 0)


def keyed(c: TestClient, csrf: str, data: bytes, key: str, **form: str) -> Any:
    fields = {"purpose": "field-identification", "case_ref": "CASE-1", "notice_given": "true"}
    fields.update(form)
    return c.post(
        "/api/v1/searches",
        headers={"X-CSRF-Token": csrf, "Idempotency-Key": key},
        files={"image": ("probe.jpg", data, "image/jpeg")},
        data=fields,
    )


def as_role(c: TestClient, role: Role) -> str:
    c.cookies.clear()
    return login(c, role)


# --- idempotent search requests -----------------------------------------------------------------


def test_a_repeated_key_answers_with_the_first_search_and_runs_nothing(client):
    csrf = as_role(client, Role.OFFICER)
    key = "0b6f3c1e-6a2d-4f0e-9d61-1f1d2c3b4a59"
    first = keyed(client, csrf, GOOD, key, case_ref="CASE-IDEM")
    assert first.status_code == 201, first.text
    assert first.json()["replayed"] is False and "idempotent-replayed" not in first.headers
    assert counts(client, "CASE-IDEM") == (1, 1)
    again = keyed(client, csrf, GOOD, key, case_ref="CASE-IDEM")
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    body = again.json()
    assert body["replayed"] is True
    assert body["search_id"] == first.json()["search_id"]
    assert body["receipt_code"] == first.json()["receipt_code"]
    assert [c["person_id"] for c in body["candidates"]] == [
        c["person_id"] for c in first.json()["candidates"]
    ]
    assert body["links"]["page"] == first.json()["links"]["page"]
    assert counts(client, "CASE-IDEM") == (1, 1)  # no second search, no second audit entry
    # Without a key, the same photo is a new search.
    assert search(client, csrf, GOOD, case_ref="CASE-IDEM").status_code == 201
    assert counts(client, "CASE-IDEM") == (2, 2)


def test_a_key_reused_for_another_request_is_refused(client):
    csrf = as_role(client, Role.OFFICER)
    key = "key-reused-0001"
    assert keyed(client, csrf, GOOD, key, case_ref="CASE-A").status_code == 201
    other_case = keyed(client, csrf, GOOD, key, case_ref="CASE-B")
    assert other_case.status_code == 422
    assert other_case.json()["code"] == "search.idempotency_key_reused"
    other_photo = keyed(client, csrf, stranger(), key, case_ref="CASE-A")
    assert other_photo.json()["code"] == "search.idempotency_key_reused"
    assert counts(client, "CASE-B") == (0, 0) and counts(client, "CASE-A") == (1, 1)
    bad = keyed(client, csrf, GOOD, "short", case_ref="CASE-A")
    assert bad.status_code == 422 and bad.json()["code"] == "search.idempotency_key"


def test_keys_belong_to_one_operator(client):
    key = "shared-key-12345"
    officer = as_role(client, Role.OFFICER)
    a = keyed(client, officer, GOOD, key, case_ref="CASE-OPS")
    supervisor = as_role(client, Role.SUPERVISOR)
    b = keyed(client, supervisor, GOOD, key, case_ref="CASE-OPS")
    assert a.status_code == b.status_code == 201
    assert a.json()["search_id"] != b.json()["search_id"] and not b.json()["replayed"]
    assert counts(client, "CASE-OPS") == (2, 2)


def test_a_repeated_refusal_is_the_same_refusal(client):
    csrf = as_role(client, Role.OFFICER)
    key = "refused-key-0001"
    first = keyed(client, csrf, PORTRAIT, key, case_ref="CASE-IDEM-REFUSED")
    assert first.status_code == 422 and first.json()["code"] == "quality.too_far"
    sid = first.json()["search_id"]
    again = keyed(client, csrf, PORTRAIT, key, case_ref="CASE-IDEM-REFUSED")
    assert again.status_code == 422
    body = again.json()
    assert body["code"] == "quality.too_far" and body["replayed"] is True
    assert body["search_id"] == sid and body["receipt_code"] == first.json()["receipt_code"]
    assert body["detail"] == first.json()["detail"]
    assert counts(client, "CASE-IDEM-REFUSED") == (1, 1)


def test_keys_are_short_lived(backend, tmp_path):
    ws = backend.init(tmp_path / "ws", clock=ManualClock())
    clock = ws.clock
    assert isinstance(clock, ManualClock)

    def find(operator: str, key: str) -> idempotency.Remembered | None:
        with ws.store.read() as s:
            return idempotency.find(s, operator, key, clock.now())

    with ws.store.unit_of_work() as uow:
        idempotency.remember(uow, "o", "k-000001", "d" * 64, 7)
    assert find("o", "k-000001") == idempotency.Remembered(7, "d" * 64)
    assert find("other", "k-000001") is None
    clock.advance(idempotency.DEFAULT_TTL + timedelta(seconds=1))
    assert find("o", "k-000001") is None
    # Writing a new record forgets the expired ones (and the key may be used again).
    with ws.store.unit_of_work() as uow:
        idempotency.remember(uow, "o", "k-000001", "e" * 64, 8)
    with ws.store.read() as s:
        assert s.scalar(select(func.count()).select_from(SearchRequest)) == 1
    ws.close()


# --- uploads judged as uploads; the low-quality investigation list ---------------------------


def test_an_upload_is_told_what_is_wrong_with_the_photo_and_live_capture_what_to_do(client):
    csrf = as_role(client, Role.OFFICER)
    upload = search(client, csrf, PORTRAIT).json()
    assert upload["code"] == "quality.too_far" and upload["capture"] == "file"
    assert upload["detail"].startswith(
        "the face is too small in this photo: about 60 px between the eyes are needed; take a "
        "closer photo"
    )
    assert upload["guidance"][0]["detail"] == "this photo has 43 px"
    live = search(client, csrf, PORTRAIT, capture="live").json()
    assert live["guidance"][0]["message"] == "move closer"
    assert live["capture"] == "live"


def test_a_supervisor_searches_a_below_gate_file_as_a_low_quality_investigation_list(client):
    officer = as_role(client, Role.OFFICER)
    r = search(client, officer, PORTRAIT, below_gate_reason=REASON, case_ref="CASE-LQ")
    assert r.status_code == 403 and r.json()["code"] == "access.forbidden"
    supervisor = as_role(client, Role.SUPERVISOR)
    short = search(client, supervisor, PORTRAIT, below_gate_reason="because", case_ref="CASE-LQ")
    assert short.status_code == 422 and short.json()["code"] == "search.below_gate_reason"
    # Both refused before any probe was looked at: audited, nothing persisted as a search.
    assert counts(client, "CASE-LQ") == (2, 0)
    refusals = [
        e
        for e in workspace_of(client).store.audit_entries("search")
        if e.case_ref == "CASE-LQ" and e.payload.get("outcome") == "refused"
    ]
    assert len(refusals) == 2
    ok = search(client, supervisor, PORTRAIT, below_gate_reason=REASON, case_ref="CASE-LQ")
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["list_kind"] == "investigation" and body["low_quality"] is True
    assert body["below_gate"]["reason"] == REASON
    assert body["below_gate"]["guidance"][0]["code"] == "quality.too_far"
    assert body["candidates"][0]["display_name"] == "Subject 0001 (synthetic)"
    # The rates are those of the probe's quality band (the calibration's bands).
    band = body["quality"]["band"]
    assert body["candidates"][0]["quality_band"] == band
    assert body["candidates"][0]["rates_band"] in (band, "all")
    entry = [
        e for e in workspace_of(client).store.audit_entries("search") if e.case_ref == "CASE-LQ"
    ][-1]
    assert entry.payload["below_gate"]["reason"] == REASON
    assert entry.payload["list_kind"] == "investigation"
    # The results page and the API read it back, labelled.
    view = client.get(f"/api/v1/searches/{body['search_id']}").json()
    assert view["low_quality"] is True and view["below_gate"]["reason"] == REASON
    page = client.get(body["links"]["page"]).text
    assert "Low quality: below the quality gate" in page and REASON.rstrip(".") in page
    # A probe that passes the gate is not labelled low quality, reason or not.
    fine = search(client, supervisor, GOOD, below_gate_reason=REASON, case_ref="CASE-LQ2").json()
    assert fine["low_quality"] is False and fine["list_kind"] == "investigation"
    assert verify_store(workspace_of(client).store).ok


# --- the phone's report of a capture wiped unsent -----------------------------------------------


def test_a_wiped_capture_is_audited_at_next_contact(client):
    csrf = as_role(client, Role.OFFICER)
    note = {
        "captured_at": "2026-01-01T12:00:00Z",
        "wiped_at": "2026-01-01T12:15:01Z",
        "purpose": "field-identification",
        "case_ref": "CASE-WIPED",
        "maybe_sent": False,
    }
    r = client.post("/api/v1/captures/wiped", headers={"X-CSRF-Token": csrf}, json=note)
    assert r.status_code == 204, r.text
    (entry,) = [e for e in workspace_of(client).store.audit_entries("capture_wiped")]
    assert entry.operator == "u-officer" and entry.case_ref == "CASE-WIPED"
    assert entry.payload["waited_s"] == 901.0 and entry.payload["maybe_sent"] is False
    assert client.post("/api/v1/captures/wiped", json=note).status_code == 403  # no CSRF
    empty = client.post(
        "/api/v1/captures/wiped", headers={"X-CSRF-Token": csrf}, json={**note, "case_ref": ""}
    )
    assert empty.status_code == 422


# --- pages and receipts that say what happened ---------------------------------------------------


def first_heading(html: str) -> str:
    m = re.search(r"<main>.*?<h1[^>]*>(.*?)</h1>", html, re.S)
    assert m is not None
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m.group(1))).strip()


def test_a_refused_attempt_is_never_called_a_search(client):
    csrf = as_role(client, Role.OFFICER)
    refused = search(client, csrf, PORTRAIT, case_ref="CASE-REFUSED-PAGE").json()
    page = client.get(f"/results/{refused['search_id']}").text
    assert first_heading(page) == "Refused: this photo was not searched"
    assert "the face is too small in this photo" in page.lower()
    assert "not compared with anything" in page
    assert "Searched " not in page and "lead, not an identification" not in page
    assert 'data-testid="candidate"' not in page
    receipt = client.get(f"/receipt/{refused['receipt_code']}").text
    assert "It was not compared with anything" in receipt
    assert "compared it with a gallery" not in receipt
    # The searches list says refused too.
    listed = client.get("/api/v1/searches").json()["searches"]
    mine = [s for s in listed if s["search_id"] == refused["search_id"]]
    assert mine and mine[0]["status_text"].startswith("refused")


def test_the_web_upload_of_a_refused_file_goes_to_the_refused_attempt(client):
    csrf = as_role(client, Role.OFFICER)
    r = client.post(
        "/capture",
        data={
            "csrf_token": csrf,
            "purpose": "field-identification",
            "case_ref": "CASE-WEB-REFUSED",
            "notice_given": "true",
        },
        files={"image": ("portrait.jpg", PORTRAIT, "image/jpeg")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/results/")
    page = client.get(r.headers["location"]).text
    assert first_heading(page) == "Refused: this photo was not searched"
    assert "camera=off" in page  # "choose another photo" goes back to the file input
    assert 'data-testid="below-gate"' not in page  # officers cannot search it anyway
    supervisor = as_role(client, Role.SUPERVISOR)
    assert 'data-testid="below-gate"' in client.get(r.headers["location"]).text
    # The supervisor's form searches the file again, as a low-quality investigation list.
    again = client.post(
        "/capture",
        data={
            "csrf_token": supervisor,
            "purpose": "field-identification",
            "case_ref": "CASE-WEB-REFUSED",
            "notice_given": "true",
            "below_gate_reason": REASON,
        },
        files={"image": ("portrait.jpg", PORTRAIT, "image/jpeg")},
        follow_redirects=False,
    )
    assert again.status_code == 303
    page = client.get(again.headers["location"]).text
    assert first_heading(page).startswith("Investigation list:")


def test_no_candidate_and_leads_each_say_so_first(client):
    csrf = as_role(client, Role.OFFICER)
    none = search(client, csrf, stranger(), case_ref="CASE-NONE").json()
    assert none["candidates"] == []
    page = client.get(none["links"]["page"]).text
    assert first_heading(page) == "No candidate at or above the threshold"
    assert "This does not show the person is not enrolled" in page
    assert "lead, not an identification" not in page
    leads = search(client, csrf, GOOD, case_ref="CASE-LEADS").json()
    page = client.get(leads["links"]["page"]).text
    n = len(leads["candidates"])
    assert first_heading(page) == f"{n} lead{'s' if n != 1 else ''} to check"
    assert "Possible match: a lead, not an identification." in page
    # Gallery, threshold and model facts are folded below the candidates.
    assert page.index('data-testid="candidate"') < page.index('data-testid="gallery-facts"')


def test_migration_0007_downgrades_and_upgrades(backend, tmp_path):
    from helpers_migrations import round_trip

    round_trip(backend, tmp_path, "0006", "search_requests")


# --- where the photo came from (issue 16 item 6) ------------------------------------------------


def test_every_search_records_whether_its_photo_came_from_the_live_camera_or_a_file(client):
    from fieldid.audit import Attribution
    from fieldid.report import build_report, render_html

    csrf = as_role(client, Role.OFFICER)
    live = search(client, csrf, GOOD, capture="live", case_ref="CASE-LIVE").json()
    upload = search(client, csrf, GOOD, case_ref="CASE-FILE").json()
    refused = search(client, csrf, PORTRAIT, capture="live", case_ref="CASE-LIVE-REFUSED").json()
    assert live["capture"] == "live" and live["capture_text"] == "from the live camera"
    assert upload["capture"] == "file"
    assert upload["capture_text"] == (
        "from a file: fieldid cannot tell a photo of a photo from a live person"
    )
    assert client.get(live["links"]["self"]).json()["capture"] == "live"
    page = client.get(live["links"]["page"]).text
    assert 'data-capture="live"' in page and "photo taken, live camera" in page
    assert "cannot tell a photo of a photo" not in page
    page = client.get(upload["links"]["page"]).text
    assert "Photo from a file: fieldid cannot tell a photo of a photo from a live person." in page
    assert "photo from a file</figcaption>" in page
    ws = workspace_of(client)
    ws.searches.search(GOOD, Attribution("officer-7", "field-identification", "CASE-CLI"))
    want = {
        "CASE-LIVE": "live",
        "CASE-FILE": "file",
        "CASE-LIVE-REFUSED": "live",
        "CASE-CLI": "file",
    }
    with ws.store.read() as s:
        got = dict(s.execute(select(SearchRecord.case_ref, SearchRecord.capture)).all())
    assert {k: got[k] for k in want} == want
    assert refused["search_id"] and got["CASE-LIVE-REFUSED"] == "live"
    audited = {e.case_ref: e.payload["capture"] for e in ws.store.audit_entries("search")}
    assert {k: audited[k] for k in want} == want
    data = build_report(ws.store, ws.root, ws.clock)
    by = data["searches"]["by_capture"]
    assert by == {
        "live": sum(v == "live" for v in audited.values()),
        "file": sum(v == "file" for v in audited.values()),
        "not recorded": 0,
    }
    html = render_html(data)
    assert "<th>photo from</th>" in html and "the live camera" in html
