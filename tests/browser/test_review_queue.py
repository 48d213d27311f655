"""The supervisor's review queue in a real browser, phone-sized: the header's "Review (N)", a
confirmation waiting for a second person, a possible duplicate with both enrolled photos and a
decision recorded through the form (nothing merged), the second confirmation given from the
outcome page the queue links to, and the search list.

The duplicate is the demo portrait enrolled a second time under another neutral synthetic
identity with no records ("Subject 0002 (synthetic)"): no invented record is ever attached to the
real face in these screenshots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser.helpers_browser import PHONE, Server, launch
from browser.helpers_browser import phone_context as _context

CASE = "CASE-BROWSER-REVIEW"


def _shot(page: Any, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


def _fits_the_phone(page: Any) -> None:
    """Nothing wider than the 390 px screen (no sideways scrolling)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def _waiting_work(browser: Any, server: Server) -> tuple[int, int]:
    """An officer's confirmation waiting for a second person, and a possible duplicate.

    The search goes through the API as the demo officer. The demo workspace has no two-person
    purposes, so the confirmation is recorded by the Adjudicator with that rule given
    explicitly; the duplicate is enrolled the way an administrator's enrollment does it."""
    from fieldid.access import Actor, Role
    from fieldid.adjudication.rules import AdjudicationRules
    from fieldid.adjudication.service import Adjudicator
    from fieldid.dataset import LabelledImage
    from fieldid.demo import astronaut_path, closer_crop

    officer = browser.new_context()
    r = officer.request.post(
        server.url + "/api/v1/session",
        data={"name": "demo-officer", "password": server.passwords["demo-officer"]},
    )
    assert r.ok, r.text()
    r = officer.request.post(
        server.url + "/api/v1/searches",
        headers={"X-CSRF-Token": r.json()["csrf_token"]},
        multipart={
            "image": {
                "name": "probe.jpg",
                "mimeType": "image/jpeg",
                "buffer": closer_crop(astronaut_path()),
            },
            "purpose": "field-identification",
            "case_ref": CASE,
            "notice_given": "true",
        },
    )
    assert r.status == 201, r.text()
    body = r.json()
    officer.close()
    sid = body["search_id"]
    rules = AdjudicationRules(two_person_purposes=frozenset({"field-identification"}))
    adj = Adjudicator(server.ws.store, conflicts=server.ws.conflicts, rules=rules).adjudicate(
        sid,
        Actor("demo-officer", Role.OFFICER),
        "confirm",
        person_id=body["candidates"][0]["person_id"],
        reason="Same scar above the left eyebrow; same ear shape.",
    )
    assert adj.state == "pending_second"
    summary = server.ws.enrollment.enroll_images(
        [LabelledImage(astronaut_path(), "subject-0002", "Subject 0002 (synthetic)")],
        operator="test-admin",
        source_name="browser test",
        synthetic=True,
    )
    assert len(summary.possible_duplicates) == 1
    return sid, summary.possible_duplicates[0]


