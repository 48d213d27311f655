"""Location in the field app (issue 17.3), in a real browser with a fake position: a phone in a
configured school area gets "a supervisor's approval first" and the audit shows the request; a
supervisor approves on /approvals with a reason (audited); the officer's next photo is searched
and keeps only the coarse cell; outside the area the search runs as before. The position is
rounded on the phone: no request carries the precise one, and guidance frames carry none.

Screenshots: 30 approval asked for, 31 the supervisor's approvals page, 32 approved, 33 results
of the approved search, 34 results outside every area.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser.helpers_browser import (
    Server,
    _free_port,
    face_frame,
    launch,
    login,
    phone_context,
    shot,
    start,
    write_y4m,
)

READY = "document.querySelector('[data-testid=guidance]').dataset.code === 'ready'"
SCHOOL = {
    "type": "Polygon",
    "coordinates": [
        [
            [2.3500, 48.8500],
            [2.3530, 48.8500],
            [2.3530, 48.8520],
            [2.3500, 48.8520],
            [2.3500, 48.8500],
        ]
    ],
}
IN_SCHOOL = {"latitude": 48.851137, "longitude": 2.351442, "accuracy": 12}
OUTSIDE = {"latitude": 48.910291, "longitude": 2.250173, "accuracy": 12}
REASON = "Warrant for this case; the officer is at the school gate after hours."


@pytest.fixture(scope="module")
def located(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo workspace with [location] on and one school area, served by uvicorn."""
    import uvicorn
    from rich.console import Console

    from fieldid.access import Actor, Role
    from fieldid.demo.server import DEMO_BANNER, prepare
    from fieldid.location.areas import add_area
    from fieldid.service import ServiceSettings, create_app
    from fieldid.workspace import Workspace

    root = tmp_path_factory.mktemp("browser-location") / "demo"
    ws, passwords = prepare(root, distractors=50, console=Console(quiet=True))
    ws.close()
    cfg = (root / "fieldid.toml").read_text()
    (root / "fieldid.toml").write_text(cfg.replace("\nenabled = false\n", "\nenabled = true\n"))
    ws = Workspace.open(root)
    with ws.store.unit_of_work() as uow:
        add_area(
            uow,
            Actor("test-admin", Role.ADMIN),
            name="Rue Example primary school",
            kind="school",
            geometry=SCHOOL,
        )
    settings = ServiceSettings(banner=DEMO_BANNER)
    app = create_app(ws, settings)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield Server(
        f"http://127.0.0.1:{port}",
        root,
        passwords,
        (settings.capture_width, settings.capture_height),
        ws,
    )
    srv.should_exit = True
    thread.join(timeout=10)
    ws.close()


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory, located: Server) -> Path:
    path = tmp_path_factory.mktemp("y4m-location") / "good.y4m"
    write_y4m(path, face_frame(located.capture, 440))
    return path


def _phone(browser: Any, server: Server, where: dict[str, float]) -> tuple[Any, list[Any]]:
    """A phone at ``where`` that has allowed location; every request body it sends is kept."""
    ctx = phone_context(
        browser,
        server,
        service_workers="block",
        geolocation=where,
        permissions=["geolocation"],
    )
    sent: list[Any] = []
    ctx.on("request", lambda r: sent.append((r.url, r.method, r.post_data_buffer or b"")))
    return ctx, sent


def _searches(server: Server, case: str) -> list[Any]:
    from sqlalchemy import select

    from fieldid.store.schema import SearchRecord

    with server.ws.store.read() as s:
        return list(s.scalars(select(SearchRecord).where(SearchRecord.case_ref == case)))


def _capture(page: Any) -> None:
    page.wait_for_function(READY)
    page.click("[data-testid=capture]")


