"""What a search returns: candidates.

A candidate is a lead for a human to adjudicate, never an identification."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Shown with every candidate list, on every surface.
LEAD_NOTICE = "possible match: a lead, not an identification"


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "person_id": self.person_id,
            "external_id": self.external_id,
            "display_name": self.display_name,
            "synthetic": self.synthetic,
            "score": round(self.score, 4),
            "presented_document_conflicts": self.presented_document_conflicts,
            "conflicts": self.conflicts,
            "summary": self.summary,
            "records": self.records,
            "presented_document_agreements": self.presented_document_agreements,
        }


@dataclass(frozen=True)
class CandidateList:
    """The answer to one search: the probe's quality, the threshold in force, the candidates."""

    search_ref: int
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
    search_id: int | None = None
    receipt_code: str | None = None
    #: Documents the person presented (numbers as keyed hashes), shown before the candidates;
    #: each lists the ranks of candidates whose records it conflicts with.
    presented_documents: list[dict[str, Any]] = field(default_factory=list)
    #: A training search: against the separate training gallery, left out of statistics.
    training: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "search_ref": self.search_ref,
            "notice": self.notice,
            "model": self.model,
            "threshold": self.threshold,
            "gallery": {"persons": self.gallery_persons, "templates": self.gallery_templates},
            "faces_in_frame": self.faces_in_frame,
            "quality": self.quality,
            "training": self.training,
            "presented_documents": self.presented_documents,
            "candidates": [c.to_dict() for c in self.candidates],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "search_id": self.search_id,
            "receipt_code": self.receipt_code,
        }
