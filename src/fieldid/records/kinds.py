"""One validated model per record kind, and the keyed hash for identity-document numbers.

Every row carries the common columns (``source_record_id``, ``subject_id``, ``event_date``, the
person attributes *as the source states them*: ``name``, ``date_of_birth``, ``nationality``, and
optionally ``person_external_id``, ``photo``, ``photo_date``, ``synthetic``) and the columns of its
kind. Nothing here interprets what a record means for a person: a recorded status is the source's
own wording as of a date, never fieldid's conclusion.

Identity-document numbers are never stored: they are replaced by ``HMAC-SHA256(key, normalised
number)`` with a secret key held in the workspace's keyring, wrapped by its key-encryption key
(``fieldid.store.keys.record_hash_key``; the KEK is kept outside the workspace), so two records
(or a record and a presented document) with the same number can be compared without the number
being readable from the database, and the hash cannot be reversed by enumerating numbers without
the key — which a copy of the workspace does not carry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "KINDS",
    "KIND_LABELS",
    "SOURCE_KINDS",
    "BorderApprehension",
    "CriminalHistory",
    "IdentityDocument",
    "ImmigrationEncounter",
    "PortOfEntryVerification",
    "RecordBase",
    "RecordedStatus",
    "ValidationError",
    "hash_document_number",
]

SOURCE_KINDS = ("criminal_history", "immigration", "border", "port_of_entry", "other")
HASH_PREFIX = "hmac-sha256:"
#: Where workspaces made before the keyring kept the record-hash key (moved into the keyring,
#: wrapped by the key-encryption key, when such a workspace is opened: ``fieldid.store.keys``).
LEGACY_KEY_FILE = Path("secrets") / "record-hmac.key"


def normalise_document_number(number: str) -> str:
    """Upper case, letters and digits only: "ab 12-345" and "AB12345" are the same number."""
    return re.sub(r"[^0-9A-Z]", "", number.upper())


def hash_document_number(key: bytes, number: str) -> str:
    digest = hmac.new(key, normalise_document_number(number).encode(), hashlib.sha256)
    return HASH_PREFIX + digest.hexdigest()


def _blank_to_none(v: Any) -> Any:
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return v


class RecordBase(BaseModel):
    """Columns every row has, whatever its kind."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    kind: ClassVar[str]
    #: Fields that are about the person (as this source states them), not about the event.
    PERSON_FIELDS: ClassVar[tuple[str, ...]] = ("name", "date_of_birth", "nationality")
    #: Columns that place the row, not its content; kept out of ``fields``.
    ROW_FIELDS: ClassVar[tuple[str, ...]] = (
        "source_record_id",
        "subject_id",
        "event_date",
        "person_external_id",
        "photo",
        "photo_date",
        "synthetic",
    )

    source_record_id: str = Field(min_length=1, max_length=200)
    subject_id: str | None = Field(default=None, max_length=200)
    person_external_id: str | None = Field(default=None, max_length=200)
    event_date: date | None = None
    name: str | None = Field(default=None, max_length=200)
    date_of_birth: date | None = None
    nationality: str | None = Field(default=None, max_length=3, min_length=2)
    photo: str | None = None
    photo_date: date | None = None
    synthetic: bool = False

    @field_validator("*", mode="before")
    @classmethod
    def _blanks(cls, v: Any) -> Any:
        return _blank_to_none(v)

    @field_validator("nationality")
    @classmethod
    def _upper(cls, v: str | None) -> str | None:
        return None if v is None else v.upper()

    @field_validator("source_record_id", "subject_id", "person_external_id", mode="before")
    @classmethod
    def _ids_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    def typed_fields(self) -> dict[str, Any]:
        """The kind's fields and the person attributes, JSON-ready (dates as ISO strings)."""
        data = self.model_dump(mode="json", exclude=set(self.ROW_FIELDS))
        return {k: v for k, v in data.items() if v is not None and v != []}

    def require_event_date(self) -> bool:
        return True


