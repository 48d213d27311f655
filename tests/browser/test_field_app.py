"""The field app in the field, in a real browser (390×844): poor signal, real uploads, guidance
that helps, and results read at a glance.

- Offline-safe queue: the network cut mid-send and restored runs the search exactly once (the
  audit log and the searches table say so); the capture is held encrypted under a
  non-extractable key while it waits; "still trying / cancel" wipes it; past the limit it is
  wiped and the wipe reaches the audit log at the next contact; the offline page retries.
- The capture button is off whenever guidance is unavailable; a dark frame gets "more light"
  first.
- The repository's own portrait, uploaded, is refused with an upload message; the refused
  attempt's page says so on its first line and its receipt says the photo was not compared; a
  supervisor runs a low-quality investigation list on it with a reason.
- A search with no candidate says so first, with "does not show the person is not enrolled".
- A lead's first screen holds what happened, both photos, the score's meaning and the decision.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import func, select

from browser.helpers_browser import (
    PHONE,
    Server,
    jpeg,
    launch,
    login,
    phone_context,
    shot,
    start,
)

READY = "document.querySelector('[data-testid=guidance]').dataset.code === 'ready'"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"


def _searches_for(server: Server, case: str) -> tuple[int, int]:
    """(search audit entries, persisted searches) for a case reference."""
    from fieldid.store.schema import SearchRecord

    entries = sum(1 for e in server.ws.store.audit_entries("search") if e.case_ref == case)
    with server.ws.store.read() as s:
        rows = s.scalar(select(func.count()).where(SearchRecord.case_ref == case))
    return entries, int(rows or 0)


def _held(page: Any) -> list[dict[str, Any]]:
    """What the queue holds in IndexedDB, and what can be learnt about it from the page."""
    return page.evaluate(
        """() => new Promise((resolve, reject) => {
          const open = indexedDB.open("fieldid-queue", 1);
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const db = open.result;
            const t = db.transaction(["captures", "keys"], "readonly");
            const caps = t.objectStore("captures").getAll();
            const key = t.objectStore("keys").get("k");
            t.oncomplete = async () => {
              const k = key.result && key.result.key;
              let exportable = true;
              try { await crypto.subtle.exportKey("raw", k); } catch (e) { exportable = false; }
              resolve(caps.result.map(c => {
                const head = Array.from(new Uint8Array(c.data).slice(0, 3));
                return {id: c.id, attempts: c.attempts, bytes: c.data.byteLength,
                        jpeg_magic: head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff,
                        key_type: k && k.type, key_extractable: k && k.extractable,
                        key_exportable: exportable, expires: c.expires, created: c.created};
              }));
              db.close();
            };
          };
        })"""
    )


def _to_capture(page: Any, server: Server, case: str, operator: str = "demo-officer") -> None:
    login(page, server, operator)
    start(page, case)
    page.wait_for_function(READY)


def _capture_page(playwright: Any, server: Server, video: Path, case: str) -> tuple[Any, Any, Any]:
    """(browser, context, page) on the capture page, guidance ready. Service workers are off so
    that the test's routes see every request the page makes."""
    browser = launch(playwright, video=video)
    ctx = phone_context(browser, server, service_workers="block")
    page = ctx.new_page()
    _to_capture(page, server, case)
    return browser, ctx, page


def _send_state(page: Any, state: str, timeout: float = 20_000) -> str:
    """Wait for the queue's panel to reach ``state``; its text."""
    page.wait_for_function(
        f"document.querySelector('[data-testid=send-status]').dataset.state === '{state}'",
        timeout=timeout,
    )
    return str(page.locator("[data-testid=send-status]").inner_text())


