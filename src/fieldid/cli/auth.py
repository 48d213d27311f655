"""Who is at the command line: an operator account of the workspace, never a name typed in.

Every command that acts as an operator (searches, verifies, adjudicates, enrols, imports, merges,
purges, corrects, exports, reads records or the audit log, manages accounts) is declared with
:func:`requires` and the action it needs from :data:`fieldid.access.PERMISSIONS`. It then
authenticates against the workspace's accounts, in this order:

1. an API token: the environment variable ``FIELDID_TOKEN``, or ``--token-file FILE`` (the token
   on the file's first line; ``fieldid token issue`` makes one, ``fieldid init --token-out``
   the first admin's);
2. otherwise, at a terminal, the operator's name (``--user``, ``FIELDID_USER``, or asked) and
   password (asked, never echoed), checked with the same throttling as the web login.

Without either it is refused (``access.unauthenticated``) with what to do. The role is the
account's; a token also carries scopes (an action outside them is refused, ``access.scope``). A
disabled account, a revoked or expired token, is refused at once. Everything the command does
is audited under the account's name.

Commands that touch no face, record or search need no account and say why with
:func:`no_account` (``fieldid eval`` on a dataset, ``fieldid models``, checking a signed file…);
``tests/test_accountable_surfaces.py`` walks the whole command tree and fails on a command that
declares neither.
"""

from __future__ import annotations

import functools
import getpass
import inspect
import os
import socket
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from fieldid.errors import FieldidError

if TYPE_CHECKING:
    from fieldid.access import Actor
    from fieldid.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])

TOKEN_ENV = "FIELDID_TOKEN"
USER_ENV = "FIELDID_USER"

TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help=f"Authenticate with the API token on this file's first line (or set {TOKEN_ENV}).",
        show_default=False,
    ),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar=USER_ENV,
        help="Your operator name, for the password prompt (without a token).",
        show_default=False,
    ),
]


@dataclass
class Credentials:
    """What a command was given to authenticate with, the action it needs, and (once
    authenticated) who it is: a command authenticates once however often it asks."""

    action: str
    token_file: Path | None
    user: str | None
    who: Actor | None = None
    scopes: frozenset[str] | None = None


_CREDENTIALS: ContextVar[Credentials | None] = ContextVar("fieldid_cli_credentials", default=None)


def requires(action: str, *, except_when: str | None = None) -> Callable[[F], F]:
    """Declare that a command acts as an operator who may do ``action``: adds ``--token-file``
    and ``--user`` to it; its body calls :func:`operator` once it has opened the workspace, and
    audits what it did under that operator. ``except_when``: the one form of the command that
    touches no workspace and so needs no account (e.g. ``eval`` without ``--workspace``)."""
    from fieldid.access import PERMISSIONS

    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}")

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        extra = [
            inspect.Parameter(
                "token_file", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=TokenFileOpt
            ),
            inspect.Parameter(
                "user", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UserOpt
            ),
        ]
        params = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
            else p
            for p in sig.parameters.values()
        ]

        @functools.wraps(fn)
        def wrapper(
            *args: Any, token_file: Path | None = None, user: str | None = None, **kw: Any
        ) -> Any:
            token = _CREDENTIALS.set(Credentials(action, token_file, user))
            try:
                return fn(*args, **kw)
            finally:
                _CREDENTIALS.reset(token)

        wrapper.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {
            **fn.__annotations__,
            "token_file": TokenFileOpt,
            "user": UserOpt,
        }
        wrapper.__fieldid_action__ = action  # type: ignore[attr-defined]
        wrapper.__fieldid_except_when__ = except_when  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def no_account(reason: str) -> Callable[[F], F]:
    """Declare that a command needs no account, and why (it touches no face, record or search
    of a workspace's gallery)."""

    def decorate(fn: F) -> F:
        fn.__fieldid_no_account__ = reason  # type: ignore[attr-defined]
        return fn

    return decorate


def _token() -> str | None:
    creds = _CREDENTIALS.get()
    if creds is not None and creds.token_file is not None:
        try:
            text = creds.token_file.read_text(encoding="utf-8")
        except OSError as e:
            raise FieldidError(
                f"could not read the token file {creds.token_file}: {e.strerror or e}",
                code="access.token_file",
            ) from e
        first = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not first:
            raise FieldidError(
                f"the token file {creds.token_file} is empty", code="access.token_file"
            )
        return first
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None


def client_name() -> str:
    """How the command line appears as a login client: ``cli:<login>@<host>``."""
    try:
        login = getpass.getuser()
    except Exception:
        login = "?"
    return f"cli:{login}@{socket.gethostname()}"[:100]


def local_name() -> str:
    """Who ran a command that needs no account, as the audit log names them:
    ``local:<login>@<host>`` (never mistaken for an account: no account name has a colon)."""
    return "local:" + client_name().removeprefix("cli:")


def _interactive() -> bool:
    return sys.stdin.isatty()


def operator(ws: Workspace, action: str | None = None) -> Actor:
    """The authenticated operator of this command, permitted to do its action (or ``action``,
    checked too). Raises ``access.unauthenticated`` (no credentials), ``access.token_*``,
    ``access.bad_credentials``, ``access.throttled``, ``access.forbidden`` or ``access.scope``."""
    from fieldid.access.accounts import require_scoped

    creds = _CREDENTIALS.get()
    if creds is None:
        raise RuntimeError("operator() outside a command declared with @requires")
    if creds.who is None:
        creds.who, creds.scopes = _authenticate(ws, creds)
        require_scoped(creds.who, creds.action, creds.scopes)
    if action is not None and action != creds.action:
        require_scoped(creds.who, action, creds.scopes)
    return creds.who


def _authenticate(ws: Workspace, creds: Credentials) -> tuple[Actor, frozenset[str] | None]:
    from fieldid.access.accounts import Accounts, AuthenticationError

    accounts = Accounts(ws.store, ws.clock)
    secret = _token()
    if secret is not None:
        grant = accounts.token(secret)
        return grant.actor, grant.scopes
    if _interactive():
        name = creds.user or typer.prompt("operator name")
        password = getpass.getpass(f"password for {name}: ")
        return accounts.authenticate(name, password, client=client_name()), None
    raise AuthenticationError(
        "this command acts as an operator and needs an account of the workspace: set "
        f"{TOKEN_ENV} to an API token, give --token-file FILE, or run it at a terminal to be "
        "asked for your operator name and password (`fieldid token issue NAME` makes a token; "
        "`fieldid init` made the first admin)",
        code="access.unauthenticated",
    )
