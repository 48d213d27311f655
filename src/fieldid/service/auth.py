"""Who is asking, and may they: session cookies with CSRF tokens, or bearer API tokens.

Every route declares what it needs with ``Depends(Need(action))`` (``action`` from
:data:`fieldid.access.PERMISSIONS`, or ``None`` for "any authenticated operator"); a test walks
the app's routes and proves each one refuses the unauthenticated and the wrong role.

- A browser sends the session cookie (HttpOnly, SameSite=Strict, Secure per the settings). A
  request that changes state (anything but GET/HEAD/OPTIONS) must also carry the session's CSRF
  token, in the ``X-CSRF-Token`` header or a ``csrf_token`` form field.
- A program sends ``Authorization: Bearer <token>``; the action must also be in the token's
  scopes. Bearer requests need no CSRF token (a browser never attaches one on its own).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from fieldid.access import Actor
from fieldid.access.accounts import AuthenticationError, require_scoped
from fieldid.errors import AuthorisationError
from fieldid.service.state import AppState

SESSION_COOKIE = "fieldid_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    actor: Actor
    via: Literal["session", "token"]
    #: A token's scopes; ``None`` for a session (the role alone decides).
    scopes: frozenset[str] | None
    csrf_token: str | None

    def require(self, action: str) -> None:
        require_scoped(self.actor, action, self.scopes)

    def can(self, action: str) -> bool:
        try:
            self.require(action)
        except AuthorisationError:
            return False
        return True


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.fieldid
    return state


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def is_secure(request: Request, state: AppState) -> bool:
    mode = state.settings.cookie_secure
    if mode != "auto":
        return mode == "always"
    if request.url.scheme == "https":
        return True
    if state.settings.trust_forwarded_proto:
        return request.headers.get("x-forwarded-proto", "").lower() == "https"
    return False


async def _csrf_ok(request: Request, expected: str) -> bool:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent, expected)


def authenticate(request: Request) -> Principal:
    """The principal behind a request's bearer token or session cookie (no CSRF check)."""
    state = app_state(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError(
                "use 'Authorization: Bearer <token>'", code="access.bad_authorization"
            )
        grant = state.accounts.token(value.strip())
        return Principal(grant.actor, "token", grant.scopes, None)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise AuthenticationError(
            "log in first (session cookie), or send an API token", code="access.unauthenticated"
        )
    session = state.accounts.session(cookie)
    return Principal(session.actor, "session", None, session.csrf_token)


class Need:
    """Dependency: an authenticated principal permitted to do ``action`` (``None``: any role).

    ``page=True`` marks a server-rendered page: refusals become a redirect to the login page or
    an HTML error page instead of problem+json (see ``app.py``)."""

    def __init__(self, action: str | None, *, page: bool = False) -> None:
        self.action = action
        self.page = page

    async def __call__(self, request: Request) -> Principal:
        request.state.page = self.page
        # In a worker thread: checking a session writes to the database, and waiting for its
        # lock on the event loop would stall every other request, the one holding it included.
        principal = await run_in_threadpool(authenticate, request)
        if (
            principal.via == "session"
            and request.method not in SAFE_METHODS
            and not await _csrf_ok(request, principal.csrf_token or "")
        ):
            raise AuthorisationError(
                "the request lacks this session's CSRF token (reload the page and try again)",
                code="access.csrf",
            )
        request.state.operator = principal.actor.name  # the request line names who was refused
        if self.action is not None:
            principal.require(self.action)
        request.state.principal = principal
        return principal

    def __repr__(self) -> str:
        return f"Need({self.action!r}, page={self.page})"