def test_supervisor_finds_and_clears_the_review_queue(playwright, server, artifacts):
    from fieldid.access import Actor, Role
    from fieldid.service.queues import waiting_count

    browser = launch(playwright, video=None)
    sid, item = _waiting_work(browser, server)
    # Earlier browser tests may have left work too (the onboarding test enrols the same
    # portrait as a volunteer, which the enrollment check also flags).
    with server.ws.store.read() as s:
        n = waiting_count(s, Actor("demo-supervisor", Role.SUPERVISOR))
    assert n >= 2
    ctx = _context(browser, server)
    page = ctx.new_page()
    page.goto(server.url + "/")
    page.fill("input[name=name]", "demo-supervisor")
    page.fill("input[name=password]", server.passwords["demo-supervisor"])
    page.click("button[type=submit]")
    page.wait_for_url("**/start")
    nav = page.locator("[data-testid=nav]")
    assert nav.locator("a").all_inner_texts() == ["New search", "Searches", f"Review ({n})"]
    # The header's links stay on one line at 390 px.
    tops = page.evaluate(
        "[...document.querySelectorAll('[data-testid=nav] a')]"
        ".map(a => Math.round(a.getBoundingClientRect().top))"
    )
    assert len(set(tops)) == 1, tops
    page.click("[data-testid=nav-review]")
    page.wait_for_url("**/review")

    waiting = page.locator(f"[data-testid=waiting-adjudication][data-search='{sid}']")
    assert "A confirmation waits for a second person" in waiting.inner_text()
    assert "demo-officer (officer)" in waiting.inner_text()
    assert CASE in waiting.inner_text()
    card = page.locator(f"[data-testid=review-item][data-item='{item}']")
    text = card.inner_text()
    assert "Subject 0002 (synthetic)" in text and "Subject 0001 (synthetic)" in text
    assert "nothing is merged" in text.lower()
    photos = card.locator("[data-testid=review-photo]")
    assert photos.count() == 2
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=review-photo]')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    _fits_the_phone(page)
    main = page.locator("main").inner_text().lower()
    for word in ("verdict", "identified", "positive match", "match confirmed"):
        assert word not in main
    _shot(page, artifacts, "20-review-queue")

    # A decision on the possible duplicate, through the form.
    card.locator("[data-testid=review-decision]").select_option("different_people")
    card.locator("[data-testid=review-note]").fill("Same portrait, two keys: an enrolment slip.")
    card.locator("[data-testid=review-submit]").click()
    page.wait_for_url(f"**/review?resolved={item}")
    assert "merges nothing" in page.locator("[data-testid=resolved]").inner_text()
    assert page.locator(f"[data-testid=review-item][data-item='{item}']").count() == 0
    assert page.locator("[data-testid=nav-review]").inner_text() == f"Review ({n - 1})"
    _shot(page, artifacts, "21-review-resolved")

    # The waiting confirmation: the queue leads to the outcome page and its form.
    waiting.locator("[data-testid=to-outcome]").click()
    page.wait_for_url(f"**/outcome/{sid}")
    page.check("[data-testid=second-confirm]")
    page.fill("[data-testid=second-reason]", "The ears and the scar agree with the enrolled photo.")
    page.click("[data-testid=second-submit]")
    page.wait_for_url(f"**/outcome/{sid}")
    assert "Second confirmation by demo-supervisor" in page.locator("main").inner_text()
    assert page.locator("[data-testid=nav-review]").inner_text() == f"Review ({n - 2})"

    # The search list: every operator's searches for a supervisor, newest first.
    page.click("[data-testid=nav-searches]")
    page.wait_for_url("**/searches")
    row = page.locator(f"[data-testid=search-row][data-search='{sid}']")
    assert CASE in row.inner_text() and "demo-officer" in row.inner_text()
    assert "confirmed by a person" in row.inner_text()
    _fits_the_phone(page)
    _shot(page, artifacts, "22-searches")

    events = [e for e in server.ws.store.audit_entries("review_resolve")]
    assert events[-1].operator == "demo-supervisor"
    assert events[-1].payload["decision"] == "different_people"
    assert ctx.blocked == [], f"requests left the machine: {ctx.blocked}"
    browser.close()


def test_officer_sees_only_their_own_searches_and_no_review(playwright, server, artifacts):
    browser = launch(playwright, video=None)
    ctx = _context(browser, server)
    page = ctx.new_page()
    page.goto(server.url + "/")
    page.fill("input[name=name]", "demo-officer")
    page.fill("input[name=password]", server.passwords["demo-officer"])
    page.click("button[type=submit]")
    page.wait_for_url("**/start")
    nav = page.locator("[data-testid=nav]")
    assert nav.locator("a").all_inner_texts() == ["New search", "My searches"]
    page.click("[data-testid=nav-searches]")
    page.wait_for_url("**/searches")
    from fieldid.store.schema import SearchRecord

    shown = page.locator("[data-testid=search-row]").evaluate_all(
        "rows => rows.map(r => r.dataset.search)"
    )
    with server.ws.store.read() as s:
        mine = [r for r in s.query(SearchRecord) if r.operator == "demo-officer"]
    newest_first = sorted(mine, key=lambda r: (r.started_at, r.id), reverse=True)
    assert shown == [r.public_id for r in newest_first][:50]
    _fits_the_phone(page)
    _shot(page, artifacts, "23-my-searches")
    page.goto(server.url + "/review")
    assert "may not review" in page.locator("main").inner_text()
    assert ctx.blocked == []
    browser.close()
