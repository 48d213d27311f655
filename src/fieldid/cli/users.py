"""``fieldid user`` and ``fieldid token``: the life of operator accounts and API tokens.

Every command here acts as an authenticated admin (``admin_users``; :mod:`fieldid.cli.auth`),
except ``fieldid user passwd`` without a name (your own password, any account), and ``fieldid
user add`` on a workspace that has no active admin yet (bootstrapping an older workspace: it may
then only add an admin). Each change is audited by :class:`fieldid.access.accounts.Accounts` under
the acting account; listing is audited too (``account_list``, ``token_list``).

- ``user add | list | disable | enable | passwd``: disabling ends the account's sessions and
  revokes its tokens at once; enabling brings none of them back;
- ``token issue | list | revoke``: a token's secret is shown once; only its hash is kept.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fieldid.cli.auth import client_name, local_name, operator, requires
from fieldid.cli.common import JsonOpt, WorkspaceOpt, add_columns, console, err_console, fail
from fieldid.errors import FieldidError

user_app = typer.Typer(
    help="Operator accounts (argon2-hashed passwords, one role each).", no_args_is_help=True
)
token_app = typer.Typer(help="API tokens: scoped, expiring, shown once.", no_args_is_help=True)

PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the new password from standard input.")
]


def read_new_password(prompt: str = "new password") -> str:
    """A new password, asked twice at a terminal."""
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass("again: ") != first:
        err_console.print("the two passwords differ", markup=False)
        raise typer.Exit(code=2)
    return first


def _read_password(from_stdin: bool, prompt: str = "new password") -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        err_console.print(
            "no terminal to ask for the password: give --password-stdin and pipe it in",
            markup=False,
        )
        raise typer.Exit(code=2)
    return read_new_password(prompt)


def write_secret(path: Path, secret: str) -> None:
    """Write a token to ``path`` readable by its owner only (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "never"


# --- users ------------------------------------------------------------------------------------


@user_app.command("add")
@requires("admin_users")
def user_add(
    name: Annotated[str, typer.Argument(help="Operator name (letters, digits, . _ -).")],
    role: Annotated[str, typer.Option(help="officer, supervisor, auditor or admin.")],
    workspace: WorkspaceOpt = Path("."),
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Create an operator (admin); asks for their password twice unless --password-stdin.

    On a workspace with no active admin (made before accounts were required), the first admin
    may be added without an account; that bootstrap is audited as such."""
    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            accounts = Accounts(ws.store, ws.clock)
            if accounts.has_admin():
                by = operator(ws).name
            elif role != Role.ADMIN.value:
                raise FieldidError(
                    "this workspace has no active admin: add one first "
                    "(fieldid user add NAME --role admin)",
                    code="account.no_admin",
                )
            else:
                by = f"bootstrap:{local_name()}"
            password = _read_password(password_stdin)
            info = accounts.add_user(name, role, password, by=by)
    except FieldidError as e:
        fail(e)
    console.print(f"operator {info.name} added ({info.role.value})", markup=False)


@user_app.command("list")
@requires("admin_users")
def user_list(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False) -> None:
    """List operators, their roles, state and last login (admin)."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            who = operator(ws)
            users = Accounts(ws.store, ws.clock).list_users()
            ws.store.append_audit(
                "account_list", operator=who.name, payload={"role": who.role.value}
            )
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        rows = [
            {
                "name": u.name,
                "role": u.role.value,
                "disabled": u.disabled,
                "created_at": u.created_at.isoformat(),
                "created_by": u.created_by,
                "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            }
            for u in users
        ]
        print(json.dumps(rows, indent=2))
        return
    t = Table(title=f"{len(users)} operators", title_justify="left")
    add_columns(t, "name", "role", "status", "last login", ids=("name",))
    for u in users:
        t.add_row(
            u.name, u.role.value, "disabled" if u.disabled else "active", _when(u.last_login_at)
        )
    console.print(t)


def _set_disabled(workspace: Path, name: str, disabled: bool) -> None:
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            who = operator(ws)
            revoked = Accounts(ws.store, ws.clock).set_disabled(name, disabled, by=who.name)
    except FieldidError as e:
        fail(e)
    if disabled:
        console.print(
            f"operator {name} disabled: sessions ended, {len(revoked)} token(s) revoked",
            markup=False,
        )
    else:
        console.print(
            f"operator {name} enabled (tokens revoked when disabled stay revoked)", markup=False
        )


@user_app.command("disable")
@requires("admin_users")
def user_disable(
    name: Annotated[str, typer.Argument(help="The operator to disable.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Disable an operator: their sessions and tokens stop working at once (admin)."""
    _set_disabled(workspace, name, True)


@user_app.command("enable")
@requires("admin_users")
def user_enable(
    name: Annotated[str, typer.Argument(help="The operator to enable again.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Enable a disabled operator (admin); they log in again, with new tokens if needed."""
    _set_disabled(workspace, name, False)


@user_app.command("passwd")
@requires("account_self")
def user_passwd(
    name: Annotated[
        str | None,
        typer.Argument(help="Reset this operator's password (admin); without: change your own."),
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    password_stdin: PasswordStdinOpt = False,
) -> None:
    """Change your own password, or (admin) reset another operator's. Their sessions end."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            who = operator(ws)
            accounts = Accounts(ws.store, ws.clock)
            if name is None or name == who.name:
                if not sys.stdin.isatty() and not password_stdin:
                    raise FieldidError(
                        "changing your own password asks for the current one at a terminal",
                        code="account.no_terminal",
                    )
                old = (
                    getpass.getpass("current password: ")
                    if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip("\r\n")
                )
                new = _read_password(password_stdin)
                accounts.change_password(who.name, old, new, client=client_name())
                target = who.name
            else:
                operator(ws, "admin_users")
                accounts.reset_password(name, _read_password(password_stdin), by=who.name)
                target = name
    except FieldidError as e:
        fail(e)
    console.print(f"password of {target} changed; their sessions ended", markup=False)


# --- tokens -----------------------------------------------------------------------------------


@token_app.command("issue")
@requires("admin_users")
def token_issue(
    name: Annotated[str, typer.Argument(help="Operator the token acts for.")],
    workspace: WorkspaceOpt = Path("."),
    scope: Annotated[
        list[str] | None,
        typer.Option(help="An action it may do (repeat); default: all the role permits."),
    ] = None,
    days: Annotated[int, typer.Option(help="Lifetime in days.")] = 90,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the token to this file (mode 600) instead of printing."),
    ] = None,
) -> None:
    """Issue an API token (admin); the secret is shown once and only its hash is kept."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            who = operator(ws)
            tok = Accounts(ws.store, ws.clock).issue_token(
                name,
                scopes=scope or None,
                lifetime=timedelta(days=days),
                label=label,
                by=who.name,
            )
    except FieldidError as e:
        fail(e)
    err_console.print(
        f"token {tok.id} for {tok.operator}, scopes {' '.join(tok.scopes)}, expires "
        f"{tok.expires_at:%Y-%m-%d %H:%M} UTC. Shown once: store it now.",
        markup=False,
    )
    if out is not None:
        write_secret(out, tok.secret)
        err_console.print(f"written to {out} (mode 600)", markup=False)
    else:
        print(tok.secret)


@token_app.command("list")
@requires("admin_users")
def token_list(
    workspace: WorkspaceOpt = Path("."),
    of: Annotated[str | None, typer.Option("--of", help="Only this operator's tokens.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List API tokens (admin): whose, scopes, expiry, last use, revoked or not; never secrets."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            who = operator(ws)
            tokens = Accounts(ws.store, ws.clock).list_tokens(of)
            ws.store.append_audit(
                "token_list", operator=who.name, payload={"role": who.role.value, "of": of}
            )
            now = ws.clock.now()
    except FieldidError as e:
        fail(e, as_json)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if as_json:
        print(json.dumps([t.to_dict(now) for t in tokens], indent=2))
        return
    t = Table(title=f"{len(tokens)} API tokens", title_justify="left")
    for col in ("id", "operator", "label", "state", "expires", "last used", "scopes"):
        t.add_column(col)
    for k in tokens:
        t.add_row(
            str(k.id),
            k.operator,
            k.label,
            k.state(now),
            _when(k.expires_at),
            _when(k.last_used_at),
            " ".join(k.scopes),
        )
    console.print(t)


@token_app.command("revoke")
@requires("admin_users")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (fieldid token list).")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Revoke an API token (admin): it stops working at once."""
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    try:
        with Workspace.open(workspace) as ws:
            who = operator(ws)
            Accounts(ws.store, ws.clock).revoke_token(token_id, by=who.name)
    except FieldidError as e:
        fail(e)
    console.print(f"token {token_id} revoked", markup=False)
