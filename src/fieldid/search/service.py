"""1:N search and 1:1 verification: attributable, quality-gated, audited.

Every search and verification needs an operator, a purpose the workspace permits and a case
reference, and is written to the audit log whatever its outcome (candidates, refused probe, or
failure to acquire).

A search does its slow work first (the face pipeline, the index, the candidates' records), then
writes the search, its candidates, its probe and its audit entry in one unit of work: they exist
together or not at all. A refusal is audited in its own small unit of work (with the refused
search's row when the probe was refused).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.adjudication.store import CandidateRow, new_receipt_code, record_search
from fieldid.audit.log import Attribution, AuditRecord
from fieldid.calibration import (
    Calibration,
    ThresholdInForce,
    score_meaning,
    threshold_in_force,
    uncalibrated_reason,
)
from fieldid.calibration.meaning import OneToOneScore, ScoreMeaning
from fieldid.calibration.store import CalibrationSource
from fieldid.candidate import CANDIDATES, INVESTIGATION, LEAD_NOTICE, Candidate, CandidateList
from fieldid.clock import Clock
from fieldid.config import WorkspaceConfig
from fieldid.errors import AuthorisationError, FieldidError, combined
from fieldid.facework import FaceWork, InlineFaceWork
from fieldid.gallery.store import Gallery
from fieldid.location import approvals
from fieldid.location.areas import areas_at, areas_near
from fieldid.location.cell import Cell, parse_location
from fieldid.location.config import LocationConfig
from fieldid.pipeline import FacePipeline, FaceResult
from fieldid.quality import band_of
from fieldid.quality.gate import Source
from fieldid.records.assemble import assemble
from fieldid.records.checks import stored_document
from fieldid.records.documents import PresentedDocument, compare_documents
from fieldid.records.sources import list_sources
from fieldid.store import Store, UnitOfWork
from fieldid.store.keys import record_hash_key
from fieldid.store.schema import DocumentCheckRecord, SearchRecord

ImageSource = bytes | str | Path

#: Shortest written reason for running an investigation list on a probe below the quality gate.
MIN_BELOW_GATE_REASON = 15
#: Shortest written reason for a 1:N search after a presented document that passed
#: (fieldid.search.encounter).
MIN_DOCUMENT_REASON = 15


def open_document_check(s: Session, check_id: int, operator: str) -> DocumentCheckRecord:
    """The document check a search follows: it exists, the same operator made it, and it has
    not led to a search already."""
    rec = s.get(DocumentCheckRecord, check_id)
    if rec is None or rec.operator != operator:
        raise FieldidError(
            f"no document check {check_id} made by this operator",
            code="document.check_not_found",
        )
    if rec.search_id is not None:
        search = s.get(SearchRecord, rec.search_id)
        ref = rec.search_id if search is None else search.public_id
        raise FieldidError(
            f"document check {check_id} already led to search {ref}",
            code="document.check_used",
            search_id=ref,
        )
    return rec


def _check_document_reason(rec: DocumentCheckRecord, reason: str | None) -> str | None:
    """A 1:N search after a document that passed needs a written reason (documents first)."""
    if not rec.passed:
        return reason.strip() if reason and reason.strip() else None
    if reason is None or len(reason.strip()) < MIN_DOCUMENT_REASON:
        raise FieldidError(
            "the person's document passed (read, checked, not expired, and their face matches "
            "its portrait): the encounter is settled without a gallery search. To search 1:N "
            f"anyway, say why the document is not enough (at least {MIN_DOCUMENT_REASON} "
            "characters)",
            code="search.document_settled",
            document_check_id=rec.id,
        )
    return reason.strip()


def use_problems(attr: Attribution, permitted: tuple[str, ...]) -> list[FieldidError]:
    """Everything that keeps a use from being attributable: no operator, no case reference, a
    purpose the workspace does not permit (each its own ``use.*`` problem)."""
    problems: list[FieldidError] = []
    if not attr.operator.strip():
        problems.append(
            AuthorisationError("an operator must be named for every use", code="use.no_operator")
        )
    if not attr.case_ref.strip():
        problems.append(
            AuthorisationError(
                "a case reference is required for every search and verification",
                code="use.no_case",
            )
        )
    if attr.purpose not in permitted:
        problems.append(
            AuthorisationError(
                f"purpose {attr.purpose!r} is not permitted in this workspace; permitted: "
                f"{', '.join(permitted)}",
                code="use.purpose_not_permitted",
                permitted=list(permitted),
            )
        )
    return problems


def check_attribution(
    attr: Attribution, permitted: tuple[str, ...], more: list[FieldidError] | None = None
) -> None:
    """Refuse an unattributable use, naming every problem at once (``fieldid.errors.combined``;
    ``more``: problems the caller found in the same request)."""
    problems = use_problems(attr, permitted) + list(more or [])
    if problems:
        raise combined(problems)


def _probe_summary(p: FaceResult) -> dict[str, Any]:
    return {
        "sha256": p.probe.sha256,
        "size": [p.probe.width, p.probe.height],
        "faces_in_frame": p.acquisition.faces_found,
        "quality": p.quality.to_dict(),
    }


@dataclass(frozen=True)
class Verification(OneToOneScore):
    """A 1:1 comparison: the score, the threshold in force, and each image's quality."""

    #: Seq of the ``verify`` audit entry that records it (a verification keeps no other row).
    audit_seq: int
    model: str
    score: float
    threshold: float
    quality_a: dict[str, Any]
    quality_b: dict[str, Any]
    #: "configured" or "verify_target_fmr"; the calibration behind the rate, if any.
    threshold_set_by: str = "configured"
    calibration: str | None = None
    #: FMR per comparison at the score (a gallery of one), or why it is unavailable.
    meaning: ScoreMeaning | None = None
    rates_unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit_seq": self.audit_seq,
            "notice": "a similarity score for a person to weigh, not an identification",
            "model": self.model,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "threshold_set_by": self.threshold_set_by,
            "above_threshold": self.above_threshold,
            "fmr": None if self.fmr is None else float(f"{self.fmr:.4g}"),
            "extrapolated": None if self.meaning is None else self.meaning.extrapolated,
            "meaning": self.meaning_text,
            "calibration": self.calibration,
            "rates_unavailable": self.rates_unavailable,
            "quality_a": self.quality_a,
            "quality_b": self.quality_b,
        }


