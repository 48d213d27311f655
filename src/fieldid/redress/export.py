"""The redress export: everything fieldid holds about the searches that touched one person.

Two ways in:

- ``person``: someone enrolled in a gallery asks where they were shown as a candidate. The export
  lists every search in which they were a candidate (from the persisted searches, and from the
  audit log for searches already purged under retention), the adjudications about them, and their
  records with their sources.
- ``receipt``: someone photographed in the field brings the receipt code they were given. The
  export shows that search: when, by whom, for what purpose and case, the probe's quality, whether
  the photo is still held, the adjudication and the documents they presented. Other people shown as
  candidates are third parties: their rank and score are listed, their identity is withheld unless
  the adjudication confirmed them as this person.

Every export is audited (``redress_export``).

The export reads the persisted searches first and the audit log only for searches already purged
under retention: there the log is the only evidence left that a search touched the person.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, or_, select

from fieldid.access import Actor, require
from fieldid.adjudication.store import SearchNotFound, normalise_receipt
from fieldid.audit.log import AuditRecord
from fieldid.clock import Clock
from fieldid.errors import FieldidError
from fieldid.retention.purge import register_export
from fieldid.store import Store
from fieldid.store.repos import lineage
from fieldid.store.schema import (
    AdjudicationRecord,
    DocumentCheckRecord,
    Person,
    PersonMerge,
    ProbeRecord,
    SearchCandidate,
    SearchRecord,
)


class RecordSource(Protocol):
    """Where a person's identity records come from (the records stream supplies the real one)."""

    def records_for(self, person_id: int) -> list[dict[str, Any]]: ...


def _iso(dt: datetime | None) -> str | None:
    """Every time in an export is timezone-aware UTC (SQLite hands back naive datetimes; all
    fieldid stores is UTC), so one export never mixes naive and aware times."""
    if dt is None:
        return None
    aware = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return aware.isoformat()


def _adjudication(a: AdjudicationRecord, *, withhold_other: int | None) -> dict[str, Any]:
    person = a.person_id
    if withhold_other is not None and person is not None and person != withhold_other:
        person = None
    return {
        "adjudication_id": a.id,
        "decision": a.decision,
        "person_id": person,
        "state": a.state,
        "reason": a.reason,
        "by": a.actor_name,
        "role": a.actor_role,
        "at": _iso(a.at),
        "documents_presented": json.loads(a.documents),
        "conflicts": json.loads(a.conflicts),
        "second_person": None
        if a.second_by is None
        else {
            "by": a.second_by,
            "at": _iso(a.second_at),
            "decision": a.second_decision or "confirm",
            "reason": a.second_reason,
        },
        "override": None
        if a.override_by is None
        else {"by": a.override_by, "reason": a.override_reason, "at": _iso(a.override_at)},
    }


def _search(rec: SearchRecord, probe: ProbeRecord | None) -> dict[str, Any]:
    return {
        "search_id": rec.public_id,
        "audit_seq": rec.audit_seq,
        "receipt_code": rec.receipt_code,
        "started_at": _iso(rec.started_at),
        "ended_at": _iso(rec.ended_at),
        "operator": rec.operator,
        "purpose": rec.purpose,
        "case_ref": rec.case_ref,
        "model": rec.model,
        "threshold": rec.threshold,
        "gallery": {"persons": rec.gallery_persons, "templates": rec.gallery_templates},
        "outcome": rec.outcome,
        "refusal_code": rec.refusal_code,
        "probe_quality_unified": rec.quality_unified,
        "status": rec.status,
        "closed_at": _iso(rec.closed_at),
        "training": rec.training,
        "probe": None
        if probe is None
        else {
            "image_held": probe.image is not None,
            "template_held": probe.template is not None,
            "captured_at": _iso(probe.captured_at),
            "image_purged_at": _iso(probe.image_purged_at),
            "template_purged_at": _iso(probe.template_purged_at),
        },
    }


