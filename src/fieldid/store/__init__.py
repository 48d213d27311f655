"""The storage kernel: one home for every table, migration, transaction and audit append.

- :func:`open_store` (``url``) -> :class:`Store`: the engine for SQLite or PostgreSQL, schema
  brought to the current migration.
- :meth:`Store.unit_of_work` -> :class:`UnitOfWork`: one session, one transaction; a use and its
  audit entry commit together (``uow.audit``), effects outside the database follow the commit
  (``uow.after_commit``).
- :meth:`Store.read`: a session for reading (no audit, nothing written).
- :meth:`Store.append_audit`: one audit entry in its own small unit of work (refusals, events
  with nothing else to write).

Layout: ``schema/`` (tables by area), ``migrations/`` (Alembic), ``engine.py`` (URL -> engine),
``uow.py``, ``audit.py`` (appender, reader), ``repos/`` (shared queries: merge lineage),
``copy.py`` (``fieldid db copy``), ``keys.py`` (sealed biometric columns, the keyring),
``private.py`` (a workspace no other user can read). See docs/storage.md and docs/security.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from fieldid.errors import FieldidError
from fieldid.store import audit as _audit
from fieldid.store.audit import AuditRecord, utcnow
from fieldid.store.engine import is_postgres, make_engine, parse_url, read_engine, shown
from fieldid.store.migrate import current_revision, head_revision, upgrade
from fieldid.store.uow import UnitOfWork

if TYPE_CHECKING:
    from fieldid.store.keys import StoreKeys

#: Key of a session's ``info`` naming its store (``fieldid.store.keys.keys_of``).
STORE_INFO = "fieldid.store"


class StoreError(FieldidError):
    """The database cannot be used (unreachable, behind its migrations, …). Codes ``database.*``."""

    code = "database.error"


#: Keys of ``Session.info`` that hold what one read transaction saw (dropped when it ends).
READ_MEMO = "fieldid.read."


def _reread(s: Session) -> None:
    """End a read session's transaction (it wrote nothing) and forget what it memoised: the
    next read sees what has been committed since."""
    s.commit()
    for key in [k for k in s.info if isinstance(k, str) and k.startswith(READ_MEMO)]:
        del s.info[key]


class Store:
    """One database: its engine, its units of work and its reads. Built once per process by
    ``Workspace`` (the composition root) and handed to every service that stores anything."""

    def __init__(
        self,
        url: URL | str,
        *,
        now: Callable[[], datetime] = utcnow,
        pool: bool = True,
    ) -> None:
        self.url = parse_url(url)
        self.engine: Engine = make_engine(self.url, pool=pool)
        #: What reads go through (PostgreSQL: the same pool, autocommit; see ``engine.py``).
        self.read_engine: Engine = read_engine(self.engine)
        self.now = now
        #: The keys that seal and open biometric values (``fieldid.store.keys.open_keys``
        #: installs them; a store opened without them cannot read or write those values).
        self.keys: StoreKeys | None = None
        #: The session of the current :meth:`reading` block (per thread and task).
        self._reading: ContextVar[Session | None] = ContextVar(
            f"fieldid_reading_{id(self)}", default=None
        )

    # -- what it is ----------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "postgresql" if is_postgres(self.url) else "sqlite"

    @property
    def shown_url(self) -> str:
        """The URL with its password masked."""
        return shown(self.url)

    # -- schema ----------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Apply every pending migration."""
        try:
            upgrade(self.engine)
        except FieldidError:
            raise
        except Exception as e:
            raise StoreError(
                f"could not bring {self.shown_url} to the current schema: {type(e).__name__}: {e}",
                code="database.migrate",
            ) from e

    def revision(self) -> str | None:
        return current_revision(self.engine)

    @staticmethod
    def head() -> str | None:
        return head_revision()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- transactions ----------------------------------------------------------------------------

    def unit_of_work(self, *, reads_first: bool = False) -> UnitOfWork:
        """A new unit of work (use it as a context manager; see :mod:`fieldid.store.uow`).
        ``reads_first``: one that reads before a use writes through it (a request's)."""
        uow = UnitOfWork(self.engine, self.now, reads_first=reads_first, info={STORE_INFO: self})
        shared = self._reading.get()
        if shared is not None:
            # Written inside a :meth:`reading` block: its reads after the commit begin anew
            # (on SQLite a read transaction keeps the snapshot it began with).
            uow.after_commit(lambda: _reread(shared))
        return uow

    @contextmanager
    def using(self, uow: UnitOfWork | None) -> Iterator[UnitOfWork]:
        """The unit of work of one use: ``uow`` if the caller hands one in (the API's
        request-scoped one; committed at the end of the block, rolled back on an exception),
        else a new one."""
        if uow is None:
            with self.unit_of_work() as own:
                yield own
            return
        try:
            uow.begin_write()
            yield uow
            uow.commit()
        except BaseException:
            uow.rollback()
            raise

    @contextmanager
    def read(self, *, stream: bool = False) -> Iterator[Session]:
        """A session for reading (it refuses to write). Objects read stay usable (detached,
        loaded) after the block. Inside :meth:`reading` (same thread), the session of that
        block: one connection and one transaction for all of them. ``stream``: for results
        read in batches (``yield_per``): on PostgreSQL a server-side cursor, which lives in a
        transaction, so its own session (reads otherwise run in autocommit)."""
        shared = self._reading.get()
        if shared is not None and not stream:
            yield shared
            return
        bind = self.engine if stream else self.read_engine
        with Session(
            bind=bind, expire_on_commit=False, autoflush=False, info={STORE_INFO: self}
        ) as s:
            yield s

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """One read session for every :meth:`read` in the block, however deep (the reads of
        one use: the gallery's size and revision, its short list, the candidates' people and
        records). A use's reads otherwise take a connection, a transaction and, on
        PostgreSQL, a pool check-out each. Only for reads that write nothing in between: on
        SQLite the block reads one snapshot. Nested, the outer block's session is used."""
        shared = self._reading.get()
        if shared is not None:
            yield shared
            return
        with Session(
            bind=self.read_engine, expire_on_commit=False, autoflush=False, info={STORE_INFO: self}
        ) as s:
            token = self._reading.set(s)
            try:
                yield s
            finally:
                self._reading.reset(token)

    def append_audit(
        self,
        event: str,
        *,
        operator: str,
        purpose: str | None = None,
        case_ref: str | None = None,
        payload: dict[str, Any] | None = None,
        releasing: UnitOfWork | None = None,
    ) -> AuditRecord:
        """One audit entry in its own small unit of work: a refusal, or an event that writes
        nothing else. A use that writes appends with ``uow.audit`` instead, atomically.
        ``releasing``: a unit of work the caller holds, rolled back first (a refused use writes
        nothing of its own, and must not hold the database's write lock meanwhile)."""
        if releasing is not None:
            releasing.rollback()
        with self.unit_of_work() as uow:
            return uow.audit(
                event, operator=operator, purpose=purpose, case_ref=case_ref, payload=payload
            )

    def audit_entries(self, event: str | None = None) -> list[AuditRecord]:
        """The audit log in seq order (``event``: only those entries)."""
        with self.read(stream=True) as s:
            return list(_audit.entries(s, event))

    def close(self) -> None:
        self.engine.dispose()


def open_store(
    url: URL | str,
    *,
    now: Callable[[], datetime] = utcnow,
    pool: bool = True,
    migrate: bool = True,
) -> Store:
    """The store at ``url``, its schema migrated to the current revision (unless ``migrate`` is
    false: then a database behind its migrations is refused with ``database.behind``)."""
    store = Store(url, now=now, pool=pool)
    try:
        if migrate:
            store.migrate()
        elif store.revision() != store.head():
            raise StoreError(
                f"{store.shown_url} is at schema revision {store.revision()}, this fieldid needs "
                f"{store.head()}: run `fieldid upgrade`",
                code="database.behind",
            )
    except Exception:
        store.close()
        raise
    return store


__all__ = [
    "READ_MEMO",
    "AuditRecord",
    "Store",
    "StoreError",
    "UnitOfWork",
    "open_store",
]
