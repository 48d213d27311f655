"""Finding the work: the supervisor's review queue (/review, GET /api/v1/reviews), resolving a
possible duplicate (form and API, audited, nothing merged), and an operator's own searches
(/searches, GET /api/v1/searches) with the same visibility rule as a single search."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.audit.ops import verify_store
from fieldid.demo import astronaut_path, closer_crop
from fieldid.store.schema import Person
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


def _as(c: TestClient, role: Role | str) -> str:
    """Log in afresh (as ``u-<role>`` for a Role, else the named operator)."""
    c.cookies.clear()
    if isinstance(role, Role):
        return login(c, role)
    r = c.post("/api/v1/session", json={"name": role, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def _search(c: TestClient, csrf: str, case: str = "CASE-1") -> dict[str, Any]:
    r = search(c, csrf, GOOD, case_ref=case)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _confirm(c: TestClient, csrf: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = c.post(
        f"/api/v1/searches/{body['search_id']}/adjudications",
        headers={"X-CSRF-Token": csrf},
        json={
            "decision": "confirm",
            "person_id": body["candidates"][0]["person_id"],
            "reason": "features agree closely",
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    adj: dict[str, Any] = r.json()["adjudication"]
    return adj


def _two_person(root: Path) -> None:
    set_config(root, "adjudication", 'two_person_purposes = ["field-identification"]')


def _cards(page: str, testid: str) -> list[str]:
    """The HTML of each element carrying ``data-testid=testid`` up to the next one."""
    parts = page.split(f'data-testid="{testid}"')
    return parts[1:]


def _nav_review(page: str) -> str | None:
    m = re.search(r'data-testid="nav-review"[^>]*>([^<]*)<', page)
    return m.group(1) if m else None


def test_a_pending_second_confirmation_waits_on_review_for_supervisors_only(service_root, tmp_path):
    with serving(service_root, tmp_path, configure=_two_person) as c:
        csrf = _as(c, Role.OFFICER)
        body = _search(c, csrf, "CASE-TWO")
        sid = body["search_id"]
        adj = _confirm(c, csrf, body)
        assert adj["state"] == "pending_second"
        # An officer has no review queue: the page refuses (403 page), so does the API.
        r = c.get("/review", follow_redirects=False)
        assert r.status_code == 403 and "text/html" in r.headers["content-type"]
        r = c.get("/api/v1/reviews")
        assert r.status_code == 403 and r.json()["code"] == "access.forbidden"
        officer_home = c.get("/start").text
        assert 'data-testid="nav-searches"' in officer_home and "My searches" in officer_home
        assert _nav_review(officer_home) is None
        # Logged out: the page sends to the login.
        c.cookies.clear()
        r = c.get("/review", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")

        csrf = _as(c, Role.SUPERVISOR)
        page = c.get("/review").text
        cards = _cards(page, "waiting-adjudication")
        assert len(cards) == 1
        card = cards[0]
        assert f'data-search="{sid}"' in card and 'data-state="pending_second"' in card
        assert "A confirmation waits for a second person (two-person rule)" in card
        assert "u-officer (officer)" in card and "CASE-TWO" in card
        assert "field identification" in card
        assert "Subject 0001 (synthetic)" in card
        assert f'href="/outcome/{sid}"' in card
        assert _nav_review(page) == "Review (1)"
        api = c.get("/api/v1/reviews").json()
        assert api["counts"] == {"adjudications": 1, "review_items": 0, "total": 1}
        a = api["adjudications"][0]
        assert a["adjudication_id"] == adj["adjudication_id"] and a["by"] == "u-officer"
        assert a["state"] == "pending_second" and a["purpose"] == "field-identification"
        assert a["case_ref"] == "CASE-TWO" and a["links"]["outcome"] == f"/outcome/{sid}"
        assert a["candidate"]["display_name"] == "Subject 0001 (synthetic)"
        assert a["candidate"]["score"] == body["candidates"][0]["score"]

        # The supervisor's own first confirmation is never offered to them for a second one:
        # it is listed apart, waiting for someone else, and not counted.
        mine = _search(c, csrf, "CASE-MINE")
        _confirm(c, csrf, mine)
        api = c.get("/api/v1/reviews").json()
        assert [x["search_id"] for x in api["adjudications"]] == [sid]
        assert [x["search_id"] for x in api["own_adjudications_waiting"]] == [mine["search_id"]]
        page = c.get("/review").text
        assert len(_cards(page, "waiting-adjudication")) == 1
        assert 'data-testid="own-waiting"' in page and _nav_review(page) == "Review (1)"

        # Another supervisor sees both, newest first.
        ws = workspace_of(c)
        Accounts(ws.store, ws.clock, hasher=FAST_HASHER).add_user(
            "u-super2", Role.SUPERVISOR, PASSWORD, by="t"
        )
        csrf2 = _as(c, "u-super2")
        api = c.get("/api/v1/reviews").json()
        assert [x["search_id"] for x in api["adjudications"]] == [mine["search_id"], sid]
        # Once confirmed (the form on the outcome page), it no longer waits.
        r = c.post(
            f"/outcome/{sid}/adjudications/{adj['adjudication_id']}/second",
            data={"csrf_token": csrf2, "decision": "confirm", "reason": "checked: same person"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        api = c.get("/api/v1/reviews").json()
        assert [x["search_id"] for x in api["adjudications"]] == [mine["search_id"]]


def test_a_confirmation_blocked_by_a_document_conflict_waits_on_review(service_root, tmp_path):
    with serving(service_root, tmp_path, conflicts=NameConflicts()) as c:
        csrf = _as(c, Role.OFFICER)
        body = _search(c, csrf, "CASE-DOC")
        adj = _confirm(c, csrf, body, documents=[{"type": "passport", "name": "Sam Sample"}])
        assert adj["state"] == "blocked_conflict"
        _as(c, Role.SUPERVISOR)
        card = _cards(c.get("/review").text, "waiting-adjudication")[0]
        assert 'data-state="blocked_conflict"' in card
        assert "Blocked: a document the person presented conflicts" in card
        assert "the passport names Sam Sample" in card
        assert "review the conflict" in card
        a = c.get("/api/v1/reviews").json()["adjudications"][0]
        assert a["state"] == "blocked_conflict" and a["conflicts"] == adj["conflicts"]
        # The outcome page it links to has the override form for this supervisor.
        assert 'data-testid="override-form"' in c.get(a["links"]["outcome"]).text


def _enrol_again(c: TestClient, external_id: str, name: str) -> None:
    """The demo portrait enrolled once more under another neutral synthetic identity with no
    records: the enrollment check opens a possible-duplicate item against Subject 0001."""
    csrf = _as(c, Role.ADMIN)
    r = c.post(
        "/api/v1/enrollments",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("a.jpg", astronaut_path().read_bytes(), "image/jpeg")},
        data={
            "external_id": external_id,
            "display_name": name,
            "source": "test",
            "synthetic": "true",
        },
    )
    assert r.status_code == 201 and r.json()["enrolled"] == 1, r.text


def test_possible_duplicates_are_shown_and_resolved_by_form_and_api(client):
    _enrol_again(client, "subject-0901", "Subject 0901 (synthetic)")
    _enrol_again(client, "subject-0902", "Subject 0902 (synthetic)")
    ws = workspace_of(client)
    with ws.store.read() as s:
        people_before = s.scalar(select(func.count()).select_from(Person))
    csrf = _as(client, Role.SUPERVISOR)
    q = client.get("/api/v1/reviews").json()
    assert q["counts"]["review_items"] == 2 and q["adjudications"] == []
    newest, older = q["review_items"]
    assert newest["id"] > older["id"]  # newest first
    assert older["enrolled"]["display_name"] == "Subject 0901 (synthetic)"
    assert older["matched"]["display_name"] == "Subject 0001 (synthetic)"
    assert older["enrolled"]["external_id"] == "subject-0901"
    assert older["matched"]["external_id"] == "subject-0001"
    assert older["score"] >= older["detail"]["threshold"]
    assert "merges nothing" in q["notice"]

    page = client.get("/review").text
    assert _nav_review(page) == "Review (2)"
    cards = _cards(page, "review-item")
    assert len(cards) == 2
    card = cards[1]
    assert f'data-item="{older["id"]}"' in card
    for side, who in (("enrolled", older["enrolled"]), ("matched", older["matched"])):
        url = f"/api/v1/review-items/{older['id']}/photos/{side}"
        assert who["photo"] == url and f'src="{url}"' in card
        photo = client.get(url)
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        entry = workspace_of(client).store.audit_entries("photo_access")[-1]
        assert entry.operator == "u-supervisor" and entry.payload["kind"] == "review_item"
        assert entry.payload["person_id"] == who["person_id"]
        assert entry.payload["review_item"] == older["id"] and entry.payload["reason"]
    assert "Subject 0901 (synthetic)" in card and "subject-0001" in card
    assert f"Score {older['score']:.3f}" in card
    assert 'name="csrf_token"' in card and f'action="/review/items/{older["id"]}"' in card
    assert "nothing is merged" in card.lower()
    for d in ("different_people", "same_person", "wrong_image", "needs_more_information"):
        assert f'value="{d}"' in card

    # Through the form: without a note it is refused and re-explained, the choice kept.
    r = client.post(
        f"/review/items/{older['id']}",
        data={"csrf_token": csrf, "decision": "same_person", "note": "  "},
        follow_redirects=False,
    )
    assert r.status_code == 422 and 'data-testid="form-error"' in r.text
    # The page never claims a decision that was not recorded.
    assert 'data-testid="resolved"' not in client.get(f"/review?resolved={older['id']}").text
    assert "a decision needs a note" in r.text and "review.no_note" in r.text
    assert 'value="same_person" selected' in r.text
    # Without the CSRF token it is refused outright.
    r = client.post(
        f"/review/items/{older['id']}",
        data={"decision": "same_person", "note": "n"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    r = client.post(
        f"/review/items/{older['id']}",
        data={
            "csrf_token": csrf,
            "decision": "same_person",
            "note": "same capture under two keys",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/review?resolved={older['id']}"
    page = client.get(r.headers["location"]).text
    assert f"Decision recorded on review item {older['id']}." in page
    assert "merges nothing" in page
    assert f'data-item="{older["id"]}"' not in page
    assert len(_cards(page, "review-item")) == 1 and _nav_review(page) == "Review (1)"

    # Through the API: refusals are problems with their codes, then the decision is recorded.
    url = f"/api/v1/review-items/{newest['id']}"
    h = {"X-CSRF-Token": csrf}
    bad = client.post(url, headers=h, json={"decision": "merge them", "note": "x"})
    assert bad.status_code == 422 and bad.json()["code"] == "review.decision"
    assert bad.headers["content-type"].startswith("application/problem+json")
    none = client.post(
        "/api/v1/review-items/99999", headers=h, json={"decision": "wrong_image", "note": "x"}
    )
    assert none.status_code == 404 and none.json()["code"] == "review.not_found"
    again = client.post(
        f"/api/v1/review-items/{older['id']}",
        headers=h,
        json={"decision": "different_people", "note": "x"},
    )
    assert again.status_code == 409 and again.json()["code"] == "review.resolved"
    ok = client.post(url, headers=h, json={"decision": "different_people", "note": "twins"})
    assert ok.status_code == 200, ok.text
    got = ok.json()
    assert got["state"] == "resolved" and got["decision"] == "different_people"
    assert got["resolved_by"] == "u-supervisor" and got["merged"] is False
    assert client.get("/api/v1/reviews").json()["counts"]["total"] == 0

    # Audited, and nothing merged: both people are still there.
    entries = list(ws.store.audit_entries("review_resolve"))
    assert [(e.operator, e.payload["review_item"], e.payload["decision"]) for e in entries] == [
        ("u-supervisor", older["id"], "same_person"),
        ("u-supervisor", newest["id"], "different_people"),
    ]
    assert entries[0].payload["note"] == "same capture under two keys"
    with ws.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == people_before
    # An officer may not resolve one.
    csrf = _as(client, Role.OFFICER)
    r = client.post(url, headers={"X-CSRF-Token": csrf}, json={"decision": "x", "note": "y"})
    assert r.status_code == 403 and r.json()["code"] == "access.forbidden"
    assert verify_store(ws.store).ok


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["search_id"] for r in rows]


def test_officers_list_their_own_searches_supervisors_all(client):
    ws = workspace_of(client)
    Accounts(ws.store, ws.clock, hasher=FAST_HASHER).add_user(
        "u-officer2", Role.OFFICER, PASSWORD, by="t"
    )
    csrf = _as(client, Role.OFFICER)
    a1 = _search(client, csrf, "CASE-A1")["search_id"]
    a2 = _search(client, csrf, "CASE-A2")
    r = client.post(
        f"/api/v1/searches/{a2['search_id']}/adjudications",
        headers={"X-CSRF-Token": csrf},
        json={"decision": "not_identified", "reason": "not the person in front of me"},
    )
    assert r.status_code == 201, r.text
    a2 = a2["search_id"]
    b1 = _search(client, _as(client, "u-officer2"), "CASE-B1")["search_id"]
    s1 = _search(client, _as(client, Role.SUPERVISOR), "CASE-S1")["search_id"]

    _as(client, Role.OFFICER)
    own = client.get("/api/v1/searches").json()
    assert own["scope"] == "own" and own["total"] == 2 and _ids(own["searches"]) == [a2, a1]
    row = own["searches"][1]
    assert row["case_ref"] == "CASE-A1" and row["operator"] == "u-officer"
    assert row["purpose"] == "field-identification" and row["candidates"] >= 1
    assert row["status"] == "open"
    assert row["status_text"] == "open: leads to check; no confirmation recorded yet"
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", row["receipt_code"])
    assert row["links"]["outcome"] == f"/outcome/{a1}"
    assert own["searches"][0]["status_text"] == "closed: no lead confirmed"
    assert _ids(client.get("/api/v1/searches?status=open").json()["searches"]) == [a1]
    bad = client.get("/api/v1/searches?status=verdict")
    assert bad.status_code == 422 and bad.json()["code"] == "request.invalid"
    paged = client.get("/api/v1/searches?per_page=1&page=2").json()
    assert _ids(paged["searches"]) == [a1] and paged["pages"] == 2

    page = client.get("/searches").text
    rows = _cards(page, "search-row")
    assert [re.search(r'data-search="([^"]+)"', x).group(1) for x in rows] == [a2, a1]  # type: ignore[union-attr]
    assert f"/results/{a1}" in page and f"/outcome/{a1}" in page and "/receipt/" in page
    assert "CASE-B1" not in page and "CASE-S1" not in page
    assert "My searches" in page and 'aria-current="page"' in page
    assert f'data-search="{a2}"' not in client.get("/searches?status=open").text
    # A search of another officer stays out of reach.
    assert client.get(f"/api/v1/searches/{b1}").status_code == 403

    _as(client, Role.SUPERVISOR)
    every = client.get("/api/v1/searches").json()
    assert every["scope"] == "all" and _ids(every["searches"]) == [s1, b1, a2, a1]
    page = client.get("/searches").text
    assert "CASE-B1" in page and "u-officer2" in page and "by every operator" in page
    # Auditors do not search, so they have no search list.
    _as(client, Role.AUDITOR)
    assert client.get("/api/v1/searches").status_code == 403
    assert client.get("/searches", follow_redirects=False).status_code == 403


def test_search_list_pages_fifty_at_a_time(client):
    from fieldid.adjudication.store import new_receipt_code, record_search
    from fieldid.audit.log import Attribution

    ws = workspace_of(client)
    now = ws.clock.now()
    for i in range(53):
        with ws.store.unit_of_work() as uow:
            attr = Attribution("u-officer", "field-identification", f"CASE-P{i:02d}")
            rec = record_search(
                uow,
                attr,
                receipt_code=new_receipt_code(),
                started_at=now,
                model="m",
                threshold=0.9,
                gallery_persons=1,
                gallery_templates=1,
                outcome="refused",
                refusal_code="quality.too_far",
            )
            rec.audit_seq = uow.audit(
                "search", operator=attr.operator, payload={"search_id": rec.public_id}
            ).seq
    _as(client, Role.OFFICER)
    first = client.get("/searches").text
    assert len(_cards(first, "search-row")) == 50 and "Page 1 of 2" in first
    assert "CASE-P52" in first and "CASE-P02" not in first
    assert "Refused: the photo could not be searched (quality.too_far)" in first
    second = client.get("/searches?page=2").text
    assert len(_cards(second, "search-row")) == 3 and "CASE-P00" in second
    assert 'data-testid="newer"' in second and 'data-testid="older"' not in second
    assert client.get("/searches?page=x").status_code == 200  # a bad page number: the first


def test_a_supervisor_merges_a_possible_duplicates_two_people_by_form_and_api(client):
    _enrol_again(client, "subject-0901", "Subject 0901 (synthetic)")
    _enrol_again(client, "subject-0902", "Subject 0902 (synthetic)")
    ws = workspace_of(client)
    with ws.store.read() as s:
        people_before = s.scalar(select(func.count()).select_from(Person))
    csrf = _as(client, Role.SUPERVISOR)
    newest, older = client.get("/api/v1/reviews").json()["review_items"]
    keep, merge = older["matched"]["person_id"], older["enrolled"]["person_id"]
    page = client.get("/review").text
    assert f'action="/review/items/{older["id"]}/merge"' in page
    # A short reason is refused and re-explained; nothing changes.
    r = client.post(
        f"/review/items/{older['id']}/merge",
        data={"csrf_token": csrf, "keep": str(keep), "reason": "same"},
        follow_redirects=False,
    )
    assert r.status_code == 422 and "merge.reason" in r.text
    # Keeping someone who is not in the item is refused.
    r = client.post(
        f"/api/v1/review-items/{older['id']}/merge",
        headers={"X-CSRF-Token": csrf},
        json={"keep": 999999, "reason": "one person enrolled twice by the same source"},
    )
    assert r.status_code == 422 and r.json()["code"] == "merge.keep"
    r = client.post(
        f"/review/items/{older['id']}/merge",
        data={
            "csrf_token": csrf,
            "keep": str(keep),
            "reason": "the same portrait enrolled twice by the same source",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/review?merged={older['id']}"
    assert 'data-testid="merged"' in client.get(r.headers["location"]).text
    with ws.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == people_before - 1
        assert s.get(Person, merge) is None and s.get(Person, keep) is not None
    entry = list(ws.store.audit_entries("person_merge"))[-1]
    assert entry.operator == "u-supervisor" and entry.payload["review_item"] == older["id"]
    # The item is resolved; the other one still waits, and through the API it merges too.
    q = client.get("/api/v1/reviews").json()
    assert [i["id"] for i in q["review_items"]] == [newest["id"]]
    got = client.post(
        f"/api/v1/review-items/{newest['id']}/merge",
        headers={"X-CSRF-Token": csrf},
        json={"keep": keep, "reason": "the same portrait enrolled a third time"},
    )
    assert got.status_code == 200, got.text
    assert got.json()["kept_person_id"] == keep
    # Officers cannot merge.
    csrf = _as(client, Role.OFFICER)
    r = client.post(
        f"/api/v1/review-items/{newest['id']}/merge",
        headers={"X-CSRF-Token": csrf},
        json={"keep": keep, "reason": "an officer may not do this at all"},
    )
    assert r.status_code == 403
    assert verify_store(ws.store).ok