def _resolve_person(store: Store, person: str) -> tuple[int | None, str]:
    """A person by external id (what people are shown) or internal numeric id; an identity
    merged into another person (``person_merges``) gives the person it was merged into."""
    with store.read() as s:
        p = s.scalars(select(Person).where(Person.external_id == person)).first()
        if p is None and person.isdigit():
            p = s.get(Person, int(person))
        if p is None:
            merged = s.scalars(
                select(PersonMerge)
                .where(
                    or_(
                        PersonMerge.merged_external_id == person,
                        PersonMerge.merged_person_id == (int(person) if person.isdigit() else -1),
                    )
                )
                .order_by(PersonMerge.id.desc())
            ).first()
            live = None if merged is None else lineage.live_person(s, merged.merged_external_id)
            p = None if live is None else s.get(Person, live)
        if p is not None:
            return p.id, p.external_id
        # Deleted from the gallery: searches and the audit log still know them.
        row = s.scalars(
            select(SearchCandidate).where(
                or_(
                    SearchCandidate.external_id == person,
                    SearchCandidate.person_id == (int(person) if person.isdigit() else -1),
                )
            )
        ).first()
    if row is not None:
        return row.person_id, row.external_id
    raise FieldidError(
        f"no person {person!r} in the gallery, the searches held or the audit log",
        code="redress.person_not_found",
    )


def _audit_searches(store: Store, match: Callable[[dict[str, Any]], Any]) -> list[AuditRecord]:
    return [e for e in store.audit_entries("search") if match(e.payload)]


def _for_person(store: Store, person: str, records: RecordSource) -> dict[str, Any]:
    pid, ext = _resolve_person(store, person)
    assert pid is not None
    searches: list[dict[str, Any]] = []
    held_seqs: set[int] = set()
    with store.read() as s:
        # The person and everyone merged into it: searches keep the ids they recorded.
        known = lineage.identities(s, pid)
        merged = [i for i in known if i.merged_at is not None]
        who = SearchCandidate.person_id == pid
        if merged:
            # An old id is believed with the external id recorded beside it (SQLite may give a
            # deleted id to a new person).
            who = or_(
                who,
                *[
                    and_(
                        SearchCandidate.person_id == i.person_id,
                        SearchCandidate.external_id == i.external_id,
                    )
                    for i in merged
                ],
            )
        rows = s.execute(
            select(SearchCandidate, SearchRecord)
            .join(SearchRecord, SearchRecord.id == SearchCandidate.search_id)
            # Training searches' candidates are people of the training gallery, whose ids
            # mean someone else there: never part of a real person's redress.
            .where(who, SearchRecord.training.is_(False))
            .order_by(SearchRecord.started_at)
        ).all()
        for cand, rec in rows:
            shown = cand.person_id
            held_seqs.add(rec.audit_seq)
            adjs = s.scalars(
                select(AdjudicationRecord)
                .where(
                    AdjudicationRecord.search_id == rec.id,
                    or_(
                        AdjudicationRecord.person_id == shown,
                        AdjudicationRecord.person_id.is_(None),
                    ),
                )
                .order_by(AdjudicationRecord.id)
            ).all()
            item = _search(rec, s.get(ProbeRecord, rec.id))
            item.pop("receipt_code")  # the receipt belongs to the person photographed
            item.pop("probe")
            item["as_candidate"] = {"rank": cand.rank, "score": cand.score, "fmr": cand.fmr}
            if shown != pid or cand.external_id != ext:
                item["as_candidate"]["recorded_as"] = {
                    "person_id": shown,
                    "external_id": cand.external_id,
                }
            item["adjudications"] = [_adjudication(a, withhold_other=shown) for a in adjs]
            item["source"] = "search record"
            searches.append(item)

    # The audit log records candidates by id only: an old id counts up to its merge.
    def mine(c: dict[str, Any], at: datetime) -> bool:
        if c.get("person_id") == pid:
            return True
        return any(
            c.get("person_id") == i.person_id
            and i.merged_at is not None
            and lineage.as_utc(at) <= i.merged_at
            for i in merged
        )

    adjudicated = store.audit_entries("adjudicate")
    for e in store.audit_entries("search"):
        p = e.payload
        if p.get("training") or not any(mine(c, e.at) for c in p.get("candidates", [])):
            continue
        if e.seq in held_seqs:
            continue
        cand = next(c for c in e.payload["candidates"] if mine(c, e.at))
        shown = cand.get("person_id")
        searches.append(
            {
                "search_id": None,
                "audit_seq": e.seq,
                "started_at": _iso(e.at),
                "operator": e.operator,
                "purpose": e.purpose,
                "case_ref": e.case_ref,
                "model": e.payload.get("model"),
                "threshold": e.payload.get("threshold"),
                "outcome": e.payload.get("outcome"),
                "training": bool(e.payload.get("training", False)),
                "as_candidate": {"rank": cand.get("rank"), "score": cand.get("score")},
                "adjudications": [
                    {
                        "decision": a.payload.get("decision"),
                        "state": a.payload.get("state"),
                        "reason": a.payload.get("reason"),
                        "by": a.operator,
                        "at": _iso(a.at),
                    }
                    for a in adjudicated
                    if a.payload.get("search_seq") == e.seq
                    and a.payload.get("person_id") in (shown, None)
                    and a.payload.get("outcome") != "refused"
                ],
                "source": "audit log (search record purged under retention)",
            }
        )
    searches.sort(key=lambda x: (x["started_at"] or "", x["audit_seq"]))
    subject: dict[str, Any] = {"kind": "person", "person_id": pid, "external_id": ext}
    if merged:
        subject["merged_identities"] = [
            {
                "person_id": i.person_id,
                "external_id": i.external_id,
                "merged_at": _iso(i.merged_at),
                "merge_id": i.merge_id,
            }
            for i in merged
        ]
    return {
        "subject": subject,
        "searches": searches,
        "records": records.records_for(pid),
    }


