"""The audit log: every use and change, attributable to an operator, a purpose and a case.

Entries are append-only and hash-chained: each entry's hash covers its own content and the previous
entry's hash, so an edit, deletion, insertion or reordering breaks the chain at that point.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fieldid.gallery.schema import AuditEntry

GENESIS = "0" * 64


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
class Attribution:
    """Who did it, why, and for which case. Required for every search and verification."""

    operator: str
    purpose: str
    case_ref: str


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


class AuditLog(Protocol):
    def append(
        self,
        event: str,
        *,
        operator: str,
        purpose: str | None = None,
        case_ref: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> AuditRecord: ...

    def entries(self, event: str | None = None) -> Iterator[AuditRecord]: ...


class SqlAuditLog:
    """The audit log in the workspace database (table ``audit_entries``)."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        # Appends read the head and write the next entry: two threads of one process (a request
        # and the server's scheduled purge) must not interleave, or both take the same seq.
        self._lock = threading.Lock()

    def append(
        self,
        event: str,
        *,
        operator: str,
        purpose: str | None = None,
        case_ref: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> AuditRecord:
        body = canonical_json(payload or {})
        with self._lock, self._sessions.begin() as s:
            last = s.execute(
                select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
            ).first()
            seq = 1 if last is None else last[0] + 1
            prev = GENESIS if last is None else last[1]
            at = self._clock()
            h = entry_hash(prev, seq, at, event, operator, purpose, case_ref, body)
            s.add(
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
        return AuditRecord(seq, at, event, operator, purpose, case_ref, payload or {}, h)

    def entries(self, event: str | None = None) -> Iterator[AuditRecord]:
        with self._sessions() as s:
            q = select(AuditEntry).order_by(AuditEntry.seq)
            if event is not None:
                q = q.where(AuditEntry.event == event)
            for e in s.scalars(q):
                yield AuditRecord(
                    e.seq,
                    e.at,
                    e.event,
                    e.operator,
                    e.purpose,
                    e.case_ref,
                    json.loads(e.payload),
                    e.hash,
                )

    def verify_chain(self) -> int | None:
        """The seq of the first bad entry (edited, deleted, inserted or reordered), or None if
        the chain is intact from its start (genesis, or the anchor a purge recorded). The full
        answer, with what went wrong, is :func:`fieldid.audit.verify.verify_log`."""
        from fieldid.audit.verify import verify_log

        result = verify_log(self._sessions)
        return None if result.ok else (result.bad_seq if result.bad_seq is not None else 0)
