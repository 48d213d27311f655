"""Re-templating: move a gallery to another face model while searches go on with the old one.

``fieldid gallery retemplate --model NAME`` computes every template again, for the new model,
from the enrolled images the gallery keeps (``enrollment_pixels``, ``gallery/pixels.py``), and
then switches the gallery to the new templates in one transaction. A gallery never mixes
models: until the switch every search, count and index uses the old model's templates only;
after it, the new model's only.

The contract, in order:

1. **Start or resume** (:meth:`Retemplater.start`). A job (``retemplate_jobs``) names the new
   model and the template *generation* its templates are written under (the next unused one).
   Starting again with the same model resumes the running job; a job for another model must be
   abandoned first (:meth:`Retemplater.abandon`). What cannot be carried over is refused here,
   before any work (see the table below). Start, resume, switch and abandonment are audited
   (event ``retemplate``).
2. **Compute** (:meth:`Retemplater.run`). Images without a template of the new generation are
   templated in worker processes (each builds the new model's pipeline once), ``batch_size`` at a
   time; each batch of templates (and the images that failed) is committed in one transaction.
   Templates of a pending generation are never searched or counted. A crash loses at most the
   batches not yet committed: running the command again picks up the images still without one.
   Meanwhile searches, enrollments, merges and deletions go on against the active generation:
   an image enrolled meanwhile is templated before the switch; one deleted takes its new
   template with it (``templates.image_id`` cascades; deletions remove every generation).
3. **Switch** (:meth:`Retemplater.switch`), one transaction with its audit entry: the gallery's
   revision row is locked (enrollments and merges wait, and one prepared on the old model before
   the switch is refused after it, ``gallery.model_switched``); every image must have a new
   template (else it is computed first and the switch tried again); the images that failed and
   the identities that cannot be carried are dropped if the operator said so, else the switch is
   refused; the old generation's templates are deleted; ``gallery_meta`` names the new model,
   its dimension, the active generation, its ``[pipeline]`` settings and a new revision.
4. **After the commit**, outside the database: the vector index of the new generation is built
   and saved beside the database (the one place: :meth:`Retemplater.build_index`), and the
   workspace's ``fieldid.toml`` is rewritten to name the new model (``fieldid.workspace``; a
   workspace opened after a crash between the commit and the rewrite completes the rewrite).

A crash at any point therefore leaves either the old gallery fully in force (before the switch
commits: the pending templates are inert, and the command resumes) or the new one (after it).

What cannot be re-templated, and what happens to it:

=====================================  =========================================================
identities or images                   what happens
=====================================  =========================================================
synthetic template-only identities     re-drawn for the new model from its bundled distractor
(distractors, ``fieldid synth``)       model, one template each, seeded per person (they were
                                       random draws; they are again). No distractor model for
                                       the new model: as the next row.
template-only identities that are not  refused at the start; with ``drop_template_only`` their
synthetic (a template and no image)    templates are deleted at the switch (the person and any
                                       records stay, with no face template)
images the new model's pipeline        the switch is refused and lists them; with
cannot template (no face found, too    ``drop_unusable`` the image (its row, kept pixels,
small; pixels not kept and the source  thumbnail and old template) is deleted at the switch
file gone or changed)
=====================================  =========================================================

Images enrolled before enrolled pixels were kept have none: they are read again from the path
recorded at enrollment, and used only if the file's SHA-256 is the one recorded then.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.gallery.distractors import bundled as bundled_distractors
from fieldid.gallery.retemplate_work import Item, Result, Worker, compute
from fieldid.gallery.retemplate_work import RetemplateError as RetemplateError
from fieldid.gallery.store import (
    EMBEDDER,
    GENERATION,
    REVISION,
    Gallery,
    active_generation,
    gallery_meta,
    insert_sealed_templates,
)
from fieldid.gallery.vectors import OutboxSync, _RemoteSync
from fieldid.pipeline import PipelineSpec, make_embedder
from fieldid.probe import IntakeLimits
from fieldid.store import Store
from fieldid.store.keys import ENROLLMENT_PIXELS, unseal
from fieldid.store.schema import (
    EnrollmentImage,
    EnrollmentPixels,
    GalleryMeta,
    IndexOutbox,
    Person,
    RetemplateFailure,
    RetemplateJob,
    TemplateRow,
)
from fieldid.template.types import ModelId

log = logging.getLogger(__name__)

RUNNING, SWITCHED, ABANDONED = "running", "switched", "abandoned"
#: Images written per transaction.
BATCH_SIZE = 64
#: Attempts of a switch that met a deadlock (PostgreSQL).
DEADLOCK_RETRIES = 3
#: Synthetic identities re-drawn per transaction.
SYNTH_CHUNK = 20_000


# -- what the gallery moves to ------------------------------------------------------------------


def embedder_settings(spec: PipelineSpec) -> dict[str, Any]:
    """The ``[pipeline]`` settings that select a model (what a job and ``gallery_meta`` record)."""
    return {
        "embedder": spec.embedder,
        "flip": bool(spec.flip),
        "onnx_path": spec.onnx_path,
        "onnx_options": dict(spec.onnx_options) if spec.embedder == "onnx" else {},
    }


@dataclass(frozen=True)
class Target:
    """The model a gallery moves to: the workspace's pipeline with another embedder."""

    spec: PipelineSpec
    model: ModelId
    dim: int

    @classmethod
    def of(
        cls,
        current: PipelineSpec,
        embedder: str,
        *,
        flip: bool = False,
        onnx_path: str | None = None,
    ) -> Target:
        """``current`` (detector and its settings stay) with ``embedder``; the model's identity
        and dimension are declared without running it."""
        spec = replace(
            current,
            embedder=embedder,
            flip=flip,
            onnx_path=onnx_path if embedder == "onnx" else None,
            onnx_options=dict(current.onnx_options) if embedder == "onnx" else {},
        )
        emb = make_embedder(spec)
        return cls(spec, emb.model, int(emb.dim))

    @property
    def settings(self) -> dict[str, Any]:
        return embedder_settings(self.spec)