class CriminalHistory(RecordBase):
    kind: ClassVar[str] = "criminal_history"
    charges: list[str] = Field(min_length=1)
    disposition: str | None = Field(default=None, max_length=200)
    disposition_date: date | None = None
    jurisdiction: str | None = Field(default=None, max_length=200)

    @field_validator("charges", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [c.strip() for c in v.split(";") if c.strip()]
        return v


class ImmigrationEncounter(RecordBase):
    kind: ClassVar[str] = "immigration_encounter"
    place: str = Field(min_length=1, max_length=200)
    outcome: str = Field(min_length=1, max_length=200)


class BorderApprehension(RecordBase):
    kind: ClassVar[str] = "border_apprehension"
    location: str = Field(min_length=1, max_length=200)
    outcome: str = Field(min_length=1, max_length=200)


class PortOfEntryVerification(RecordBase):
    kind: ClassVar[str] = "port_of_entry_verification"
    port: str = Field(min_length=1, max_length=200)
    document_type: str = Field(min_length=1, max_length=60)
    result: str = Field(min_length=1, max_length=200)


class IdentityDocument(RecordBase):
    """A document on record. ``document_number`` is read from the row and replaced by its keyed
    hash (``document_number_hash``) before anything is stored."""

    kind: ClassVar[str] = "identity_document"
    document_type: str = Field(min_length=1, max_length=60)
    document_number: str | None = Field(default=None, min_length=1, max_length=60)
    document_number_hash: str | None = Field(default=None, pattern=r"^hmac-sha256:[0-9a-f]{64}$")
    issuing_country: str = Field(min_length=2, max_length=3)
    expiry: date | None = None

    @field_validator("issuing_country")
    @classmethod
    def _upper_country(cls, v: str) -> str:
        return v.upper()

    def require_event_date(self) -> bool:
        return False  # a document on record need not say when it was issued

    def typed_fields(self) -> dict[str, Any]:
        data = super().typed_fields()
        data.pop("document_number", None)  # only the hash is ever kept
        return data


class RecordedStatus(RecordBase):
    """A status as one source records it, in its own words, as of ``event_date``."""

    kind: ClassVar[str] = "recorded_status"
    recorded_status: str = Field(min_length=1, max_length=200)


KINDS: dict[str, type[RecordBase]] = {
    m.kind: m
    for m in (
        CriminalHistory,
        ImmigrationEncounter,
        BorderApprehension,
        PortOfEntryVerification,
        IdentityDocument,
        RecordedStatus,
    )
}

#: How each kind is named in a summary statement.
KIND_LABELS = {
    "criminal_history": "criminal history",
    "immigration_encounter": "immigration encounter",
    "border_apprehension": "border apprehension",
    "port_of_entry_verification": "port-of-entry verification",
    "identity_document": "identity document",
    "recorded_status": "recorded status",
}


def validate_row(kind: str, row: dict[str, Any], key: bytes) -> RecordBase:
    """Validate one row as ``kind``; a document number is hashed with ``key`` at once.

    Raises ``ValueError`` (unknown kind, missing event date) or pydantic's ``ValidationError``.
    """
    model = KINDS.get(kind)
    if model is None:
        raise ValueError(f"unknown record kind {kind!r}; known: {', '.join(KINDS)}")
    rec = model.model_validate(row)
    if isinstance(rec, IdentityDocument):
        if rec.document_number is not None:
            rec = rec.model_copy(
                update={
                    "document_number_hash": hash_document_number(key, rec.document_number),
                    "document_number": None,
                }
            )
        elif rec.document_number_hash is None:
            raise ValueError("document_number: an identity document needs its number")
    if rec.event_date is None and rec.require_event_date():
        raise ValueError("event_date: required for this kind of record")
    if rec.subject_id is None and rec.person_external_id is None:
        raise ValueError("subject_id: required (or person_external_id naming a fieldid person)")
    return rec


def describe_errors(err: ValidationError | ValueError) -> str:
    """One line naming each failing column and why."""
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors():
            loc = ".".join(str(x) for x in e["loc"]) or "row"
            parts.append(f"{loc}: {e['msg']}")
        return "; ".join(parts)
    return str(err)