def test_a_search_in_a_school_asks_a_supervisor_first_and_keeps_only_the_cell(
    playwright: Any, located: Server, camera: Path, artifacts: Path
) -> None:
    server = located
    case = "CASE-SCHOOL-1"
    browser = launch(playwright, video=camera)
    try:
        ctx, sent = _phone(browser, server, IN_SCHOOL)
        page = ctx.new_page()
        login(page, server, "demo-officer")
        start(page, case)
        assert "rounded" in page.locator("[data-testid=location-note]").inner_text()
        _capture(page)
        page.wait_for_selector(
            "[data-testid=capture-error][data-code='location.approval_required']"
        )
        assert (
            page.locator("[data-testid=guidance]")
            .inner_text()
            .startswith("A supervisor's approval is needed first")
        )
        assert page.locator("[data-testid=send-status]").is_hidden()
        said = page.locator("[data-testid=capture-error]").inner_text()
        assert "supervisor's approval" in said and "Rue Example primary school" in said
        assert "Nothing was searched" in said
        shot(page, artifacts, "30-location-approval-required")

        # What left the phone: the coarse cell with the photo, nothing with the guidance frames,
        # and never the precise position.
        searches = [b for u, m, b in sent if u.endswith("/api/v1/searches") and m == "POST"]
        frames = [b for u, m, b in sent if u.endswith("/api/v1/quality")]
        assert searches and frames
        assert b'name="location"\r\n\r\n48.8500,2.3500\r\n' in searches[0]
        assert all(b'name="location"' not in f for f in frames)
        assert not any(b"48.851137" in b or b"2.351442" in b for _, _, b in sent)

        # The audit shows the refused attempt and the request for approval.
        refused = [e for e in server.ws.store.audit_entries("search") if e.case_ref == case]
        assert len(refused) == 1 and refused[0].payload["outcome"] == "refused"
        assert refused[0].payload["error"]["code"] == "location.approval_required"
        approval = refused[0].payload["location_approval"]["id"]
        assert refused[0].payload["location"]["cell"] == {
            "lat": 48.85,
            "lon": 2.35,
            "grid_deg": 0.01,
        }
        assert _searches(server, case) == []  # nothing was searched or kept as a search

        # A supervisor, on their phone, sees it waiting and approves it with a reason.
        sup_ctx, _ = _phone(browser, server, OUTSIDE)
        sup = sup_ctx.new_page()
        login(sup, server, "demo-supervisor")
        sup.wait_for_url("**/start")
        assert sup.locator("[data-testid=nav-approvals]").inner_text() == "Approvals (1)"
        sup.click("[data-testid=nav-approvals]")
        item = sup.locator(f"[data-approval='{approval}']")
        assert "Rue Example primary school" in item.inner_text()
        assert "demo-officer" in item.inner_text() and case in item.inner_text()
        item.locator("[data-testid=approval-approve]").check()
        item.locator("[data-testid=approval-reason]").fill(REASON)
        shot(sup, artifacts, "31-location-approvals-page")
        item.locator("[data-testid=approval-submit]").click()
        sup.wait_for_selector("[data-testid=approval-done]")
        decided = sup.locator(f"[data-testid=approval-decided][data-approval='{approval}']")
        assert decided.get_attribute("data-state") == "approved"
        shot(sup, artifacts, "32-location-approved")
        entries = server.ws.store.audit_entries("location_approval")
        assert [(e.operator, e.payload["decision"], e.payload["reason"]) for e in entries] == [
            ("demo-supervisor", "approve", REASON)
        ]

        # The officer takes the photo again: now it is searched, on the approval.
        page.goto(page.url)
        _capture(page)
        page.wait_for_url("**/results/*")
        page.locator("details:has([data-testid=search-summary]) > summary").click()
        where = page.locator("[data-testid=search-location]").inner_text()
        assert "cell 48.85, 2.35 (0.01°)" in where and "Rue Example primary school" in where
        assert f"supervisor's approval (request {approval})" in where
        shot(page, artifacts, "33-location-approved-search-results")
        page.click("[data-testid=to-receipt]")
        page.wait_for_url("**/receipt/*")
        assert "not the exact place" in page.locator("[data-testid=receipt-location]").inner_text()
        shot(page, artifacts, "33b-location-receipt")
        rows = _searches(server, case)
        assert len(rows) == 1
        assert rows[0].location == {"lat": 48.85, "lon": 2.35, "grid_deg": 0.01}
        assert rows[0].location_approval_id == approval
        assert [a["kind"] for a in rows[0].location_areas] == ["school"]
        ran = [e for e in server.ws.store.audit_entries("search") if e.case_ref == case][-1]
        assert ran.payload["location"]["approval_id"] == approval

        # Outside every area the search runs as before, and keeps the coarse cell only.
        out_ctx, out_sent = _phone(browser, server, OUTSIDE)
        out = out_ctx.new_page()
        login(out, server, "demo-officer")
        start(out, "CASE-OUTSIDE-1")
        _capture(out)
        out.wait_for_url("**/results/*")
        out.locator("details:has([data-testid=search-summary]) > summary").click()
        where = out.locator("[data-testid=search-location]").inner_text()
        assert "cell 48.91, 2.25 (0.01°)" in where and "approval" not in where
        shot(out, artifacts, "34-location-outside-results")
        rows = _searches(server, "CASE-OUTSIDE-1")
        assert len(rows) == 1 and rows[0].outcome != "refused"
        assert rows[0].location == {"lat": 48.91, "lon": 2.25, "grid_deg": 0.01}
        assert rows[0].location_areas == [] and rows[0].location_approval_id is None
        assert not any(b"48.910291" in b for _, _, b in out_sent)

        from fieldid.audit.ops import verify_store

        assert verify_store(server.ws.store).ok
        assert not ctx.blocked and not sup_ctx.blocked and not out_ctx.blocked
    finally:
        browser.close()
