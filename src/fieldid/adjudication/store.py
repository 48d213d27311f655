"""Persisting searches as they run, and finding them again (by id or by receipt code).

:func:`record_search` is called by :class:`fieldid.search.service.SearchService` for every
search, whatever its outcome, in the unit of work that audits it: a search with a template stores
the probe (bytes as received), the template and the candidate list with each candidate's meaning;
a refused search stores no probe at all, only the fact and the reason. Every surface (CLI, API,
web) goes through the service, so every search is persisted. The readers take a session (a unit
of work's, or a read's).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from fieldid.audit.log import Attribution
from fieldid.errors import FieldidError
from fieldid.store import UnitOfWork
from fieldid.store.keys import PROBE_IMAGE, PROBE_TEMPLATE, seal
from fieldid.store.schema import ProbeRecord, SearchCandidate, SearchRecord

#: Receipt alphabet: digits and capitals without the look-alikes 0/O, 1/I/L, so a code read
#: aloud or copied by hand from a paper receipt comes back right.
RECEIPT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RECEIPT_LEN = 8


#: A search as callers name it: its public id (what the API, pages and command line show), or
#: its row id (code inside fieldid that already holds the row).
SearchRef = int | str


class SearchNotFound(FieldidError):
    code = "search.not_found"


def new_public_id() -> str:
    """A search's public id: 128 random bits, URL-safe (22 characters), never guessable."""
    return secrets.token_urlsafe(16)


def search_where(ref: SearchRef) -> ColumnElement[bool]:
    """The WHERE clause for a search named by public id (str) or row id (int)."""
    if isinstance(ref, int):
        return SearchRecord.id == ref
    return SearchRecord.public_id == ref


def new_receipt_code() -> str:
    """A random code like ``K7QM-3HXA`` (31^8 ≈ 8.5e11 possibilities, not guessable in bulk)."""
    raw = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(RECEIPT_LEN))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_receipt(code: str) -> str:
    """Accept a code typed with spaces, lower case or without the dash."""
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    if len(raw) != RECEIPT_LEN or any(ch not in RECEIPT_ALPHABET for ch in raw):
        raise SearchNotFound(
            f"{code!r} is not a receipt code: it has {RECEIPT_LEN} letters and digits, like "
            "K7QM-3HXA",
            code="search.bad_receipt",
        )
    return f"{raw[:4]}-{raw[4:]}"


def source_bytes(source: bytes | str | Path) -> bytes:
    """The probe exactly as received (the pipeline has already accepted it, size included)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    return Path(source).read_bytes()


@dataclass(frozen=True)
class CandidateRow:
    rank: int
    person_id: int
    external_id: str
    score: float
    fmr: float | None = None
    above_threshold: bool | None = None
    meaning: str | None = None


def record_search(
    uow: UnitOfWork,
    attr: Attribution,
    *,
    receipt_code: str,
    started_at: datetime,
    model: str,
    threshold: float,
    gallery_persons: int,
    gallery_templates: int,
    outcome: str,
    candidates: Sequence[CandidateRow] = (),
    probe_image: bytes | None = None,
    template: bytes | None = None,
    quality: dict[str, Any] | None = None,
    refusal_code: str | None = None,
    training: bool = False,
    list_kind: str = "lead",
    notice_given: bool | None = None,
    threshold_in_force: dict[str, Any] | None = None,
    rates_unavailable: str | None = None,
    calibration: str | None = None,
    presented_documents: Sequence[dict[str, Any]] = (),
    faces_in_frame: int | None = None,
    refusal: dict[str, Any] | None = None,
    below_gate: dict[str, Any] | None = None,
    capture: str | None = None,
) -> SearchRecord:
    """Add one search to ``uow`` (its ``audit_seq`` is set by the caller once the entry that
    records it is appended, in the same unit of work). A refused search (``outcome="refused"``)
    is closed at once."""
    now = uow.now()
    refused = outcome == "refused"
    unified = None if quality is None else quality.get("unified")
    rec = SearchRecord(
        public_id=new_public_id(),
        audit_seq=0,
        receipt_code=receipt_code,
        operator=attr.operator,
        purpose=attr.purpose,
        case_ref=attr.case_ref,
        started_at=started_at,
        ended_at=now,
        model=model,
        threshold=threshold,
        gallery_persons=gallery_persons,
        gallery_templates=gallery_templates,
        outcome=outcome,
        refusal_code=refusal_code,
        quality_unified=None if unified is None else int(unified),
        list_kind=list_kind,
        training=training,
        notice_given=notice_given,
        # A search with no candidate above the threshold stays open until the officer closes it
        # as "no lead" (with the documents the person presented, if any), or the retention purge
        # takes it. A refused attempt was never a search: it is "refused" from the start.
        status="refused" if refused else "open",
        closed_at=now if refused else None,
        threshold_in_force=threshold_in_force,
        rates_unavailable=rates_unavailable,
        calibration=calibration,
        presented_documents=list(presented_documents),
        faces_in_frame=faces_in_frame,
        refusal=refusal,
        below_gate=below_gate,
        capture=capture,
    )
    s = uow.session
    s.add(rec)
    s.flush()
    for c in candidates:
        s.add(
            SearchCandidate(
                search_id=rec.id,
                rank=c.rank,
                person_id=c.person_id,
                external_id=c.external_id,
                score=c.score,
                fmr=c.fmr,
                above_threshold=c.above_threshold,
                meaning=c.meaning,
            )
        )
    if not refused:
        s.add(
            ProbeRecord(
                search_id=rec.id,
                image=None if probe_image is None else seal(s, PROBE_IMAGE, rec.id, probe_image),
                template=None if template is None else seal(s, PROBE_TEMPLATE, rec.id, template),
                quality=json.dumps(quality or {}, sort_keys=True),
                captured_at=started_at,
            )
        )
    s.flush()
    return rec


def get_search(s: Session, search_id: SearchRef) -> SearchRecord:
    """A search by public id (or row id)."""
    rec = s.scalars(select(SearchRecord).where(search_where(search_id))).first()
    if rec is None:
        raise SearchNotFound(
            f"no search {search_id} in this workspace (it may have been purged under the "
            "retention policy; its audit entries remain)",
            search_id=search_id,
        )
    return rec


def find_by_receipt(s: Session, code: str) -> SearchRecord:
    """The search a receipt code was printed for."""
    norm = normalise_receipt(code)
    rec = s.scalars(select(SearchRecord).where(SearchRecord.receipt_code == norm)).first()
    if rec is None:
        raise SearchNotFound(
            f"no search with receipt {norm} is held (it may have been purged under the retention "
            "policy; ask for a redress export, which also reads the audit log)",
            receipt_code=norm,
        )
    return rec


def candidates_of(s: Session, search_id: int) -> list[SearchCandidate]:
    return list(
        s.scalars(
            select(SearchCandidate)
            .where(SearchCandidate.search_id == search_id)
            .order_by(SearchCandidate.rank)
        )
    )
