"""Tables for persisted searches, their candidates, probes and human adjudications.

A search is kept so that a human can adjudicate it, so that retention can purge what it holds on
time, and so that a person can later ask what was done with their face (redress). The probe image
and template are the most sensitive data here; they live in their own table (``probes``) so a purge
can null them and keep the record that a search happened.

"Identified" exists only as an adjudication whose decision is ``confirm`` and whose state is
``final``; no column of a search or a candidate says so.

A search's read model is here, in its own columns (migration ``0007``): the threshold in force,
each candidate's calibrated meaning, the documents presented. Pages and the API read these; the
audit entry of the search records the same facts as evidence, not as storage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fieldid.store.schema.base import NEVER_REUSED, Base


class SearchRecord(Base):
    """One 1:N search as run: who, why, against what, with which threshold, and what came back."""

    __tablename__ = "searches"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The one id the search is known by outside the database (API, pages, command line,
    #: exports): 128 random bits, URL-safe, so a URL names a search without making it guessable
    #: (migration 0009). The integer ``id`` never leaves the database.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    #: Seq of the ``search`` audit entry that records this search.
    audit_seq: Mapped[int] = mapped_column(Integer, index=True)
    #: Short code printed on the receipt handed to the person photographed (redress lookup).
    receipt_code: Mapped[str] = mapped_column(String(16), unique=True)
    operator: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(100))
    case_ref: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[float] = mapped_column(Float)
    gallery_persons: Mapped[int] = mapped_column(Integer)
    gallery_templates: Mapped[int] = mapped_column(Integer)
    #: candidates | no_candidate_above_threshold | refused
    outcome: Mapped[str] = mapped_column(String(40))
    #: Reason code of a refused search (quality, acquisition, intake), else None.
    refusal_code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    #: The unified quality score (0-100) of the probe, kept after the probe itself is purged.
    quality_unified: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: "lead" for the ordinary thresholded list; other streams may add kinds (investigation).
    list_kind: Mapped[str] = mapped_column(String(40), default="lead")
    training: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Whether the officer said the person was told before the search (None: not asked).
    notice_given: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: The adjudication state (``fieldid.adjudication.states``): open | awaiting_second |
    #: blocked_conflict | identified | not_identified | inconclusive | no_lead; a refused
    #: attempt is ``refused``.
    status: Mapped[str] = mapped_column(String(20), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: How the threshold was set (``ThresholdInForce.to_dict()``: target, gallery size, band,
    #: calibration, the sentence shown), None for searches made before migration 0007 whose
    #: audit entry was already gone.
    threshold_in_force: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: Why rates are not shown (uncalibrated model), else None.
    rates_unavailable: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The calibration behind the candidates' rates (its id), else None.
    calibration: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: Documents the person presented at the search, as stored (numbers hashed): a JSON list.
    presented_documents: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    #: Where the search was asked from, as the phone reduced it: the coarse cell only
    #: ({lat, lon, grid_deg}; fieldid.location), None when location is off or was not sent.
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The sensitive areas that cell lies in when searched: [{id, name, kind}] ([] for none).
    location_areas: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    #: The supervisor's approval the search used (location_approvals.id), else None.
    location_approval_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Faces the detector found in the frame (None: refused before detection).
    faces_in_frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: A refused attempt: the refusal as the officer was told it (code, message, the gate's
    #: guidance, capture), so its page says why and what to do. None for a search that ran.
    refusal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: An investigation list run on a probe below the quality gate: the reason given and the
    #: gate's findings (the list is labelled low quality wherever it is shown).
    below_gate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: Where the probe came from: "live" (the field app's camera) or "file" (an upload, the
    #: command line). None for searches made before it was recorded (migration 0013).
    capture: Mapped[str | None] = mapped_column(String(8), nullable=True)


class SearchRequest(Base):
    """A search request's idempotency key and the search it made (short-lived; migration 0007,
    ``adjudication/idempotency.py``)."""

    __tablename__ = "search_requests"
    __table_args__ = (UniqueConstraint("operator", "key", name="uq_search_requests_operator_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(100))
    #: SHA-256 over the request (image bytes and form fields): a reused key must mean the same.
    request_sha256: Mapped[str] = mapped_column(String(64))
    #: The persisted search (``searches.id``); not a foreign key, so a purge of the search is
    #: never blocked by this short-lived row.
    search_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SearchCandidate(Base):
    """A lead returned by a search, with the score and (when calibrated) the FMR it means."""

    __tablename__ = "search_candidates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(
        ForeignKey("searches.id", ondelete="CASCADE"), index=True
    )
    rank: Mapped[int] = mapped_column(Integer)
    #: Not a foreign key: the gallery may delete a person; the search record must still say who
    #: was shown (redress), so the external id is copied too.
    person_id: Mapped[int] = mapped_column(Integer, index=True)
    external_id: Mapped[str] = mapped_column(String(200), index=True)
    score: Mapped[float] = mapped_column(Float)
    fmr: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Whether the score reached the threshold in force (an investigation list shows both).
    above_threshold: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: What the score meant at the search's gallery size and probe quality, in words
    #: (``calibration.meaning``), or why rates are unavailable.
    meaning: Mapped[str | None] = mapped_column(Text, nullable=True)


class ProbeRecord(Base):
    """The probe photo and its template. Both are nulled by a purge; the row says when.

    ``image`` and ``template`` are this table's biometric columns (encrypted at rest by issue 15).
    """

    __tablename__ = "probes"

    search_id: Mapped[int] = mapped_column(
        ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True
    )
    image: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    template: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: The quality report as JSON (not biometric; kept for oversight).
    quality: Mapped[str] = mapped_column(Text)
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    image_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    template_purged_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class AdjudicationRecord(Base):
    """A human's decision on a search, and the second confirmation or override it needed."""

    __tablename__ = "adjudications"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(
        ForeignKey("searches.id", ondelete="CASCADE"), index=True
    )
    #: The candidate confirmed (decision confirm) or rejected; None for a whole-list decision.
    person_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    #: confirm | reject (one lead, ``person_id``) | not_identified | inconclusive | no_lead
    #: (the last three close the whole search; ``person_id`` None)
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: JSON list of the documents the person presented, as the officer recorded them.
    documents: Mapped[str] = mapped_column(Text)
    #: JSON list of the conflicts found between those documents and the candidate's records.
    conflicts: Mapped[str] = mapped_column(Text)
    #: final | pending_second | blocked_conflict | disagreed | withdrawn
    state: Mapped[str] = mapped_column(String(20))
    second_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    second_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The second person's answer: ``confirm`` or ``disagree`` (migration 0009).
    second_decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    #: Why the second person confirmed or disagreed.
    second_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    override_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    override_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Seq of the audit entry that recorded this decision.
    audit_seq: Mapped[int] = mapped_column(Integer)


class ExportRecord(Base):
    """A file written out of the workspace (audit export, redress export, report).

    Exports hold personal data too, so they have a retention period; files inside the workspace
    are deleted by the purge, files written elsewhere are listed as outside its reach.
    """

    __tablename__ = "exports"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
