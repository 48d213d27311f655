"""What a search returns: candidates.

A candidate is a lead for a human to adjudicate, never an identification."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fieldid.calibration.meaning import ScoreMeaning
from fieldid.not_checked import capture_text

#: Shown with every candidate list, on every surface.
LEAD_NOTICE = "possible match: a lead, not an identification"

#: ``CandidateList.list_kind`` values and the label each is shown with.
CANDIDATES = "candidates"
INVESTIGATION = "investigation"
LIST_LABELS = {
    CANDIDATES: "candidates at or above the threshold in force",
    INVESTIGATION: (
        "INVESTIGATION LIST: the highest-scoring gallery entries whatever their score; entries "
        "below the threshold in force are more likely strangers than leads"
    ),
}


@dataclass(frozen=True)
class Candidate:
    rank: int
    person_id: int
    external_id: str
    display_name: str
    synthetic: bool
    score: float
    template_id: int
    #: The candidate's records grouped by source, most recent first (records.assemble).
    records: list[dict[str, Any]] = field(default_factory=list)
    #: What the records say, each statement naming its kind, date and source.
    summary: list[dict[str, Any]] = field(default_factory=list)
    #: Where the records disagree, each flag citing the records concerned.
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    #: Where a document presented at the encounter differs from this candidate's records.
    presented_document_conflicts: list[dict[str, Any]] = field(default_factory=list)
    presented_document_agreements: list[dict[str, Any]] = field(default_factory=list)
    #: The probe's quality band (good/fair/poor): the rates below are for probes of this band.
    quality_band: str = ""
    #: What the score means at this gallery size; None when the model is uncalibrated.
    meaning: ScoreMeaning | None = None
    #: Why no rate is shown (uncalibrated model); None when ``meaning`` is set.
    rates_unavailable: str | None = None
    #: False only on an investigation list, for entries below the threshold in force.
    above_threshold: bool = True

    @property
    def fmr(self) -> float | None:
        return None if self.meaning is None else self.meaning.fmr

    @property
    def meaning_text(self) -> str:
        if self.meaning is not None:
            return self.meaning.text
        return f"rates unavailable: {self.rates_unavailable}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rank": self.rank,
            "person_id": self.person_id,
            "external_id": self.external_id,
            "display_name": self.display_name,
            "synthetic": self.synthetic,
            "score": round(self.score, 4),
            "quality_band": self.quality_band,
            "above_threshold": self.above_threshold,
            "presented_document_conflicts": self.presented_document_conflicts,
            "conflicts": self.conflicts,
            "summary": self.summary,
            "records": self.records,
            "presented_document_agreements": self.presented_document_agreements,
        }
        if self.meaning is not None:
            out.update(self.meaning.to_dict())
            out["rates_unavailable"] = None
        else:
            out.update(
                {
                    "fmr": None,
                    "expected_false_at_or_above": None,
                    "fpir_at_score": None,
                    "one_search_in": None,
                    "extrapolated": None,
                    "rates_band": None,
                    "meaning": self.meaning_text,
                    "rates_unavailable": self.rates_unavailable,
                }
            )
        return out


@dataclass(frozen=True)
class CandidateList:
    """The answer to one search: the probe's quality, the threshold in force, the candidates."""

    #: Seq of the ``search`` audit entry that records the search.
    audit_seq: int
    model: str
    threshold: float
    gallery_persons: int
    gallery_templates: int
    quality: dict[str, Any]
    candidates: list[Candidate]
    faces_in_frame: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    notice: str = LEAD_NOTICE
    #: The persisted search a human adjudicates (fieldid.adjudication), and the code printed on
    #: the receipt for the person photographed (redress lookup).
    search_id: str | None = None
    receipt_code: str | None = None
    #: Documents the person presented (numbers as keyed hashes), shown before the candidates;
    #: each lists the ranks of candidates whose records it conflicts with.
    presented_documents: list[dict[str, Any]] = field(default_factory=list)
    #: A training search: against the separate training gallery, left out of statistics.
    training: bool = False
    #: "candidates" (at or above the threshold) or "investigation" (ranked regardless of it).
    list_kind: str = CANDIDATES
    #: How the threshold was set (fieldid.calibration.ThresholdInForce.to_dict()).
    threshold_in_force: dict[str, Any] | None = None
    #: Calibration id behind the rates, or why there are none.
    calibration: str | None = None
    rates_unavailable: str | None = None
    #: An investigation list run on a probe below the quality gate: the reason given and every
    #: gate finding (None for a probe that passed the gate).
    below_gate: dict[str, Any] | None = None
    #: Where the probe came from: "live" (the field app's camera) or "file".
    capture: str | None = None

    @property
    def list_label(self) -> str:
        return LIST_LABELS[self.list_kind]

    @property
    def quality_band(self) -> str:
        return str(self.quality.get("band", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit_seq": self.audit_seq,
            "notice": self.notice,
            "list_kind": self.list_kind,
            "list_label": self.list_label,
            "model": self.model,
            "threshold": self.threshold,
            "threshold_in_force": self.threshold_in_force,
            "calibration": self.calibration,
            "rates_unavailable": self.rates_unavailable,
            "gallery": {"persons": self.gallery_persons, "templates": self.gallery_templates},
            "faces_in_frame": self.faces_in_frame,
            "quality": self.quality,
            "training": self.training,
            "presented_documents": self.presented_documents,
            "candidates": [c.to_dict() for c in self.candidates],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "search_id": self.search_id,
            "receipt_code": self.receipt_code,
            "below_gate": self.below_gate,
            "low_quality": self.below_gate is not None,
            "capture": self.capture,
            "capture_text": capture_text(self.capture),
        }