def _locate(rec: Any, placement: Placement | None) -> None:
    """The search's location columns (left NULL when location is off)."""
    if placement is None:
        return
    rec.location = None if placement.cell is None else placement.cell.to_dict()
    rec.location_areas = placement.areas
    rec.location_approval_id = placement.approval_id


def _check_below_gate(reason: str, investigation: bool) -> None:
    """A search below the quality gate: only an investigation list, only with a reason."""
    if not investigation:
        raise FieldidError(
            "a probe below the quality gate can only be searched as an investigation list",
            code="search.below_gate_not_investigation",
        )
    if len(reason.strip()) < MIN_BELOW_GATE_REASON:
        raise FieldidError(
            "say why this photo must be searched although it is below the quality gate "
            f"(at least {MIN_BELOW_GATE_REASON} characters)",
            code="search.below_gate_reason",
        )


@dataclass(frozen=True)
class Placement:
    """Where a search was asked from (location on): the coarse cell (None: not sent, and not
    required), the sensitive areas it lies in, and the supervisor's approval it uses."""

    cell: Cell | None
    areas: list[dict[str, Any]]
    approval_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": None if self.cell is None else self.cell.to_dict(),
            "areas": self.areas,
            "approval_id": self.approval_id,
        }


class Space(Protocol):
    """A gallery and the store it lives in: the workspace's own, or its training gallery."""

    @property
    def store(self) -> Store: ...

    @property
    def gallery(self) -> Gallery: ...


@dataclass(frozen=True)
class _Main:
    store: Store
    gallery: Gallery