def _document_check(store: Store, code: str) -> dict[str, Any] | None:
    """A document check (documents first) whose receipt carries ``code``: its record, or its
    audit entry once the record is purged."""
    with store.read() as s:
        rec = s.scalars(
            select(DocumentCheckRecord).where(DocumentCheckRecord.receipt_code == code)
        ).first()
        if rec is not None:
            return {
                "check_id": rec.id,
                "audit_seq": rec.audit_seq,
                "checked_at": _iso(rec.checked_at),
                "operator": rec.operator,
                "purpose": rec.purpose,
                "case_ref": rec.case_ref,
                "evidence": rec.evidence,
                "document": rec.document,
                "checks": rec.checks,
                "face": rec.face,
                "outcome": rec.status,
                "search_id": (
                    None
                    if rec.search_id is None
                    else getattr(s.get(SearchRecord, rec.search_id), "public_id", None)
                ),
                "document_image": "held" if rec.document_image is not None else "not held",
                "source": "document check record",
            }
    for e in store.audit_entries("document_check"):
        if e.payload.get("receipt_code") == code:
            return {
                "check_id": e.payload.get("document_check_id"),
                "audit_seq": e.seq,
                "checked_at": e.at.isoformat(),
                "operator": e.operator,
                "purpose": e.purpose,
                "case_ref": e.case_ref,
                "evidence": e.payload.get("evidence"),
                "document": e.payload.get("document"),
                "outcome": e.payload.get("outcome"),
                "source": "audit log (document check record purged under retention)",
            }
    return None


