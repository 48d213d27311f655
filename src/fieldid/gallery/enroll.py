"""Enrollment: take a labelled image set into the gallery, idempotently, reporting every refusal.

:class:`Enrollment` processes images (face pipeline, thumbnail) before it writes anything, then
writes a batch of them (at most ``batch_size`` images) in one unit of work with one ``enroll``
audit entry listing who was enrolled: killed at any moment, an enrollment leaves whole batches,
each with its audit entry, and nothing of the batch it was in. Each new template is checked
against *other* people (the index, and the batch's own earlier images): a score at or above the
strict ``[enrollment] duplicate_threshold`` opens a possible-duplicate review item in the same
unit of work (the image is still enrolled as asked; nothing is merged).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fieldid.config import WorkspaceConfig
from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError
from fieldid.facework import FaceWork
from fieldid.gallery.store import Gallery
from fieldid.pipeline import EnrollFace, FacePipeline
from fieldid.probe import decode_probe
from fieldid.store import Store, UnitOfWork
from fieldid.store.schema import ReviewItem

POSSIBLE_DUPLICATE = "possible_duplicate"
#: Images written per unit of work (each with one audit entry).
BATCH_SIZE = 32


@dataclass(frozen=True)
class Refusal:
    path: str
    identity: str
    code: str
    message: str


@dataclass(frozen=True)
class EnrollOutcome:
    """What happened to one image: ``enrolled``, ``already_enrolled`` or ``refused``."""

    outcome: str
    person_id: int | None = None
    image_id: int | None = None
    new_person: bool = False
    refusal: Refusal | None = None
    review_item: int | None = None


@dataclass
class EnrollmentSummary:
    enrolled: int = 0
    already_enrolled: int = 0
    new_people: int = 0
    refused: list[Refusal] = field(default_factory=list)
    #: Review items opened for possible duplicates (ids).
    possible_duplicates: list[int] = field(default_factory=list)
    #: Why dedupe did not run, if it did not (no threshold known for the model).
    dedupe_off: str | None = None

    @property
    def refusal_counts(self) -> dict[str, int]:
        return dict(Counter(r.code for r in self.refused))

    def add(self, out: EnrollOutcome) -> None:
        if out.outcome == "enrolled":
            self.enrolled += 1
            self.new_people += int(out.new_person)
        elif out.outcome == "already_enrolled":
            self.already_enrolled += 1
        elif out.refusal is not None:
            self.refused.append(out.refusal)
        if out.review_item is not None:
            self.possible_duplicates.append(out.review_item)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "already_enrolled": self.already_enrolled,
            "new_people": self.new_people,
            "refused": len(self.refused),
            "refusal_counts": self.refusal_counts,
            "refusals": [r.__dict__ for r in self.refused],
            "possible_duplicates": list(self.possible_duplicates),
            "dedupe_off": self.dedupe_off,
        }


@dataclass(frozen=True)
class EnrollRequest:
    """One image to enrol under an identity, with where it came from."""

    path: Path
    identity: str
    display_name: str | None = None
    synthetic: bool = False
    record_id: int | None = None
    capture_date: date | None = None
    provenance: str | None = None


@dataclass
class _Ready:
    """An image processed and checked, waiting to be written."""

    req: EnrollRequest
    sha: str
    face: EnrollFace
    duplicate: tuple[int | None, str | None, float] | None = None


class Enrollment:
    """Enrolls images into one gallery. Built once by ``Workspace`` with what it uses."""

    def __init__(
        self,
        store: Store,
        gallery: Gallery,
        pipeline: FacePipeline,
        config: WorkspaceConfig,
        *,
        batch_size: int = BATCH_SIZE,
        faces: FaceWork | None = None,
    ) -> None:
        """``faces``: where the face work runs (the server's worker pool, as for searches);
        None: in the calling thread, on ``pipeline``."""
        self.faces = faces
        self.store = store
        self.gallery = gallery
        self.pipeline = pipeline
        self.config = config
        self.batch_size = batch_size

    @property
    def duplicate_threshold(self) -> float | None:
        return self.config.duplicate_threshold_for(self.pipeline.model.id)

    def dedupe_off_reason(self) -> str | None:
        model = self.pipeline.model.id
        if self.duplicate_threshold is None:
            return (
                f"no [enrollment] duplicate_threshold for model {model}: possible duplicates "
                "are not checked until one is set"
            )
        return None

    # -- processing (no database writes) ---------------------------------------------------------

    def _prepare(self, req: EnrollRequest) -> _Ready | EnrollOutcome:
        path, identity = req.path, req.identity
        try:
            data = path.read_bytes()
        except OSError as e:
            return EnrollOutcome(
                "refused", refusal=Refusal(str(path), identity, "probe.not_found", str(e))
            )
        sha = hashlib.sha256(data).hexdigest()
        if self.gallery.has_image(identity, sha):
            return EnrollOutcome("already_enrolled", person_id=self.gallery.find_person(identity))
        min_ied = self.config.enroll_min_inter_eye_px
        try:
            if self.faces is not None:
                face = self.faces.enroll_face(data)
            else:
                probe = decode_probe(data, self.config.limits)
                face = self.pipeline.process_image(probe).enrollment()
            ied = face.acquisition.face.inter_eye_distance
            if ied < min_ied:
                return EnrollOutcome(
                    "refused",
                    refusal=Refusal(
                        str(path),
                        identity,
                        "quality.too_far",
                        f"face too small to enrol: eyes {ied:.0f} px apart, {min_ied:.0f} needed",
                    ),
                )
            face.template.require_model(self.gallery.model)
        except FieldidError as err:
            return EnrollOutcome(
                "refused", refusal=Refusal(str(path), identity, err.code, err.message)
            )
        return _Ready(req, sha, face)

    def _check_duplicate(self, ready: _Ready, batch: list[_Ready], threshold: float) -> None:
        """The best match among *other* people at or above ``threshold``: the gallery's index,
        and the images of this batch not yet written."""
        identity = ready.req.identity
        existing = self.gallery.find_person(identity)
        vec = ready.face.template.vector
        best: tuple[int | None, str | None, float] | None = None
        for hit in self.gallery.search(ready.face.template, 3):
            if hit.person_id != existing and hit.score >= threshold:
                best = (hit.person_id, hit.external_id, hit.score)
                break
        for other in batch:
            if other.req.identity == identity:
                continue
            score = float(other.face.template.vector @ vec)
            if score >= threshold and (best is None or score > best[2]):
                best = (None, other.req.identity, score)
        ready.duplicate = best

    # -- writing -----------------------------------------------------------------------------------

    def _write(
        self, uow: UnitOfWork, ready: _Ready, operator: str, threshold: float | None
    ) -> EnrollOutcome:
        req = ready.req
        out = self.gallery.enroll(
            uow,
            external_id=req.identity,
            display_name=req.display_name,
            template=ready.face.template,
            source=str(req.path),
            sha256=ready.sha,
            width=ready.face.width,
            height=ready.face.height,
            quality_unified=ready.face.quality.unified,
            synthetic=req.synthetic,
            record_id=req.record_id,
            capture_date=req.capture_date,
            provenance=req.provenance,
            thumbnail=ready.face.thumbnail,
            pixels=ready.face.pixels,
        )
        if out is None:
            return EnrollOutcome(
                "already_enrolled", person_id=self.gallery.find_person(req.identity, uow.session)
            )
        item = None
        if ready.duplicate is not None and threshold is not None:
            other_id, other_ext, score = ready.duplicate
            if other_id is None and other_ext is not None:
                other_id = self.gallery.find_person(other_ext, uow.session)
            if other_id is not None and other_id != out.person_id:
                item = open_duplicate_item(
                    uow,
                    person_id=out.person_id,
                    other_person_id=other_id,
                    image_id=out.image_id or 0,
                    score=score,
                    threshold=threshold,
                    model=str(self.pipeline.model),
                    operator=operator,
                )
        return EnrollOutcome(
            "enrolled",
            person_id=out.person_id,
            image_id=out.image_id,
            new_person=out.new_person,
            review_item=item,
        )

    def enroll(
        self,
        requests: list[EnrollRequest],
        *,
        operator: str,
        source_name: str,
        progress: Callable[[int], None] | None = None,
        audit_extra: dict[str, Any] | None = None,
    ) -> tuple[EnrollmentSummary, list[EnrollOutcome]]:
        """Enrol each request (see the module docstring); returns the summary and one outcome
        per request, in order."""
        summary = EnrollmentSummary(dedupe_off=self.dedupe_off_reason())
        outcomes: list[EnrollOutcome | None] = [None] * len(requests)
        threshold = self.duplicate_threshold
        self.gallery.index()  # loaded (or caught up) once, then kept current after each commit
        try:
            for start in range(0, len(requests), self.batch_size):
                part = list(enumerate(requests))[start : start + self.batch_size]
                ready: list[tuple[int, _Ready]] = []
                for i, req in part:
                    prepared = self._prepare(req)
                    if isinstance(prepared, EnrollOutcome):
                        outcomes[i] = prepared
                        continue
                    if threshold is not None:
                        self._check_duplicate(prepared, [r for _, r in ready], threshold)
                    ready.append((i, prepared))
                batch = EnrollmentSummary(dedupe_off=summary.dedupe_off)
                with self.store.unit_of_work() as uow:
                    written: list[dict[str, Any]] = []
                    for i, r in ready:
                        out = self._write(uow, r, operator, threshold)
                        outcomes[i] = out
                        if out.outcome == "enrolled":
                            written.append(
                                {
                                    "person_id": out.person_id,
                                    "external_id": r.req.identity,
                                    "image_id": out.image_id,
                                    "new_person": out.new_person,
                                }
                            )
                    for i, _ in part:
                        o = outcomes[i]
                        assert o is not None
                        batch.add(o)
                    if written or batch.refused:
                        uow.audit(
                            "enroll",
                            operator=operator,
                            payload={
                                "source": source_name,
                                "model": str(self.pipeline.model),
                                "enrolled": batch.enrolled,
                                "already_enrolled": batch.already_enrolled,
                                "new_people": batch.new_people,
                                "refused": batch.refusal_counts,
                                "synthetic": any(r.req.synthetic for _, r in ready),
                                "possible_duplicates": batch.possible_duplicates,
                                "dedupe_off": batch.dedupe_off,
                                "people": written,
                                **(audit_extra or {}),
                            },
                        )
                for i, _ in part:
                    o = outcomes[i]
                    assert o is not None
                    summary.add(o)
                if progress:
                    progress(len(part))
        finally:
            self.gallery.flush()
        return summary, [o for o in outcomes if o is not None]

    def enroll_images(
        self,
        items: list[LabelledImage],
        *,
        operator: str,
        source_name: str,
        synthetic: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> EnrollmentSummary:
        """Enrol each image under its identity. An image already enrolled for that identity
        (same bytes) is skipped without being processed again; a failure is reported, never
        dropped."""
        requests = [
            EnrollRequest(
                item.path,
                item.identity,
                item.display_name,
                synthetic,
                provenance=f"enrolled from {source_name}",
            )
            for item in items
        ]
        summary, _ = self.enroll(
            requests, operator=operator, source_name=source_name, progress=progress
        )
        return summary

    def enroll_one(self, req: EnrollRequest, *, operator: str, source_name: str) -> EnrollOutcome:
        """Enrol one image in its own unit of work (with its audit entry)."""
        _, outcomes = self.enroll([req], operator=operator, source_name=source_name)
        return outcomes[0]


def open_duplicate_item(
    uow: UnitOfWork,
    *,
    person_id: int,
    other_person_id: int,
    image_id: int,
    score: float,
    threshold: float,
    model: str,
    operator: str,
) -> int:
    """Open a possible-duplicate review item in ``uow`` (the enrollment's) and audit it (event
    ``enroll``, outcome ``possible_duplicate_opened``). Deciding it is ``records.review``'s."""
    item = ReviewItem(
        kind=POSSIBLE_DUPLICATE,
        state="open",
        person_id=person_id,
        other_person_id=other_person_id,
        image_id=image_id,
        score=score,
        detail={"threshold": threshold, "model": model},
        created_at=uow.now(),
    )
    uow.session.add(item)
    uow.session.flush()
    uow.audit(
        "enroll",
        operator=operator,
        payload={
            "outcome": "possible_duplicate_opened",
            "review_item": item.id,
            "person_id": person_id,
            "other_person_id": other_person_id,
            "image_id": image_id,
            "score": round(score, 6),
            "threshold": threshold,
        },
    )
    return item.id
