"""1:N search and 1:1 verification: attributable, quality-gated, audited.

Every search and verification needs an operator, a purpose the workspace permits and a case
reference, and is written to the audit log whatever its outcome (candidates, refused probe, or
failure to acquire).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldid.adjudication.store import CandidateRow, new_receipt_code, record_search, source_bytes
from fieldid.audit.log import Attribution, AuditRecord
from fieldid.candidate import LEAD_NOTICE, Candidate, CandidateList
from fieldid.errors import AuthorisationError, FieldidError
from fieldid.pipeline import Processed
from fieldid.workspace import Workspace

ImageSource = bytes | str | Path


def check_attribution(attr: Attribution, permitted: tuple[str, ...]) -> None:
    if not attr.operator.strip():
        raise AuthorisationError("an operator must be named for every use", code="use.no_operator")
    if not attr.case_ref.strip():
        raise AuthorisationError(
            "a case reference is required for every search and verification", code="use.no_case"
        )
    if attr.purpose not in permitted:
        raise AuthorisationError(
            f"purpose {attr.purpose!r} is not permitted in this workspace; permitted: "
            f"{', '.join(permitted)}",
            code="use.purpose_not_permitted",
            permitted=list(permitted),
        )


def _probe_summary(p: Processed) -> dict[str, Any]:
    return {
        "sha256": p.probe.sha256,
        "size": [p.probe.width, p.probe.height],
        "faces_in_frame": p.acquisition.faces_found,
        "quality": p.quality.to_dict(),
    }


@dataclass(frozen=True)
class Verification:
    """A 1:1 comparison: the score, the threshold in force, and each image's quality."""

    verify_ref: int
    model: str
    score: float
    threshold: float
    quality_a: dict[str, Any]
    quality_b: dict[str, Any]

    @property
    def above_threshold(self) -> bool:
        return self.score >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "verify_ref": self.verify_ref,
            "notice": "a similarity score for a person to weigh, not an identification",
            "model": self.model,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "above_threshold": self.above_threshold,
            "quality_a": self.quality_a,
            "quality_b": self.quality_b,
        }


class SearchService:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def _refuse(
        self, event: str, attr: Attribution, err: FieldidError, **extra: Any
    ) -> AuditRecord:
        return self.ws.audit.append(
            event,
            operator=attr.operator,
            purpose=attr.purpose,
            case_ref=attr.case_ref,
            payload={"outcome": "refused", "error": err.to_dict(), **extra},
        )

    def search(
        self,
        source: ImageSource,
        attr: Attribution,
        *,
        top_k: int | None = None,
        notice_given: bool | None = None,
    ) -> CandidateList:
        """``notice_given``: whether the officer told the person (None: the surface does not ask,
        e.g. the CLI); recorded in the audit entry and the persisted search."""
        cfg = self.ws.config
        check_attribution(attr, cfg.purposes)
        started = time.time()
        started_at = self.ws.clock.now()
        receipt = new_receipt_code()
        pipeline, gallery = self.ws.pipeline, self.ws.gallery
        threshold = cfg.search_threshold(pipeline.model.id)
        k = top_k or cfg.top_k
        size = gallery.size()
        base = {
            "started": started,
            "model": str(pipeline.model),
            "gallery": {"persons": size.persons, "templates": size.templates},
            "threshold": threshold,
            "top_k": k,
            "receipt_code": receipt,
            "notice_given": notice_given,
        }
        try:
            processed = pipeline.process(source)
            cfg.gate.enforce(processed.quality)
        except FieldidError as err:
            refused = self._refuse("search", attr, err, **base, ended=time.time())
            record_search(
                self.ws,
                attr,
                audit_seq=refused.seq,
                receipt_code=receipt,
                started_at=started_at,
                model=str(pipeline.model),
                threshold=threshold,
                gallery_persons=size.persons,
                gallery_templates=size.templates,
                outcome="refused",
                refusal_code=err.code,
                notice_given=notice_given,
            )
            err.details.setdefault("receipt_code", receipt)
            raise
        t = time.perf_counter()
        hits = gallery.search(processed.template, k)
        timings = dict(processed.timings_ms)
        timings["search"] = (time.perf_counter() - t) * 1000
        above = [h for h in hits if h.score >= threshold]
        candidates = [
            Candidate(
                i + 1,
                h.person_id,
                h.external_id,
                h.display_name,
                h.synthetic,
                h.score,
                h.template_id,
            )
            for i, h in enumerate(above)
        ]
        entry = self.ws.audit.append(
            "search",
            operator=attr.operator,
            purpose=attr.purpose,
            case_ref=attr.case_ref,
            payload={
                **base,
                "ended": time.time(),
                "outcome": "candidates" if candidates else "no_candidate_above_threshold",
                "probe": _probe_summary(processed),
                "candidates": [
                    {"rank": c.rank, "person_id": c.person_id, "score": round(c.score, 6)}
                    for c in candidates
                ],
                "notice": LEAD_NOTICE,
            },
        )
        stored = record_search(
            self.ws,
            attr,
            audit_seq=entry.seq,
            receipt_code=receipt,
            started_at=started_at,
            model=str(pipeline.model),
            threshold=threshold,
            gallery_persons=size.persons,
            gallery_templates=size.templates,
            outcome=entry.payload["outcome"],
            candidates=[
                CandidateRow(c.rank, c.person_id, c.external_id, c.score, getattr(c, "fmr", None))
                for c in candidates
            ],
            probe_image=source_bytes(source),
            template=processed.template.vector.astype("<f4").tobytes(),
            quality=processed.quality.to_dict(),
            notice_given=notice_given,
        )
        return CandidateList(
            search_ref=entry.seq,
            search_id=stored.id,
            receipt_code=receipt,
            model=str(pipeline.model),
            threshold=threshold,
            gallery_persons=size.persons,
            gallery_templates=size.templates,
            quality=processed.quality.to_dict(),
            candidates=candidates,
            faces_in_frame=processed.acquisition.faces_found,
            timings_ms=timings,
        )

    def verify(self, a: ImageSource, b: ImageSource, attr: Attribution) -> Verification:
        cfg = self.ws.config
        check_attribution(attr, cfg.purposes)
        pipeline = self.ws.pipeline
        threshold = cfg.search_threshold(pipeline.model.id)
        started = time.time()
        try:
            pa = pipeline.process(a)
            pb = pipeline.process(b)
        except FieldidError as err:
            self._refuse("verify", attr, err, started=started, model=str(pipeline.model))
            raise
        score = float(pa.template.vector @ pb.template.vector)
        entry = self.ws.audit.append(
            "verify",
            operator=attr.operator,
            purpose=attr.purpose,
            case_ref=attr.case_ref,
            payload={
                "started": started,
                "ended": time.time(),
                "model": str(pipeline.model),
                "score": round(score, 6),
                "threshold": threshold,
                "a": _probe_summary(pa),
                "b": _probe_summary(pb),
            },
        )
        return Verification(
            entry.seq,
            str(pipeline.model),
            score,
            threshold,
            pa.quality.to_dict(),
            pb.quality.to_dict(),
        )
