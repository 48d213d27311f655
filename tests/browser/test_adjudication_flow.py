"""Adjudication that follows the officer's work, in a real browser, phone-sized:

- rejecting lead 1 rules out that lead only; the search stays open, the photo is kept, and lead 2
  is then confirmed;
- under the two-person rule, a confirmation waits for a second person (named so); the
  supervisor sees both photos, the score and what it means and the officer's reason, and
  disagrees with a reason; the search is open again and both of them see why.

Its own demo workspace (the shared one must keep a single lead): the public-domain portrait is
enrolled a second time under another neutral synthetic identity with no records ("Subject 0002
(synthetic)"), so a search lists two leads; no invented record is attached to the real face.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser.conftest import running
from browser.helpers_browser import PHONE, Server, launch, phone_context, shot

PROBE_NAME = "probe.jpg"


@pytest.fixture(scope="module")
def two_leads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from rich.console import Console

    from fieldid.dataset import LabelledImage
    from fieldid.demo import astronaut_path
    from fieldid.demo.server import prepare

    root = tmp_path_factory.mktemp("browser-leads") / "demo"
    ws, passwords = prepare(root, distractors=100, console=Console(quiet=True))
    summary = ws.enrollment.enroll_images(
        [LabelledImage(astronaut_path(), "subject-0002", "Subject 0002 (synthetic)")],
        operator="system:browser-test",
        source_name="browser test: the demo portrait again, no records",
        synthetic=True,
    )
    assert summary.enrolled == 1
    cfg = (root / "fieldid.toml").read_text()
    (root / "fieldid.toml").write_text(
        cfg.replace("two_person_purposes = []", 'two_person_purposes = ["evaluation"]')
    )
    ws.close()
    from fieldid.workspace import Workspace

    ws = Workspace.open(root)
    with running(root, ws, passwords) as srv:
        yield srv
    ws.close()


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fieldid.demo import astronaut_path, closer_crop

    path = tmp_path_factory.mktemp("probe") / PROBE_NAME
    path.write_bytes(closer_crop(astronaut_path()))
    return path


def _login(page: Any, server: Server, name: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", server.passwords[name])
    page.click("button[type=submit]")
    page.wait_for_url("**/start")


def _search(page: Any, server: Server, probe: Path, case: str, purpose: str) -> str:
    """Start → the file input (no camera needed) → the results page; the search's URL."""
    page.select_option("[data-testid=purpose]", purpose)
    page.fill("[data-testid=case-ref]", case)
    page.check("[data-testid=notice]")
    page.click("[data-testid=to-capture]")
    page.wait_for_url("**/capture?*")
    # No camera here: the page's own link to the file input.
    page.goto(
        server.url + "/capture" + page.locator("[data-testid=use-file]").get_attribute("href")
    )
    page.locator("[data-testid=fallback-form]").wait_for(state="visible")
    page.set_input_files("[data-testid=file-input]", str(probe))
    page.click("[data-testid=file-submit]")
    page.wait_for_url("**/results/*")
    return str(page.url)


def _decide(card: Any, decision: str, reason: str) -> None:
    card.locator("[data-testid=decide] summary").click()
    card.locator(f"[data-testid=decision-{decision}]").check()
    card.locator("[data-testid=reason]").fill(reason)
    card.locator("[data-testid=adjudicate-submit]").click()


def _photos_loaded(page: Any, selector: str) -> None:
    page.wait_for_function(
        f"[...document.querySelectorAll('{selector}')].every(i => i.complete && i.naturalWidth > 0)"
    )


