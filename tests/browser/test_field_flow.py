"""The officer's flow in a real browser: log in → purpose and case → live guidance → capture →
candidates → adjudicate → outcome (who decided) → receipt with a QR code; a small face gets "move
closer"; a denied camera falls back to the file input; the demo's onboarding enrols a volunteer's
own face with consent, searches for it and deletes it. Last, the audit log of the whole browser
session verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser.helpers_browser import face_frame, jpeg, launch, shot
from browser.helpers_browser import login as _login
from browser.helpers_browser import phone_context as _context
from browser.helpers_browser import start as _start
from fieldid.audit.ops import verify_store


def _shot(page: Any, artifacts: Path, name: str) -> Path:
    return shot(page, artifacts, name)


def test_login_guidance_capture_candidates(playwright, server, videos, artifacts):
    browser = launch(playwright, video=videos["good"])
    ctx = _context(browser, server)
    page = ctx.new_page()
    _login(page, server, "demo-officer")
    _shot(page, artifacts, "02-start")
    assert page.locator("[data-testid=banner]").inner_text().startswith("DEMO")
    _start(page, "CASE-BROWSER-1")
    guidance = page.locator("[data-testid=guidance]")
    capture = page.locator("[data-testid=capture]")
    # Live guidance from the server: the gate passes on the close face, then the button enables.
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'ready'"
    )
    assert capture.is_enabled()
    assert "take the photo" in guidance.inner_text().lower()
    # The overlay shows a face box (pixels drawn on the canvas).
    drawn = page.evaluate(
        "() => { const c = document.getElementById('overlay');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"
    )
    assert drawn > 500
    _shot(page, artifacts, "03-capture-ready")
    capture.click()
    page.wait_for_url("**/results/*")
    notice = page.locator("[data-testid=lead-notice]")
    assert "possible match: a lead, not an identification" in notice.inner_text().lower()
    cands = page.locator("[data-testid=candidate]")
    assert cands.count() >= 1
    first = cands.first
    assert "Subject 0001 (synthetic)" in first.inner_text()
    assert "Score 0.9" in first.locator("[data-testid=score]").inner_text()
    assert first.locator("[data-testid=rate]").inner_text()
    assert "Quality" in page.locator("[data-testid=quality]").text_content()  # folded below
    assert "CASE-BROWSER-1" in page.content()
    # Nothing on the page reads as a verdict.
    text = page.locator("main").inner_text().lower()
    for word in ("identified", "verdict", "confirmed match", "positive match"):
        assert word not in text
    _shot(page, artifacts, "04-results")
    # The probe image loads (same-origin, session cookie).
    assert page.evaluate("document.querySelector('.probe-img').naturalWidth") > 0
    results_url = page.url
    # Adjudicate: reject the lead, with a reason and the document the person presented.
    first.locator("[data-testid=decide] summary").click()
    first.locator("[data-testid=decision-reject]").check()
    first.locator("[data-testid=reason]").fill("On a close look the ears and jaw line differ.")
    first.locator("[data-testid=doc-type]").select_option("passport")
    first.locator("[data-testid=doc-number]").fill("P-0042")
    first.locator("[data-testid=doc-country]").fill("Utopia")
    first.locator("[data-testid=doc-name]").fill("Sam Sample")
    first.locator("[data-testid=doc-dob]").fill("1990-02-03")
    _shot(page, artifacts, "04b-adjudicate-form")
    first.locator("[data-testid=adjudicate-submit]").click()
    # A reject rules out this lead only: back on the leads, the search stays open and the
    # photo is kept; the officer then closes it.
    page.wait_for_url("**/results/*")
    assert "ruled out by demo-officer" in (
        page.locator("[data-testid=ruled-out]").inner_text().lower()
    )
    assert page.evaluate("document.querySelector('.probe-img').naturalWidth") > 0
    page.locator("[data-testid=close-not-identified]").check()
    page.locator("[data-testid=close-reason]").fill("The only lead is ruled out.")
    page.click("[data-testid=close-submit]")
    page.wait_for_url("**/outcome/*")
    decided = page.locator("[data-testid=decided-by]").all_inner_texts()
    assert decided == [
        "Closed without an identification by demo-officer (human adjudication)",
        "Ruled out by demo-officer (human adjudication)",
    ]
    assert "P-0042" in page.locator("[data-testid=presented]").inner_text()
    # Closing purges the probe at once: the page says so instead of showing a broken image.
    assert (
        "probe deleted under the retention policy"
        in page.locator("[data-testid=probe-gone]").inner_text()
    )
    _shot(page, artifacts, "07-outcome-reject")
    # The receipt for the person photographed, with its QR code.
    page.click("[data-testid=to-receipt]")
    page.wait_for_url("**/receipt/*")
    code = page.locator("[data-testid=receipt-code]").inner_text()
    assert len(code) == 9 and code[4] == "-"
    assert code in page.url
    qr = page.locator("[data-testid=qr] svg").bounding_box()
    assert qr is not None and qr["width"] >= 100 and qr["height"] >= 100
    assert "quoting the receipt code" in page.locator("[data-testid=redress]").inner_text()
    assert "How to ask for redress" in page.locator("[data-testid=receipt]").inner_text()
    assert page.locator("[data-testid=print]").is_visible()
    _shot(page, artifacts, "08-receipt")
    # Printed, the page drops the navigation and the buttons.
    page.emulate_media(media="print")
    assert (
        page.locator("header.top").is_hidden() and page.locator("[data-testid=print]").is_hidden()
    )
    page.emulate_media(media="screen")
    # The results page now says a decision is recorded, and offers no more forms.
    page.goto(results_url)
    assert page.locator("main h1").first.inner_text() == "1 lead listed"  # no longer "to check"
    assert (
        "Ruled out by demo-officer (human adjudication)"
        in page.locator("[data-testid=decided]").inner_text()
    )
    assert page.locator("[data-testid=adjudicate-form]").count() == 0
    # API docs render offline (Swagger UI served locally).
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    _shot(page, artifacts, "06-docs")
    assert "fieldid" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/searches']")
    _shot(page, artifacts, "06-docs")
    assert ctx.blocked == [], f"requests left the machine: {ctx.blocked}"
    browser.close()


def test_confirm_records_who_decided_never_a_verdict(playwright, server, videos, artifacts):
    browser = launch(playwright, video=videos["good"])
    ctx = _context(browser, server)
    page = ctx.new_page()
    _login(page, server, "demo-officer")
    _start(page, "CASE-BROWSER-CONFIRM")
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'ready'"
    )
    page.click("[data-testid=capture]")
    page.wait_for_url("**/results/*")
    first = page.locator("[data-testid=candidate]").first
    first.locator("[data-testid=decide] summary").click()
    first.locator("[data-testid=decision-confirm]").check()
    first.locator("[data-testid=reason]").fill("Same scar above the left eyebrow; same ear shape.")
    first.locator("[data-testid=adjudicate-submit]").click()
    page.wait_for_url("**/outcome/*")
    assert (
        page.locator("[data-testid=decided-by]").first.inner_text()
        == "Confirmed by demo-officer (human adjudication)"
    )
    assert "Subject 0001 (synthetic)" in page.locator("[data-testid=adjudication]").inner_text()
    text = page.locator("main").inner_text().lower()
    for word in ("verdict", "identified", "positive match", "match confirmed"):
        assert word not in text
    # Confirmed searches keep their probe for its retention period: the photo still shows.
    assert page.evaluate("document.querySelector('.probe-img').naturalWidth") > 0
    # Styled as a record of a person's decision: no green "match" anywhere.
    colour = page.evaluate(
        "getComputedStyle(document.querySelector('[data-testid=adjudication]')).backgroundColor"
    )
    assert colour == "rgb(255, 255, 255)"
    _shot(page, artifacts, "07b-outcome-confirm")
    assert ctx.blocked == []
    browser.close()


def test_login_page_and_wrong_password(playwright, server, artifacts):
    browser = launch(playwright, video=None)
    ctx = _context(browser, server)
    page = ctx.new_page()
    page.goto(server.url + "/login")
    _shot(page, artifacts, "01-login")
    page.fill("input[name=name]", "demo-supervisor")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert (
        "wrong operator name or password" in page.locator("[data-testid=login-error]").inner_text()
    )
    # An auditor cannot search: the start page is refused.
    page.fill("input[name=name]", "audrey")
    page.fill("input[name=password]", server.passwords["audrey"])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "does not run searches" in page.content()
    resp = page.goto(server.url + "/start")
    assert resp is not None and resp.status == 403
    browser.close()


def test_small_face_gets_move_closer(playwright, server, videos, artifacts):
    browser = launch(playwright, video=videos["small"])
    ctx = _context(browser, server)
    page = ctx.new_page()
    _login(page, server, "demo-officer")
    _start(page, "CASE-BROWSER-2")
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'quality.too_far'"
    )
    assert page.locator("[data-testid=guidance]").inner_text().startswith("Move closer\neyes ")
    assert page.locator("[data-testid=capture]").is_disabled()
    _shot(page, artifacts, "03b-capture-move-closer")
    browser.close()


@pytest.mark.parametrize("how", ["denied", "page-option"])
def test_camera_unavailable_falls_back_to_file_input(
    playwright, server, videos, artifacts, tmp_path, how
):
    browser = launch(playwright, video=videos["good"], allow_camera=how != "denied")
    ctx = _context(browser, server)
    page = ctx.new_page()
    _login(page, server, "demo-officer")
    _start(page, f"CASE-FALLBACK-{how}")
    if how == "page-option":
        page.click("text=Use a photo file instead")
    fallback = page.locator("[data-testid=fallback-form]")
    fallback.wait_for(state="visible")
    assert page.locator("#camera-section").is_hidden()
    reason = page.locator("[data-testid=fallback-reason]").inner_text()
    if how == "denied":
        assert "denied" in reason
    _shot(page, artifacts, f"05-fallback-{how}")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg(face_frame(server.capture, 440)))
    page.set_input_files("[data-testid=file-input]", str(photo))
    page.click("[data-testid=file-submit]")
    page.wait_for_url("**/results/*")
    assert "Subject 0001 (synthetic)" in page.locator("[data-testid=candidate]").first.inner_text()
    browser.close()


def test_fallback_refusal_explains_what_to_change(playwright, server, artifacts, tmp_path):
    browser = launch(playwright, video=None, allow_camera=False)
    ctx = _context(browser, server)
    page = ctx.new_page()
    _login(page, server, "demo-officer")
    _start(page, "CASE-FALLBACK-SMALL")
    page.locator("[data-testid=fallback-form]").wait_for(state="visible")
    photo = tmp_path / "small.jpg"
    photo.write_bytes(jpeg(face_frame(server.capture, 200)))
    page.set_input_files("[data-testid=file-input]", str(photo))
    page.click("[data-testid=file-submit]")
    # The refused attempt's own page: refused, what is wrong with the photo, what to do.
    page.wait_for_url("**/results/*")
    head = page.locator("[data-testid=headline]")
    assert head.get_attribute("data-kind") == "refused"
    assert "the face is too small in this photo" in head.inner_text().lower()
    assert "quality.too_far" in head.inner_text()
    _shot(page, artifacts, "05c-fallback-refused")
    browser.close()


def test_onboarding_enrol_own_face_search_it_and_delete(playwright, server, videos, artifacts):
    browser = launch(playwright, video=videos["good"])
    ctx = _context(browser, server)
    page = ctx.new_page()
    _login(page, server, "demo-officer")
    page.wait_for_url("**/start")
    page.click("[data-testid=to-onboarding]")  # from the demo banner on every page
    page.wait_for_url("**/demo/onboarding")
    consent = page.locator("[data-testid=consent-text]").inner_text()
    assert "What is stored" in consent and "deleted automatically" in consent
    _shot(page, artifacts, "09-onboarding-consent")
    # The browser will not continue without consent (the box is required).
    page.click("[data-testid=to-enrol-capture]")
    assert "/demo/onboarding/capture" not in page.url
    page.check("[data-testid=consent]")
    page.click("[data-testid=to-enrol-capture]")
    page.wait_for_url("**/demo/onboarding/capture?*")
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'ready'"
    )
    page.click("[data-testid=capture]")
    page.wait_for_url("**/demo/volunteers/*")
    heading = page.locator("[data-testid=volunteer] h1").inner_text()
    assert heading.startswith("You are enrolled as Demo volunteer ")
    label = heading.removeprefix("You are enrolled as ")
    volunteer_url = page.url
    _shot(page, artifacts, "10-onboarding-enrolled")
    # Search for it: the start page comes filled in with the demo's purpose and case.
    page.click("[data-testid=search-yourself]")
    page.wait_for_url("**/start?*")
    assert page.locator("[data-testid=case-ref]").input_value().startswith("DEMO-ONBOARDING-")
    page.check("[data-testid=notice]")
    page.click("[data-testid=to-capture]")
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'ready'"
    )
    page.click("[data-testid=capture]")
    page.wait_for_url("**/results/*")
    first = page.locator("[data-testid=candidate]").first
    assert label in first.inner_text()
    assert "No record is attached" in first.inner_text()
    _shot(page, artifacts, "11-onboarding-found")
    # Delete my enrollment.
    page.goto(volunteer_url)
    page.click("[data-testid=delete-enrollment]")
    assert f"{label} is deleted" in page.locator("[data-testid=volunteer-deleted]").inner_text()
    assert page.goto(volunteer_url).status == 404
    external = "demo-volunteer-" + label.rsplit(" ", 1)[1]
    assert server.ws.gallery.find_person(external) is None
    last = [e for e in server.ws.store.audit_entries("enroll")][-1]
    assert last.payload["action"] == "delete" and last.operator == "demo-officer"
    assert ctx.blocked == []
    browser.close()


def test_zz_the_audit_of_the_whole_browser_session_verifies(server):
    """Runs last in this module: every search, refusal, adjudication, purge, enrolment and
    deletion the browser tests made is in one intact hash chain."""

    events = {e.event for e in server.ws.store.audit_entries()}
    assert {"search", "adjudicate", "purge", "enroll", "login"} <= events
    result = verify_store(server.ws.store)
    assert result.ok, result.to_dict()
    assert result.checked >= 20
