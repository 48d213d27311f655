"""The audit appender and reader: hash-chained entries written inside the caller's transaction.

:func:`append` is the only way an entry is written. It runs in the unit of work of the use it
records (``UnitOfWork.audit``), so the use and its entry are committed together or not at all.
The next seq and the previous hash come from the ``audit_head`` row, locked in that transaction
(``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the unit of work's ``BEGIN IMMEDIATE`` holds the
database's write lock): appends from any number of processes form one chain, never two entries
with one seq. An entry's hash covers its content and the previous entry's hash, so an edit,
deletion, insertion or reordering breaks the chain at that point (``fieldid.audit.verify``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.store.schema import AuditEntry, AuditHead

GENESIS = "0" * 64
HEAD_ID = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    event: str,
    operator: str,
    purpose: str | None,
    case_ref: str | None,
    payload: str,
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "at": at.astimezone(UTC).isoformat(),
            "event": event,
            "operator": operator,
            "purpose": purpose,
            "case_ref": case_ref,
            "payload": payload,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    event: str
    operator: str
    purpose: str | None
    case_ref: str | None
    payload: dict[str, Any]
    hash: str


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def lock_head(session: Session) -> AuditHead:
    """The head row, locked for the rest of the transaction (created from the log's last entry
    if a database lacks it)."""
    head = session.scalars(
        select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
    ).one_or_none()
    if head is None:
        last = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
        head = AuditHead(
            id=HEAD_ID,
            seq=0 if last is None else last[0],
            hash=GENESIS if last is None else last[1],
        )
        session.add(head)
    return head


def append(
    session: Session,
    now: Callable[[], datetime],
    event: str,
    *,
    operator: str,
    purpose: str | None = None,
    case_ref: str | None = None,
    payload: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one entry in ``session``'s transaction (see the module docstring)."""
    body = canonical_json(payload or {})
    head = lock_head(session)
    seq, prev = head.seq + 1, head.hash
    at = _aware(now())
    h = entry_hash(prev, seq, at, event, operator, purpose, case_ref, body)
    session.add(
        AuditEntry(
            seq=seq,
            at=at,
            event=event,
            operator=operator,
            purpose=purpose,
            case_ref=case_ref,
            payload=body,
            prev_hash=prev,
            hash=h,
        )
    )
    head.seq, head.hash = seq, h
    session.flush()
    return AuditRecord(seq, at, event, operator, purpose, case_ref, payload or {}, h)


def _record(e: AuditEntry) -> AuditRecord:
    return AuditRecord(
        e.seq,
        _aware(e.at),
        e.event,
        e.operator,
        e.purpose,
        e.case_ref,
        json.loads(e.payload),
        e.hash,
    )


def entries(session: Session, event: str | None = None) -> Iterator[AuditRecord]:
    """Entries in seq order (``event``: only those)."""
    q = select(AuditEntry).order_by(AuditEntry.seq)
    if event is not None:
        q = q.where(AuditEntry.event == event)
    for e in session.scalars(q.execution_options(yield_per=1000)):
        yield _record(e)


def entry(session: Session, seq: int) -> AuditRecord | None:
    e = session.get(AuditEntry, seq)
    return None if e is None else _record(e)
