"""The field app after the search: persisted results, adjudication (API and forms), the outcome
screen, the receipt, notice policy, the scheduled purge and the demo's onboarding."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.audit.ops import verify_store
from fieldid.demo import astronaut_path, closer_crop
from fieldid.service import create_app
from fieldid.service.web import qr_svg
from fieldid.store.schema import AdjudicationRecord, Person, SearchRecord
from helpers_account import set_config
from helpers_service import (
    FAST_HASHER,
    PASSWORD,
    NameConflicts,
    client,
    login,
    search,
    service_root,
    serving,
    workspace_of,
)

__all__ = ["client", "service_root"]  # fixtures

GOOD = closer_crop(astronaut_path())
PASSPORT = {
    "type": "passport",
    "number": "X1234567",
    "issuing_country": "Utopia",
    "name": "Sam Sample",
    "date_of_birth": "1990-02-03",
    "nationality": "Utopian",
}


def _search(c: TestClient, role: Role = Role.OFFICER, **form: str) -> tuple[str, dict[str, Any]]:
    c.cookies.clear()
    csrf = login(c, role)
    r = search(c, csrf, GOOD, **form)
    assert r.status_code == 201, r.text
    return csrf, r.json()


def _adjudicate(c: TestClient, csrf: str, sid: str, **body: Any) -> Any:
    return c.post(
        f"/api/v1/searches/{sid}/adjudications", headers={"X-CSRF-Token": csrf}, json=body
    )


def _as(c: TestClient, name: str) -> str:
    c.cookies.clear()
    r = c.post("/api/v1/session", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def test_results_come_from_the_database_not_from_memory(client, tmp_path):
    _, body = _search(client)
    sid = body["search_id"]
    ws = workspace_of(client)
    # A second server process on the same workspace (a restart) shows the same search.
    with TestClient(create_app(ws)) as other:
        login(other, Role.OFFICER)
        got = other.get(f"/api/v1/searches/{sid}").json()
        assert got["receipt_code"] == body["receipt_code"]
        assert [c["person_id"] for c in got["candidates"]] == [
            c["person_id"] for c in body["candidates"]
        ]
        page = other.get(f"/results/{sid}")
        assert page.status_code == 200 and "Subject 0001 (synthetic)" in page.text
        assert body["receipt_code"] in page.text


def test_a_purged_probe_is_shown_as_deleted_not_as_an_error(client):
    _, body = _search(client)
    sid = body["search_id"]
    ws = workspace_of(client)
    assert client.get(f"/api/v1/searches/{sid}/probe").status_code == 200
    report = ws.retention.purge(
        now=ws.clock.now() + timedelta(hours=25)
    )  # the 24 h policy, enforced
    assert report.counts["probe_images"] >= 1
    r = client.get(f"/api/v1/searches/{sid}/probe")
    assert r.status_code == 410 and r.json()["code"] == "probe.purged"
    assert "retention policy" in r.json()["detail"]
    got = client.get(f"/api/v1/searches/{sid}").json()
    assert got["probe"]["available"] is False and got["probe"]["state"] == "purged"
    assert got["quality"]["unified"] == body["quality"]["unified"]  # the quality report stays
    page = client.get(f"/results/{sid}")
    assert page.status_code == 200
    assert "probe deleted under the retention policy" in page.text
    assert f"/api/v1/searches/{sid}/probe" not in page.text


def test_a_reject_rules_out_one_lead_the_search_stays_open_and_closing_purges(client):
    csrf, body = _search(client)
    sid, cand = body["search_id"], body["candidates"][0]["person_id"]
    r = _adjudicate(
        client,
        csrf,
        sid,
        decision="reject",
        person_id=cand,
        reason="face shape differs on close look; documents name someone else",
        documents=[PASSPORT],
    )
    assert r.status_code == 201, r.text
    adj = r.json()["adjudication"]
    assert adj["decision"] == "reject" and adj["state"] == "final"
    assert adj["by"] == "u-officer" and adj["search_id"] == sid
    assert adj["summary"] == "ruled out by u-officer (human adjudication)"
    assert adj["documents"] == [PASSPORT]
    view = r.json()["search"]
    assert view["status"] == "open"  # the other leads wait
    assert view["probe"]["state"] == "held"  # kept while the search is open
    assert view["candidates"][0]["ruled_out"]["by"] == "u-officer"
    assert view["documents_presented"] == [PASSPORT]
    ws = workspace_of(client)
    entry = [e for e in ws.store.audit_entries("adjudicate")][-1]
    assert entry.payload["documents"] == [PASSPORT] and entry.operator == "u-officer"
    assert entry.payload["search_status"] == "open"
    # The results page shows the lead ruled out, with who and why, and no form on it.
    page = client.get(f"/results/{sid}").text
    assert 'data-testid="ruled-out"' in page and "face shape differs" in page
    assert 'data-testid="adjudicate-form"' not in page  # the only lead is decided
    assert 'data-testid="close-form"' in page
    # Close the search: not identified. The probe goes at once.
    r = _adjudicate(client, csrf, sid, decision="not_identified", reason="no lead is the person")
    assert r.status_code == 201, r.text
    view = r.json()["search"]
    assert view["status"] == "not_identified" and view["probe"]["state"] == "purged"
    # The outcome screen says who decided, and the documents come first.
    page = client.get(f"/outcome/{sid}").text
    assert "Ruled out by u-officer (human adjudication)" in page
    assert "Closed without an identification by u-officer (human adjudication)" in page
    assert "X1234567" in page and "Utopia" in page
    assert page.index('data-testid="presented"') < page.index('data-testid="adjudication"')
    assert "probe deleted under the retention policy" in page
    # A closed search is not adjudicated again.
    again = _adjudicate(client, csrf, sid, decision="inconclusive", reason="second thoughts")
    assert again.status_code == 409 and again.json()["code"] == "adjudication.search_closed"
    assert verify_store(ws.store).ok


def test_confirm_under_the_two_person_rule_shows_who_decided(service_root, tmp_path):
    def two_person(root: Path) -> None:
        set_config(root, "adjudication", 'two_person_purposes = ["field-identification"]')

    with serving(service_root, tmp_path, configure=two_person) as c:
        csrf, body = _search(c)
        sid, cand = body["search_id"], body["candidates"][0]["person_id"]
        r = _adjudicate(
            c, csrf, sid, decision="confirm", person_id=cand, reason="features agree closely"
        )
        assert r.status_code == 201, r.text
        adj = r.json()["adjudication"]
        assert adj["state"] == "pending_second"
        assert r.json()["search"]["status"] == "awaiting_second"
        assert r.json()["search"]["status_text"] == "open: a confirmation waits for a second person"
        aid = adj["adjudication_id"]
        page = c.get(f"/outcome/{sid}").text
        assert "Confirmed by u-officer (human adjudication)" in page
        assert "A confirmation waits for a second person" in page
        assert 'data-testid="second-form"' not in page  # not for the first adjudicator
        same = c.post(
            f"/api/v1/searches/{sid}/adjudications/{aid}/second",
            headers={"X-CSRF-Token": csrf},
            json={"decision": "confirm", "reason": "I am sure"},
        )
        # Second-person confirmation is a supervisor's (access.PERMISSIONS).
        assert same.status_code == 403 and same.json()["code"] == "access.forbidden"
        csrf = login_fresh(c, Role.SUPERVISOR)
        page = c.get(f"/outcome/{sid}").text
        # The second person sees both photos, the score and its meaning, the first reason.
        assert 'data-testid="second-form"' in page and 'data-testid="second-enrolled"' in page
        assert 'data-testid="second-probe"' in page and 'data-testid="second-meaning"' in page
        assert "features agree closely" in page
        # The supervisor confirms through the web form (CSRF in the form), with a reason.
        form = {"csrf_token": csrf, "decision": "confirm", "reason": ""}
        r = c.post(f"/outcome/{sid}/adjudications/{aid}/second", data=form)
        assert r.status_code == 422 and "say why you confirm or disagree" in r.text
        form["reason"] = "ear shape and the scar agree with the enrolled photo"
        r = c.post(f"/outcome/{sid}/adjudications/{aid}/second", data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/outcome/{sid}"
        page = c.get(f"/outcome/{sid}").text
        assert "Second confirmation by u-supervisor (human adjudication)" in page
        assert "ear shape and the scar agree" in page
        assert "Confirmed by u-officer (human adjudication)" in page
        main = page.split("<main>")[1].lower()
        for word in ("verdict", "identified", "match confirmed", "positive match"):
            assert word not in main
        got = c.get(f"/api/v1/searches/{sid}").json()
        assert got["status"] == "identified"  # the data model's word, only after a human
        assert got["probe"]["available"]  # a confirmed search keeps its probe for its 24 h


def login_fresh(c: TestClient, role: Role) -> str:
    c.cookies.clear()
    return login(c, role)


def test_a_conflicting_document_blocks_until_a_supervisor_overrides(service_root, tmp_path):
    with serving(service_root, tmp_path, conflicts=NameConflicts()) as c:
        csrf, body = _search(c)
        sid, cand = body["search_id"], body["candidates"][0]["person_id"]
        r = _adjudicate(
            c,
            csrf,
            sid,
            decision="confirm",
            person_id=cand,
            reason="looks alike",
            documents=[PASSPORT],
        )
        adj = r.json()["adjudication"]
        assert r.status_code == 201 and adj["state"] == "blocked_conflict"
        assert "names Sam Sample" in adj["conflicts"][0]
        aid = adj["adjudication_id"]
        page = c.get(f"/outcome/{sid}").text
        assert "Blocked: the documents presented conflict" in page
        assert 'data-testid="override-form"' not in page  # officers cannot override
        r = c.post(
            f"/api/v1/searches/{sid}/adjudications/{aid}/override",
            headers={"X-CSRF-Token": csrf},
            json={"reason": "I say so, as the officer"},
        )
        assert r.status_code == 403 and r.json()["code"] == "access.forbidden"
        csrf = login_fresh(c, Role.SUPERVISOR)
        assert 'data-testid="override-form"' in c.get(f"/outcome/{sid}").text
        short = c.post(
            f"/api/v1/searches/{sid}/adjudications/{aid}/override",
            headers={"X-CSRF-Token": csrf},
            json={"reason": "fine"},
        )
        assert short.status_code == 422
        assert short.json()["code"] == "adjudication.override_needs_reason"
        # Through the web form, with a real reason.
        r = c.post(
            f"/outcome/{sid}/adjudications/{aid}/override",
            data={
                "csrf_token": csrf,
                "reason": "passport checked with issuer: reported stolen, so the name is false",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303
        got = c.get(f"/api/v1/searches/{sid}").json()
        assert got["adjudications"][0]["state"] == "final"
        assert got["adjudications"][0]["override_by"] == "u-supervisor"
        page = c.get(f"/outcome/{sid}").text
        assert "Conflict block overridden by u-supervisor" in page
        assert verify_store(workspace_of(c).store).ok


def test_adjudication_refusals_are_problems_with_rule_codes(client):
    csrf, body = _search(client)
    sid, cand = body["search_id"], body["candidates"][0]["person_id"]
    cases = [
        ({"decision": "confirm", "person_id": cand, "reason": "  "}, 422, "adjudication.no_reason"),
        (
            {"decision": "confirm", "person_id": 2, "reason": "x"},
            422,
            "adjudication.not_a_candidate",
        ),
        ({"decision": "maybe", "reason": "x"}, 422, "adjudication.bad_decision"),
        (
            {
                "decision": "reject",
                "reason": "x",
                "documents": [{"type": "passport", "date_of_birth": "3 May"}],
            },
            422,
            "request.invalid",
        ),
    ]
    for payload, status, code in cases:
        r = _adjudicate(client, csrf, sid, **payload)
        assert r.status_code == status and r.json()["code"] == code, (payload, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    gone = _adjudicate(client, csrf, "no-such-search-id", decision="reject", reason="x")
    assert gone.status_code == 404 and gone.json()["code"] == "search.not_found"
    # Another officer may neither see nor adjudicate it.
    ws = workspace_of(client)
    Accounts(ws.store, ws.clock, hasher=FAST_HASHER).add_user(
        "u-officer2", Role.OFFICER, PASSWORD, by="t"
    )
    csrf2 = _as(client, "u-officer2")
    r = _adjudicate(
        client, csrf2, sid, decision="reject", person_id=cand, reason="not mine to decide"
    )
    assert r.status_code == 403 and r.json()["code"] == "adjudication.not_own_search"
    assert client.get(f"/outcome/{sid}").status_code == 403
    refusals = [
        e for e in ws.store.audit_entries("adjudicate") if e.payload["outcome"] == "refused"
    ]
    assert {e.payload["error"]["code"] for e in refusals} >= {
        "adjudication.no_reason",
        "adjudication.not_a_candidate",
        "adjudication.not_own_search",
    }


def test_the_web_form_records_a_decision_and_reexplains_a_refusal(client):
    csrf, body = _search(client)
    sid, cand = body["search_id"], body["candidates"][0]["person_id"]
    page = client.get(f"/results/{sid}").text
    assert 'data-testid="adjudicate-form"' in page and 'name="doc_issuing_country"' in page
    form = {"csrf_token": csrf, "person_id": str(cand), "decision": "confirm", "reason": ""}
    r = client.post(f"/results/{sid}/adjudications", data=form, follow_redirects=False)
    assert r.status_code == 422 and "a decision needs a written reason" in r.text
    form.update(
        reason="same scar over the left eyebrow",
        doc_type="national identity card",
        doc_number="ID-991",
        doc_issuing_country="Utopia",
    )
    r = client.post(f"/results/{sid}/adjudications", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/outcome/{sid}"
    with workspace_of(client).store.read() as s:
        rec = s.scalars(
            select(AdjudicationRecord)
            .join(SearchRecord, SearchRecord.id == AdjudicationRecord.search_id)
            .where(SearchRecord.public_id == sid)
        ).one()
        assert rec.decision == "confirm" and rec.actor_name == "u-officer"
        assert '"number": "ID-991"' in rec.documents
    page = client.get(f"/outcome/{sid}").text
    assert "Confirmed by u-officer (human adjudication)" in page and "ID-991" in page
    # No more decision forms once closed.
    assert 'data-testid="adjudicate-form"' not in client.get(f"/results/{sid}").text


def test_receipt_page_for_the_person_photographed(service_root, tmp_path):
    def agency(root: Path) -> None:
        set_config(
            root,
            "receipt",
            'agency = "Utopia Border Agency"\ncontact = "privacy@border.example, PO Box 7"\n'
            'redress_url = "https://border.example/redress?code={code}"',
        )

    with serving(service_root, tmp_path, configure=agency) as c:
        _, body = _search(c)
        code = body["receipt_code"]
        r = c.get(f"/receipt/{code}")
        assert r.status_code == 200
        page = r.text
        assert code in page and "Utopia Border Agency" in page
        assert "privacy@border.example, PO Box 7" in page
        assert "field identification" in page  # the purpose, in words
        assert "at most 24 hours" in page  # how long the photo is kept
        url = f"https://border.example/redress?code={code}"
        assert qr_svg(url) in page  # the QR code encodes the redress address for this code
        assert "@media print" in c.get("/static/app.css").text
        # Typed by hand: lower case, no dash.
        assert c.get(f"/receipt/{code.replace('-', '').lower()}").status_code == 200
        assert c.get("/receipt/NOT-A-CODE").status_code == 400
        assert c.get("/receipt/2345-6789").status_code == 404
        # Reachable from the results and outcome screens.
        assert f"/receipt/{code}" in c.get(f"/results/{body['search_id']}").text
        # Who may see it: the officer who ran the search, supervisors; no one else.
        ws = workspace_of(c)
        Accounts(ws.store, ws.clock, hasher=FAST_HASHER).add_user(
            "u-officer2", Role.OFFICER, PASSWORD, by="t"
        )
        _as(c, "u-officer2")
        assert c.get(f"/receipt/{code}").status_code == 403
        login_fresh(c, Role.SUPERVISOR)
        assert c.get(f"/receipt/{code}").status_code == 200
        login_fresh(c, Role.AUDITOR)
        assert c.get(f"/receipt/{code}").status_code == 403


def test_receipt_qr_holds_the_code_without_a_redress_address(client):
    _, body = _search(client)
    code = body["receipt_code"]
    page = client.get(f"/receipt/{code}").text
    assert qr_svg(code) in page
    assert "data-protection office" in page  # the default redress text


def test_notice_is_recorded_and_its_policy_lives_in_the_workspace(service_root, tmp_path, client):
    csrf = login(client, Role.OFFICER)
    r = search(client, csrf, GOOD, notice_given="false")
    assert r.status_code == 422 and r.json()["code"] == "use.no_notice"
    assert client.get("/api/v1/me").json()["notice_required"] is True

    def optional(root: Path) -> None:
        cfg = (root / "fieldid.toml").read_text()
        (root / "fieldid.toml").write_text(
            cfg.replace("notice_required = true", "notice_required = false")
        )

    with serving(service_root, tmp_path / "b", configure=optional) as c:
        csrf = login(c, Role.OFFICER)
        assert c.get("/api/v1/me").json()["notice_required"] is False
        r = search(c, csrf, GOOD, notice_given="false")
        assert r.status_code == 201, r.text
        ws = workspace_of(c)
        assert [e for e in ws.store.audit_entries("search")][-1].payload["notice_given"] is False
        with ws.store.read() as s:
            rec = s.scalars(
                select(SearchRecord).where(SearchRecord.public_id == r.json()["search_id"])
            ).one()
            assert rec.notice_given is False
        page = c.get(r.json()["links"]["page"]).text
        assert "not given" in page


def test_the_retention_purge_runs_at_start_up_and_on_schedule(service_root, tmp_path):
    with serving(service_root, tmp_path, purge_interval_s=0.2) as c:
        deadline = time.time() + 20
        while time.time() < deadline:
            sched = c.get("/readyz").json()["checks"]["scheduled_purge"]
            if sched["runs"] >= 3:
                break
            time.sleep(0.1)
        assert sched["runs"] >= 3 and sched["last_error"] is None
        ws = workspace_of(c)
        scheduled = [
            e for e in ws.store.audit_entries("purge") if e.payload["trigger"] == "scheduled"
        ]
        assert len(scheduled) >= 3
        assert all(e.operator == "system:retention" for e in scheduled)
        assert verify_store(ws.store).ok
    with serving(service_root, tmp_path / "off", purge_interval_s=0) as c:
        assert c.get("/readyz").json()["checks"]["scheduled_purge"] == "off"


def test_onboarding_enrols_a_volunteer_with_consent_and_deletes_on_request(
    service_root, tmp_path, client
):
    csrf = login(client, Role.OFFICER)
    img = {"image": ("me.jpg", GOOD, "image/jpeg")}
    off = client.post(
        "/api/v1/demo/volunteers",
        headers={"X-CSRF-Token": csrf},
        files=img,
        data={"consent": "true"},
    )
    assert off.status_code == 404 and off.json()["code"] == "demo.off"
    with serving(service_root, tmp_path / "demo", demo_onboarding=True) as c:
        ws = workspace_of(c)
        before = ws.gallery.size().persons
        csrf = login(c, Role.OFFICER)
        page = c.get("/demo/onboarding").text
        assert "What is stored" in page and "deleted automatically after 24 hours" in page
        assert "Delete my enrollment" in page
        no = c.post("/api/v1/demo/volunteers", headers={"X-CSRF-Token": csrf}, files=img)
        assert no.status_code == 422 and no.json()["code"] == "demo.no_consent"
        assert ws.gallery.size().persons == before
        r = c.post(
            "/api/v1/demo/volunteers",
            headers={"X-CSRF-Token": csrf},
            files=img,
            data={"consent": "true"},
        )
        assert r.status_code == 201, r.text
        v = r.json()
        assert v["display_name"] == "Demo volunteer 0001" and v["records"] == []
        with ws.store.read() as s:
            p = s.get(Person, v["person_id"])
            assert p is not None and p.synthetic
        enrol = [e for e in ws.store.audit_entries("enroll")][-1]
        assert enrol.operator == "u-officer" and "consent" in enrol.payload["source"]
        # Then they search for it: their label comes back first, with no record.
        body = search(c, csrf, GOOD, purpose="evaluation", case_ref="DEMO-ONBOARDING-0001").json()
        assert body["candidates"][0]["display_name"] == "Demo volunteer 0001"
        results = c.get(body["links"]["page"]).text
        assert "No record is attached to this identity" in results
        # Delete my enrollment (the web form), audited.
        r = c.post(
            f"/demo/volunteers/{v['person_id']}/delete",
            data={"csrf_token": csrf},
        )
        assert r.status_code == 200 and "Demo volunteer 0001 is deleted" in r.text
        assert ws.gallery.size().persons == before
        deleted = [e for e in ws.store.audit_entries("enroll")][-1]
        assert deleted.payload["action"] == "delete"
        assert deleted.payload["external_id"] == "demo-volunteer-0001"
        gone = c.delete(f"/api/v1/demo/volunteers/{v['person_id']}", headers={"X-CSRF-Token": csrf})
        assert gone.status_code == 404 and gone.json()["code"] == "demo.not_a_volunteer"
        # Not a volunteer: the demo cannot delete gallery identities through onboarding.
        r = c.delete("/api/v1/demo/volunteers/1", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404
        # A second volunteer gets a new number (never reused), and expires on schedule.
        r = c.post(
            "/api/v1/demo/volunteers",
            headers={"X-CSRF-Token": csrf},
            files=img,
            data={"consent": "true"},
        )
        assert r.json()["display_name"] == "Demo volunteer 0002"
        from fieldid.service.volunteers import expire_volunteers

        assert expire_volunteers(ws, ttl_s=0) == 1
        assert ws.gallery.find_person("demo-volunteer-0002") is None
        assert [e for e in ws.store.audit_entries("enroll")][-1].operator == "system:demo-expiry"
        assert verify_store(ws.store).ok
