"""What a search shows about each candidate: the records themselves, a summary in which every
statement names its source and date, and the places where the records disagree.

Nothing here concludes anything about the person. A summary statement repeats what one record of
one source says ("border apprehension, 2019-03-02, source X: location …, outcome …"); a conflict
flag cites the records that disagree and leaves the weighing to a person.

Conflict rules (docs/records.md):

- ``sources_disagree``: records of different sources state different values for the person's
  date of birth or nationality; or the latest recorded status of two sources differs.
- ``later_record_differs``: within one source, a later record states a different date of birth
  or nationality than an earlier one. (A recorded status that changes over time within one
  source is a change, listed in the summary, not a contradiction.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.records.kinds import KIND_LABELS
from fieldid.store.repos.lineage import as_utc
from fieldid.store.schema import Record, Source

#: Person attributes compared across records.
COMPARED = ("date_of_birth", "nationality")


@dataclass(frozen=True)
class RecordView:
    id: int
    person_id: int
    source: str
    source_kind: str
    authority: str
    kind: str
    event_date: date | None
    source_record_id: str
    fields: dict[str, Any]
    imported_at: datetime
    corrected: bool
    synthetic: bool

    @property
    def date_text(self) -> str:
        return "undated" if self.event_date is None else self.event_date.isoformat()

    def cite(self) -> dict[str, Any]:
        """How a statement or flag names this record."""
        return {
            "record_id": self.id,
            "source": self.source,
            "kind": self.kind,
            "date": None if self.event_date is None else self.event_date.isoformat(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.id,
            "kind": self.kind,
            "source": self.source,
            "date": None if self.event_date is None else self.event_date.isoformat(),
            "source_record_id": self.source_record_id,
            "fields": self.fields,
            "imported_at": as_utc(self.imported_at).isoformat(),
            "corrected": self.corrected,
            "synthetic": self.synthetic,
        }


@dataclass(frozen=True)
class PersonRecords:
    """One person's records grouped by source (most recent first), summary and conflicts."""

    person_id: int
    groups: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    records: list[RecordView]

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.groups, "summary": self.summary, "conflicts": self.conflicts}


def _recency(r: RecordView) -> tuple[date, int]:
    return (r.event_date or date.min, r.id)


def load_records(s: Session, person_ids: Iterable[int]) -> dict[int, list[RecordView]]:
    """Every record of these people, most recent first (undated last)."""
    ids = list(dict.fromkeys(person_ids))
    out: dict[int, list[RecordView]] = {pid: [] for pid in ids}
    if not ids:
        return out
    q = (
        select(
            Record.id,
            Record.person_id,
            Source.name,
            Source.kind,
            Source.authority,
            Record.kind,
            Record.event_date,
            Record.source_record_id,
            Record.fields,
            Record.imported_at,
            Record.corrected_at,
            Record.synthetic,
        )
        .join(Source, Source.id == Record.source_id)
        .where(Record.person_id.in_(ids))
    )
    for row in s.execute(q):
        out[row[1]].append(
            RecordView(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                dict(row[8]),
                row[9],
                row[10] is not None,
                bool(row[11]),
            )
        )
    for recs in out.values():
        recs.sort(key=_recency, reverse=True)
    return out


def _details(r: RecordView) -> str:
    f = r.fields
    k = r.kind
    if k == "criminal_history":
        text = "charges: " + "; ".join(f.get("charges", []))
        if f.get("disposition"):
            text += f"; disposition: {f['disposition']}"
            if f.get("disposition_date"):
                text += f" ({f['disposition_date']})"
        if f.get("jurisdiction"):
            text += f"; jurisdiction: {f['jurisdiction']}"
    elif k == "immigration_encounter":
        text = f"place: {f.get('place')}; outcome as recorded: {f.get('outcome')}"
    elif k == "border_apprehension":
        text = f"location: {f.get('location')}; outcome as recorded: {f.get('outcome')}"
    elif k == "port_of_entry_verification":
        text = (
            f"port: {f.get('port')}; document: {f.get('document_type')}; "
            f"result as recorded: {f.get('result')}"
        )
    elif k == "identity_document":
        text = f"{f.get('document_type')} issued by {f.get('issuing_country')}"
        if f.get("expiry"):
            text += f", expiry {f['expiry']}"
    elif k == "recorded_status":
        text = f'status in the source\'s words: "{f.get("recorded_status")}"'
    else:
        text = ", ".join(f"{a}: {b}" for a, b in f.items())
    stated = [
        f"{label} {f[key]}"
        for key, label in (
            ("name", "name"),
            ("date_of_birth", "date of birth"),
            ("nationality", "nationality"),
        )
        if f.get(key)
    ]
    if stated:
        text += "; states " + ", ".join(stated)
    return text


