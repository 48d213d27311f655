"""The gallery: people, their enrolled images and templates (SQL), and the vector index beside it.

The database is the source of truth. Every change to templates moves the gallery revision
(``gallery_meta.revision``) inside the caller's unit of work, and the vector index (the port,
:mod:`fieldid.index.port`, on the backend ``[index]`` configures) follows it as that engine allows
(:mod:`fieldid.gallery.vectors`: faiss-local after the commit, pgvector in the same transaction,
Milvus through an outbox table): an index that is missing, half-written or behind the database
is detected and caught up or rebuilt on its next use. Searches re-rank the engine's short list
exactly from the stored templates, so scores are the same on every backend.

Templates and face crops are stored sealed (``fieldid.store.keys``): they are opened when the
index is built, caught up or drained, and when a search re-ranks its short list (a few dozen
vectors). faiss-local's files on disk are sealed with the same keyring; pgvector and Milvus keep
the vectors in the clear on their own servers (docs/security.md).

Changes take the caller's :class:`~fieldid.store.UnitOfWork` (``enroll``, ``add_template_only``,
``delete_person``, ``delete_image``, ``owners_changed``), so a change and its audit entry commit
together; reads (``search``, ``size``, ``find_person``) use their own read.

Templates belong to a generation (``templates.generation``) and this object searches, counts and
writes only the gallery's active one, the one it was opened on. When a re-templating switches
the gallery to another model (``gallery/retemplate.py``), an object opened before refuses to
search or write (``gallery.model_switched``) rather than compare templates of two models; the
workspace builds a new one (``Workspace.follow_model``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fieldid.errors import ModelMismatch
from fieldid.gallery.vectors import IndexSync, open_sync
from fieldid.index.config import IndexConfig
from fieldid.index.maintenance import CheckReport, Progress
from fieldid.index.port import OPERATIONAL, VectorIndex
from fieldid.index.port import Gallery as GalleryName
from fieldid.index.rerank import rerank
from fieldid.keys.envelope import OVERHEAD, Keyring
from fieldid.keys.errors import KeysError
from fieldid.store import READ_MEMO, Store, UnitOfWork
from fieldid.store.keys import (
    ENROLLMENT_PIXELS,
    TEMPLATE_VECTOR,
    THUMBNAIL,
    StoreKeys,
    keys_of,
    seal,
    unseal,
)
from fieldid.store.repos import lineage
from fieldid.store.schema import (
    EnrollmentImage,
    EnrollmentPixels,
    GalleryMeta,
    Person,
    PersonMerge,
    TemplateRow,
)
from fieldid.template.types import ModelId, Template

REVISION = "revision"
#: Most candidates asked of an engine in one search (Milvus' top-k limit is 16384).
MAX_CANDIDATES = 16_384
#: ``gallery_meta`` key of the active template generation (1 when absent).
GENERATION = "generation"
#: ``gallery_meta`` key of the ``[pipeline]`` settings of the model (written by a re-templating).
EMBEDDER = "embedder"


@dataclass(frozen=True)
class Hit:
    """One person found by a search: their best template's score."""

    person_id: int
    external_id: str
    display_name: str
    synthetic: bool
    score: float
    template_id: int


@dataclass(frozen=True)
class Enrolled:
    person_id: int
    image_id: int | None
    template_id: int
    new_person: bool = False


@dataclass(frozen=True)
class GallerySize:
    persons: int
    templates: int


@dataclass
class IndexChange:
    """A change to the gallery's templates inside a unit of work: the revision it moved from
    and to, and (after the commit) whether the index in this process followed it."""

    old: str
    new: str
    followed: bool | None = None


