"""Idempotent search requests: a retried request runs no second search.

The phone app holds a captured photo until the server acknowledges it and retries on a poor
connection; each capture carries a random ``Idempotency-Key``. The first request with a key runs
the search (or its refusal) as usual and leaves a short-lived record here: operator, key, a
digest of the request, and the search it made. A repeat of the key by the same operator finds the
record and answers with that search, read back from the database: no second search, no second
audit entry. The same key with a different request (another photo, purpose or case) is refused.

The record is deliberately small and separate (table ``search_requests``, migration 0007, in
``store/schema/searches.py``) and short-lived: rows older than the time-to-live are deleted
whenever a new one is written. It holds no image and no template, only the link between a key and
the search. It is written in the unit of work that records the search (``remember`` is handed to
``SearchService.search``), so a search and its key exist together: a retry after a crash either
finds both or runs the search.

Contract:

| key | record within TTL | request digest | answer |
|---|---|---|---|
| none | - | - | search as usual |
| K | none | - | search, then remember (operator, K) → search id (refusals too) |
| K | yes | same | the remembered search (``replayed``), nothing run or audited |
| K | yes | different | 422 ``search.idempotency_key_reused`` |
| malformed | - | - | 422 ``search.idempotency_key`` |
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fieldid.errors import FieldidError
from fieldid.store import UnitOfWork
from fieldid.store.schema import SearchRequest

#: How long a key is remembered. The phone app wipes a capture it could not send within its
#: queue limit (15 minutes by default), so no retry comes later than that.
DEFAULT_TTL = timedelta(hours=1)
_KEY = re.compile(r"^[A-Za-z0-9_-]{8,100}$")


@dataclass(frozen=True)
class Remembered:
    search_id: int
    request_sha256: str


def check_key(key: str) -> str:
    key = key.strip()
    if not _KEY.match(key):
        raise FieldidError(
            "the Idempotency-Key must be 8 to 100 letters, digits, '-' or '_' (a random UUID)",
            code="search.idempotency_key",
        )
    return key


def request_digest(data: bytes, fields: Mapping[str, object]) -> str:
    """What identifies a request: the image bytes and every form field that shapes the search."""
    h = hashlib.sha256(data)
    for name in sorted(fields):
        h.update(f"\0{name}={fields[name]!s}".encode())
    return h.hexdigest()


def find(
    s: Session, operator: str, key: str, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> Remembered | None:
    """The search an earlier request with this key made, if it is still remembered."""
    row = s.scalar(
        select(SearchRequest).where(
            SearchRequest.operator == operator,
            SearchRequest.key == key,
            SearchRequest.created_at >= now - ttl,
        )
    )
    return None if row is None else Remembered(row.search_id, row.request_sha256)


def remember(
    uow: UnitOfWork,
    operator: str,
    key: str,
    request_sha256: str,
    search_id: int,
    ttl: timedelta = DEFAULT_TTL,
) -> None:
    """Record, in ``uow`` (the search's), that (operator, key) made ``search_id``; forget
    records past the time-to-live."""
    now = uow.now()
    s = uow.session
    s.execute(delete(SearchRequest).where(SearchRequest.created_at < now - ttl))
    # An expired row with the same key was just deleted; a live one cannot exist (the caller
    # looked it up under the same lock), so this insert cannot collide.
    s.add(
        SearchRequest(
            operator=operator,
            key=key,
            request_sha256=request_sha256,
            search_id=search_id,
            created_at=now,
        )
    )
