"""Tables for identity records (migration ``0002``).

- ``record_sources``: a system records come from, with its owning authority and how it is
  refreshed.
- ``person_links``: (source, the source's own subject key) -> fieldid person. Nothing is merged
  across sources automatically; a row reaches an existing person only through a link the source
  itself states (its subject key) or an explicit ``person_external_id``.
- ``records``: one statement of one source about one person, of one kind, dated, with its typed
  fields (validated per kind) and the source's raw payload, keyed by the source's own record id.
- ``record_corrections``: every correction of a record, with who, when, why and the old value.
- ``review_items``: things a person must look at (a possible duplicate enrolment); nothing is
  merged or dropped without a human decision.
- ``person_merges``: two people a supervisor merged (``records/merge.py``), with what the merged
  person was and what moved.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fieldid.store.schema.base import NEVER_REUSED, Base


class Source(Base):
    __tablename__ = "record_sources"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: What kind of system it is (criminal_history, immigration, border, port_of_entry, other).
    kind: Mapped[str] = mapped_column(String(40))
    #: The authority that owns and answers for the records.
    authority: Mapped[str] = mapped_column(String(200))
    #: How the copy here is refreshed (e.g. "nightly full export", "manual import").
    refresh: Mapped[str] = mapped_column(String(200))
    #: When records were last imported from it.
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PersonLink(Base):
    __tablename__ = "person_links"
    __table_args__ = (
        UniqueConstraint("source_id", "subject_key", name="uq_link_source_subject"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("record_sources.id", ondelete="CASCADE"))
    subject_key: Mapped[str] = mapped_column(String(200))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Record(Base):
    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("source_id", "source_record_id", name="uq_record_source_id"),
        Index("ix_records_person_date", "person_id", "event_date"),
        NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("record_sources.id", ondelete="CASCADE"))
    #: One of ``fieldid.records.kinds.KINDS``.
    kind: Mapped[str] = mapped_column(String(40))
    #: The date the record is about (event, charge, encounter, "as of" date of a status).
    event_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    #: The source's own id for the record: the upsert key with ``source_id``.
    source_record_id: Mapped[str] = mapped_column(String(200))
    #: The kind's typed fields, validated (JSON); document numbers only as keyed hashes.
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The row as the source sent it (JSON), document numbers replaced by their hashes.
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: SHA-256 of what was imported; a re-import with the same content changes nothing.
    content_sha: Mapped[str] = mapped_column(String(64))
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Set when a person corrected the record (history in ``record_corrections``).
    corrected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RecordCorrection(Base):
    __tablename__ = "record_corrections"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    operator: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    old_fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    new_fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    old_event_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    new_event_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ReviewItem(Base):
    __tablename__ = "review_items"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``possible_duplicate``: an enrolled image matches a different person very closely.
    kind: Mapped[str] = mapped_column(String(40), index=True)
    #: ``open`` until a person records a decision, then ``resolved``.
    state: Mapped[str] = mapped_column(String(20), index=True)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL"), nullable=True
    )
    other_person_id: Mapped[int | None] = mapped_column(
        ForeignKey("persons.id", ondelete="SET NULL"), nullable=True
    )
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollment_images.id", ondelete="SET NULL"), nullable=True
    )
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str | None] = mapped_column(String(40), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PersonMerge(Base):
    """A supervisor's decision that two fieldid people are one, acted on (migration ``0006``).

    The merged person's images, templates, records and source links moved to the kept person and
    the merged ``persons`` row was deleted; this row is what remains of it: who it was (external id,
    display name, synthetic flag as they were), who merged it, when, why, on which review item and
    what moved. The person ids are plain integers, not foreign keys: the merged id no longer exists,
    and searches recorded under it (``search_candidates``, never rewritten) are found through here.
    Chains are followed by external id (stable and unique), not by numeric id, which SQLite may
    give to a new person once the highest one is deleted (``store/repos/lineage.py``). Rows live as
    long as the kept person: deleting the kept person deletes its merge history.
    """

    __tablename__ = "person_merges"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kept_person_id: Mapped[int] = mapped_column(Integer)
    kept_external_id: Mapped[str] = mapped_column(String(200), index=True)
    merged_person_id: Mapped[int] = mapped_column(Integer, index=True)
    merged_external_id: Mapped[str] = mapped_column(String(200), index=True)
    merged_display_name: Mapped[str] = mapped_column(String(200))
    merged_synthetic: Mapped[bool] = mapped_column(Boolean)
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    review_item_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    images_moved: Mapped[int] = mapped_column(Integer)
    #: Images of the merged person byte-identical to one the kept person has (same SHA-256): not
    #: moved (a person holds an image once) but deleted with their templates; listed in ``detail``.
    images_dropped: Mapped[int] = mapped_column(Integer)
    templates_moved: Mapped[int] = mapped_column(Integer)
    templates_dropped: Mapped[int] = mapped_column(Integer)
    records_moved: Mapped[int] = mapped_column(Integer)
    links_moved: Mapped[int] = mapped_column(Integer)
    #: What the counts do not say: the dropped images' provenance, review items re-pointed.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Seq of the ``person_merge`` audit entry.
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
