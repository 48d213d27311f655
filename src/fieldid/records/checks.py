"""The records stream's answers to the accountability core's two questions.

- :class:`RecordsConflictChecker` – does a document the person presented (at the search, or given at
  adjudication) conflict with this candidate's records? A conflict blocks a confirmation until a
  supervisor overrides it with a reason (``adjudication.service``).
- :class:`RecordsRecordSource` – a person's records with their sources, and where their enrolled
  images came from (:class:`GalleryRecordSource`), for the redress export.

Training searches are answered from the training gallery's own records (their person ids belong to
``W/training``), never from the real one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select

from fieldid.errors import FieldidError
from fieldid.records.assemble import assemble, load_records
from fieldid.records.documents import PresentedDocument, StoredDocument, compare_documents
from fieldid.store import Store
from fieldid.store.repos import lineage
from fieldid.store.repos.lineage import as_utc
from fieldid.store.schema import EnrollmentImage, Person, SearchCandidate, SearchRecord

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
            str(doc.get("evidence") or "typed"),
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
    records, one readable line per conflict naming the records' sources and dates.

    ``key``: the workspace's document-number key (``records.kinds.workspace_key``);
    ``training``: the training gallery's store, for candidates of a training search."""

    def __init__(
        self,
        store: Store,
        key: Callable[[], bytes],
        training: Callable[[], Store] | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.training = training

    def conflicts(
        self, search_id: int, person_id: int, documents: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        with self.store.read() as s:
            search = s.get(SearchRecord, search_id)
            if search is None:
                return []
            key = self.key()
            at_search = [dict(d) for d in search.presented_documents or []]
            docs = [stored_document(d, key) for d in at_search]
            docs += [stored_document(d, key) for d in documents]
            if not docs:
                return []
            training = bool(search.training)
            # A candidate merged into another person since the search (``person_merges``):
            # their records moved, so compare with the person they are now part of.
            ext = s.scalar(
                select(SearchCandidate.external_id).where(
                    SearchCandidate.search_id == search_id,
                    SearchCandidate.person_id == person_id,
                )
            )
            if training:
                now = person_id
            else:
                live = None if ext is None else lineage.current_person(s, person_id, ext)
                now = person_id if live is None else live
                records = load_records(s, [now])[now]
        if training:
            if self.training is None:
                return []
            with self.training().read() as ts:
                records = load_records(ts, [now])[now]
        found, _ = compare_documents(docs, records)
        return [_describe(c) for c in found]


class GalleryRecordSource:
    """The gallery's own records: the person's enrolment and each enrolled image's source."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def records_for(self, person_id: int) -> list[dict[str, Any]]:
        with self.store.read() as s:
            p = s.get(Person, person_id)
            if p is None:
                return []
            images = s.scalars(
                select(EnrollmentImage)
                .where(EnrollmentImage.person_id == person_id)
                .order_by(EnrollmentImage.id)
            ).all()
            return [
                {
                    "kind": "enrollment",
                    "external_id": p.external_id,
                    "display_name": p.display_name,
                    "synthetic": p.synthetic,
                    "enrolled_at": as_utc(p.created_at).isoformat(),
                    "images": [
                        {
                            "image_id": im.id,
                            "source": im.source,
                            "sha256": im.sha256,
                            "enrolled_at": as_utc(im.created_at).isoformat(),
                            "quality_unified": im.quality_unified,
                        }
                        for im in images
                    ],
                }
            ]


class RecordsRecordSource:
    """A person's records grouped by source (most recent first), with the summary and conflicts
    the search screens show, plus where their enrolled images came from."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def records_for(self, person_id: int) -> list[dict[str, Any]]:
        with self.store.read() as s:
            found = assemble(s, [person_id])[person_id]
        out: list[dict[str, Any]] = [{"kind": "source_records", **group} for group in found.groups]
        if found.conflicts:
            out.append({"kind": "record_conflicts", "conflicts": found.conflicts})
        return out + GalleryRecordSource(self.store).records_for(person_id)
