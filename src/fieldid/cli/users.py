"""``fieldid user`` and ``fieldid token``: operator accounts and API tokens of a workspace.

These commands act with the authority of whoever can open the workspace's files (the local
administrator); they are audited under that login name."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fieldid.errors import FieldidError

user_app = typer.Typer(help="Operator accounts (argon2-hashed passwords, one role each).")
token_app = typer.Typer(help="API tokens: scoped, expiring, shown once.")
console = Console()
err_console = Console(stderr=True)

WorkspaceOpt = Annotated[
    Path,
    typer.Option(
        "--workspace", "-w", envvar="FIELDID_WORKSPACE", help="Workspace folder (see fieldid init)."
    ),
]


def _fail(err: FieldidError) -> typer.Exit:
    err_console.print(f"refused [{err.code}] {err.message}", markup=False)
    return typer.Exit(code=2)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        err_console.print("the two passwords differ", markup=False)
        raise typer.Exit(code=2)
    return first


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Operator name (letters, digits, . _ -).")],
    role: Annotated[str, typer.Option(help="officer, supervisor, auditor or admin.")],
    workspace: WorkspaceOpt = Path("."),
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an operator; asks for the password twice unless --password-stdin."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    password = _read_password(password_stdin)
    try:
        with Workspace.open(workspace) as ws:
            info = Accounts(ws.store, ws.clock).add_user(name, role, password, by=getpass.getuser())
    except FieldidError as e:
        raise _fail(e) from e
    console.print(f"operator {info.name} added ({info.role.value})", markup=False)


@user_app.command("list")
def user_list(
    workspace: WorkspaceOpt = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List operators, their roles and last login."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            users = Accounts(ws.store, ws.clock).list_users()
    except FieldidError as e:
        raise _fail(e) from e
    if as_json:
        rows = [
            {
                "name": u.name,
                "role": u.role.value,
                "disabled": u.disabled,
                "created_at": u.created_at.isoformat(),
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in users
        ]
        print(json.dumps(rows, indent=2))
        return
    t = Table(title=f"{len(users)} operators", title_justify="left")
    for col in ("name", "role", "status", "last login"):
        t.add_column(col)
    for u in users:
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if u.last_login_at else "never"
        t.add_row(u.name, u.role.value, "disabled" if u.disabled else "active", last)
    console.print(t)


@token_app.command("issue")
def token_issue(
    name: Annotated[str, typer.Argument(help="Operator the token acts for.")],
    workspace: WorkspaceOpt = Path("."),
    scope: Annotated[
        list[str] | None,
        typer.Option(help="An action it may do (repeat); default: all the role permits."),
    ] = None,
    days: Annotated[int, typer.Option(help="Lifetime in days.")] = 90,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
) -> None:
    """Issue an API token; the secret is printed once and only its hash is kept."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            tok = Accounts(ws.store, ws.clock).issue_token(
                name,
                scopes=scope or None,
                lifetime=timedelta(days=days),
                label=label,
                by=getpass.getuser(),
            )
    except FieldidError as e:
        raise _fail(e) from e
    err_console.print(
        f"token {tok.id} for {tok.operator}, scopes {' '.join(tok.scopes)}, expires "
        f"{tok.expires_at:%Y-%m-%d %H:%M} UTC. Shown once: store it now.",
        markup=False,
    )
    print(tok.secret)
