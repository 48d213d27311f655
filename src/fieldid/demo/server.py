"""``fieldid demo``: the field app on a demo workspace, served at http://127.0.0.1:8000.

The gallery holds one real face, NASA's public-domain astronaut portrait, under the neutral
synthetic identity "Subject 0001 (synthetic)" with no records attached, and synthetic
template-only identities (vectors with no face behind them): 500 synthetic people with synthetic
records from the four kinds of source (``fieldid synth``), the rest plain distractors. Two demo
operators, an officer and a
supervisor, get fresh random passwords at every start, printed once.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from rich.console import Console

from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.dataset import LabelledImage
from fieldid.errors import WorkspaceError
from fieldid.workspace import Workspace

DEMO_SUBJECT = "subject-0001"
DEMO_BANNER = "DEMO: synthetic identities only; no record is attached to any face"
DEMO_OPERATORS = (("demo-officer", Role.OFFICER), ("demo-supervisor", Role.SUPERVISOR))
#: Who the demo's own set-up is in the audit log: the system, never taken for an account.
DEMO_SETUP = "system:demo-setup"


def default_workspace() -> Path:
    """``$XDG_DATA_HOME/fieldid/demo`` (``~/.local/share/fieldid/demo``): outside the source
    tree, kept between runs so the distractors are generated once."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fieldid" / "demo"


#: Synthetic people with records in the demo gallery (part of its distractors).
DEMO_RECORD_PEOPLE = 500


def prepare(
    root: Path, *, distractors: int, console: Console, database_url: str | None = None
) -> tuple[Workspace, dict[str, str]]:
    """Open (or create, on ``database_url`` if given) the demo workspace, fill its gallery, and
    reset the demo operators' passwords. Returns the workspace and {operator: password}."""
    from fieldid.demo import add_distractors, astronaut_path
    from fieldid.records.synth import synth

    if (root / "fieldid.toml").exists():
        ws = Workspace.open(root)
    else:
        ws = Workspace.init(root, database_url=database_url)
    summary = ws.enrollment.enroll_images(
        [LabelledImage(astronaut_path(), DEMO_SUBJECT, "Subject 0001 (synthetic)")],
        operator=DEMO_SETUP,
        source_name="demo: NASA public-domain portrait (no records)",
        synthetic=True,
    )
    if summary.refused:
        r = summary.refused[0]
        raise WorkspaceError(f"demo portrait refused: {r.message}", code="demo.enroll")
    # Synthetic people with synthetic records across the four kinds of source (template-only:
    # no face, so no real face ever carries an invented record); idempotent for the seed.
    synth(ws, people=min(DEMO_RECORD_PEOPLE, distractors), seed=0, operator=DEMO_SETUP)
    if ws.gallery.size().persons - 1 < distractors:
        console.print("generating synthetic template-only distractors…")
        add_distractors(ws, distractors, operator=DEMO_SETUP)
    passwords = reset_operators(ws)
    return ws, passwords


def reset_operators(ws: Workspace) -> dict[str, str]:
    """Create the demo operators, or give them new passwords (the old ones are not kept)."""
    accounts = Accounts(ws.store, ws.clock)
    out: dict[str, str] = {}
    for name, role in DEMO_OPERATORS:
        password = secrets.token_urlsafe(9)
        if accounts.get_user(name) is None:
            accounts.add_user(name, role, password, by=DEMO_SETUP)
        else:
            accounts.reset_password(name, password, by=DEMO_SETUP)
        out[name] = password
    return out


def serve_demo(
    root: Path | None, *, host: str, port: int, distractors: int, console: Console
) -> None:
    import uvicorn

    from fieldid.service import ServiceSettings, create_app

    root = root or default_workspace()
    console.print(f"[bold]fieldid demo[/] workspace: {root}")
    ws, passwords = prepare(root, distractors=distractors, console=console)
    console.print(
        f"faces and templates sealed under the key {ws.keys.kek_id} from {ws.keys.source}"
        + (" (made now)" if ws.key_created is not None else ""),
        highlight=False,
        markup=False,
    )
    size = ws.gallery.size()
    console.print(
        f"gallery: {size.persons:,} people: Subject 0001 (synthetic) is the public-domain "
        f"astronaut portrait; the other {size.persons - 1:,} are synthetic template-only "
        f"identities with no face behind them ({min(DEMO_RECORD_PEOPLE, distractors):,} of them "
        "carry synthetic records from the four kinds of source)."
    )
    url = f"http://{host}:{port}"
    console.print(f"\nopen [bold]{url}[/] and log in as (passwords are new at every start):")
    for name, pw in passwords.items():
        console.print(f"  {name:16} {pw}", markup=False, highlight=False)
    from fieldid.demo import astronaut_path, closer_crop

    probe = root / "try-this-photo.jpg"
    probe.write_bytes(closer_crop(astronaut_path()))
    console.print(
        "to get a candidate, hold the astronaut portrait (src/fieldid/demo/astronaut.jpg, on "
        f"another screen) close to the camera, or choose 'Use a photo file instead' and upload "
        f"{probe} (a closer capture of the same face).",
        highlight=False,
    )
    console.print(
        f"to try it with your own face, log in as demo-officer and open {url}/demo/onboarding "
        "(enrolment with consent, deleted on request or after 24 hours).",
        highlight=False,
    )
    if host not in {"127.0.0.1", "localhost", "::1"}:
        console.print(
            "[bold]warning[/]: serving plain http beyond this machine: the session cookie and "
            "photos cross the network unencrypted, and phones allow the live camera only over "
            "https (the file input still works). Put it behind TLS for real use."
        )
    # Onboarding: a visitor may enrol their own face (with consent) and search for it.
    settings = ServiceSettings(banner=DEMO_BANNER, demo_onboarding=True)
    app = create_app(ws, settings)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        ws.close()