def test_network_cut_mid_send_and_restored_searches_exactly_once(
    playwright, server, videos, artifacts
):
    case = "CASE-QUEUE-CUT"
    browser, ctx, page = _capture_page(playwright, server, videos["good"], case)
    sent: list[dict[str, Any]] = []

    def cut_after_the_server_answers(route: Any) -> None:
        # The request reaches the server (the search runs), then the signal goes before the
        # answer reaches the phone.
        response = route.fetch()
        sent.append(
            {
                "key": route.request.headers.get("idempotency-key"),
                "status": response.status,
                "replayed": response.headers.get("idempotent-replayed"),
            }
        )
        if len(sent) == 1:
            ctx.set_offline(True)
            route.abort("internetdisconnected")
        else:
            route.fulfill(response=response)

    page.route("**/api/v1/searches", cut_after_the_server_answers)
    page.click("[data-testid=capture]")
    panel = page.locator("[data-testid=send-status]")
    _send_state(page, "waiting")
    assert "Waiting for signal, will send" in panel.inner_text()
    assert page.locator("[data-testid=send-cancel]").is_visible()
    shot(page, artifacts, "12-queue-waiting-for-signal", full_page=False)
    # The search ran once already; the phone does not know it and holds the photo, sealed.
    assert _searches_for(server, case) == (1, 1)
    held = _held(page)
    assert len(held) == 1 and held[0]["attempts"] == 1
    assert not held[0]["jpeg_magic"] and held[0]["bytes"] > 10_000
    assert held[0]["key_type"] == "secret" and held[0]["key_extractable"] is False
    assert held[0]["key_exportable"] is False
    # While there is no signal there is no guidance, and no second capture.
    assert page.locator("[data-testid=capture]").is_disabled()
    # Signal back: the phone sends again with the same key; the server answers with the search
    # it already ran.
    ctx.set_offline(False)
    page.wait_for_url("**/results/*")
    assert len(sent) == 2
    assert sent[0]["key"] and sent[0]["key"] == sent[1]["key"]
    assert sent[0]["status"] == 201 and sent[1]["status"] == 201
    assert sent[1]["replayed"] == "true"
    assert _searches_for(server, case) == (1, 1)  # exactly one search, one audit entry
    assert page.locator("[data-testid=headline]").get_attribute("data-kind") == "leads"
    assert _held(page) == []  # acknowledged: nothing left on the phone
    assert ctx.blocked == []
    browser.close()


def test_still_trying_then_cancel_wipes_the_capture(playwright, server, videos, artifacts):
    case = "CASE-QUEUE-CANCEL"
    browser, _ctx, page = _capture_page(playwright, server, videos["good"], case)
    stuck: list[Any] = []
    # The server never answers (a request lost in a weak signal).
    page.route("**/api/v1/searches", lambda route: stuck.append(route))
    page.click("[data-testid=capture]")
    _send_state(page, "still", timeout=20_000)
    assert "Still trying to send" in page.locator("[data-testid=send-status]").inner_text()
    shot(page, artifacts, "12b-queue-still-trying", full_page=False)
    assert len(_held(page)) == 1
    page.click("[data-testid=send-cancel]")
    panel = page.locator("[data-testid=send-status]")
    _send_state(page, "cancelled")
    assert "Cancelled: the photo was wiped from this phone" in panel.inner_text()
    assert _held(page) == []
    assert _searches_for(server, case) == (0, 0)
    for route in stuck:  # the page gave up on it; let the lost request go too
        with contextlib.suppress(Exception):  # already aborted by the page
            route.abort()
    # Guidance resumes and a new photo may be taken.
    page.wait_for_function(READY)
    page.wait_for_function("!document.querySelector('[data-testid=capture]').disabled")
    browser.close()


def test_a_capture_past_the_limit_is_wiped_and_the_wipe_noted_at_next_contact(
    playwright, server, videos, artifacts
):
    case = "CASE-QUEUE-EXPIRED"
    browser, ctx, page = _capture_page(playwright, server, videos["good"], case)

    def no_signal(route: Any) -> None:
        ctx.set_offline(True)
        route.abort("internetdisconnected")

    page.route("**/api/v1/searches", no_signal)
    page.click("[data-testid=capture]")
    _send_state(page, "waiting")
    (held,) = _held(page)
    limit_s = (held["expires"] - held["created"]) / 1000
    assert limit_s == 15 * 60  # the configured limit (ServiceSettings.capture_queue_limit_s)
    # Fifteen minutes pass without signal (the entry's deadline moved into the past).
    page.evaluate(
        """() => new Promise(resolve => {
          const open = indexedDB.open("fieldid-queue", 1);
          open.onsuccess = () => {
            const db = open.result;
            const t = db.transaction("captures", "readwrite");
            const s = t.objectStore("captures");
            s.getAll().onsuccess = (ev) => {
              for (const c of ev.target.result) {
                c.created -= 16 * 60 * 1000; c.expires -= 16 * 60 * 1000; s.put(c);
              }
            };
            t.oncomplete = () => { db.close(); resolve(); };
          };
        })"""
    )
    _send_state(page, "expired", timeout=15_000)
    text = page.locator("[data-testid=send-status]").inner_text()
    assert "wiped from this phone" in text and "waited 15 minutes without signal" in text
    shot(page, artifacts, "12c-queue-wiped-after-limit", full_page=False)
    assert _held(page) == []
    wiped = [e for e in server.ws.store.audit_entries("capture_wiped") if e.case_ref == case]
    assert wiped == []  # no signal yet: the note waits on the phone (sealed)
    ctx.set_offline(False)
    page.wait_for_timeout(500)
    deadline = 40
    while not wiped and deadline:
        page.wait_for_timeout(250)
        deadline -= 1
        wiped = [e for e in server.ws.store.audit_entries("capture_wiped") if e.case_ref == case]
    assert len(wiped) == 1
    assert wiped[0].operator == "demo-officer" and wiped[0].purpose == "field-identification"
    assert wiped[0].payload["maybe_sent"] is True and wiped[0].payload["waited_s"] >= 0
    assert _searches_for(server, case) == (0, 0)
    browser.close()