# -- what a job has done ------------------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    job_id: int
    generation: int
    state: str
    from_model: str
    to_model: str
    #: Enrolled images, those with a template of the new model, those that failed.
    images: int
    images_done: int
    images_failed: int
    #: Synthetic template-only identities and those re-drawn so far.
    synthetic: int
    synthetic_done: int
    #: Template-only identities that are not synthetic (dropped at the switch, if allowed).
    template_only_other: int
    options: dict[str, Any]

    @property
    def remaining(self) -> int:
        return (
            self.images
            - self.images_done
            - self.images_failed
            + self.synthetic
            - self.synthetic_done
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "remaining": self.remaining}


@dataclass
class RunCounts:
    """What one :meth:`Retemplater.run` did."""

    templated: int = 0
    failed: int = 0
    synthetic: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Switched:
    job_id: int
    generation: int
    from_model: str
    to_model: str
    templates: int
    templates_deleted: int
    images_dropped: list[dict[str, Any]] = field(default_factory=list)
    template_only_dropped: list[int] = field(default_factory=list)
    revision: str = ""
    audit_seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- the re-templating ------------------------------------------------------------------------


def _missing_images(job: RetemplateJob) -> Any:
    """Images with neither a template of ``job``'s generation nor a recorded failure."""
    return ~exists().where(
        TemplateRow.image_id == EnrollmentImage.id, TemplateRow.generation == job.generation
    ) & ~exists().where(
        RetemplateFailure.image_id == EnrollmentImage.id, RetemplateFailure.job_id == job.id
    )


def _template_only_people(generation: int, *, synthetic: bool) -> Any:
    """Ids of people with a template-only template in ``generation`` (synthetic or not)."""
    return (
        select(TemplateRow.person_id)
        .join(Person, Person.id == TemplateRow.person_id)
        .where(
            TemplateRow.generation == generation,
            TemplateRow.image_id.is_(None),
            Person.synthetic.is_(synthetic),
        )
        .distinct()
    )


def _gone(job_id: int) -> RetemplateError:
    return RetemplateError(
        f"job {job_id} was abandoned or switched meanwhile", code="retemplate.no_job"
    )


def _count(s: Session, query: Any) -> int:
    return int(s.scalar(select(func.count()).select_from(query.subquery())) or 0)


