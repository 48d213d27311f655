"""Operator accounts: passwords, API tokens, browser sessions and login throttling.

- Passwords are stored as argon2id hashes (argon2-cffi's RFC 9106 low-memory profile); a login
  for an unknown name still verifies against a dummy hash, so timing does not tell which names
  exist.
- API tokens and session ids are 256-bit random values shown to the client once; only their
  SHA-256 is stored. A token is scoped to actions of :data:`fieldid.access.PERMISSIONS` (never
  more than its operator's role permits) and expires.
- Sessions expire after a fixed lifetime and after an idle period; each carries its own CSRF token.
- Failed logins are counted per account and per client address: after a few free attempts each
  further failure doubles the wait before the next attempt is accepted (up to a cap), and every
  failure is audited as ``login_failed``.

Lifecycle: disabling an account ends its sessions and revokes its tokens in the same unit of
work, so nothing it held works a moment later (enabling it again brings none of them back: new
tokens are issued); the last active admin cannot be disabled. A password reset ends the
account's sessions.

Audited events: ``login``, ``login_failed``, ``logout``, ``user_add``, ``user_disable``,
``user_enable``, ``user_password_reset``, ``user_password_change``, ``token_issue``,
``token_revoke``; each in the unit of work of the change it records.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update

from fieldid.access import PERMISSIONS, Actor, Role
from fieldid.clock import Clock
from fieldid.errors import AuthorisationError, FieldidError
from fieldid.store import Store
from fieldid.store.schema import ApiToken, LoginFailure, Operator, WebSession

#: Operator names: letters, digits and ``._-``, so they read unambiguously in the audit log.
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
MIN_PASSWORD = 10


class AuthenticationError(FieldidError):
    """Who is asking is not established: no credentials, wrong ones, or expired ones."""

    code = "access.unauthenticated"


class AccountError(FieldidError):
    """An account operation was refused (bad name, weak password, duplicate, unknown user)."""

    code = "account.invalid"


@dataclass(frozen=True)
class AccessPolicy:
    """Lifetimes and throttling. The defaults suit a shift-based field deployment."""

    session_lifetime: timedelta = timedelta(hours=12)
    session_idle: timedelta = timedelta(minutes=30)
    #: A session's idle timer and a token's ``last_used_at`` are written at most this often
    #: (every request would otherwise be a write transaction before its use even begins).
    touch_every: timedelta = timedelta(minutes=1)
    token_lifetime: timedelta = timedelta(days=90)
    max_token_lifetime: timedelta = timedelta(days=365)
    #: Failures counted within this window.
    throttle_window: timedelta = timedelta(minutes=15)
    #: Failures allowed per account before waits start; then 2 s, 4 s, 8 s … up to the cap.
    free_failures_account: int = 3
    #: The same per client address (several people may share one gateway).
    free_failures_address: int = 10
    backoff_base: timedelta = timedelta(seconds=2)
    backoff_cap: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class OperatorInfo:
    id: int
    name: str
    role: Role
    disabled: bool
    created_at: datetime
    created_by: str
    last_login_at: datetime | None

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role)


@dataclass(frozen=True)
class IssuedToken:
    """A new API token. ``secret`` is shown once and never stored."""

    id: int
    secret: str
    operator: str
    scopes: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed (never its secret)."""

    id: int
    operator: str
    label: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"

    def to_dict(self, now: datetime) -> dict[str, object]:
        return {
            "id": self.id,
            "operator": self.operator,
            "label": self.label,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "last_used_at": None if self.last_used_at is None else self.last_used_at.isoformat(),
            "state": self.state(now),
        }


@dataclass(frozen=True)
class TokenGrant:
    """Who a presented token stands for, and what it may do."""

    actor: Actor
    scopes: frozenset[str]
    token_id: int