def statement(r: RecordView) -> dict[str, Any]:
    label = KIND_LABELS.get(r.kind, r.kind.replace("_", " "))
    return {
        "text": f"{label}, {r.date_text}, source {r.source}: {_details(r)}",
        **r.cite(),
    }


def _norm(field: str, v: Any) -> str:
    return str(v).strip().upper() if field == "nationality" else str(v).strip()


def find_conflicts(records: Sequence[RecordView]) -> list[dict[str, Any]]:
    """Flags where records disagree (see the module doc); each cites the records concerned."""
    flags: list[dict[str, Any]] = []
    for fld in COMPARED:
        stated = [(r, _norm(fld, r.fields[fld])) for r in records if r.fields.get(fld)]
        by_value: dict[str, list[RecordView]] = defaultdict(list)
        for r, v in stated:
            by_value[v].append(r)
        # Two values and two sources always include a pair of different sources stating
        # different values; one source alone differing with itself is the rule below.
        if len(by_value) > 1 and len({r.source for r, _ in stated}) > 1:
            flags.append(
                {
                    "rule": "sources_disagree",
                    "field": fld,
                    "values": [
                        {"value": v, "records": [r.cite() for r in rs]}
                        for v, rs in sorted(by_value.items())
                    ],
                }
            )
        per_source: dict[str, list[tuple[RecordView, str]]] = defaultdict(list)
        for r, v in stated:
            per_source[r.source].append((r, v))
        for src, items in sorted(per_source.items()):
            items.sort(key=lambda rv: _recency(rv[0]))
            for (earlier, ev), (later, lv) in pairwise(items):
                if ev != lv:
                    flags.append(
                        {
                            "rule": "later_record_differs",
                            "field": fld,
                            "source": src,
                            "earlier": {"value": ev, **earlier.cite()},
                            "later": {"value": lv, **later.cite()},
                        }
                    )
    latest: dict[str, RecordView] = {}
    for r in records:  # most recent first
        if r.kind == "recorded_status" and r.source not in latest:
            latest[r.source] = r
    wordings = {_norm("", r.fields.get("recorded_status", "")).casefold() for r in latest.values()}
    if len(wordings) > 1:
        flags.append(
            {
                "rule": "sources_disagree",
                "field": "recorded_status",
                "values": [
                    {"value": r.fields.get("recorded_status"), "records": [r.cite()]}
                    for r in sorted(latest.values(), key=lambda x: x.source)
                ],
                "note": "the latest recorded status of each source, each as of its own date",
            }
        )
    return flags


def group_by_source(records: Sequence[RecordView]) -> list[dict[str, Any]]:
    groups: dict[str, list[RecordView]] = {}
    for r in records:  # already most recent first
        groups.setdefault(r.source, []).append(r)
    return [
        {
            "source": src,
            "source_kind": rs[0].source_kind,
            "authority": rs[0].authority,
            "records": [r.to_dict() for r in rs],
        }
        for src, rs in groups.items()  # sources ordered by their most recent record
    ]


def build(person_id: int, records: list[RecordView]) -> PersonRecords:
    return PersonRecords(
        person_id,
        group_by_source(records),
        [statement(r) for r in records],
        find_conflicts(records),
        records,
    )


def assemble(s: Session, person_ids: Sequence[int]) -> dict[int, PersonRecords]:
    """Records, summary and conflicts for each person (one query for all of them)."""
    return {pid: build(pid, recs) for pid, recs in load_records(s, person_ids).items()}