def _vec_bytes(v: NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(v, dtype="<f4").tobytes()


def gallery_meta(s: Session) -> dict[str, str]:
    """Every ``gallery_meta`` fact, read now (not from the session's identity map)."""
    return {k: v for k, v in s.execute(select(GalleryMeta.key, GalleryMeta.value))}


def active_generation(meta: dict[str, str]) -> int:
    return int(meta.get(GENERATION, "1"))


def _state(s: Session) -> tuple[str, int]:
    """The gallery's revision and active generation, read now."""
    rows = dict(
        s.execute(
            select(GalleryMeta.key, GalleryMeta.value).where(
                GalleryMeta.key.in_((REVISION, GENERATION))
            )
        ).all()
    )
    return rows.get(REVISION, ""), active_generation(rows)


def insert_sealed_templates(s: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert ``templates`` rows whose ``vector`` is given in the clear (little-endian float32
    bytes), sealed: each row goes in with a placeholder of the sealed value's size (Core
    ``INSERT … RETURNING``, ids from the database), then its vector is sealed for its id and
    written by primary key, in the same transaction (session ``s`` of the store). Returns the
    ids in ``rows``' order."""
    if not rows:
        return []
    keys = keys_of(s)
    plain = [bytes(r["vector"]) for r in rows]
    ids = list(
        s.scalars(
            insert(TemplateRow).returning(TemplateRow.id, sort_by_parameter_order=True),
            [{**r, "vector": bytes(len(v) + OVERHEAD)} for r, v in zip(rows, plain, strict=True)],
        )
    )
    s.execute(
        update(TemplateRow.__table__)  # type: ignore[arg-type]
        .where(TemplateRow.__table__.c.id == bindparam("_id"))
        .values(vector=bindparam("_v")),
        [
            {"_id": tid, "_v": keys.seal(TEMPLATE_VECTOR, tid, v)}
            for tid, v in zip(ids, plain, strict=True)
        ],
    )
    return ids


def keys_of_store(store: Store) -> StoreKeys:
    if store.keys is None:
        raise KeysError("the gallery's store was opened without its keys", code="keys.none")
    return store.keys


def _read_state(s: Session) -> tuple[str, int]:
    """:func:`_state` once per read session (a use's reads share one: ``Store.reading``): the
    revision the use's size, index and short list all follow. Never for a write."""
    got = s.info.get(READ_MEMO + "gallery_state")
    if got is None:
        got = s.info[READ_MEMO + "gallery_state"] = _state(s)
    return got  # type: ignore[no-any-return]


class Gallery:
    def __init__(
        self,
        store: Store,
        index_dir: Path,
        model: ModelId,
        dim: int,
        *,
        exact_below: int = 50_000,
        index: IndexConfig | None = None,
        name: GalleryName = OPERATIONAL,
    ) -> None:
        self.store = store
        self.index_dir = index_dir
        self.model = model
        self.dim = dim
        self.index_config = index or IndexConfig(exact_below=exact_below)
        #: The port's gallery this one is: ``operational``, or ``training`` (W/training).
        self.name: GalleryName = name
        self._size_cache: tuple[str, GallerySize] | None = None
        #: The template generation this object searches and writes (the active one when opened).
        self.generation = 1
        self._bind_model()
        self._sync: IndexSync = open_sync(
            store,
            self.index_config,
            directory=index_dir,
            dim=dim,
            gallery=name,
            template_ids=self._template_ids,
            vectors=self._vectors,
            generation=lambda: self.generation,
            keyring=self._keyring,
        )

    @property
    def backend(self) -> str:
        """The vector-index backend: faiss-local, pgvector or milvus."""
        return self._sync.backend

    def reopened(self, model: ModelId, dim: int) -> Gallery:
        """This gallery opened again on ``model`` (after a re-templating switched it), with the
        same store, index folder and index settings."""
        return Gallery(
            self.store,
            self.index_dir,
            model,
            dim,
            index=self.index_config,
            name=self.name,
        )

    def _keyring(self) -> Keyring:
        """The keyring the index is sealed with on disk (the store's)."""
        return keys_of_store(self.store).keyring

    # -- model binding -------------------------------------------------------------------------

    def _bind_model(self) -> None:
        """A gallery holds templates of exactly one model; the first opening fixes it."""
        for attempt in range(2):
            try:
                with self.store.unit_of_work() as uow:
                    s = uow.session
                    meta = {m.key: m.value for m in s.scalars(select(GalleryMeta))}
                    if "model_id" not in meta:
                        s.add_all(
                            [
                                GalleryMeta(key="model_id", value=self.model.id),
                                GalleryMeta(key="model_version", value=self.model.version),
                                GalleryMeta(key="dim", value=str(self.dim)),
                                GalleryMeta(key=REVISION, value=uuid.uuid4().hex),
                                GalleryMeta(key=GENERATION, value="1"),
                            ]
                        )
                        return
                break
            except IntegrityError:  # another process bound it at the same moment: read it
                if attempt:
                    raise
        bound = ModelId(meta["model_id"], meta["model_version"])
        if bound != self.model:
            raise ModelMismatch(
                f"this gallery holds {bound} templates but the workspace is configured for "
                f"{self.model}: configure the gallery's model, or move the gallery to "
                f"{self.model} with `fieldid gallery retemplate`",
                code="gallery.model_mismatch",
                gallery_model=str(bound),
                configured_model=str(self.model),
            )
        self.generation = active_generation(meta)

    def _check_generation(self, generation: int, s: Session) -> None:
        """Refuse to go on when the gallery was switched to another generation (a re-templating
        committed by another process) after this object was opened."""
        if generation == self.generation:
            return
        meta = gallery_meta(s)
        now = f"{meta.get('model_id')}@{meta.get('model_version')}"
        raise ModelMismatch(
            f"the gallery was re-templated to {now} after this process opened it on "
            f"{self.model}: open the workspace again to search with the new model",
            code="gallery.model_switched",
            gallery_model=now,
            configured_model=str(self.model),
        )

    def _require(self, template: Template) -> None:
        template.require_model(self.model)
        if template.vector.shape != (self.dim,):
            raise ModelMismatch(
                f"template has shape {template.vector.shape}, the gallery needs ({self.dim},)",
                code="template.bad_shape",
            )

    # -- revision and index --------------------------------------------------------------------

    def revision(self) -> str:
        """The database's revision of this object's generation (``gallery.model_switched`` when
        the gallery has moved to another)."""
        with self.store.read() as s:
            rev, gen = _read_state(s)
            self._check_generation(gen, s)
        return rev

    def change(
        self,
        uow: UnitOfWork,
        *,
        add: tuple[Sequence[int], NDArray[np.float32]] | None = None,
        remove: Sequence[int] = (),
        from_disk: bool = False,
    ) -> IndexChange:
        """Move the revision inside ``uow`` for a change to templates (new or removed ones, or
        only their owners: a merge); after the commit the index follows. ``from_disk``: when
        memory has no index at the old revision, carry the one on disk (a merge)."""
        s = uow.session
        # The revision row is locked first (on SQLite the unit of work holds the write lock
        # already), then the generation is read: a re-templating's switch that committed while
        # this change was being prepared is seen here, and the change refused.
        row = s.scalars(
            select(GalleryMeta)
            .where(GalleryMeta.key == REVISION)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        self._check_generation(_state(s)[1], s)
        old = "" if row is None else row.value
        new = uuid.uuid4().hex
        if row is None:
            s.add(GalleryMeta(key=REVISION, value=new))
        else:
            row.value = new
        change = IndexChange(old, new)

        def done(followed: bool) -> None:
            change.followed = followed

        self._sync.changed(uow, old, new, add, remove, from_disk=from_disk, done=done)
        return change

    def _template_ids(self) -> NDArray[np.int64]:
        with self.store.read() as s:
            ids = s.scalars(
                select(TemplateRow.id)
                .where(TemplateRow.generation == self.generation)
                .order_by(TemplateRow.id)
            ).all()
        return np.asarray(ids, dtype=np.int64)

    def _vectors(self, ids: Sequence[int] | None) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        q = (
            select(TemplateRow.id, TemplateRow.vector)
            .where(TemplateRow.generation == self.generation)
            .order_by(TemplateRow.id)
        )
        out_ids: list[int] = []
        chunks: list[bytes] = []
        keys = keys_of_store(self.store)
        with self.store.read(stream=True) as s:
            if ids is None:
                parts: list[Sequence[int] | None] = [None]
            else:
                parts = [ids[i : i + 10_000] for i in range(0, len(ids), 10_000)]
            for part in parts:
                stmt = q if part is None else q.where(TemplateRow.id.in_(part))
                for tid, blob in s.execute(stmt.execution_options(yield_per=10_000)):
                    out_ids.append(tid)
                    chunks.append(keys.open(TEMPLATE_VECTOR, tid, blob))
        vecs = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(out_ids), self.dim)
        return np.asarray(out_ids, dtype=np.int64), vecs.astype(np.float32)

    def all_vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Every template id and vector, in id order (evaluation against the real gallery)."""
        return self._vectors(None)

    def reseal_index(self) -> bool:
        """Save the faiss-local index at the current revision again, sealed under the keyring's
        current key (after a rotation). False when there is no index on disk to save (other
        backends keep their vectors on their own servers)."""
        self.index()
        return self._sync.reseal()

    def rebuild_index(self, progress: Progress | None = None) -> int:
        """Reload the index from every template in the database, at its current revision;
        returns how many templates it holds. ``progress(done)`` after each batch."""
        return self._sync.rebuild(progress)

    def check_index(self, *, sample: int = 0) -> CheckReport:
        """Compare the index with the database: revision, count, and ``sample`` templates
        searched for themselves."""
        return self._sync.check(sample=sample)

    def repair_index(self) -> str:
        """Bring the index to the database (drain an outbox, catch up, or rebuild); says what
        was done."""
        return self._sync.repair()

    def index(self) -> VectorIndex:
        """The vector index (the port) at the database's revision: as this process left it,
        as stored, caught up, or rebuilt."""
        return self._sync.current(self.revision())

    @property
    def index_loaded(self) -> VectorIndex | None:
        return self._sync.loaded

    @property
    def index_source(self) -> str | None:
        """How the last :meth:`index` got its index (memory, disk, caught_up, rebuilt)."""
        return self._sync.last_source

    @property
    def sync(self) -> IndexSync:
        """How this gallery's index follows the database (:mod:`fieldid.gallery.vectors`)."""
        return self._sync

    def flush(self) -> None:
        """Persist the in-memory index (after a batch of changes)."""
        self._sync.flush()

    def close(self) -> None:
        """Persist what is in memory and let go of the engine's connections."""
        self._sync.close()

    # -- enrollment ----------------------------------------------------------------------------

    def find_person(self, external_id: str, session: Session | None = None) -> int | None:
        """The person enrolled under ``external_id``, or the person it was merged into."""
        if session is not None:
            return lineage.live_person(session, external_id)
        with self.store.read() as s:
            return lineage.live_person(s, external_id)

    def has_image(self, external_id: str, sha256: str) -> bool:
        with self.store.read() as s:
            pid = lineage.live_person(s, external_id)
            if pid is None:
                return False
            q = select(EnrollmentImage.id).where(
                EnrollmentImage.person_id == pid, EnrollmentImage.sha256 == sha256
            )
            return s.scalar(q) is not None

    def enroll(
        self,
        uow: UnitOfWork,
        *,
        external_id: str,
        display_name: str | None,
        template: Template,
        source: str,
        sha256: str,
        width: int,
        height: int,
        quality_unified: int,
        synthetic: bool = False,
        record_id: int | None = None,
        capture_date: date | None = None,
        provenance: str | None = None,
        thumbnail: bytes | None = None,
        pixels: bytes | None = None,
    ) -> Enrolled | None:
        """Add an image and its template to a person (created if new), in ``uow``. ``pixels``:
        the image as the pipeline saw it, PNG (kept for re-templating).

        Returns None when this person already has this exact image (enrollment is idempotent).
        An external id that was merged into another person enrols into that person: a source
        sending its old key again does not bring the merged person back.
        """
        self._require(template)
        now = uow.now()
        s = uow.session
        pid = lineage.live_person(s, external_id)
        person = None if pid is None else s.get(Person, pid)
        new_person = person is None
        if person is None:
            person = Person(
                external_id=external_id,
                display_name=display_name or external_id,
                synthetic=synthetic,
                created_at=now,
            )
            s.add(person)
            s.flush()
        elif s.scalar(
            select(EnrollmentImage.id).where(
                EnrollmentImage.person_id == person.id, EnrollmentImage.sha256 == sha256
            )
        ):
            return None
        image = EnrollmentImage(
            person_id=person.id,
            source=source,
            sha256=sha256,
            width=width,
            height=height,
            quality_unified=quality_unified,
            created_at=now,
            record_id=record_id,
            capture_date=capture_date,
            provenance=provenance,
        )
        s.add(image)
        s.flush()  # the image's id binds its sealed thumbnail and pixels
        if thumbnail is not None:
            image.thumbnail = seal(s, THUMBNAIL, image.id, thumbnail)
        if pixels is not None:
            s.add(
                EnrollmentPixels(
                    image_id=image.id,
                    format="png",
                    data=seal(s, ENROLLMENT_PIXELS, image.id, pixels),
                )
            )
        row = TemplateRow(
            person_id=person.id,
            image_id=image.id,
            model_id=self.model.id,
            model_version=self.model.version,
            vector=bytes(self.dim * 4 + OVERHEAD),  # sealed below, once the id exists
            created_at=now,
            generation=self.generation,
        )
        s.add(row)
        s.flush()  # the template's id binds its sealed vector
        row.vector = seal(s, TEMPLATE_VECTOR, row.id, _vec_bytes(template.vector))
        s.flush()
        self.change(uow, add=([row.id], template.vector[None, :]))
        return Enrolled(person.id, image.id, row.id, new_person)

    def add_template_only(
        self,
        uow: UnitOfWork,
        people: Iterable[tuple[str, str]],
        vectors: NDArray[np.float32],
        *,
        synthetic: bool = True,
        chunk: int = 20_000,
        progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Bulk-add identities that have a template but no image (synthetic distractors), in
        ``uow`` with one revision move: a failure adds nothing.

        Rows go in through Core ``INSERT … RETURNING`` of ``chunk`` rows at a time (the ORM's
        per-object bookkeeping made a million distractors take many minutes); ids come from the
        database, and each vector is sealed for its id once the id exists (an ``UPDATE`` by
        primary key in the same transaction). ``progress`` is called with the number of
        identities added after each chunk.
        """
        people = list(people)
        if vectors.shape != (len(people), self.dim):
            raise ValueError(f"need {len(people)}×{self.dim} vectors, got {vectors.shape}")
        now = uow.now()
        vecs = np.ascontiguousarray(vectors, dtype="<f4")
        s = uow.session
        tids: list[int] = []
        for start in range(0, len(people), chunk):
            part = people[start : start + chunk]
            pids = list(
                s.scalars(
                    insert(Person).returning(Person.id, sort_by_parameter_order=True),
                    [
                        {
                            "external_id": e,
                            "display_name": d,
                            "synthetic": synthetic,
                            "created_at": now,
                        }
                        for e, d in part
                    ],
                )
            )
            part_tids = insert_sealed_templates(
                s,
                [
                    {
                        "person_id": pid,
                        "image_id": None,
                        "model_id": self.model.id,
                        "model_version": self.model.version,
                        "vector": vecs[start + i].tobytes(),
                        "created_at": now,
                        "generation": self.generation,
                    }
                    for i, pid in enumerate(pids)
                ],
            )
            tids += part_tids
            if progress:
                progress(len(part))
        self.change(uow, add=(tids, vecs.astype(np.float32)))
        return tids

    def delete_person(self, uow: UnitOfWork, person_id: int) -> int:
        """Delete a person with their images and templates, in ``uow``; returns templates
        removed. The history of people merged into this one goes too: it describes this
        person."""
        s = uow.session
        merges = [i.merge_id for i in lineage.identities(s, person_id) if i.merge_id]
        if merges:
            s.execute(delete(PersonMerge).where(PersonMerge.id.in_(merges)))
        tids = list(s.scalars(select(TemplateRow.id).where(TemplateRow.person_id == person_id)))
        s.execute(delete(TemplateRow).where(TemplateRow.person_id == person_id))
        images = select(EnrollmentImage.id).where(EnrollmentImage.person_id == person_id)
        s.execute(delete(EnrollmentPixels).where(EnrollmentPixels.image_id.in_(images)))
        s.execute(delete(EnrollmentImage).where(EnrollmentImage.person_id == person_id))
        s.execute(delete(Person).where(Person.id == person_id))
        self.change(uow, remove=tids)
        return len(tids)

    def delete_image(self, uow: UnitOfWork, image_id: int) -> int:
        """Delete one enrolled image and its templates, in ``uow``; returns templates removed."""
        s = uow.session
        tids = list(s.scalars(select(TemplateRow.id).where(TemplateRow.image_id == image_id)))
        s.execute(delete(TemplateRow).where(TemplateRow.image_id == image_id))
        s.execute(delete(EnrollmentPixels).where(EnrollmentPixels.image_id == image_id))
        s.execute(delete(EnrollmentImage).where(EnrollmentImage.id == image_id))
        self.change(uow, remove=tids)
        return len(tids)

    # -- queries -------------------------------------------------------------------------------

    def size(self) -> GallerySize:
        """People and templates in the gallery. Counting a million rows takes SQLite ~140 ms,
        and every search reports the size, so the counts are kept per gallery revision (every
        change to people or templates moves it) and recounted only when it moves."""
        with self.store.read() as s:
            rev, gen = _read_state(s)
            self._check_generation(gen, s)
            cached = self._size_cache
            if cached is not None and cached[0] == rev:
                return cached[1]
            persons = s.scalar(select(func.count(Person.id))) or 0
            templates = (
                s.scalar(
                    select(func.count(TemplateRow.id)).where(
                        TemplateRow.generation == self.generation
                    )
                )
                or 0
            )
        size = GallerySize(persons, templates)
        self._size_cache = (rev, size)
        return size

    def template_vector(self, template_id: int) -> NDArray[np.float32]:
        with self.store.read() as s:
            blob = s.scalar(select(TemplateRow.vector).where(TemplateRow.id == template_id))
            if blob is None:
                raise KeyError(template_id)
            plain = unseal(s, TEMPLATE_VECTOR, template_id, blob)
        return np.frombuffer(plain, dtype="<f4").astype(np.float32)

    def search(self, template: Template, top_k: int = 10) -> list[Hit]:
        """The ``top_k`` people whose best template scores highest against ``template``.

        The engine proposes a short list; every candidate is re-scored exactly from its stored
        template (:func:`fieldid.index.rerank.rerank`) before people are ranked, so the scores,
        and the calibration applied to them, are the same whichever backend is configured."""
        self._require(template)
        if top_k <= 0:
            return []
        index = self.index()
        total = self.size().templates
        if total == 0:
            return []
        floor = top_k * 4
        if self.backend != "faiss-local":  # approximate engines: a longer short list
            floor = max(floor, self.index_config.candidates)
        k = min(total, floor, MAX_CANDIDATES)
        keys = keys_of_store(self.store)
        with self.store.read() as s:
            owner: dict[int, int] = {}

            def lookup(ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
                found: list[int] = []
                blobs: list[bytes] = []
                rows = s.execute(
                    select(TemplateRow.id, TemplateRow.person_id, TemplateRow.vector).where(
                        TemplateRow.id.in_([int(i) for i in ids]),
                        TemplateRow.generation == self.generation,
                    )
                )
                for tid, pid, blob in rows:
                    owner[tid] = pid
                    found.append(tid)
                    blobs.append(keys.open(TEMPLATE_VECTOR, tid, blob))
                vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(found), self.dim)
                return np.asarray(found, dtype=np.int64), vecs.astype(np.float32)

            while True:
                proposed = index.search(template.vector, k, gallery=self.name)
                exact = rerank(template.vector, proposed.ids, lookup, k)
                best: dict[int, tuple[float, int]] = {}
                for sc, t in zip(exact.scores[0], exact.ids[0], strict=True):
                    pid = owner.get(int(t)) if t >= 0 else None
                    if pid is not None and (pid not in best or sc > best[pid][0]):
                        best[pid] = (float(sc), int(t))
                if len(best) >= top_k or k >= min(total, MAX_CANDIDATES):
                    break
                k = min(total, k * 4, MAX_CANDIDATES)
            ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top_k]
            people = {
                p.id: p
                for p in s.scalars(select(Person).where(Person.id.in_([pid for pid, _ in ranked])))
            }
        return [
            Hit(
                pid,
                people[pid].external_id,
                people[pid].display_name,
                people[pid].synthetic,
                sc,
                tid,
            )
            for pid, (sc, tid) in ranked
            if pid in people
        ]
