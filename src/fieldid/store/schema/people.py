"""People, their enrolled images and templates, and the gallery's own facts.

The database is the source of truth for people, enrolled images and templates; the vector index
beside it is derived and rebuilt from here whenever it is missing or stale.

Biometric data lives in two columns only: ``templates.vector`` (the face template) and
``enrollment_images.thumbnail`` (a small face crop). The probe of a search is in
``searches.ProbeRecord``. Encryption at rest (issue 15) wraps exactly these columns.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldid.store.schema.base import Base


class GalleryMeta(Base):
    """Key/value facts about the gallery: its model and the revision the index must match."""

    __tablename__ = "gallery_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class IndexOutbox(Base):
    """Template changes committed but not yet applied to a vector index outside this database
    (Milvus, or pgvector in another database): written in the same transaction as the change,
    deleted once the index has it (:mod:`fieldid.gallery.vectors`). A crash between the commit
    and the index update leaves the row here, and the next drain applies it."""

    __tablename__ = "index_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The template added or removed: the drain upserts it if the database still holds it,
    #: else deletes it from the index (the database is the truth, so replaying is idempotent).
    template_id: Mapped[int] = mapped_column(Integer)
    #: The gallery revision the change moved to (diagnostics: how far behind an index is).
    revision: Mapped[str] = mapped_column(String(64))


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The identity key of the source that enrolled the person (folder name, CSV identity, …).
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    #: Generated data (demo, tests, distractors) is marked so everywhere it is shown.
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    images: Mapped[list[EnrollmentImage]] = relationship(
        back_populates="person", cascade="all, delete-orphan"
    )


class EnrollmentImage(Base):
    __tablename__ = "enrollment_images"
    __table_args__ = (UniqueConstraint("person_id", "sha256", name="uq_image_person_sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    #: Where the image came from (path or URI given at enrollment).
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    quality_unified: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The identity record the image came with (a photo referenced by an imported record).
    record_id: Mapped[int | None] = mapped_column(
        ForeignKey("records.id", ondelete="SET NULL"), index=True, nullable=True
    )
    #: When the photo was taken, as its source states it.
    capture_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    #: Where the image comes from in words (source, record, file), shown beside the photo.
    provenance: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: JPEG of the face crop (at most 160 px), shown beside candidates; deleted with the image.
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    person: Mapped[Person] = relationship(back_populates="images")


class TemplateRow(Base):
    __tablename__ = "templates"
    __table_args__ = (Index("ix_templates_model", "model_id", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    #: None for template-only (synthetic distractor) identities.
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollment_images.id", ondelete="CASCADE"), index=True, nullable=True
    )
    model_id: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    #: float32 little-endian, L2-normalised.
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