def test_the_offline_page_has_a_retry(playwright, server, artifacts):
    browser = launch(playwright, video=None)
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    login(page, server, "demo-officer")
    page.wait_for_url("**/start")
    page.wait_for_function(
        "navigator.serviceWorker && navigator.serviceWorker.controller !== null", timeout=20_000
    )
    ctx.set_offline(True)
    page.goto(server.url + "/searches")
    retry = page.locator("[data-testid=offline-retry]")
    assert retry.is_visible()
    assert "No connection" in page.locator("[data-testid=offline]").inner_text()
    shot(page, artifacts, "12d-offline-retry", full_page=False)
    # "Try again" without signal: the same page again, still at the address asked for.
    page.evaluate("window.beforeRetry = true")
    retry.click()
    page.wait_for_function("window.beforeRetry === undefined")  # the page was loaded again
    page.wait_for_selector("[data-testid=offline-retry]")
    assert page.url.endswith("/searches")
    # Signal back: the page retries by itself.
    ctx.set_offline(False)
    page.wait_for_selector("[data-testid=nav-searches][aria-current=page]")
    assert page.url.endswith("/searches")
    browser.close()


def test_capture_is_off_whenever_guidance_is_unavailable(playwright, server, videos, artifacts):
    browser, ctx, page = _capture_page(playwright, server, videos["good"], "CASE-NO-GUIDANCE")
    capture = page.locator("[data-testid=capture]")
    assert capture.is_enabled()
    ctx.set_offline(True)
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'unavailable'"
    )
    assert capture.is_disabled()
    assert "Guidance unavailable" in page.locator("[data-testid=guidance]").inner_text()
    shot(page, artifacts, "03d-capture-guidance-unavailable", full_page=False)
    # A server that stops answering frames (signal bars but no data) turns it off too.
    ctx.set_offline(False)
    page.wait_for_function(READY)
    assert capture.is_enabled()
    page.route("**/api/v1/quality", lambda route: None)  # never answered
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'unavailable'",
        timeout=15_000,
    )
    assert capture.is_disabled()
    browser.close()


def test_a_dark_frame_gets_more_light_first(playwright, server, videos, artifacts):
    browser = launch(playwright, video=videos["dark"])
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    login(page, server, "demo-officer")
    start(page, "CASE-DARK")
    page.wait_for_function(
        "document.querySelector('[data-testid=guidance]').dataset.code === 'quality.too_dark'"
    )
    guidance = page.locator("[data-testid=guidance]").inner_text()
    assert guidance.startswith("More light")
    assert "blur" not in guidance.split("\n")[0].lower()
    assert page.locator("[data-testid=capture]").is_disabled()
    shot(page, artifacts, "03c-capture-dark-more-light", full_page=False)
    browser.close()


def _upload(page: Any, path: Path) -> None:
    page.click("[data-testid=use-file]")
    page.locator("[data-testid=fallback-form]").wait_for(state="visible")
    page.set_input_files("[data-testid=file-input]", str(path))
    page.click("[data-testid=file-submit]")
    page.wait_for_url("**/results/*")


