"""What the API and web surfaces call for records: one place, plain data, permission-checked.

- :func:`candidate_records` – a person's records grouped by source, summary, conflicts.
- :func:`presented_conflicts` – does a presented document conflict with this candidate?
- :func:`get_record` – one record with the source's raw payload and its correction history.
- :func:`correct_record` – re-exported from ``records.correct``.
- :func:`person_photos` / :func:`photo_thumbnail` – enrolled photos with provenance, thumbnails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fieldid.access import Actor, require
from fieldid.records.assemble import assemble, load_records
from fieldid.records.correct import correct_record, record_history
from fieldid.records.documents import PresentedDocument, compare_documents
from fieldid.records.sources import RecordsError
from fieldid.store import Store
from fieldid.store.keys import THUMBNAIL, record_hash_key, unseal
from fieldid.store.schema import EnrollmentImage, Record, Source

__all__ = [
    "PhotoView",
    "candidate_records",
    "correct_record",
    "get_record",
    "person_photos",
    "photo_thumbnail",
    "presented_conflicts",
    "record_history",
]


def _check(actor: Actor | None) -> None:
    if actor is not None:
        require(actor, "record_read")


def candidate_records(
    store: Store, person_id: int, *, actor: Actor | None = None
) -> dict[str, Any]:
    """``{"records": [by source…], "summary": [...], "conflicts": [...]}`` for one person: the
    same structure each candidate carries in ``CandidateList.to_dict()``."""
    _check(actor)
    with store.read() as s:
        return assemble(s, [person_id])[person_id].to_dict()


def presented_conflicts(
    store: Store,
    root: Path,
    person_id: int,
    presented: Sequence[PresentedDocument],
    *,
    actor: Actor | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``{"conflicts": [...], "agreements": [...]}`` between presented documents and a person's
    records (rules in ``records.documents``). Empty ``conflicts`` means no conflict *found*,
    which includes records that state nothing to compare."""
    _check(actor)
    key = record_hash_key(store)
    stored = [d.stored(key) for d in presented]
    with store.read() as s:
        recs = load_records(s, [person_id])[person_id]
    conflicts, agreements = compare_documents(stored, recs)
    return {"conflicts": conflicts, "agreements": agreements}


def get_record(store: Store, record_id: int, *, actor: Actor | None = None) -> dict[str, Any]:
    """One record with its source, raw payload (document numbers hashed) and correction history."""
    _check(actor)
    with store.read() as s:
        row = s.execute(
            select(Record, Source)
            .join(Source, Source.id == Record.source_id)
            .where(Record.id == record_id)
        ).first()
        if row is None:
            raise RecordsError(f"no record {record_id}", code="records.not_found")
        rec, src = row
        out = {
            "record_id": rec.id,
            "person_id": rec.person_id,
            "kind": rec.kind,
            "source": src.name,
            "source_authority": src.authority,
            "date": None if rec.event_date is None else rec.event_date.isoformat(),
            "source_record_id": rec.source_record_id,
            "fields": dict(rec.fields),
            "raw": dict(rec.raw),
            "imported_at": rec.imported_at.isoformat(),
            "updated_at": rec.updated_at.isoformat(),
            "synthetic": rec.synthetic,
        }
    out["corrections"] = [c.to_dict() for c in record_history(store, record_id)]
    return out


@dataclass(frozen=True)
class PhotoView:
    image_id: int
    person_id: int
    record_id: int | None
    capture_date: date | None
    provenance: str | None
    enrolled_at: datetime
    has_thumbnail: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "person_id": self.person_id,
            "record_id": self.record_id,
            "capture_date": None if self.capture_date is None else self.capture_date.isoformat(),
            "provenance": self.provenance,
            "enrolled_at": self.enrolled_at.isoformat(),
            "has_thumbnail": self.has_thumbnail,
        }


def person_photos(store: Store, person_id: int, *, actor: Actor | None = None) -> list[PhotoView]:
    """A person's enrolled photos, newest capture first, with where each came from."""
    _check(actor)
    with store.read() as s:
        rows = s.execute(
            select(
                EnrollmentImage.id,
                EnrollmentImage.person_id,
                EnrollmentImage.record_id,
                EnrollmentImage.capture_date,
                EnrollmentImage.provenance,
                EnrollmentImage.created_at,
                EnrollmentImage.thumbnail.is_not(None),
            ).where(EnrollmentImage.person_id == person_id)
        ).all()
    views = [PhotoView(*r) for r in rows]
    views.sort(key=lambda v: (v.capture_date or date.min, v.image_id), reverse=True)
    return views


def photo_thumbnail(store: Store, image_id: int, *, actor: Actor | None = None) -> bytes | None:
    """The JPEG face thumbnail of an enrolled image (None if the image has none)."""
    _check(actor)
    with store.read() as s:
        thumb: bytes | None = s.scalar(
            select(EnrollmentImage.thumbnail).where(EnrollmentImage.id == image_id)
        )
        return None if thumb is None else unseal(s, THUMBNAIL, image_id, thumb)