def _for_receipt(store: Store, receipt: str) -> dict[str, Any]:
    code = normalise_receipt(receipt)
    with store.read() as s:
        rec = s.scalars(select(SearchRecord).where(SearchRecord.receipt_code == code)).first()
        if rec is not None:
            adjs = s.scalars(
                select(AdjudicationRecord)
                .where(AdjudicationRecord.search_id == rec.id)
                .order_by(AdjudicationRecord.id)
            ).all()
            confirmed = {
                a.person_id for a in adjs if a.decision == "confirm" and a.state == "final"
            }
            cands = s.scalars(
                select(SearchCandidate)
                .where(SearchCandidate.search_id == rec.id)
                .order_by(SearchCandidate.rank)
            ).all()
            item = _search(rec, s.get(ProbeRecord, rec.id))
            item["candidates"] = [
                {
                    "rank": c.rank,
                    "score": c.score,
                    "fmr": c.fmr,
                    "person": c.external_id if c.person_id in confirmed else "withheld",
                }
                for c in cands
            ]
            own = next(iter(confirmed), None)
            item["adjudications"] = [_adjudication(a, withhold_other=own or -1) for a in adjs]
            item["source"] = "search record"
            return {"subject": {"kind": "receipt", "receipt_code": code}, "searches": [item]}
    found = _audit_searches(store, lambda p: p.get("receipt_code") == code)
    if not found:
        check = _document_check(store, code)
        if check is not None:
            return {
                "subject": {"kind": "receipt", "receipt_code": code},
                "searches": [],
                "document_checks": [check],
            }
        raise SearchNotFound(
            f"no search with receipt {code} is held, in the searches or the audit log",
            receipt_code=code,
        )
    e = found[0]
    return {
        "subject": {"kind": "receipt", "receipt_code": code},
        "searches": [
            {
                "search_id": None,
                "audit_seq": e.seq,
                "started_at": _iso(e.at),
                "operator": e.operator,
                "purpose": e.purpose,
                "case_ref": e.case_ref,
                "outcome": e.payload.get("outcome"),
                "probe": "purged under retention (search record no longer held)",
                "candidates": [
                    {"rank": c.get("rank"), "score": c.get("score"), "person": "withheld"}
                    for c in e.payload.get("candidates", [])
                ],
                "source": "audit log (search record purged under retention)",
            }
        ],
    }


class Redress:
    """Redress exports from one store. ``records``: where a person's records come from (the
    records checker's source, wired by ``Workspace``)."""

    def __init__(self, store: Store, clock: Clock, records: RecordSource) -> None:
        self.store = store
        self.clock = clock
        self.records = records

    def export(
        self,
        actor: Actor,
        *,
        person: str | None = None,
        receipt: str | None = None,
        records: RecordSource | None = None,
        out: Path | None = None,
    ) -> dict[str, Any]:
        """Build the redress export for a person (external or internal id) or a receipt code;
        audited (``redress_export``). ``out``: also write it there as JSON, registered for the
        ``exports`` retention period in the unit of work of its audit entry."""
        require(actor, "redress")
        if (person is None) == (receipt is None):
            raise FieldidError(
                "give exactly one of a person id or a receipt code", code="redress.bad_query"
            )
        if person is not None:
            found = _for_person(self.store, person, records or self.records)
        else:
            assert receipt is not None
            found = _for_receipt(self.store, receipt)
        with self.store.unit_of_work() as uow:
            entry = uow.audit(
                "redress_export",
                operator=actor.name,
                payload={
                    "role": actor.role.value,
                    "query": {"person": person}
                    if person is not None
                    else {"receipt": found["subject"]["receipt_code"]},
                    "searches": len(found["searches"]),
                    "records": len(found.get("records", [])),
                    **(
                        {"document_checks": len(found["document_checks"])}
                        if "document_checks" in found
                        else {}
                    ),
                    **({"path": str(out)} if out is not None else {}),
                },
            )
            data = {
                "notice": "candidates are leads, never identifications; an identification "
                "exists only as a human adjudication recorded here",
                "generated_at": _iso(self.clock.now()),
                "audit_seq": entry.seq,
                **found,
            }
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
                register_export(uow, "redress", out, entry.seq)
        return data