def _fits_the_phone(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_rejecting_lead_1_then_confirming_lead_2(playwright, two_leads, probe, artifacts):
    server = two_leads
    browser = launch(playwright, video=None)
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    _login(page, server, "demo-officer")
    results = _search(page, server, probe, "CASE-TWO-LEADS", "field-identification")
    cards = page.locator("[data-testid=candidate]")
    assert cards.count() == 2
    assert page.locator("main h1").first.inner_text() == "2 leads to check"
    _photos_loaded(page, "[data-testid=enrolled-photo]")
    first, second = cards.nth(0), cards.nth(1)
    names = {first.inner_text().split("\n")[0], second.inner_text().split("\n")[0]}
    assert names  # both leads shown with their photos
    _decide(first, "reject", "The ear lobes differ from the enrolled photo.")
    page.wait_for_url("**/results/*ruled_out=1")
    # Lead 1 is ruled out, with who and why; the search stays open for lead 2, photo kept.
    first = page.locator("[data-testid=candidate][data-rank='1']")
    assert first.get_attribute("data-ruled-out") == "true"
    assert "Ruled out by demo-officer" in first.locator("[data-testid=ruled-out]").inner_text()
    assert first.locator("[data-testid=decide]").count() == 0
    assert page.locator("main h1").first.inner_text() == "2 leads: 1 ruled out, 1 to check"
    assert "1 of 2 leads ruled out; the other waits" in (
        page.locator("[data-testid=context]").inner_text()
    )
    assert page.evaluate("document.querySelector('.probe-img').naturalWidth") > 0
    _fits_the_phone(page)
    shot(page, artifacts, "30-lead-1-ruled-out")
    second = page.locator("[data-testid=candidate][data-rank='2']")
    _decide(second, "confirm", "Same scar above the left eyebrow; same ear shape.")
    page.wait_for_url("**/outcome/*")
    decided = page.locator("[data-testid=decided-by]").all_inner_texts()
    assert decided == [
        "Confirmed by demo-officer (human adjudication)",
        "Ruled out by demo-officer (human adjudication)",
    ]
    adjudications = page.locator("[data-testid=adjudication]")
    assert "Candidate 2" in adjudications.nth(0).inner_text()
    assert "Candidate 1" in adjudications.nth(1).inner_text()
    status = page.locator("[data-testid=status]").inner_text()
    assert "a candidate was confirmed by a person (human adjudication)" in status
    main = page.locator("main").inner_text().lower()
    for word in ("verdict", "positive match", "match confirmed"):
        assert word not in main
    _fits_the_phone(page)
    shot(page, artifacts, "31-lead-2-confirmed")
    page.goto(results)
    assert page.locator("main h1").first.inner_text() == "2 leads listed"
    assert page.locator("[data-testid=adjudicate-form]").count() == 0
    sid = results.rsplit("/", 1)[1]
    events = [
        (e.payload["decision"], e.payload.get("rank"), e.payload["search_status"])
        for e in server.ws.store.audit_entries("adjudicate")
        if e.payload.get("search_id") == sid
    ]
    assert events == [("reject", 1, "open"), ("confirm", 2, "identified")]
    # Every photo the pages showed was served as part of this search, and audited with it.
    shown = [
        e
        for e in server.ws.store.audit_entries("photo_access")
        if e.payload.get("search_id") == sid
    ]
    assert {e.payload["kind"] for e in shown} == {"probe", "enrolled"}
    assert all(e.operator == "demo-officer" for e in shown)
    assert ctx.blocked == [], f"requests left the machine: {ctx.blocked}"
    browser.close()


def test_two_person_rule_with_a_disagreement(playwright, two_leads, probe, artifacts):
    server = two_leads
    browser = launch(playwright, video=None)
    officer_ctx = phone_context(browser, server)
    officer = officer_ctx.new_page()
    _login(officer, server, "demo-officer")
    results = _search(officer, server, probe, "CASE-TWO-PERSON", "evaluation")
    lead = officer.locator("[data-testid=candidate]").first
    _decide(lead, "confirm", "Same scar above the left eyebrow; same ear shape.")
    officer.wait_for_url("**/outcome/*")
    outcome = officer.url
    waiting = officer.locator("[data-testid=pending-second]").inner_text()
    assert waiting.startswith("A confirmation waits for a second person.")
    assert "Someone other than you must confirm it or disagree" in waiting
    status = officer.locator("[data-testid=status]").inner_text()
    assert "open: a confirmation waits for a second person" in status
    shot(officer, artifacts, "32-waiting-for-a-second-person")
    # While it waits, no other lead can be confirmed (a lead can still be ruled out).
    officer.goto(results)
    assert (
        "waits for a second person" in officer.locator("[data-testid=waiting-notice]").inner_text()
    )
    other = officer.locator("[data-testid=candidate][data-rank='2']")
    other.locator("[data-testid=decide] summary").click()
    assert other.locator("[data-testid=decision-confirm]").is_disabled()

    # The supervisor: from the review queue to the second person's screen.
    sup_ctx = phone_context(browser, server)
    sup = sup_ctx.new_page()
    _login(sup, server, "demo-supervisor")
    sup.click("[data-testid=nav-review]")
    sup.wait_for_url("**/review")
    sid = results.rsplit("/", 1)[1]
    card = sup.locator(f"[data-testid=waiting-adjudication][data-search='{sid}']")
    assert "A confirmation waits for a second person" in card.inner_text()
    card.locator("[data-testid=to-outcome]").click()
    sup.wait_for_url(f"**/outcome/{sid}")
    compare = sup.locator("[data-testid=second-compare]")
    assert compare.is_visible()
    _photos_loaded(sup, "[data-testid=second-compare] img")
    assert sup.locator("[data-testid=second-probe]").is_visible()
    assert sup.locator("[data-testid=second-enrolled]").is_visible()
    meaning = sup.locator("[data-testid=second-meaning]").inner_text()
    assert meaning.startswith("Score 0.") and "stranger" in meaning
    form_box = sup.locator("[data-testid=pending-second]").inner_text()
    assert "Same scar above the left eyebrow" in form_box  # the first person's reason
    _fits_the_phone(sup)
    shot(sup, artifacts, "33-second-person-screen")
    # A disagreement needs a reason too.
    sup.check("[data-testid=second-disagree]")
    sup.fill("[data-testid=second-reason]", "The nose bridge differs on the enrolled photo.")
    sup.click("[data-testid=second-submit]")
    sup.wait_for_url(f"**/outcome/{sid}")
    note = sup.locator("[data-testid=disagreement]").inner_text()
    assert "demo-supervisor disagreed" in note and "The nose bridge differs" in note
    assert "open again" in note
    assert "Disagreed by demo-supervisor" in sup.locator("[data-testid=second-answer]").inner_text()
    shot(sup, artifacts, "34-disagreement-supervisor")

    # The officer sees it too, and the search is open again for the leads.
    officer.goto(outcome)
    note = officer.locator("[data-testid=disagreement]").inner_text()
    assert "demo-supervisor disagreed" in note and "The nose bridge differs" in note
    status = officer.locator("[data-testid=status]").inner_text()
    assert "demo-supervisor disagreed with the confirmation by demo-officer" in status
    officer.goto(results)
    assert officer.locator("[data-testid=disagreement]").is_visible()
    assert officer.locator("[data-testid=waiting-notice]").count() == 0
    again = officer.locator("[data-testid=candidate][data-rank='1']")
    again.locator("[data-testid=decide] summary").click()
    assert again.locator("[data-testid=decision-confirm]").is_enabled()
    _fits_the_phone(officer)
    shot(officer, artifacts, "35-disagreement-officer")
    entry = server.ws.store.audit_entries("second_disagree")[-1]
    assert entry.operator == "demo-supervisor" and entry.payload["search_id"] == sid
    assert entry.payload["search_status"] == "open"
    assert officer_ctx.blocked == [] and sup_ctx.blocked == []
    browser.close()