class SearchService:
    """Searches and verifications of one workspace. Built once by ``Workspace`` with what it
    uses: the store, the gallery, the face pipeline, the calibration in force, the
    configuration and the clock; ``root`` is the workspace folder (its document-number key and
    the calibration's origin in messages); ``training`` opens the training gallery on demand;
    ``faces``: where face work runs (default: in the calling thread, on ``pipeline``; the HTTP
    service passes its worker pool, see fieldid.facework)."""

    def __init__(
        self,
        store: Store,
        gallery: Gallery,
        pipeline: FacePipeline,
        calibration: CalibrationSource,
        config: WorkspaceConfig,
        clock: Clock,
        *,
        root: Path,
        training: Callable[[], Space] | None = None,
        faces: FaceWork | None = None,
        location: LocationConfig | None = None,
    ) -> None:
        self.store = store
        self.gallery = gallery
        self.pipeline = pipeline
        self.calibrations = calibration
        self.config = config
        self.clock = clock
        self.root = root
        self._training = training
        self._faces = faces
        #: ``[location]``: off unless configured (then nothing about location changes).
        self.location = location or LocationConfig()

    @property
    def faces(self) -> FaceWork:
        if self._faces is None:
            self._faces = InlineFaceWork(self.pipeline)
        return self._faces

    def _refuse(
        self,
        event: str,
        attr: Attribution,
        err: FieldidError,
        uow: UnitOfWork | None,
        **extra: Any,
    ) -> AuditRecord:
        return self.store.append_audit(
            event,
            operator=attr.operator,
            purpose=attr.purpose,
            case_ref=attr.case_ref,
            payload={"outcome": "refused", "error": err.to_dict(), **extra},
            releasing=uow,
        )

    def place(
        self, location: str | None, attr: Attribution, uow: UnitOfWork | None, **extra: Any
    ) -> Placement | None:
        """Apply ``[location]`` to a search about to run: None when location is off (whatever
        was sent is ignored: not checked, not kept). On: the sent cell is checked (coarse, in
        range; required unless configured otherwise), the sensitive areas in force that it
        intersects are found, and their kinds' rules applied: ``refuse`` refuses the search
        (``location.refused``); ``approval`` needs an approval a supervisor gave this operator
        for this case and these areas, else the search is refused (``location.approval_required``)
        and, in the unit of work of that refusal's audit entry, asks for one. Refusals are
        audited as refused searches, with the cell and the areas."""
        lc = self.location
        if not lc.enabled:
            return None
        now = self.clock.now()
        cell: Cell | None = None
        refs: list[dict[str, Any]] = []
        try:
            if location is None or not location.strip():
                if lc.required:
                    raise FieldidError(
                        "this workspace records where searches happen: the phone's location "
                        "(reduced to about 1 km on the phone) is needed; allow location access "
                        "and try again",
                        code="location.missing",
                    )
                return Placement(None, [])
            cell = parse_location(location, lc.grid_deg)
            with self.store.read() as s:
                found = areas_at(areas_near(s, cell), cell, now)
                refs = [a.ref() for a in found]
                rules = {lc.rules[a.kind] for a in found}
                if "refuse" in rules:
                    barred = [r for r in refs if lc.rules[r["kind"]] == "refuse"]
                    where = approvals.describe_areas(barred)
                    raise FieldidError(
                        f"searches are not permitted in this area: {where}. Nothing was searched",
                        code="location.refused",
                        areas=refs,
                    )
                if "approval" not in rules:
                    return Placement(cell, refs)
                row = approvals.find_usable(
                    s, attr.operator, attr.case_ref, refs, now, lc.approval_minutes
                )
            if row is not None:
                return Placement(cell, refs, row.id)
        except FieldidError as err:
            where_payload = {"cell": None if cell is None else cell.to_dict(), "areas": refs}
            self._refuse("search", attr, err, uow, location=where_payload, **extra)
            raise
        # A search here needs a supervisor's prior approval and has none: refused, and the
        # request for one is made with the refusal's audit entry.
        assert cell is not None
        if uow is not None:
            uow.rollback()
        with self.store.unit_of_work() as u:
            req = approvals.request(
                u,
                operator=attr.operator,
                purpose=attr.purpose,
                case_ref=attr.case_ref,
                cell=cell,
                areas=refs,
                minutes=lc.approval_minutes,
            )
            needed = FieldidError(
                f"this place is in {approvals.describe_areas(refs)}: a search here needs a "
                f"supervisor's approval first. Request {req.id} was sent to the supervisors; "
                "take the photo again once it is approved. Nothing was searched",
                code="location.approval_required",
                approval_id=req.id,
                areas=refs,
            )
            entry = u.audit(
                "search",
                operator=attr.operator,
                purpose=attr.purpose,
                case_ref=attr.case_ref,
                payload={
                    "outcome": "refused",
                    "error": needed.to_dict(),
                    **extra,
                    "location": {"cell": cell.to_dict(), "areas": refs},
                    "location_approval": {"id": req.id, "state": "requested"},
                },
            )
            if not req.request_seq:
                req.request_seq = entry.seq
        raise needed

    def calibration(self) -> Calibration | None:
        """The calibration in force for the workspace's model (None: uncalibrated)."""
        return self.calibrations.current()

    def threshold(
        self,
        band: str = "all",
        gallery_size: int | None = None,
        *,
        calibration: Calibration | Literal["now"] | None = "now",
    ) -> ThresholdInForce:
        """The threshold a search would use now (recomputed from the current gallery size).
        ``calibration``: the one in force, when the caller has read it already ("now": read
        it now)."""
        n = self.gallery.size().templates if gallery_size is None else gallery_size
        cfg = self.config
        cal = self.calibration() if calibration == "now" else calibration
        return threshold_in_force(
            configured=cfg.threshold,
            target_fpir=cfg.target_fpir,
            calibration=cal,
            model=str(self.pipeline.model),
            gallery_size=n,
            band=band,
            workspace=str(self.root),
        )

    def search(
        self,
        source: ImageSource,
        attr: Attribution,
        *,
        top_k: int | None = None,
        investigation: bool = False,
        actor: Actor | None = None,
        presented: Sequence[PresentedDocument] = (),
        training: bool = False,
        notice_given: bool | None = None,
        capture: Source = "file",
        below_gate_reason: str | None = None,
        uow: UnitOfWork | None = None,
        remember: Callable[[UnitOfWork, int], None] | None = None,
        location: str | None = None,
        document_check: int | None = None,
        document_reason: str | None = None,
    ) -> CandidateList:
        """Search one probe; candidates at or above the threshold in force, each with its rates.

        The threshold is recomputed from ``[search] target_fpir``, the gallery's current number
        of templates and the probe's quality band (unless a fixed one is configured).
        ``investigation=True`` returns the ``top_k`` highest-scoring entries whatever their score,
        each marked above or below the threshold; it needs an ``actor`` whose role permits
        "investigation", and is labelled as an investigation list in the result and the audit.
        ``presented``: documents the person showed, recorded with the search (numbers hashed) and
        compared with each candidate's records. ``training``: search only the separate training
        gallery (records.training); audited with ``{"training": true}``, left out of statistics.
        The search is persisted (adjudication.store) with its probe, candidates and the receipt
        code given to the person photographed, in one unit of work with its audit entry (``uow``:
        the caller's, e.g. the API request's). ``notice_given``: whether the officer told the
        person (None: the surface does not ask, e.g. the CLI); recorded in the audit entry and the
        persisted search. ``capture``: where the probe came from ("live" camera or a supplied
        "file"): the gate's refusals are worded for it. ``below_gate_reason``: with
        ``investigation=True`` (a role that permits it), a probe below the quality gate is searched
        anyway, with this written reason (at least 15 characters); the list is labelled low quality
        in the result and the audit (``below_gate``: the reason and every gate finding) and its
        rates are those of the probe's quality band. ``remember(uow, search_id)``: called in the
        unit of work that records the search (or its refusal): an idempotency key stored with
        it (``adjudication.idempotency``). ``location``: where the photo was taken, as the phone
        reduced it (``"lat,lon"`` on the ``[location] grid_deg`` grid); used only when
        ``[location] enabled`` (see :meth:`place`), ignored otherwise.
        it (``adjudication.idempotency``). ``document_check``: the id of the document check
        (fieldid.search.encounter) this search follows, by the same operator: its document is
        recorded with the search as a presented document with its evidence level, and the
        search is linked to it; a check that passed (the encounter is settled) is refused
        (``search.document_settled``) unless ``document_reason`` says, in at least 15
        characters, why the document is not enough (stored and audited:
        ``despite_valid_document``).
        """
        cfg = self.config
        check_attribution(attr, cfg.purposes)
        kind = INVESTIGATION if investigation else CANDIDATES
        started = time.time()
        started_at = self.clock.now()
        receipt = new_receipt_code()
        stored = [d.stored(record_hash_key(self.store)) for d in presented]
        presented_docs = [d.to_dict() for d in stored]
        pipeline = self.pipeline
        model = str(pipeline.model)
        k = top_k or cfg.top_k
        # Where the probe came from, recorded with every attempt (refused ones too).
        access: dict[str, Any] = {"list_kind": kind, "training": training, "capture": capture}
        if stored:
            access["presented"] = presented_docs
        if actor is not None:
            access["actor"] = {"name": actor.name, "role": actor.role.value}
        doc_reason: str | None = None
        try:
            if document_check is not None:
                with self.store.read() as s:
                    check = open_document_check(s, document_check, attr.operator)
                doc_reason = _check_document_reason(check, document_reason)
                access["document_check"] = {
                    "id": check.id,
                    "evidence": check.evidence,
                    "passed": check.passed,
                    "failed_because": list(check.failed_because),
                    **({"reason": doc_reason} if doc_reason else {}),
                }
                access["despite_valid_document"] = bool(check.passed)
                if check.document is not None:
                    doc = stored_document(check.document, record_hash_key(self.store))
                    stored = [doc, *stored]
                    presented_docs = [d.to_dict() for d in stored]
                    access["presented"] = presented_docs
        except FieldidError as err:
            self._refuse("search", attr, err, uow, started=started, model=model, **access)
            raise
        try:
            if investigation and actor is None:
                raise AuthorisationError(
                    "an investigation list needs an authenticated operator whose role permits it",
                    code="access.no_actor",
                    action="investigation",
                )
            if actor is not None:
                require(actor, "search")
                if investigation:
                    require(actor, "investigation")
            if below_gate_reason is not None:
                _check_below_gate(below_gate_reason, investigation)
        except FieldidError as err:
            self._refuse("search", attr, err, uow, started=started, model=model, **access)
            raise
        placement = self.place(location, attr, uow, started=started, model=model, **access)
        where = {} if placement is None else {"location": placement.to_dict()}
        try:
            if training and self._training is None:
                raise FieldidError("this workspace has no training gallery", code="training.absent")
            space: Space = (
                self._training() if training and self._training else _Main(self.store, self.gallery)
            )
        except FieldidError as err:
            self._refuse("search", attr, err, uow, started=started, model=model, **access)
            raise
        gallery = space.gallery
        with space.store.reading():  # the reads before the face work: one session
            size = gallery.size()
            sources = list_sources(space.store)
        searched = {
            "gallery": "training" if training else "main",
            "record_sources": [
                {"name": x.name, "kind": x.kind, "refreshed_at": x.refreshed_at} for x in sources
            ],
        }
        # Before the probe is processed: fails early (config.threshold) for an uncalibrated
        # model without a configured threshold, and records a threshold with refusals.
        cal = self.calibration()  # read once for the whole search
        provisional = self.threshold("all", size.templates, calibration=cal)
        base = {
            "started": started,
            "model": model,
            "gallery": {"persons": size.persons, "templates": size.templates},
            "threshold": provisional.value,
            "threshold_in_force": provisional.to_dict(),
            "top_k": k,
            "searched": searched,
            "receipt_code": receipt,
            "notice_given": notice_given,
            **access,
            **where,
        }
        reason = None if cal is not None else uncalibrated_reason(model, str(self.root))
        below_gate: dict[str, Any] | None = None
        try:
            processed = self.faces.process(source)
            if below_gate_reason is None:
                cfg.gate.enforce(processed.quality, capture)
            else:
                findings = cfg.gate.check(processed.quality, capture)
                if findings:
                    below_gate = {
                        "reason": below_gate_reason.strip(),
                        "guidance": [g.to_dict() for g in findings],
                    }
        except FieldidError as err:
            if uow is not None:
                uow.rollback()
            with self.store.unit_of_work() as refusal:
                rec = record_search(
                    refusal,
                    attr,
                    receipt_code=receipt,
                    started_at=started_at,
                    model=model,
                    threshold=provisional.value,
                    gallery_persons=size.persons,
                    gallery_templates=size.templates,
                    outcome="refused",
                    refusal_code=err.code,
                    training=training,
                    list_kind=kind,
                    notice_given=notice_given,
                    threshold_in_force=provisional.to_dict(),
                    rates_unavailable=reason,
                    calibration=None if cal is None else cal.id,
                    presented_documents=presented_docs,
                    refusal=err.to_dict(),
                    capture=capture,
                )
                _locate(rec, placement)
                if remember is not None:
                    remember(refusal, rec.id)
                entry = refusal.audit(
                    "search",
                    operator=attr.operator,
                    purpose=attr.purpose,
                    case_ref=attr.case_ref,
                    payload={
                        "outcome": "refused",
                        "error": err.to_dict(),
                        **base,
                        "search_id": rec.public_id,
                        "ended": time.time(),
                    },
                )
                rec.audit_seq = entry.seq
            err.details.setdefault("receipt_code", receipt)
            err.details.setdefault("search_id", rec.public_id)
            raise
        band = processed.quality.band
        tif = self.threshold(band, size.templates, calibration=cal)
        threshold = tif.value
        t = time.perf_counter()
        # The reads after the face work (the index's revision, the short list's templates, the
        # candidates' people and records): one session, one transaction.
        with space.store.reading() as s:
            hits = gallery.search(processed.template, k)
            timings = dict(processed.timings_ms)
            timings["search"] = (time.perf_counter() - t) * 1000
            shown = hits if investigation else [h for h in hits if h.score >= threshold]
            t = time.perf_counter()
            found = assemble(s, [h.person_id for h in shown])
        candidates = []
        for i, h in enumerate(shown):
            recs = found[h.person_id]
            doc_conflicts, doc_agreements = compare_documents(stored, recs.records)
            candidates.append(
                Candidate(
                    i + 1,
                    h.person_id,
                    h.external_id,
                    h.display_name,
                    h.synthetic,
                    h.score,
                    h.template_id,
                    records=recs.groups,
                    summary=recs.summary,
                    conflicts=recs.conflicts,
                    presented_document_conflicts=doc_conflicts,
                    presented_document_agreements=doc_agreements,
                    quality_band=band,
                    meaning=None
                    if cal is None
                    else score_meaning(cal, h.score, size.templates, band),
                    rates_unavailable=reason,
                    above_threshold=h.score >= threshold,
                )
            )
        timings["records"] = (time.perf_counter() - t) * 1000
        documents = [
            {
                **d,
                "conflicts_with_ranks": [
                    c.rank
                    for c in candidates
                    if any(x["document"] == i for x in c.presented_document_conflicts)
                ],
            }
            for i, d in enumerate(presented_docs)
        ]
        if investigation:
            outcome = "investigation_list"
        else:
            outcome = "candidates" if candidates else "no_candidate_above_threshold"
        with self.store.using(uow) as u:
            saved = record_search(
                u,
                attr,
                receipt_code=receipt,
                started_at=started_at,
                model=model,
                threshold=threshold,
                gallery_persons=size.persons,
                gallery_templates=size.templates,
                outcome=outcome,
                candidates=[
                    CandidateRow(
                        c.rank,
                        c.person_id,
                        c.external_id,
                        c.score,
                        c.fmr,
                        c.above_threshold,
                        c.meaning_text,
                    )
                    for c in candidates
                ],
                probe_image=processed.kept_image,  # re-encoded: never the uploaded bytes
                template=processed.template.vector.astype("<f4").tobytes(),
                quality=processed.quality.to_dict(),
                training=training,
                list_kind=kind,
                notice_given=notice_given,
                threshold_in_force=tif.to_dict(),
                rates_unavailable=reason,
                calibration=None if cal is None else cal.id,
                presented_documents=presented_docs,
                faces_in_frame=processed.acquisition.faces_found,
                below_gate=below_gate,
                capture=capture,
            )
            _locate(saved, placement)
            if placement is not None and placement.approval_id is not None:
                u.flush()
                approvals.use(
                    u, placement.approval_id, saved.public_id, self.location.approval_minutes
                )
            if remember is not None:
                remember(u, saved.id)
            if document_check is not None:
                check = open_document_check(u.session, document_check, attr.operator)
                check.search_id, check.search_reason = saved.id, doc_reason
                check.status = "searched"
            entry = u.audit(
                "search",
                operator=attr.operator,
                purpose=attr.purpose,
                case_ref=attr.case_ref,
                payload={
                    **base,
                    "search_id": saved.public_id,
                    "threshold": threshold,
                    "threshold_in_force": tif.to_dict(),
                    "ended": time.time(),
                    "outcome": outcome,
                    "probe": _probe_summary(processed),
                    "candidates": [
                        {
                            "rank": c.rank,
                            "person_id": c.person_id,
                            "score": round(c.score, 6),
                            "fmr": None if c.fmr is None else float(f"{c.fmr:.4g}"),
                            "meaning": c.meaning_text,
                            "above_threshold": c.above_threshold,
                            "presented_document_conflicts": len(c.presented_document_conflicts),
                            "record_conflicts": len(c.conflicts),
                        }
                        for c in candidates
                    ],
                    "rates_unavailable": reason,
                    "notice": LEAD_NOTICE,
                    **({"below_gate": below_gate} if below_gate else {}),
                },
            )
            saved.audit_seq = entry.seq
        return CandidateList(
            audit_seq=entry.seq,
            search_id=saved.public_id,
            receipt_code=receipt,
            presented_documents=documents,
            training=training,
            model=model,
            threshold=threshold,
            gallery_persons=size.persons,
            gallery_templates=size.templates,
            quality=processed.quality.to_dict(),
            candidates=candidates,
            faces_in_frame=processed.acquisition.faces_found,
            timings_ms=timings,
            list_kind=kind,
            threshold_in_force=tif.to_dict(),
            calibration=None if cal is None else cal.id,
            rates_unavailable=reason,
            below_gate=below_gate,
            capture=capture,
        )

    def verify(
        self, a: ImageSource, b: ImageSource, attr: Attribution, *, uow: UnitOfWork | None = None
    ) -> Verification:
        """Compare two photos 1:1; audited (``verify``) whatever its outcome."""
        cfg = self.config
        check_attribution(attr, cfg.purposes)
        pipeline = self.pipeline
        model = str(pipeline.model)
        cal = self.calibration()
        if cfg.threshold is None and cal is None:
            self.threshold()  # raises config.threshold with what to do
        started = time.time()
        try:
            pa = self.faces.process(a)
            pb = self.faces.process(b)
        except FieldidError as err:
            self._refuse("verify", attr, err, uow, started=started, model=model)
            raise
        score = float(pa.template.vector @ pb.template.vector)
        # A pair is as good as its worse image (as in the calibration).
        band = band_of(min(pa.quality.unified, pb.quality.unified))
        if cfg.threshold is not None:
            threshold, set_by = cfg.threshold, "configured"
        else:
            assert cal is not None
            threshold = cal.threshold_for_fmr(cfg.verify_target_fmr, band)
            set_by = "verify_target_fmr"
        meaning = None if cal is None else score_meaning(cal, score, 1, band)
        reason = None if cal is not None else uncalibrated_reason(model, str(self.root))
        with self.store.using(uow) as u:
            entry = u.audit(
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
                    "threshold_set_by": set_by,
                    "verify_target_fmr": None if set_by == "configured" else cfg.verify_target_fmr,
                    "fmr": None if meaning is None else float(f"{meaning.fmr:.4g}"),
                    "calibration": None if cal is None else cal.id,
                    "rates_unavailable": reason,
                    "a": _probe_summary(pa),
                    "b": _probe_summary(pb),
                },
            )
        return Verification(
            entry.seq,
            model,
            score,
            threshold,
            pa.quality.to_dict(),
            pb.quality.to_dict(),
            threshold_set_by=set_by,
            calibration=None if cal is None else cal.id,
            meaning=meaning,
            rates_unavailable=reason,
        )
