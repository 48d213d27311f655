"""People, their enrolled images and templates, and the gallery's own facts.

The database is the source of truth for people, enrolled images and templates; the vector index
beside it is derived and rebuilt from here whenever it is missing or stale.

Biometric data lives in three columns here: ``templates.vector`` (the face template),
``enrollment_images.thumbnail`` (a small face crop) and ``enrollment_pixels.data`` (the enrolled
image as the face pipeline saw it, kept so that every template can be computed again for another
model: ``fieldid gallery retemplate``). The probe of a search is in ``searches.ProbeRecord``.
Encryption at rest (issue 15) wraps exactly these columns.

Templates belong to a *generation* (``templates.generation``): the gallery searches only the
active one (``gallery_meta`` key ``generation``, 1 when absent). A re-templating writes the new
model's templates beside the old ones under the next generation (``retemplate_jobs``), and its
switch makes that generation active and deletes the old one in one transaction
(``gallery/retemplate.py``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
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

from fieldid.store.schema.base import NEVER_REUSED, Base


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
    __table_args__ = NEVER_REUSED

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
    __table_args__ = (
        UniqueConstraint("person_id", "sha256", name="uq_image_person_sha"),
        NEVER_REUSED,
    )

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


class EnrollmentPixels(Base):
    """An enrolled image as the face pipeline saw it: decoded, upright, RGB, stored losslessly
    (PNG: no EXIF, no GPS, not the bytes as uploaded). Computing a template from it gives what
    enrolling the original file gives, for any model (re-templating)."""

    __tablename__ = "enrollment_pixels"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("enrollment_images.id", ondelete="CASCADE"), primary_key=True
    )
    #: "png" (RGB, 8 bits per channel).
    format: Mapped[str] = mapped_column(String(16))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TemplateRow(Base):
    __tablename__ = "templates"
    __table_args__ = (
        Index("ix_templates_model", "model_id", "model_version"),
        Index("ix_templates_generation_image", "generation", "image_id"),
        NEVER_REUSED,
    )

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
    #: The model generation the template belongs to; only the active one is searched.
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class RetemplateJob(Base):
    """One re-templating of the gallery to another model (``fieldid gallery retemplate``): its
    new templates are written under ``generation`` until the switch makes it active."""

    __tablename__ = "retemplate_jobs"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, unique=True)
    #: running | switched | abandoned
    state: Mapped[str] = mapped_column(String(20), index=True)
    from_model: Mapped[str] = mapped_column(String(200))
    to_model: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column(Integer)
    #: The ``[pipeline]`` settings that select the new model (embedder, flip, onnx_path, …).
    embedder: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: What the operator chose (drop template-only identities, drop unusable images, seed).
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    operator: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: What the switch (or the abandonment) did: counts, drops, the calibration in force.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class RetemplateFailure(Base):
    """An enrolled image the new model's pipeline could not template (no face found, pixels not
    stored and the source file gone or changed), with why."""

    __tablename__ = "retemplate_failures"
    __table_args__ = (UniqueConstraint("job_id", "image_id", name="uq_retemplate_failure"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("retemplate_jobs.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("enrollment_images.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(Text)