def test_the_repository_portrait_uploaded_is_refused_as_an_upload(
    playwright, server, videos, artifacts
):
    from fieldid.demo import astronaut_path

    browser = launch(playwright, video=videos["good"])
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    login(page, server, "demo-officer")
    start(page, "CASE-PORTRAIT")
    _upload(page, astronaut_path())
    head = page.locator("[data-testid=headline]")
    assert head.get_attribute("data-kind") == "refused"
    first_line = page.locator("main h1").first.inner_text()
    assert first_line == "Refused: this photo was not searched"
    said = head.inner_text()
    assert (
        "The face is too small in this photo: about 60 px between the eyes are needed; "
        "take a closer photo" in said
    )
    assert "move closer" not in said.lower()
    assert "not compared with anything" in said
    # Never called a search, never headed by the lead notice, nothing about a gallery searched.
    content = page.locator("main").text_content() or ""
    assert "Searched " not in content and "lead, not an identification" not in content
    assert page.locator("[data-testid=lead-notice]").count() == 0
    assert page.locator("[data-testid=below-gate]").count() == 0  # an officer cannot
    shot(page, artifacts, "13-refused-upload")
    shot(page, artifacts, "13a-refused-upload-first-screen", full_page=False)
    page.click("[data-testid=to-receipt]")
    page.wait_for_url("**/receipt/*")
    what = page.locator("[data-testid=what-happened]").inner_text()
    assert "It was not compared with anything" in what
    assert "compared it with a gallery" not in (page.locator("main").text_content() or "")
    assert page.locator("[data-testid=receipt-title]").inner_text() == (
        "Receipt: your photo could not be used"
    )
    shot(page, artifacts, "14-receipt-refused")
    browser.close()


def cands_quality(page: Any) -> str:
    return str(page.locator("[data-testid=probe-quality]").first.inner_text())


def test_a_supervisor_runs_a_low_quality_investigation_list_with_a_reason(
    playwright, server, videos, artifacts
):
    from fieldid.demo import astronaut_path

    case = "CASE-PORTRAIT-INVESTIGATION"
    browser = launch(playwright, video=videos["good"])
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    login(page, server, "demo-supervisor")
    start(page, case)
    _upload(page, astronaut_path())
    assert page.locator("[data-testid=headline]").get_attribute("data-kind") == "refused"
    below = page.locator("[data-testid=below-gate]")
    below.locator("summary").click()
    page.set_input_files("[data-testid=below-gate-file]", str(astronaut_path()))
    reason = "Only photo on file of a missing person; no other image available."
    page.fill("[data-testid=below-gate-reason]", reason)
    page.click("[data-testid=below-gate-submit]")
    page.wait_for_url("**/results/*")
    head = page.locator("[data-testid=headline]")
    assert head.get_attribute("data-kind") == "investigation"
    assert "Investigation list" in head.inner_text()
    label = page.locator("[data-testid=low-quality]").inner_text()
    assert label.startswith("Low quality: below the quality gate") and reason[:-1] in label
    assert "the face is too small in this photo" in label
    assert "below the gate" in cands_quality(page)
    cands = page.locator("[data-testid=candidate]")
    assert cands.count() >= 1
    assert "Subject 0001 (synthetic)" in cands.first.inner_text()
    shot(page, artifacts, "15-investigation-low-quality", full_page=False)
    last = [e for e in server.ws.store.audit_entries("search") if e.case_ref == case][-1]
    assert last.payload["list_kind"] == "investigation"
    assert last.payload["below_gate"]["reason"] == reason
    assert last.payload["below_gate"]["guidance"][0]["code"] == "quality.too_far"
    browser.close()


