"""The records stream's answers to the accountability core's two questions.

- :class:`RecordsConflictChecker` – does a document the person presented (at the search, or given at
  adjudication) conflict with this candidate's records? A conflict blocks a confirmation until a
  supervisor overrides it with a reason (``adjudication.service``).
- :class:`RecordsRecordSource` – a person's records with their sources, for the redress export.

Training searches are answered from the training gallery's own records (their person ids belong to
``W/training``), never from the real one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select

from fieldid.adjudication.schema import SearchCandidate
from fieldid.adjudication.store import get_search
from fieldid.errors import FieldidError
from fieldid.gallery.schema import AuditEntry
from fieldid.records import lineage
from fieldid.records.assemble import assemble, load_records
from fieldid.records.documents import PresentedDocument, StoredDocument, compare_documents
from fieldid.records.kinds import workspace_key
from fieldid.records.training import open_training
from fieldid.workspace import Workspace

#: Accepted spellings of a presented document's fields in an adjudication request.
_ALIASES = {
    "document_type": ("document_type", "type"),
    "number": ("number", "document_number"),
    "issuing_country": ("issuing_country", "country"),
    "name": ("name",),
    "date_of_birth": ("date_of_birth", "dob"),
    "nationality": ("nationality",),
    "expiry": ("expiry",),
}


def _date(v: Any) -> date | None:
    if v in (None, ""):
        return None
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError as e:
        raise FieldidError(f"a date must be YYYY-MM-DD, not {v!r}", code="document.date") from e


def presented_document(doc: Mapping[str, Any]) -> PresentedDocument:
    """A presented document from a mapping (an API body or form), accepting the short names too
    (``type``, ``country``, ``dob``)."""
    values: dict[str, Any] = {}
    for field, names in _ALIASES.items():
        for n in names:
            if doc.get(n) not in (None, ""):
                values[field] = str(doc[n]).strip() if not isinstance(doc[n], date) else doc[n]
                break
    if "document_type" not in values:
        raise FieldidError("a presented document needs its type", code="document.no_type")
    for d in ("date_of_birth", "expiry"):
        if d in values:
            values[d] = _date(values[d])
    return PresentedDocument(**values)


def stored_document(doc: Mapping[str, Any], key: bytes) -> StoredDocument:
    """A presented document given as a mapping (plain number, or an already hashed one)."""
    if "number_hash" in doc:
        return StoredDocument(
            str(doc.get("document_type") or ""),
            doc.get("number_hash"),
            doc.get("issuing_country"),
            doc.get("name"),
            _date(doc.get("date_of_birth")),
            doc.get("nationality"),
            _date(doc.get("expiry")),
        )
    return presented_document(doc).stored(key)


def _describe(c: Mapping[str, Any]) -> str:
    cites = "; ".join(
        f"{r.get('kind', 'record').replace('_', ' ')}, {r.get('date') or 'undated'}, "
        f"source {r.get('source')}" + (f" states {r['value']}" if "value" in r else "")
        for r in c.get("records", [])
    )
    field = str(c.get("field", "")).replace("_", " ")
    presented = c.get("presented")
    shown = "" if field == "document number" else f" {presented}"
    return f"presented document {c.get('document', 0) + 1}: {field}{shown} differs from {cites}"


class RecordsConflictChecker:
    """Compares presented documents (at the search and at adjudication) with a candidate's
    records, one readable line per conflict naming the records' sources and dates."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def _presented_at_search(self, audit_seq: int | None) -> list[dict[str, Any]]:
        if audit_seq is None:
            return []
        with self.ws.sessions() as s:
            payload = s.scalar(select(AuditEntry.payload).where(AuditEntry.seq == audit_seq))
        if payload is None:
            return []
        presented = json.loads(payload).get("presented", [])
        return [dict(d) for d in presented]

    def conflicts(
        self, search_id: int, person_id: int, documents: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        search = get_search(self.ws, search_id)
        key = workspace_key(self.ws.root)
        docs = [stored_document(d, key) for d in self._presented_at_search(search.audit_seq)]
        docs += [stored_document(d, key) for d in documents]
        if not docs:
            return []
        if search.training:
            with open_training(self.ws) as space:
                records = load_records(space.sessions, [person_id])[person_id]
        else:
            # A candidate merged into another person since the search (``person_merges``):
            # their records moved, so compare with the person they are now part of.
            with self.ws.sessions() as s:
                ext = s.scalar(
                    select(SearchCandidate.external_id).where(
                        SearchCandidate.search_id == search_id,
                        SearchCandidate.person_id == person_id,
                    )
                )
                live = None if ext is None else lineage.current_person(s, person_id, ext)
            now = person_id if live is None else live
            records = load_records(self.ws.sessions, [now])[now]
        found, _ = compare_documents(docs, records)
        return [_describe(c) for c in found]


class RecordsRecordSource:
    """A person's records grouped by source (most recent first), with the summary and conflicts
    the search screens show, plus where their enrolled images came from."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def records_for(self, person_id: int) -> list[dict[str, Any]]:
        from fieldid.redress.export import GalleryRecordSource

        found = assemble(self.ws.sessions, [person_id])[person_id]
        out: list[dict[str, Any]] = [{"kind": "source_records", **group} for group in found.groups]
        if found.conflicts:
            out.append({"kind": "record_conflicts", "conflicts": found.conflicts})
        return out + GalleryRecordSource(self.ws).records_for(person_id)
