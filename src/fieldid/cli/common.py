"""What every ``fieldid`` command shares: consoles, the common options, how a refusal is printed,
the progress bar and opening a workspace. Who acts is an authenticated account
(:mod:`fieldid.cli.auth`), never a name typed on the command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from fieldid.errors import FieldidError

if TYPE_CHECKING:
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


def add_columns(table: Table, *headers: str, ids: Iterable[str] = ()) -> None:
    """Add columns; those named in ``ids`` (ids, names, paths, codes) fold onto further lines
    when the terminal is narrow and are never cut short (rich's default ends them with "…")."""
    folded = set(ids)
    for h in headers:
        table.add_column(h, overflow="fold" if h in folded else "ellipsis")


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
    """The workspace, saying on stderr what opening it changed (permissions made private, a
    key-encryption key made for a workspace that had none)."""
    from fieldid.workspace import Workspace

    ws = Workspace.open(workspace)
    if ws.permission_fixes:
        shown = ", ".join(str(f) for f in ws.permission_fixes[:5])
        more = len(ws.permission_fixes) - 5
        err_console.print(
            f"[yellow]made private (other users could read them):[/] {escape(shown)}"
            + (f" and {more} more" if more > 0 else "")
        )
    if ws.key_created is not None:
        from fieldid.cli.keys import key_created_notice

        key_created_notice(ws.key_created, ws.keys.kek_id)
    return ws