def test_a_search_with_no_candidate_says_so_first(playwright, server, videos, artifacts, tmp_path):
    # Someone not in the demo gallery (a test face, closer crop): no record is attached to it.
    face = Image.open(FIXTURES / "subject-0002" / "subject-0002_0001.jpg").convert("RGB")
    crop = face.crop((60, 55, 190, 185)).resize((300, 300), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", server.capture, (118, 124, 130))
    canvas.paste(crop, (170, 90))
    photo = tmp_path / "stranger.jpg"
    photo.write_bytes(jpeg(canvas))
    browser = launch(playwright, video=videos["good"])
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    login(page, server, "demo-officer")
    start(page, "CASE-NO-CANDIDATE")
    _upload(page, photo)
    head = page.locator("[data-testid=headline]")
    assert head.get_attribute("data-kind") == "no_candidate"
    assert page.locator("main h1").first.inner_text() == "No candidate at or above the threshold"
    assert "does not show the person is not enrolled" in head.inner_text()
    assert page.locator("[data-testid=lead-notice]").count() == 0
    assert page.locator("[data-testid=candidate]").count() == 0
    said = page.locator("[data-testid=capture-source]").inner_text()
    assert said == "Photo from a file: fieldid cannot tell a photo of a photo from a live person."
    shot(page, artifacts, "16-no-candidate")
    browser.close()


def test_leads_from_a_file_say_a_file_cannot_be_told_from_a_live_person(
    playwright, server, videos, artifacts, tmp_path
):
    from fieldid.demo import astronaut_path, closer_crop

    photo = tmp_path / "portrait-closer.jpg"
    photo.write_bytes(closer_crop(astronaut_path()))
    browser = launch(playwright, video=videos["good"])
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    login(page, server, "demo-officer")
    start(page, "CASE-FROM-A-FILE")
    _upload(page, photo)
    assert page.locator("[data-testid=headline]").get_attribute("data-kind") == "leads"
    said = page.locator("[data-testid=capture-source]")
    assert said.inner_text() == (
        "Photo from a file: fieldid cannot tell a photo of a photo from a live person."
    )
    assert page.locator("[data-testid=probe-caption]").first.inner_text() == "photo from a file"
    # Said before the first lead, on the first screen.
    box = said.bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"]
    shot(page, artifacts, "04c-results-from-a-file", full_page=False)
    browser.close()


def _tap_targets_too_small(page: Any) -> list[str]:
    """Visible controls smaller than 44 px in either direction (a radio or checkbox counts by
    its label, which is what a thumb presses)."""
    return page.evaluate(
        """() => {
          const bad = [];
          const controls = 'a, button, summary, select, textarea, input';
          for (const el of document.querySelectorAll(controls)) {
            if (el.type === 'hidden') continue;
            let box = el;
            if (el.type === 'radio' || el.type === 'checkbox') box = el.closest('label') || el;
            const r = box.getBoundingClientRect();
            if (!r.width || !r.height || box.offsetParent === null) continue;
            const what = (el.innerText || el.name || '').trim().slice(0, 30);
            const size = `${Math.round(r.width)}x${Math.round(r.height)}`;
            if (r.height < 44 || r.width < 44) bad.push(`${el.tagName} "${what}" ${size}`);
          }
          return bad;
        }"""
    )


def test_a_lead_reads_at_a_glance_on_the_first_screen(playwright, server, videos, artifacts):
    browser = launch(playwright, video=videos["good"])
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    _to_capture(page, server, "CASE-GLANCE")
    assert _tap_targets_too_small(page) == []
    page.click("[data-testid=capture]")
    page.wait_for_url("**/results/*")
    page.wait_for_function("document.querySelector('.pair img.probe-img').complete")
    shot(page, artifacts, "04a-results-first-screen", full_page=False)
    height = PHONE["height"]

    def on_first_screen(selector: str) -> None:
        box = page.locator(selector).first.bounding_box()
        assert box is not None, selector
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, (selector, box)

    # What happened, first: the lead notice is the first heading on the page.
    assert page.locator("main h1").first.inner_text() == "1 lead to check"
    for selector in (
        "[data-testid=headline]",
        "[data-testid=lead-notice]",
        "[data-testid=candidate] .pair figure:first-child img",
        "[data-testid=candidate] .pair figure.enrolled img",
        "[data-testid=candidate] h2",
        "[data-testid=meaning]",
        "[data-testid=decide] summary",
    ):
        on_first_screen(selector)
    meaning = page.locator("[data-testid=meaning]").inner_text()
    assert meaning.startswith("Score 0.9") and "a stranger scores this high" in meaning
    # Photos side by side, the same size.
    probe = page.locator(".pair figure:first-child img").bounding_box()
    enrolled = page.locator(".pair figure.enrolled img").bounding_box()
    assert probe and enrolled
    assert abs(probe["y"] - enrolled["y"]) < 2 and probe["x"] < enrolled["x"]
    assert abs(probe["width"] - enrolled["width"]) < 2
    # Gallery, threshold and model facts are folded below.
    facts = page.locator("[data-testid=gallery-facts]")
    assert facts.evaluate("d => d.tagName") == "DETAILS" and facts.get_attribute("open") is None
    assert not page.locator("[data-testid=search-context]").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert _tap_targets_too_small(page) == []
    facts.locator("summary").click()
    assert "Searched " in page.locator("[data-testid=search-context]").inner_text()
    page.locator("[data-testid=decide] summary").click()
    assert _tap_targets_too_small(page) == []
    shot(page, artifacts, "04c-results-full")
    assert ctx.blocked == []
    browser.close()
