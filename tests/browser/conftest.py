"""Browser tests: Debian's chromium driven by Playwright, against the app served by uvicorn.

The camera is chromium's fake capture device fed a .y4m video made here from the bundled
public-domain astronaut portrait, at exactly the size the capture page asks getUserMedia for
(chromium crops or letterboxes otherwise). Screenshots (phone-sized, 390×844) go to
``build/browser-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from browser.helpers_browser import (
    ARTIFACTS,
    CHROMIUM,
    Server,
    _free_port,
    darker,
    face_frame,
    write_y4m,
)


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return (
            "browser tests need Debian's chromium at /usr/bin/chromium (./dev setup installs it "
            "from scripts/apt-packages.txt)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need playwright (the dev extra: ./dev setup)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@contextmanager
def running(root: Path, ws: Any, passwords: dict[str, str], **settings: Any) -> Iterator[Server]:
    """The app on ``ws`` served by uvicorn on a free port, in a thread, until the block ends."""
    import uvicorn

    from fieldid.demo.server import DEMO_BANNER
    from fieldid.service import ServiceSettings, create_app

    config = ServiceSettings(banner=DEMO_BANNER, **settings)
    app = create_app(ws, config)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield Server(
            f"http://127.0.0.1:{port}",
            root,
            passwords,
            (config.capture_width, config.capture_height),
            ws,
        )
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from rich.console import Console

    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.demo.server import prepare

    root = tmp_path_factory.mktemp("browser") / "demo"
    ws, passwords = prepare(root, distractors=300, console=Console(quiet=True))
    Accounts(ws.store, ws.clock).add_user("audrey", Role.AUDITOR, "auditor-password", by="test")
    passwords["audrey"] = "auditor-password"
    with running(root, ws, passwords, demo_onboarding=True) as srv:
        yield srv
    ws.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory, server: Server) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("y4m")
    size = server.capture
    out = {"good": d / "good.y4m", "small": d / "small.y4m", "dark": d / "dark.y4m"}
    write_y4m(out["good"], face_frame(size, 440))
    write_y4m(out["small"], face_frame(size, 200))
    write_y4m(out["dark"], darker(face_frame(size, 440), 0.22))
    return out


@pytest.fixture(scope="session")
def playwright() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p