@dataclass(frozen=True)
class SessionGrant:
    """A live browser session."""

    actor: Actor
    csrf_token: str
    expires_at: datetime
    id_hash: str


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _aware(t: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time fieldid stores is UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _info(op: Operator) -> OperatorInfo:
    return OperatorInfo(
        op.id,
        op.name,
        Role(op.role),
        op.disabled,
        _aware(op.created_at),
        op.created_by,
        _aware(op.last_login_at) if op.last_login_at else None,
    )


class Accounts:
    """Operator accounts of one store."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        policy: AccessPolicy | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy or AccessPolicy()
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def _now(self) -> datetime:
        return self.clock.now()

    # --- users -----------------------------------------------------------------------------

    def add_user(self, name: str, role: Role | str, password: str, *, by: str) -> OperatorInfo:
        """Create an operator. Refuses a malformed name, a duplicate, or a short password."""
        if not name or len(name) > 100 or not set(name) <= NAME_CHARS:
            raise AccountError(
                f"operator name {name!r}: use 1-100 letters, digits, '.', '_' or '-'",
                code="account.bad_name",
            )
        try:
            role = Role(role)
        except ValueError as e:
            raise AccountError(
                f"unknown role {role!r}: choose {', '.join(r.value for r in Role)}",
                code="account.bad_role",
            ) from e
        if len(password) < MIN_PASSWORD:
            raise AccountError(
                f"the password needs at least {MIN_PASSWORD} characters",
                code="account.weak_password",
            )
        password_hash = self.hasher.hash(password)
        with self.store.unit_of_work() as uow:
            s = uow.session
            if s.scalar(select(Operator.id).where(Operator.name == name)) is not None:
                raise AccountError(f"operator {name} exists already", code="account.exists")
            op = Operator(
                name=name,
                password_hash=password_hash,
                role=role.value,
                disabled=False,
                created_at=self._now(),
                created_by=by,
            )
            s.add(op)
            s.flush()
            info = _info(op)
            uow.audit("user_add", operator=by, payload={"user": name, "role": role.value})
        return info

    def get_user(self, name: str) -> OperatorInfo | None:
        with self.store.read() as s:
            op = s.scalar(select(Operator).where(Operator.name == name))
            return _info(op) if op else None

    def list_users(self) -> list[OperatorInfo]:
        with self.store.read() as s:
            return [_info(op) for op in s.scalars(select(Operator).order_by(Operator.name))]

    def has_admin(self) -> bool:
        """Whether the workspace has an active admin account (else it may be bootstrapped)."""
        with self.store.read() as s:
            found = s.scalar(
                select(Operator.id)
                .where(Operator.role == Role.ADMIN.value, Operator.disabled.is_(False))
                .limit(1)
            )
        return found is not None

    def set_disabled(self, name: str, disabled: bool, *, by: str) -> list[int]:
        """Disable (or re-enable) an operator. Disabling ends their sessions and revokes their
        tokens at once, in the same unit of work; the last active admin cannot be disabled.
        Returns the ids of the tokens revoked."""
        now = self._now()
        revoked: list[int] = []
        with self.store.unit_of_work() as uow:
            s = uow.session
            op = s.scalar(select(Operator).where(Operator.name == name).with_for_update())
            if op is None:
                raise AccountError(f"no operator named {name}", code="account.unknown")
            if disabled and op.role == Role.ADMIN.value and not op.disabled:
                others = s.scalar(
                    select(func.count(Operator.id)).where(
                        Operator.role == Role.ADMIN.value,
                        Operator.disabled.is_(False),
                        Operator.id != op.id,
                    )
                )
                if not others:
                    raise AccountError(
                        f"{name} is the last active admin: add or enable another admin first",
                        code="account.last_admin",
                    )
            if op.disabled == disabled:
                raise AccountError(
                    f"{name} is already {'disabled' if disabled else 'enabled'}",
                    code="account.unchanged",
                )
            op.disabled = disabled
            sessions = 0
            if disabled:
                sessions = len(
                    list(
                        s.scalars(select(WebSession.id_hash).where(WebSession.operator_id == op.id))
                    )
                )
                s.execute(delete(WebSession).where(WebSession.operator_id == op.id))
                for tok in s.scalars(
                    select(ApiToken).where(
                        ApiToken.operator_id == op.id, ApiToken.revoked_at.is_(None)
                    )
                ):
                    tok.revoked_at = now
                    revoked.append(tok.id)
            uow.audit(
                "user_disable" if disabled else "user_enable",
                operator=by,
                payload={
                    "user": name,
                    **(
                        {"sessions_ended": sessions, "tokens_revoked": sorted(revoked)}
                        if disabled
                        else {}
                    ),
                },
            )
        return sorted(revoked)

    def list_tokens(self, operator: str | None = None) -> list[TokenInfo]:
        """API tokens (all, or one operator's), newest first; never their secrets."""
        with self.store.read() as s:
            q = select(ApiToken, Operator.name).join(Operator, Operator.id == ApiToken.operator_id)
            if operator is not None:
                q = q.where(Operator.name == operator)
            rows = s.execute(q.order_by(ApiToken.id.desc())).all()
        return [
            TokenInfo(
                t.id,
                name,
                t.label,
                tuple(t.scopes.split()),
                _aware(t.created_at),
                _aware(t.expires_at),
                _aware(t.revoked_at) if t.revoked_at else None,
                _aware(t.last_used_at) if t.last_used_at else None,
            )
            for t, name in rows
        ]

    def change_password(self, name: str, old: str, new: str, *, client: str) -> None:
        """An operator changes their own password (the old one checked, with the login's
        throttling); their other sessions end. Audited ``user_password_change``."""
        self.authenticate(name, old, client=client)
        if len(new) < MIN_PASSWORD:
            raise AccountError(
                f"the password needs at least {MIN_PASSWORD} characters",
                code="account.weak_password",
            )
        password_hash = self.hasher.hash(new)
        with self.store.unit_of_work() as uow:
            s = uow.session
            op = s.scalar(select(Operator).where(Operator.name == name))
            assert op is not None
            op.password_hash = password_hash
            s.execute(delete(WebSession).where(WebSession.operator_id == op.id))
            uow.audit("user_password_change", operator=name, payload={"user": name})

    def reset_password(self, name: str, password: str, *, by: str) -> None:
        """Give an operator a new password (an admin's reset, or a bootstrap); audited
        (``user_password_reset``, never the password), their sessions ended. A disabled account
        stays disabled (``enable`` is its own, audited, act)."""
        if len(password) < MIN_PASSWORD:
            raise AccountError(
                f"the password needs at least {MIN_PASSWORD} characters",
                code="account.weak_password",
            )
        password_hash = self.hasher.hash(password)
        with self.store.unit_of_work() as uow:
            s = uow.session
            op = s.scalar(select(Operator).where(Operator.name == name))
            if op is None:
                raise AccountError(f"no operator named {name}", code="account.unknown")
            op.password_hash = password_hash
            s.execute(delete(WebSession).where(WebSession.operator_id == op.id))
            uow.audit("user_password_reset", operator=by, payload={"user": name})

    # --- login and throttling -------------------------------------------------------------

    def _wait(self, key: str, free: int) -> timedelta:
        """How long ``key`` must still wait before its next attempt (zero: may try now)."""
        now = self._now()
        since = now - self.policy.throttle_window
        with self.store.read() as s:
            n, last = s.execute(
                select(func.count(LoginFailure.id), func.max(LoginFailure.at)).where(
                    LoginFailure.key == key, LoginFailure.at >= since
                )
            ).one()
        if n < free or last is None:
            return timedelta(0)
        wait = min(self.policy.backoff_base * 2 ** (n - free), self.policy.backoff_cap)
        remaining: timedelta = _aware(last) + wait - now
        return max(remaining, timedelta(0))

    def throttle_wait(self, name: str, client: str) -> timedelta:
        return max(
            self._wait(f"user:{name}", self.policy.free_failures_account),
            self._wait(f"addr:{client}", self.policy.free_failures_address),
        )

    def _fail(self, name: str, client: str, reason: str) -> None:
        now = self._now()
        with self.store.unit_of_work() as uow:
            s = uow.session
            s.add(LoginFailure(key=f"user:{name}", at=now))
            s.add(LoginFailure(key=f"addr:{client}", at=now))
            s.execute(delete(LoginFailure).where(LoginFailure.at < now - timedelta(days=1)))
            uow.audit(
                "login_failed", operator=name[:100], payload={"reason": reason, "client": client}
            )

    def authenticate(self, name: str, password: str, *, client: str) -> Actor:
        """Check a name and password. Raises ``access.throttled`` while the account or client
        must wait, ``access.bad_credentials`` for a wrong name or password or a disabled
        account (one answer for all three, so a caller learns nothing about which)."""
        wait = self.throttle_wait(name, client)
        if wait > timedelta(0):
            seconds = max(1, int(wait.total_seconds() + 0.999))
            self.store.append_audit(
                "login_failed",
                operator=name[:100],
                payload={"reason": "throttled", "client": client, "retry_after": seconds},
            )
            raise AuthenticationError(
                f"too many failed logins: try again in {seconds} s",
                code="access.throttled",
                retry_after=seconds,
            )
        with self.store.read() as s:
            op = s.scalar(select(Operator).where(Operator.name == name))
            stored = op.password_hash if op else self._dummy_hash
            ok: bool
            try:
                ok = bool(self.hasher.verify(stored, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
            ok = ok and op is not None
        if not ok or op is None or op.disabled:
            reason = "disabled" if ok and op is not None else "bad_credentials"
            self._fail(name, client, reason)
            raise AuthenticationError(
                "wrong operator name or password", code="access.bad_credentials"
            )
        now = self._now()
        rehash = (
            self.hasher.hash(password) if self.hasher.check_needs_rehash(op.password_hash) else None
        )
        with self.store.unit_of_work() as uow:
            row = uow.session.get(Operator, op.id)
            assert row is not None
            row.last_login_at = now
            if rehash is not None:
                row.password_hash = rehash
            uow.session.execute(delete(LoginFailure).where(LoginFailure.key == f"user:{name}"))
        return Actor(op.name, Role(op.role))

    # --- sessions ----------------------------------------------------------------------------

    def open_session(self, actor: Actor, *, client: str) -> tuple[str, SessionGrant]:
        """Start a browser session for an authenticated actor; returns (cookie value, grant)."""
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._now()
        expires = now + self.policy.session_lifetime
        with self.store.unit_of_work() as uow:
            s = uow.session
            op = s.scalar(select(Operator).where(Operator.name == actor.name))
            if op is None:
                raise AccountError(f"no operator named {actor.name}", code="account.unknown")
            s.add(
                WebSession(
                    id_hash=sha256_hex(secret),
                    operator_id=op.id,
                    csrf_token=csrf,
                    client=client[:100],
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                )
            )
            s.execute(delete(WebSession).where(WebSession.expires_at < now))
            uow.audit("login", operator=actor.name, payload={"client": client})
        return secret, SessionGrant(actor, csrf, expires, sha256_hex(secret))

    def session(self, secret: str) -> SessionGrant:
        """The live session a cookie value stands for. Its idle timer is moved on (written)
        when it is older than ``policy.touch_every``; a request otherwise only reads (one
        statement). An expired session is deleted, then refused."""
        now = self._now()
        h = sha256_hex(secret)
        with self.store.read() as s:
            found = s.execute(
                select(WebSession, Operator)
                .join(Operator, Operator.id == WebSession.operator_id, isouter=True)
                .where(WebSession.id_hash == h)
            ).first()
        if found is None:
            raise AuthenticationError(
                "not logged in (or the session has ended)", code="access.no_session"
            )
        row, op = found
        idle_end = _aware(row.last_seen_at) + self.policy.session_idle
        if op is None or op.disabled or now >= _aware(row.expires_at) or now >= idle_end:
            with self.store.unit_of_work() as uow:
                uow.session.execute(delete(WebSession).where(WebSession.id_hash == h))
            raise AuthenticationError(
                "the session has expired: log in again", code="access.session_expired"
            )
        if now - _aware(row.last_seen_at) >= self.policy.touch_every:
            with self.store.unit_of_work() as uow:
                uow.session.execute(
                    update(WebSession).where(WebSession.id_hash == h).values(last_seen_at=now)
                )
        return SessionGrant(
            Actor(op.name, Role(op.role)), row.csrf_token, _aware(row.expires_at), h
        )

    def close_session(self, secret: str) -> None:
        h = sha256_hex(secret)
        with self.store.unit_of_work() as uow:
            s = uow.session
            row = s.get(WebSession, h)
            if row is None:
                return
            op = s.get(Operator, row.operator_id)
            s.delete(row)
            uow.audit("logout", operator=op.name if op else "?", payload={})

    # --- API tokens ---------------------------------------------------------------------------

    def issue_token(
        self,
        name: str,
        *,
        scopes: Iterable[str] | None = None,
        lifetime: timedelta | None = None,
        label: str = "",
        by: str,
    ) -> IssuedToken:
        """Issue a token for operator ``name``. Scopes default to every action the role permits;
        a scope the role does not permit is refused rather than silently dropped."""
        user = self.get_user(name)
        if user is None:
            raise AccountError(f"no operator named {name}", code="account.unknown")
        allowed = sorted(a for a, roles in PERMISSIONS.items() if user.role in roles)
        wanted = sorted(set(scopes)) if scopes is not None else allowed
        unknown = [a for a in wanted if a not in PERMISSIONS]
        if unknown:
            raise AccountError(
                f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(PERMISSIONS))}",
                code="account.bad_scope",
            )
        beyond = [a for a in wanted if a not in allowed]
        if beyond:
            raise AuthorisationError(
                f"{name} ({user.role.value}) may not {', '.join(beyond)}: a token cannot carry "
                "more than its operator's role",
                code="access.forbidden",
            )
        if not wanted:
            raise AccountError("a token needs at least one scope", code="account.bad_scope")
        life = lifetime or self.policy.token_lifetime
        if life <= timedelta(0) or life > self.policy.max_token_lifetime:
            raise AccountError(
                f"token lifetime must be positive and at most "
                f"{self.policy.max_token_lifetime.days} days",
                code="account.bad_lifetime",
            )
        secret = "fid_" + secrets.token_urlsafe(32)
        now = self._now()
        with self.store.unit_of_work() as uow:
            row = ApiToken(
                operator_id=user.id,
                token_hash=sha256_hex(secret),
                label=label[:200],
                scopes=" ".join(wanted),
                created_at=now,
                expires_at=now + life,
            )
            uow.session.add(row)
            uow.session.flush()
            token_id = row.id
            uow.audit(
                "token_issue",
                operator=by,
                payload={
                    "user": name,
                    "token_id": token_id,
                    "scopes": wanted,
                    "expires_at": (now + life).isoformat(),
                    "label": label,
                },
            )
        return IssuedToken(token_id, secret, name, tuple(wanted), now + life)

    def token(self, secret: str) -> TokenGrant:
        """Who a bearer token stands for. Raises ``access.token_invalid`` or
        ``access.token_expired``. ``last_used_at`` is written when older than
        ``policy.touch_every``; a request otherwise only reads (one statement)."""
        now = self._now()
        with self.store.read() as s:
            found = s.execute(
                select(ApiToken, Operator)
                .join(Operator, Operator.id == ApiToken.operator_id, isouter=True)
                .where(ApiToken.token_hash == sha256_hex(secret))
            ).first()
        if found is None or found[0].revoked_at is not None:
            raise AuthenticationError("the API token is not valid", code="access.token_invalid")
        row, op = found
        if now >= _aware(row.expires_at):
            raise AuthenticationError(
                "the API token has expired: issue a new one", code="access.token_expired"
            )
        if op is None or op.disabled:
            raise AuthenticationError("the API token is not valid", code="access.token_invalid")
        if row.last_used_at is None or now - _aware(row.last_used_at) >= self.policy.touch_every:
            with self.store.unit_of_work() as uow:
                uow.session.execute(
                    update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
                )
        return TokenGrant(Actor(op.name, Role(op.role)), frozenset(row.scopes.split()), row.id)

    def revoke_token(self, token_id: int, *, by: str) -> None:
        """Revoke a token: it stops working at once. Audited ``token_revoke``."""
        with self.store.unit_of_work() as uow:
            row = uow.session.get(ApiToken, token_id)
            if row is None:
                raise AccountError(f"no token {token_id}", code="account.unknown_token")
            if row.revoked_at is not None:
                raise AccountError(
                    f"token {token_id} was already revoked", code="account.token_revoked"
                )
            op = uow.session.get(Operator, row.operator_id)
            row.revoked_at = self._now()
            uow.audit(
                "token_revoke",
                operator=by,
                payload={"token_id": token_id, "user": op.name if op else None},
            )


def require_scoped(actor: Actor, action: str, scopes: frozenset[str] | None) -> None:
    """:func:`fieldid.access.require`, and for a token, that the action is in its scopes."""
    from fieldid.access import require

    require(actor, action)
    if scopes is not None and action not in scopes:
        raise AuthorisationError(
            f"this API token is not scoped for {action.replace('_', ' ')}; it carries: "
            f"{', '.join(sorted(scopes))}",
            code="access.scope",
            action=action,
        )
