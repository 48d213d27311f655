"""What every ``fieldid`` command shares: consoles, the common options, how a refusal is printed,
the progress bar, opening a workspace and naming the acting operator.

The command line has no login of its own: ``--operator`` and ``--role`` name who acts, and the core
enforces what that role may do and records it in the audit log.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fieldid.errors import FieldidError

if TYPE_CHECKING:
    from fieldid.access import Actor
    from fieldid.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

WorkspaceOpt = Annotated[
    Path,
    typer.Option(
        "--workspace", "-w", envvar="FIELDID_WORKSPACE", help="Workspace folder (see fieldid init)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
RoleOpt = Annotated[
    str, typer.Option(help="The role you act in: officer, supervisor, auditor or admin.")
]


def fail(err: FieldidError, as_json: bool = False) -> NoReturn:
    """Print a refusal with its code (and any further guidance) and exit 2, as for bad usage."""
    if as_json:
        print(json.dumps({"error": err.to_dict()}, indent=2, default=str))
    else:
        err_console.print(f"[bold red]refused[/] {escape(f'[{err.code}]')} {escape(err.message)}")
        for g in err.details.get("guidance", [])[1:]:
            code = escape("[" + g["code"] + "]")
            err_console.print(f"  also: {code} {escape(g['message'])}")
    raise typer.Exit(code=2)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def open_workspace(workspace: Path) -> Workspace:
    from fieldid.workspace import Workspace

    return Workspace.open(workspace)


def actor(operator: str, role: str) -> Actor:
    """The operator named (default: the login) acting in ``role``; an unknown role is refused
    with ``access.unknown_role``."""
    from fieldid.access import Actor, Role

    try:
        r = Role(role)
    except ValueError:
        fail(
            FieldidError(
                f"unknown role {role!r}: one of {', '.join(x.value for x in Role)}",
                code="access.unknown_role",
            )
        )
    return Actor(operator or getpass.getuser(), r)
