"""The officer's flow in a real browser: log in → purpose and case → live guidance → capture →
candidates; a small face gets "move closer"; a denied camera falls back to the file input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser.helpers_browser import PHONE, Server, face_frame, jpeg, launch


def _context(browser: Any, server: Server) -> Any:
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    ctx.set_default_timeout(20_000)
    blocked: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_local)
    ctx.blocked = blocked  # every request that tried to leave the machine
    return ctx


def _login(page: Any, server: Server, name: str) -> None:
    page.goto(server.url + "/")
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", server.passwords[name])
    page.click("button[type=submit]")


def _start(page: Any, case: str) -> None:
    page.wait_for_url("**/start")
    page.select_option("[data-testid=purpose]", "field-identification")
    page.fill("[data-testid=case-ref]", case)
    page.check("[data-testid=notice]")
    page.click("[data-testid=to-capture]")
    page.wait_for_url("**/capture?*")


def _shot(page: Any, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000
    return path


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
    assert "Quality" in page.locator("[data-testid=quality]").inner_text()
    assert "CASE-BROWSER-1" in page.content()
    # Nothing on the page reads as a verdict.
    text = page.locator("main").inner_text().lower()
    for word in ("identified", "verdict", "confirmed match", "positive match"):
        assert word not in text
    _shot(page, artifacts, "04-results")
    # The probe image loads (same-origin, session cookie).
    assert page.evaluate("document.querySelector('.probe-img').naturalWidth") > 0
    # API docs render offline (Swagger UI served locally).
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    _shot(page, artifacts, "06-docs")
    assert "fieldid" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/searches']")
    _shot(page, artifacts, "06-docs")
    assert ctx.blocked == [], f"requests left the machine: {ctx.blocked}"
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
    assert "move closer" in page.locator("[data-testid=guidance]").inner_text()
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
    err = page.locator("[data-testid=capture-error]")
    err.wait_for(state="visible")
    assert "move closer" in err.inner_text()
    assert "quality.too_far" in err.inner_text()
    _shot(page, artifacts, "05c-fallback-refused")
    browser.close()
