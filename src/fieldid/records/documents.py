"""Documents a person presents at the encounter, and how they compare with a candidate's records.

A presented document is recorded with the search (its number only as the workspace's keyed hash)
and shown *above* the biometric candidates when it conflicts with a candidate's records: a
document in the person's hand is evidence a face score does not outweigh.

Comparison rules (:func:`compare_document`), each flag citing the records concerned:

- ``date_of_birth`` / ``nationality`` / ``name``: the candidate's records state one or more values
  and the presented value is none of them (names compared case- and space-insensitively).
  Records that state nothing cannot conflict.
- ``document_number``: the records hold a document of the same type and issuing country whose
  number (hash) differs from the presented one; the same number is an agreement.
- ``expiry``: the same document (same number hash) is on record with a different expiry.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fieldid.errors import FieldidError
from fieldid.records.assemble import RecordView
from fieldid.records.kinds import hash_document_number


@dataclass(frozen=True)
class PresentedDocument:
    """A document as presented (plain number held in memory only; hashed when stored)."""

    document_type: str
    number: str | None = None
    issuing_country: str | None = None
    name: str | None = None
    date_of_birth: date | None = None
    nationality: str | None = None
    expiry: date | None = None
    #: How the fields were obtained, weakest first: ``typed`` by an officer, ``mrz_read`` from
    #: the data page (every check digit holding), ``chip_verified`` by passive authentication
    #: (fieldid.search.encounter); ``none``: read, but neither holds.
    evidence: str = "typed"

    @classmethod
    def parse(cls, spec: str) -> PresentedDocument:
        """From ``type=passport,number=X,country=FRA,name=…,dob=1990-01-31,nationality=FRA,
        expiry=2030-01-01`` (the CLI's ``--document``)."""
        keys = {
            "type": "document_type",
            "number": "number",
            "country": "issuing_country",
            "name": "name",
            "dob": "date_of_birth",
            "nationality": "nationality",
            "expiry": "expiry",
        }
        values: dict[str, Any] = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            if not sep or k.strip() not in keys:
                raise FieldidError(
                    f"cannot read {part!r} in a presented document; use "
                    f"{', '.join(f'{k}=…' for k in keys)}",
                    code="document.syntax",
                )
            values[keys[k.strip()]] = v.strip()
        if "document_type" not in values:
            raise FieldidError("a presented document needs type=…", code="document.no_type")
        try:
            for d in ("date_of_birth", "expiry"):
                if d in values:
                    values[d] = date.fromisoformat(values[d])
        except ValueError as e:
            raise FieldidError(f"a date must be YYYY-MM-DD: {e}", code="document.date") from e
        return cls(**values)

    def stored(self, key: bytes) -> StoredDocument:
        return StoredDocument(
            self.document_type.strip(),
            None if self.number is None else hash_document_number(key, self.number),
            None if self.issuing_country is None else self.issuing_country.strip().upper(),
            self.name,
            self.date_of_birth,
            None if self.nationality is None else self.nationality.strip().upper(),
            self.expiry,
            self.evidence,
        )


@dataclass(frozen=True)
class StoredDocument:
    """A presented document as recorded with a search: the number only as its keyed hash."""

    document_type: str
    number_hash: str | None
    issuing_country: str | None
    name: str | None
    date_of_birth: date | None
    nationality: str | None
    expiry: date | None
    evidence: str = "typed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_type": self.document_type,
            "number_hash": self.number_hash,
            "issuing_country": self.issuing_country,
            "name": self.name,
            "date_of_birth": None if self.date_of_birth is None else self.date_of_birth.isoformat(),
            "nationality": self.nationality,
            "expiry": None if self.expiry is None else self.expiry.isoformat(),
            "evidence": self.evidence,
        }


def _name_key(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text).strip().casefold()


def compare_document(
    doc: StoredDocument, records: Sequence[RecordView], *, index: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(conflicts, agreements) between one presented document and one person's records."""
    conflicts: list[dict[str, Any]] = []
    agreements: list[dict[str, Any]] = []

    def attribute(field: str, presented: Any, norm: Any) -> None:
        if presented is None:
            return
        stated = [r for r in records if r.fields.get(field)]
        if not stated:
            return
        same = [r for r in stated if norm(r.fields[field]) == norm(presented)]
        entry = {"document": index, "field": field, "presented": str(presented)}
        if same:
            agreements.append({**entry, "records": [r.cite() for r in same]})
        else:
            conflicts.append(
                {
                    **entry,
                    "rule": "presented_document_differs",
                    "records": [{**r.cite(), "value": str(r.fields[field])} for r in stated],
                }
            )

    attribute("date_of_birth", doc.date_of_birth, lambda v: str(v))
    attribute("nationality", doc.nationality, lambda v: str(v).strip().upper())
    attribute("name", doc.name, lambda v: _name_key(str(v)))

    if doc.number_hash is not None:
        on_record = [
            r
            for r in records
            if r.kind == "identity_document"
            and str(r.fields.get("document_type", "")).casefold() == doc.document_type.casefold()
            and (
                doc.issuing_country is None
                or str(r.fields.get("issuing_country", "")).upper() == doc.issuing_country
            )
        ]
        same = [r for r in on_record if r.fields.get("document_number_hash") == doc.number_hash]
        entry = {"document": index, "field": "document_number"}
        if same:
            agreements.append({**entry, "records": [r.cite() for r in same]})
            if doc.expiry is not None:
                differ = [
                    r
                    for r in same
                    if r.fields.get("expiry") and r.fields["expiry"] != doc.expiry.isoformat()
                ]
                if differ:
                    conflicts.append(
                        {
                            "document": index,
                            "field": "expiry",
                            "presented": doc.expiry.isoformat(),
                            "rule": "presented_document_differs",
                            "records": [{**r.cite(), "value": r.fields["expiry"]} for r in differ],
                        }
                    )
        elif on_record:
            conflicts.append(
                {
                    **entry,
                    "presented": doc.number_hash,
                    "rule": "presented_document_differs",
                    "records": [
                        {**r.cite(), "value": r.fields.get("document_number_hash")}
                        for r in on_record
                    ],
                }
            )
    return conflicts, agreements


def compare_documents(
    docs: Sequence[StoredDocument], records: Sequence[RecordView]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Conflicts and agreements of every presented document with one person's records."""
    conflicts: list[dict[str, Any]] = []
    agreements: list[dict[str, Any]] = []
    for i, d in enumerate(docs):
        c, a = compare_document(d, records, index=i)
        conflicts += c
        agreements += a
    return conflicts, agreements
