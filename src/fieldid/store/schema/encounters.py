"""Documents presented at an encounter, as checked (``document_checks``).

An encounter starts when an officer checks a document the person presents (issue 12, item 4):
the MRZ read from a photo of the data page, the chip's data groups verified by passive
authentication, the live face compared 1:1 with the document's portrait. A document that passes
(check digits valid or chip verified, not expired, face matching at the configured FMR) settles
the encounter at once, with no gallery search; otherwise a 1:N search may follow, and it is
linked here (``search_id``).

What is kept: the fields needed to say what was presented (the number only as the workspace's
keyed hash), each check's state, the 1:1 result. The photo of the data page and the chip's data
groups (``document_image``, ``chip_data``: both hold the holder's portrait, so they are this
table's biometric columns) are held only while the encounter is open, and are never stored for
an encounter the document settled; the retention purge nulls them when the encounter ends
(``[retention] document_images``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldid.store.schema.base import NEVER_REUSED, Base


class DocumentCheckRecord(Base):
    """One document check at an encounter: what was read and verified, and what followed."""

    __tablename__ = "document_checks"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Seq of the ``document_check`` audit entry that records this check.
    audit_seq: Mapped[int] = mapped_column(Integer, index=True)
    #: The code on the receipt given to the person (redress lookup), as a search's.
    receipt_code: Mapped[str] = mapped_column(String(16), unique=True)
    operator: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(100))
    case_ref: Mapped[str] = mapped_column(String(200))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: none | mrz_read | chip_verified (``typed`` is a presented document an officer typed).
    evidence: Mapped[str] = mapped_column(String(20))
    #: valid | expired | unknown
    expiry_state: Mapped[str] = mapped_column(String(20))
    #: The document as recorded (``StoredDocument.to_dict()``: number hashed), or None when
    #: nothing could be read.
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: Each check's state: check digits, uncertain characters, chip verification and its
    #: reasons, chip/page conflicts (no image, no data group).
    checks: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The 1:1 comparison with the portrait (score, threshold, FMR, both qualities), or why it
    #: could not be made.
    face: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: Whether the document passed (evidence mrz_read or chip_verified, not expired, face at or
    #: above the threshold).
    passed: Mapped[bool] = mapped_column(Boolean)
    #: Why it did not pass (codes), empty when it passed.
    failed_because: Mapped[list[str]] = mapped_column(JSON)
    #: settled_by_document | open | searched | closed
    status: Mapped[str] = mapped_column(String(30), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The 1:N search that followed (not a foreign key: a purged search leaves the check).
    search_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    #: Why 1:N was run although the document passed (required then, audited).
    search_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The data page photo, re-encoded (no EXIF); only while the encounter is open.
    document_image: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: The chip's data groups as given (JSON of base64 DG1, DG2, EF.SOD); only while open.
    chip_data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    data_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