class Retemplater:
    """Moves one gallery to ``target`` (see the module docstring). ``gallery`` is the gallery
    as opened now, on its current model."""

    def __init__(
        self,
        store: Store,
        gallery: Gallery,
        target: Target,
        *,
        limits: IntakeLimits,
        min_inter_eye_px: float,
        workers: int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.store = store
        self.gallery = gallery
        self.target = target
        self.limits = limits
        self.min_inter_eye_px = min_inter_eye_px
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.batch_size = max(1, batch_size)

    def status(self, job_id: int | None = None) -> JobStatus | None:
        """The job (default: the running one) and how far it has come."""
        return job_status(self.store, job_id)

    # -- 1. start or resume -------------------------------------------------------------------

    def start(
        self,
        actor: Actor,
        *,
        drop_template_only: bool = False,
        drop_unusable: bool = False,
        seed: int = 0,
        from_settings: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> JobStatus:
        """Start a job for the target, or resume the running one (the flags given now apply to
        it). ``from_settings``: the ``[pipeline]`` settings of the current model (recorded, so
        a workspace's configuration can be completed after a crash). ``extra``: recorded in the
        job's options and the audit entry (e.g. a threshold for the new model)."""
        require(actor, "retemplate")
        operator = actor.name
        target = str(self.target.model)
        if self.target.model == self.gallery.model:
            raise RetemplateError(
                f"the gallery already holds {target} templates: nothing to re-template",
                code="retemplate.same_model",
            )
        redraw = bundled_distractors(target) is not None
        with self.store.unit_of_work() as uow:
            s = uow.session
            meta = gallery_meta(s)
            active = active_generation(meta)
            if active != self.gallery.generation:
                raise RetemplateError(
                    "the gallery was switched to another model since this workspace was opened: "
                    "open it again",
                    code="retemplate.changed",
                )
            job = running_job(s)
            if job is not None and (job.to_model != target or job.embedder != self.target.settings):
                raise RetemplateError(
                    f"a re-templating to {job.to_model} (job {job.id}) is under way: finish it "
                    f"with `fieldid gallery retemplate --model {job.embedder['embedder']}`, or "
                    "abandon it with `fieldid gallery retemplate --abandon`",
                    code="retemplate.other_job",
                    job_id=job.id,
                    to_model=job.to_model,
                )
            options = {
                "drop_template_only": drop_template_only,
                "drop_unusable": drop_unusable,
                "seed": seed,
                "redraw": redraw,
                "from_generation": active,
                "from_embedder": from_settings,
                **(extra or {}),
            }
            resumed = job is not None
            if job is None:
                other = _count(s, _template_only_people(active, synthetic=False))
                synthetic = _count(s, _template_only_people(active, synthetic=True))
                cannot = other + (0 if redraw else synthetic)
                if cannot and not drop_template_only:
                    why = (
                        f"{other} identities have a template but no image"
                        if other
                        else f"{synthetic} synthetic identities have a template but no image and "
                        f"there is no distractor model for {target} to draw new ones from"
                    )
                    raise RetemplateError(
                        f"{why}: they cannot be re-templated. Run again with "
                        "--drop-template-only to delete their templates at the switch (the "
                        "people and their records stay, with no face template)",
                        code="retemplate.template_only",
                        template_only=cannot,
                    )
                used = max(
                    active,
                    s.scalar(select(func.max(TemplateRow.generation))) or 0,
                    s.scalar(select(func.max(RetemplateJob.generation))) or 0,
                )
                job = RetemplateJob(
                    generation=used + 1,
                    state=RUNNING,
                    from_model=str(self.gallery.model),
                    to_model=target,
                    dim=self.target.dim,
                    embedder=self.target.settings,
                    options=options,
                    operator=operator,
                    started_at=uow.now(),
                )
                s.add(job)
                s.flush()
            else:  # the flags given now apply; the seed stays the one the draws began with
                job.options = {**job.options, **options, "seed": job.options.get("seed", seed)}
            status = _status(s, job)
            uow.audit(
                "retemplate",
                operator=operator,
                payload={
                    "stage": "resumed" if resumed else "started",
                    "job_id": job.id,
                    "generation": job.generation,
                    "from_model": job.from_model,
                    "to_model": job.to_model,
                    "images": status.images,
                    "images_done": status.images_done,
                    "synthetic": status.synthetic,
                    "template_only_other": status.template_only_other,
                    "drop_template_only": drop_template_only,
                    "drop_unusable": drop_unusable,
                    "workers": self.workers,
                    **(extra or {}),
                },
            )
        return status

    # -- 2. compute ---------------------------------------------------------------------------

    def run(self, job_id: int, progress: Callable[[int, int], None] | None = None) -> RunCounts:
        """Template what the job still lacks (synthetic identities, then images), committing a
        batch at a time. ``progress(done, total)`` after each batch (total: what this run
        has to do)."""
        t0 = time.perf_counter()
        counts = RunCounts()
        with self.store.read() as s:
            job = s.get(RetemplateJob, job_id)
            if job is None or job.state != RUNNING:
                raise RetemplateError(f"job {job_id} is not running", code="retemplate.no_job")
            todo = list(
                s.scalars(
                    select(EnrollmentImage.id)
                    .where(_missing_images(job))
                    .order_by(EnrollmentImage.id)
                )
            )
            synth = self._synthetic_todo(s, job)
        total = len(todo) + len(synth)
        done = 0
        if synth:
            counts.synthetic = self._redraw(job, synth)
            done += len(synth)
            if progress:
                progress(done, total)
        for results in self._compute(todo):
            self._write(job, results)
            counts.templated += sum(r.vector is not None for r in results)
            counts.failed += sum(r.vector is None for r in results)
            done += len(results)
            if progress:
                progress(done, total)
        counts.seconds = time.perf_counter() - t0
        return counts

    def _synthetic_todo(self, s: Session, job: RetemplateJob) -> list[int]:
        if not job.options.get("redraw", True):
            return []
        active = int(job.options.get("from_generation", 1))
        have = set(s.scalars(_template_only_people(job.generation, synthetic=True)))
        return [
            p
            for p in s.scalars(
                _template_only_people(active, synthetic=True).order_by(TemplateRow.person_id)
            )
            if p not in have
        ]

    def _redraw(self, job: RetemplateJob, people: list[int]) -> int:
        model = bundled_distractors(job.to_model)
        assert model is not None
        seed = int(job.options.get("seed", 0))
        for start in range(0, len(people), SYNTH_CHUNK):
            part = people[start : start + SYNTH_CHUNK]
            vecs = np.ascontiguousarray(model.sample_for(part, seed), dtype="<f4")
            with self.store.unit_of_work() as uow:
                if not self._still_running(uow.session, job.id):
                    raise RetemplateError(
                        f"job {job.id} was abandoned or switched meanwhile",
                        code="retemplate.no_job",
                    )
                now = uow.now()
                insert_sealed_templates(
                    uow.session,
                    [
                        {
                            "person_id": pid,
                            "image_id": None,
                            "model_id": self.target.model.id,
                            "model_version": self.target.model.version,
                            "vector": vecs[i].tobytes(),
                            "created_at": now,
                            "generation": job.generation,
                        }
                        for i, pid in enumerate(part)
                    ],
                )
        return len(people)

    def _items(self, ids: Sequence[int]) -> list[Item]:
        with self.store.read() as s:
            rows = s.execute(
                select(
                    EnrollmentImage.id,
                    EnrollmentPixels.format,
                    EnrollmentPixels.data,
                    EnrollmentImage.source,
                    EnrollmentImage.sha256,
                )
                .outerjoin(EnrollmentPixels, EnrollmentPixels.image_id == EnrollmentImage.id)
                .where(EnrollmentImage.id.in_(list(ids)))
                .order_by(EnrollmentImage.id)
            ).all()
            # the kept pixels are sealed (store/keys.py): opened here, for the workers
            return [
                Item(i, f, None if d is None else unseal(s, ENROLLMENT_PIXELS, i, d), src, sha)
                for i, f, d, src, sha in rows
            ]

    def _compute(self, todo: list[int]) -> Iterator[list[Result]]:
        """Results in batches of ``batch_size``, computed in ``workers`` processes (in this one
        when ``workers`` is 1)."""
        return compute(
            todo,
            self._items,
            Worker(self.target.spec, self.limits, self.min_inter_eye_px),
            workers=self.workers,
            batch_size=self.batch_size,
        )

    def _still_running(self, s: Session, job_id: int) -> bool:
        state = s.scalar(select(RetemplateJob.state).where(RetemplateJob.id == job_id))
        return state == RUNNING

    def _write(self, job: RetemplateJob, results: list[Result]) -> None:
        """One batch of new templates and failures, in one transaction. An image deleted
        meanwhile is skipped; its owner is read now (a merge may have moved it)."""
        with self.store.unit_of_work() as uow:
            s = uow.session
            if not self._still_running(s, job.id):
                raise _gone(job.id)
            owner = dict(
                s.execute(
                    select(EnrollmentImage.id, EnrollmentImage.person_id).where(
                        EnrollmentImage.id.in_([r.image_id for r in results])
                    )
                ).all()
            )
            # A batch written twice (two commands at once) must not give an image two templates.
            have = set(
                s.scalars(
                    select(TemplateRow.image_id).where(
                        TemplateRow.generation == job.generation,
                        TemplateRow.image_id.in_(list(owner)),
                    )
                )
            )
            now = uow.now()
            rows = [
                {
                    "person_id": owner[r.image_id],
                    "image_id": r.image_id,
                    "model_id": self.target.model.id,
                    "model_version": self.target.model.version,
                    "vector": r.vector,
                    "created_at": now,
                    "generation": job.generation,
                }
                for r in results
                if r.vector is not None and r.image_id in owner and r.image_id not in have
            ]
            insert_sealed_templates(s, rows)
            failed = [
                {"job_id": job.id, "image_id": r.image_id, "code": r.code, "message": r.message}
                for r in results
                if r.vector is None and r.image_id in owner
            ]
            if failed:
                known = set(
                    s.scalars(
                        select(RetemplateFailure.image_id).where(
                            RetemplateFailure.job_id == job.id,
                            RetemplateFailure.image_id.in_([f["image_id"] for f in failed]),
                        )
                    )
                )
                failed = [f for f in failed if f["image_id"] not in known]
                if failed:
                    s.execute(insert(RetemplateFailure), failed)

    # -- 3. switch ----------------------------------------------------------------------------

    def switch(self, job_id: int, actor: Actor, *, extra: dict[str, Any] | None = None) -> Switched:
        """Make the job's generation the gallery's, in one transaction with its audit entry;
        then build the new generation's index (see the module docstring). Raises
        ``retemplate.incomplete`` when something was enrolled since :meth:`run` (run again),
        ``retemplate.unusable`` / ``retemplate.template_only`` when the operator did not allow
        what must be dropped.

        On PostgreSQL a merge committing at that very moment can deadlock with the switch (the
        merge locks templates, then the revision row; the switch the other way round): the
        database aborts one of them, and an aborted switch is tried again here."""
        require(actor, "retemplate")
        for attempt in range(DEADLOCK_RETRIES):
            try:
                result = self._switch(job_id, actor.name, extra)
                break
            except DBAPIError as e:
                if getattr(e.orig, "sqlstate", None) != "40P01" or attempt == DEADLOCK_RETRIES - 1:
                    raise
                log.warning("the switch met a deadlock and is tried again")
        self.build_index()
        return result

    def _switch(self, job_id: int, operator: str, extra: dict[str, Any] | None) -> Switched:
        with self.store.unit_of_work() as uow:
            s = uow.session
            s.execute(
                select(GalleryMeta).where(GalleryMeta.key == REVISION).with_for_update()
            ).all()
            meta = gallery_meta(s)
            job = s.scalars(
                select(RetemplateJob)
                .where(RetemplateJob.id == job_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one_or_none()
            if job is None or job.state != RUNNING:
                raise RetemplateError(f"job {job_id} is not running", code="retemplate.no_job")
            active = active_generation(meta)
            if active != int(job.options.get("from_generation", 1)):
                raise RetemplateError(
                    "the gallery was switched to another generation since this job began",
                    code="retemplate.changed",
                )
            missing = int(
                s.scalar(select(func.count(EnrollmentImage.id)).where(_missing_images(job))) or 0
            )
            missing_synth = len(self._synthetic_todo(s, job))
            if missing or missing_synth:
                raise RetemplateError(
                    f"{missing + missing_synth} images or identities still lack a template of "
                    f"{job.to_model} (enrolled meanwhile): run again",
                    code="retemplate.incomplete",
                    missing=missing + missing_synth,
                )
            failures = s.execute(
                select(
                    RetemplateFailure.image_id,
                    RetemplateFailure.code,
                    RetemplateFailure.message,
                    EnrollmentImage.person_id,
                    EnrollmentImage.source,
                    Person.external_id,
                )
                .join(EnrollmentImage, EnrollmentImage.id == RetemplateFailure.image_id)
                .join(Person, Person.id == EnrollmentImage.person_id)
                .where(RetemplateFailure.job_id == job.id)
                .order_by(RetemplateFailure.image_id)
            ).all()
            dropped_images = [
                {
                    "image_id": f.image_id,
                    "person_id": f.person_id,
                    "external_id": f.external_id,
                    "source": f.source,
                    "code": f.code,
                    "message": f.message,
                }
                for f in failures
            ]
            if dropped_images and not job.options.get("drop_unusable"):
                raise RetemplateError(
                    f"{len(dropped_images)} enrolled images cannot be templated with "
                    f"{job.to_model}; run again with --drop-unusable to delete them at the "
                    "switch (listed in its audit entry), or remove them first",
                    code="retemplate.unusable",
                    images=dropped_images[:20],
                    count=len(dropped_images),
                )
            carried = _template_only_people(job.generation, synthetic=True)
            cannot = list(
                s.scalars(
                    select(TemplateRow.person_id)
                    .where(
                        TemplateRow.generation == active,
                        TemplateRow.image_id.is_(None),
                        TemplateRow.person_id.not_in(carried),
                    )
                    .distinct()
                    .order_by(TemplateRow.person_id)
                )
            )
            if cannot and not job.options.get("drop_template_only"):
                raise RetemplateError(
                    f"{len(cannot)} identities have a template but no image: run again with "
                    "--drop-template-only to delete their templates at the switch",
                    code="retemplate.template_only",
                    template_only=len(cannot),
                )
            revision = uuid.uuid4().hex
            if isinstance(self.gallery.sync, OutboxSync):
                # An engine fed through the outbox (Milvus) learns the switch in this
                # transaction: every old template leaves it and every new one enters it when the
                # outbox is drained, whichever process drains it (a crash after this commit
                # loses nothing). faiss-local and pgvector in the workspace's database rebuild
                # instead: the index's revision mark differs from the one moved here.
                changed = s.scalars(select(TemplateRow.id).order_by(TemplateRow.id)).all()
                for start in range(0, len(changed), 20_000):
                    s.execute(
                        insert(IndexOutbox),
                        [
                            {"template_id": int(t), "revision": revision}
                            for t in changed[start : start + 20_000]
                        ],
                    )
            if dropped_images:
                ids = [d["image_id"] for d in dropped_images]
                s.execute(delete(TemplateRow).where(TemplateRow.image_id.in_(ids)))
                s.execute(delete(EnrollmentPixels).where(EnrollmentPixels.image_id.in_(ids)))
                s.execute(delete(EnrollmentImage).where(EnrollmentImage.id.in_(ids)))
            # A merge during the run may have moved an image to another person after its new
            # template was written: every new template follows its image's owner.
            owner = (
                select(EnrollmentImage.person_id)
                .where(EnrollmentImage.id == TemplateRow.image_id)
                .scalar_subquery()
            )
            s.execute(
                update(TemplateRow)
                .where(
                    TemplateRow.generation == job.generation,
                    TemplateRow.image_id.is_not(None),
                    TemplateRow.person_id != owner,
                )
                .values(person_id=owner)
                .execution_options(synchronize_session=False)
            )
            old = s.scalar(
                select(func.count(TemplateRow.id)).where(TemplateRow.generation != job.generation)
            )
            s.execute(delete(TemplateRow).where(TemplateRow.generation != job.generation))
            kept = s.scalar(
                select(func.count(TemplateRow.id)).where(TemplateRow.generation == job.generation)
            )
            model = self.target.model
            facts = {
                "model_id": model.id,
                "model_version": model.version,
                "dim": str(job.dim),
                GENERATION: str(job.generation),
                EMBEDDER: json.dumps(job.embedder, sort_keys=True),
                REVISION: revision,
            }
            for key, value in facts.items():
                row = s.get(GalleryMeta, key)
                if row is None:
                    s.add(GalleryMeta(key=key, value=value))
                else:
                    row.value = value
            summary = {
                "templates": int(kept or 0),
                "templates_deleted": int(old or 0),
                "images_dropped": len(dropped_images),
                "template_only_dropped": len(cannot),
                "synthetic_redrawn": _count(
                    s, _template_only_people(job.generation, synthetic=True)
                ),
                **(extra or {}),
            }
            job.state = SWITCHED
            job.ended_at = uow.now()
            entry = uow.audit(
                "retemplate",
                operator=operator,
                payload={
                    "stage": "switched",
                    "job_id": job.id,
                    "generation": job.generation,
                    "from_model": job.from_model,
                    "to_model": job.to_model,
                    "dim": job.dim,
                    "revision": revision,
                    **summary,
                    "dropped_images": dropped_images,
                    "dropped_template_only_people": cannot,
                    "seed": job.options.get("seed", 0),
                },
            )
            job.summary = {**summary, "audit_seq": entry.seq}
            result = Switched(
                job.id,
                job.generation,
                job.from_model,
                job.to_model,
                int(kept or 0),
                int(old or 0),
                dropped_images,
                cannot,
                revision,
                entry.seq,
            )
        return result

    def build_index(self) -> None:
        """Build and save the vector index of the gallery as it is now (after a switch): the one
        place a re-templating touches the index. A failure is logged; the next use of the
        gallery rebuilds it."""
        try:
            old = self.gallery.sync
            if isinstance(old, _RemoteSync) and self.target.dim != self.gallery.dim:
                # The old model's vectors leave the engine now (a pgvector table or Milvus
                # collection of the old dimension): the new model's go into another one.
                old.index.clear(gallery=self.gallery.name)
            new = self.gallery.reopened(self.target.model, self.target.dim)
            try:
                new.rebuild_index()
            finally:
                new.close()
        except Exception:  # the database is right; the index is a cache that is rebuilt
            log.exception("the new model's vector index was not built; it is built at next use")


def running_job(s: Session) -> RetemplateJob | None:
    return s.scalars(
        select(RetemplateJob).where(RetemplateJob.state == RUNNING).order_by(RetemplateJob.id)
    ).first()


def job_status(store: Store, job_id: int | None = None) -> JobStatus | None:
    """The job (default: the running one) and how far it has come."""
    with store.read() as s:
        job = running_job(s) if job_id is None else s.get(RetemplateJob, job_id)
        return None if job is None else _status(s, job)


def _status(s: Session, job: RetemplateJob) -> JobStatus:
    active = int(job.options.get("from_generation", 1))
    images = s.scalar(select(func.count(EnrollmentImage.id))) or 0
    done = (
        s.scalar(
            select(func.count(TemplateRow.id)).where(
                TemplateRow.generation == job.generation, TemplateRow.image_id.is_not(None)
            )
        )
        or 0
    )
    failed = (
        s.scalar(select(func.count(RetemplateFailure.id)).where(RetemplateFailure.job_id == job.id))
        or 0
    )
    synthetic = _count(s, _template_only_people(active, synthetic=True))
    synthetic_done = _count(s, _template_only_people(job.generation, synthetic=True))
    other = _count(s, _template_only_people(active, synthetic=False))
    if not job.options.get("redraw", True):
        other += synthetic
        synthetic = synthetic_done = 0
    return JobStatus(
        job.id,
        job.generation,
        job.state,
        job.from_model,
        job.to_model,
        images,
        done,
        failed,
        synthetic,
        synthetic_done,
        other,
        dict(job.options),
    )


def view_status(store: Store, actor: Actor) -> JobStatus | None:
    """The running re-templating (None: none), as an admin asks for it: audited
    (``retemplate_status``), like every other view of the gallery's state."""
    require(actor, "retemplate")
    with store.unit_of_work() as uow:
        job = running_job(uow.session)
        status = None if job is None else _status(uow.session, job)
        uow.audit(
            "retemplate_status",
            operator=actor.name,
            payload={"job_id": None if status is None else status.job_id},
        )
    return status


def abandon(store: Store, actor: Actor) -> JobStatus | None:
    """Abandon the running re-templating: its templates and failures are deleted, the gallery
    is untouched. Audited. Returns the job as it was, or None when none was running."""
    require(actor, "retemplate")
    with store.unit_of_work() as uow:
        s = uow.session
        job = running_job(s)
        if job is None:
            return None
        status = _status(s, job)
        s.execute(delete(TemplateRow).where(TemplateRow.generation == job.generation))
        s.execute(delete(RetemplateFailure).where(RetemplateFailure.job_id == job.id))
        job.state = ABANDONED
        job.ended_at = uow.now()
        job.summary = {"images_done": status.images_done}
        uow.audit(
            "retemplate",
            operator=actor.name,
            payload={
                "stage": "abandoned",
                "job_id": job.id,
                "generation": job.generation,
                "from_model": job.from_model,
                "to_model": job.to_model,
                "images_done": status.images_done,
            },
        )
    return status
