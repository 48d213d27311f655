"""Swagger UI's "Try it out" in a real browser (/docs, served offline):

- logged in with the browser session, a state-changing request carries the session's CSRF token
  (added by static/swagger-init.js), so it runs instead of being refused with ``access.csrf``;
- with an API token entered under "Authorize", requests go out as ``Authorization: Bearer``
  and the API answers as the token's account.
"""

from __future__ import annotations

import json
from typing import Any

from browser.helpers_browser import Server, launch
from browser.helpers_browser import phone_context as _context


def _login(page: Any, server: Server, name: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", server.passwords[name])
    page.click("button[type=submit]")
    page.wait_for_url("**/start")


def _docs(browser: Any, server: Server) -> tuple[Any, Any]:
    ctx = _context(browser, server)
    page = ctx.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    _login(page, server, "demo-supervisor")
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    return ctx, page


def _try(page: Any, op_id: str) -> Any:
    """Open an operation, press "Try it out", then "Execute"; the live response's block."""
    block = page.locator(f"#{op_id}")
    block.locator(".opblock-summary").first.click()
    block.locator("button.try-out__btn").click()
    block.locator("button.execute").click()
    live = block.locator(".live-responses-table .response")
    live.first.wait_for()
    return live.first


def test_try_it_out_sends_the_csrf_token_with_the_session(playwright, server, artifacts):
    browser: Any = launch(playwright, video=None)
    ctx, page = _docs(browser, server)
    # A POST with a JSON body: the review item does not exist, so a request that got past
    # authentication and the CSRF check is answered 404 review.not_found (403 access.csrf if
    # the token were missing).
    block = page.locator("#operations-review-post_review_item")
    block.locator(".opblock-summary").first.click()
    block.locator("button.try-out__btn").click()
    block.locator("input[placeholder='item_id']").fill("999999")
    block.locator("textarea.body-param__text").fill(
        json.dumps({"decision": "different_people", "note": "tried from the API docs"})
    )
    block.locator("button.execute").click()
    live = block.locator(".live-responses-table .response").first
    live.wait_for()
    live.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "docs-try-it-out.png"), full_page=False)
    assert live.locator(".response-col_status").inner_text().strip() == "404"
    body = live.locator(".response-col_description pre").first.inner_text()
    assert '"review.not_found"' in body and "access.csrf" not in body
    # And a request that changes state for real: logging out (DELETE needs the token too).
    out = _try(page, "operations-session-logout")
    assert out.locator(".response-col_status").inner_text().strip() == "204"
    assert page.request.get(server.url + "/api/v1/me").status == 401
    assert ctx.blocked == [], f"requests left the machine: {ctx.blocked}"
    browser.close()


def test_try_it_out_with_a_bearer_token(playwright, server, artifacts):
    from fieldid.access.accounts import Accounts

    token = Accounts(server.ws.store, server.ws.clock).issue_token("audrey", by="test").secret
    browser: Any = launch(playwright, video=None)
    ctx, page = _docs(browser, server)
    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input[type=text], input[type=password]").first.fill(token)
    dialog.locator("button.authorize").first.click()
    dialog.locator("button.btn-done").first.click()
    out = _try(page, "operations-session-me")
    assert out.locator(".response-col_status").inner_text().strip() == "200"
    body = json.loads(out.locator(".response-col_description pre").first.inner_text())
    # Logged in as the supervisor, but the request went out with the auditor's token.
    assert body["operator"] == "audrey" and body["via"] == "token"
    out.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "docs-bearer.png"), full_page=False)
    assert ctx.blocked == []
    browser.close()
