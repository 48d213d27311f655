"""Correcting a record, keeping its history.

A correction changes a record's fields (validated against its kind, like an import) and keeps the
old value, who made it, when and why in ``record_corrections``; it is audited (``record_correct``)
in the same unit of work, the record locked meanwhile.
A later import of a *changed* row from the source replaces the corrected content (the import
report counts it as ``corrections_superseded``); the correction stays in the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from fieldid.access import Actor, require
from fieldid.records.kinds import describe_errors, validate_row
from fieldid.records.sources import RecordsError
from fieldid.store import Store
from fieldid.store.keys import record_hash_key
from fieldid.store.repos.lineage import as_utc
from fieldid.store.schema import Record, RecordCorrection


@dataclass(frozen=True)
class Correction:
    id: int
    record_id: int
    at: datetime
    operator: str
    reason: str
    old_fields: dict[str, Any]
    new_fields: dict[str, Any]
    old_event_date: date | None
    new_event_date: date | None
    audit_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["at"] = as_utc(self.at).isoformat()
        for k in ("old_event_date", "new_event_date"):
            d[k] = None if d[k] is None else d[k].isoformat()
        return d


def _view(c: RecordCorrection) -> Correction:
    return Correction(
        c.id,
        c.record_id,
        c.at,
        c.operator,
        c.reason,
        dict(c.old_fields),
        dict(c.new_fields),
        c.old_event_date,
        c.new_event_date,
        c.audit_seq,
    )


def correct_record(
    store: Store,
    root: Path,
    record_id: int,
    changes: dict[str, Any],
    *,
    actor: Actor,
    reason: str,
) -> Correction:
    """Change fields of a record (``event_date`` included); ``None`` removes a field.

    Needs the ``record_correct`` permission and a reason. A document number given in ``changes``
    (``document_number``) is hashed like at import, with the workspace's record-hash key
    (its keyring: ``fieldid.store.keys``)."""
    require(actor, "record_correct")
    if not reason.strip():
        raise RecordsError("a correction needs a reason", code="records.no_reason")
    if not changes:
        raise RecordsError("nothing to correct", code="records.no_change")
    key = record_hash_key(store)
    with store.unit_of_work() as uow:
        s = uow.session
        rec = s.scalars(select(Record).where(Record.id == record_id).with_for_update()).first()
        if rec is None:
            raise RecordsError(f"no record {record_id}", code="records.not_found")
        kind = rec.kind
        old_fields, old_date = dict(rec.fields), rec.event_date
        row: dict[str, Any] = {
            **old_fields,
            "source_record_id": rec.source_record_id,
            "subject_id": "corrected",  # the person link is not part of a correction
            "event_date": old_date,
        }
        row.update(changes)
        row = {k: v for k, v in row.items() if v is not None}
        try:
            validated = validate_row(kind, row, key)
        except (ValidationError, ValueError) as e:
            raise RecordsError(
                f"the corrected record is not a valid {kind}: {describe_errors(e)}",
                code="records.invalid_correction",
            ) from e
        new_fields = validated.typed_fields()
        if new_fields == old_fields and validated.event_date == old_date:
            raise RecordsError("the correction changes nothing", code="records.no_change")
        changed = sorted(
            k for k in set(old_fields) | set(new_fields) if old_fields.get(k) != new_fields.get(k)
        )
        if validated.event_date != old_date:
            changed.append("event_date")
        now = uow.now()
        corr = RecordCorrection(
            record_id=record_id,
            at=now,
            operator=actor.name,
            reason=reason,
            old_fields=old_fields,
            new_fields=new_fields,
            old_event_date=old_date,
            new_event_date=validated.event_date,
        )
        s.add(corr)
        rec.fields = new_fields
        rec.event_date = validated.event_date
        rec.corrected_at = now
        rec.updated_at = now
        s.flush()
        entry = uow.audit(
            "record_correct",
            operator=actor.name,
            payload={"record_id": record_id, "reason": reason, "changed": changed},
        )
        corr.audit_seq = entry.seq
        s.flush()
        return _view(corr)


def record_history(store: Store, record_id: int) -> list[Correction]:
    """Every correction of a record, oldest first."""
    with store.read() as s:
        q = (
            select(RecordCorrection)
            .where(RecordCorrection.record_id == record_id)
            .order_by(RecordCorrection.id)
        )
        return [_view(c) for c in s.scalars(q)]
