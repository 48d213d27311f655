"""Following person merges: where a merged person went, and who was merged into a person.

A merge (``records/merge.py``) deletes the merged ``persons`` row and keeps a ``person_merges``
row. History that named the merged person is never rewritten (search candidates, adjudications,
the audit log), so whoever reads it by the old identity follows the merges from here: the redress
export, the records conflict check, enrollment and import by an old external id.

Chains (A merged into B, later B into C) are followed by external id, which is unique and never
reused while a merge names it (enrollment and import by that external id reach the kept person).
Numeric ids are not trusted across a merge: SQLite may give the highest deleted id to the next
new person, so an old numeric id is only believed together with its external id or its time.

Session-level functions only, so the gallery, records, redress and the pages share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.store.schema import Person, PersonMerge

#: More merges in one chain than this means the table was edited by hand into a loop.
_MAX_CHAIN = 1000


def as_utc(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; every time fieldid stores is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True)
class Identity:
    """One person id a human was known by in this gallery, and until when (None: still is)."""

    person_id: int
    external_id: str
    merged_at: datetime | None
    merge_id: int | None


def live_person(s: Session, external_id: str) -> int | None:
    """The person now holding what was enrolled under ``external_id``: the person with that
    external id, else the person it was merged into (followed to the end of the chain)."""
    seen: set[str] = set()
    ext = external_id
    while len(seen) < _MAX_CHAIN:
        pid: int | None = s.scalar(select(Person.id).where(Person.external_id == ext))
        if pid is not None:
            return pid
        seen.add(ext)
        row = s.scalars(
            select(PersonMerge)
            .where(PersonMerge.merged_external_id == ext)
            .order_by(PersonMerge.id.desc())
            .limit(1)
        ).first()
        if row is None or row.kept_external_id in seen:
            return None
        ext = row.kept_external_id
    return None


def current_person(s: Session, person_id: int, external_id: str) -> int | None:
    """The live person for an id and external id recorded together (a search candidate): the
    same person if it still exists as recorded, else where it was merged, else None."""
    p = s.get(Person, person_id)
    if p is not None and p.external_id == external_id:
        return p.id
    return live_person(s, external_id)


def current_people(s: Session, recorded: list[tuple[int, str]]) -> dict[int, Person]:
    """:func:`current_person` for many (person id, external id) pairs at once (a search's
    candidates): ``{recorded person id: the live person}``, leaving out those no longer in the
    gallery. One query for the people as recorded; merges are followed only for the others."""
    ids = sorted({pid for pid, _ in recorded})
    people = {p.id: p for p in s.scalars(select(Person).where(Person.id.in_(ids)))} if ids else {}
    out: dict[int, Person] = {}
    for pid, ext in recorded:
        p = people.get(pid)
        if p is not None and p.external_id == ext:
            out[pid] = p
            continue
        live = live_person(s, ext)
        if live is not None:
            found = s.get(Person, live)
            if found is not None:
                out[pid] = found
    return out


def identities(s: Session, person_id: int) -> list[Identity]:
    """Every identity a live person stands for: itself, then everyone merged into it, directly
    or through a chain, oldest merge first."""
    p = s.get(Person, person_id)
    if p is None:
        return []
    out = [Identity(p.id, p.external_id, None, None)]
    todo, seen = [p.external_id], {p.external_id}
    found: list[PersonMerge] = []
    while todo and len(seen) < _MAX_CHAIN:
        ext = todo.pop()
        for row in s.scalars(select(PersonMerge).where(PersonMerge.kept_external_id == ext)):
            if row.merged_external_id not in seen:
                seen.add(row.merged_external_id)
                todo.append(row.merged_external_id)
                found.append(row)
    found.sort(key=lambda r: r.id)
    out += [Identity(r.merged_person_id, r.merged_external_id, as_utc(r.at), r.id) for r in found]
    return out


def merges_of(s: Session, person_id: int) -> list[PersonMerge]:
    """The merge rows behind :func:`identities` (the history of a live person), oldest first."""
    ids = {i.merge_id for i in identities(s, person_id) if i.merge_id is not None}
    if not ids:
        return []
    q = select(PersonMerge).where(PersonMerge.id.in_(ids)).order_by(PersonMerge.id)
    return list(s.scalars(q))
