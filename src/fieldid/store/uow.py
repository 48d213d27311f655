"""The unit of work: one session, one transaction, the use and its audit entry together.

::

    with store.unit_of_work() as uow:               # BEGIN (IMMEDIATE on SQLite)
        uow.session.add(...)                        # the use's rows
        entry = uow.audit("search", operator=..., payload={...})   # same transaction
        uow.after_commit(lambda: index.apply(...))  # effects outside the database
    # COMMIT: the use and its audit entry exist together, or neither does; then the effects run

Leaving the block with an exception rolls everything back and drops the effects. A unit of work
may also be handed in (the API's request-scoped one): :meth:`commit` ends the current transaction
and the next statement begins another. Effects outside the database (the vector index, files)
run only after a commit; one that fails is logged, never undoes the commit: the database is the
truth, and what follows it (the index) detects that it is behind and catches up.

Rules that keep units of work from waiting on each other: one use, one unit of work (a helper
that writes takes the caller's ``uow``, it does not open its own); slow work (the face pipeline)
is done before the unit of work begins; the audit entry is appended last, just before commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fieldid.store import audit as _audit
from fieldid.store.audit import AuditRecord
from fieldid.store.engine import WRITE_OPTION

log = logging.getLogger(__name__)


class UnitOfWork:
    """``reads_first``: a unit of work that may read before it writes (the API's request-scoped
    one). On SQLite its reads run in a plain deferred transaction, which takes no lock, and a use
    calls :meth:`begin_write` before writing; otherwise every transaction of the unit of work is
    a write transaction from its first statement (``BEGIN IMMEDIATE``)."""

    def __init__(
        self,
        engine: Engine,
        now: Callable[[], datetime],
        *,
        reads_first: bool = False,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.session = Session(
            bind=engine,
            expire_on_commit=False,
            autoflush=True,
            execution_options={} if reads_first else {WRITE_OPTION: True},
            info=info,
        )
        self._now = now
        #: SQLite: a write transaction must begin as one (BEGIN IMMEDIATE), never upgrade.
        self._sqlite_locks = engine.dialect.name == "sqlite"
        self._after: list[Callable[[], Any]] = []
        #: Entries appended in the current transaction.
        self.appended: list[AuditRecord] = []

    # -- the use ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The store's clock (every time a use records comes from it)."""
        return self._now()

    def audit(
        self,
        event: str,
        *,
        operator: str,
        purpose: str | None = None,
        case_ref: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Append an audit entry in this transaction (committed with the use, or not at all)."""
        rec = _audit.append(
            self.session,
            self._now,
            event,
            operator=operator,
            purpose=purpose,
            case_ref=case_ref,
            payload=payload,
        )
        self.appended.append(rec)
        return rec

    def after_commit(self, effect: Callable[[], Any]) -> None:
        """Run ``effect`` once this transaction has committed (never if it rolls back)."""
        self._after.append(effect)

    def flush(self) -> None:
        self.session.flush()

    def begin_write(self) -> None:
        """Start the write transaction of a use: what was only read so far is committed (it
        wrote nothing; the objects read stay loaded), and the next transaction takes the write
        lock at once on SQLite (``BEGIN IMMEDIATE``), so a reader never has to upgrade."""
        s = self.session
        if s.in_transaction():
            if s.new or s.dirty or s.deleted:
                raise RuntimeError("a unit of work wrote before its use began (begin_write)")
            if self._sqlite_locks:
                s.commit()
            else:
                # PostgreSQL: reads and writes share one transaction (rows lock as they are
                # written; the audit head with FOR UPDATE): no second BEGIN, no second check-out.
                return
        s.connection(execution_options={WRITE_OPTION: True})

    # -- the transaction --------------------------------------------------------------------------

    def commit(self) -> None:
        self.session.commit()
        effects, self._after = self._after, []
        self.appended = []
        for effect in effects:
            try:
                effect()
            except Exception:
                log.exception("an effect after commit failed; what follows the database catches up")

    def rollback(self) -> None:
        self._after = []
        self.appended = []
        self.session.rollback()

    def close(self) -> None:
        """End the unit of work: anything uncommitted is rolled back; objects it loaded stay
        readable (detached)."""
        self._after = []
        self.appended = []
        self.session.close()

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()
