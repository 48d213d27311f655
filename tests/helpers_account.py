"""Shared set-up for the accountability tests: workspaces on a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import subject_images
from fieldid.audit import Attribution
from fieldid.clock import ManualClock
from fieldid.workspace import Workspace
from helpers_storage import active

#: After the real time at which the session's enrolled workspace was made: the audit log's times
#: must not run backwards when a test's manual clock takes over from the system clock.
#: (The session's fixtures are made within the hour before T0.)
T0 = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)


def attr(operator: str = "officer-7", purpose: str = "field-identification") -> Attribution:
    return Attribution(operator, purpose, "CASE-2026-001")


def set_config(root: Path, section: str, text: str) -> None:
    """Replace the body of ``[section]`` in fieldid.toml with ``text``."""
    cfg = (root / "fieldid.toml").read_text()
    head, _, rest = cfg.partition(f"[{section}]\n")
    nxt = rest.find("\n[")
    tail = "" if nxt < 0 else rest[nxt:]
    (root / "fieldid.toml").write_text(f"{head}[{section}]\n{text}\n{tail}")


def open_copy(template: Path, tmp_path: Path, clock: ManualClock | None = None) -> Workspace:
    """A copy of a (closed) workspace on the test's backend, on a controllable clock."""
    root = active().copy(template, tmp_path / "ws")
    return Workspace.open(root, clock=clock or ManualClock(T0))


def search(ws: Workspace, subject: str, image: int = 1, **kw: str):  # type: ignore[no-untyped-def]
    return ws.searches.search(subject_images(subject)[image], attr(**kw))
