"""The gallery: people, their enrolled images and templates (SQL), and the vector index beside it.

The database is the source of truth. The vector index is persisted in ``index_dir`` with the
gallery revision it was built at; every change to templates bumps the revision in the same
transaction, so an index that is missing, half-written or older than the database is detected and
rebuilt from the database on open.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from fieldid.audit.log import utcnow
from fieldid.errors import ModelMismatch
from fieldid.gallery.index import FaissIndex, IndexParams
from fieldid.gallery.schema import EnrollmentImage, GalleryMeta, Person, TemplateRow
from fieldid.records import lineage
from fieldid.records.schema import PersonMerge
from fieldid.template.types import ModelId, Template


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


@dataclass(frozen=True)
class GallerySize:
    persons: int
    templates: int


def _vec_bytes(v: NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(v, dtype="<f4").tobytes()


class Gallery:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        index_dir: Path,
        model: ModelId,
        dim: int,
        *,
        exact_below: int = 50_000,
    ) -> None:
        self._sessions = sessions
        self.index_dir = index_dir
        self.model = model
        self.dim = dim
        self._params = IndexParams(exact_threshold=exact_below)
        self._index: FaissIndex | None = None
        self._index_revision: str | None = None
        self._dirty = False
        self._size_cache: tuple[str, GallerySize] | None = None
        self._bind_model()

    # -- model binding -------------------------------------------------------------------------

    def _bind_model(self) -> None:
        """A gallery holds templates of exactly one model; the first enrollment fixes it."""
        with self._sessions.begin() as s:
            meta = {m.key: m.value for m in s.scalars(select(GalleryMeta))}
            if "model_id" not in meta:
                s.add_all(
                    [
                        GalleryMeta(key="model_id", value=self.model.id),
                        GalleryMeta(key="model_version", value=self.model.version),
                        GalleryMeta(key="dim", value=str(self.dim)),
                        GalleryMeta(key="revision", value=uuid.uuid4().hex),
                    ]
                )
                return
            bound = ModelId(meta["model_id"], meta["model_version"])
            if bound != self.model:
                raise ModelMismatch(
                    f"this gallery holds {bound} templates but the workspace is configured for "
                    f"{self.model}: configure the gallery's model, or re-enrol into a new "
                    "workspace",
                    code="gallery.model_mismatch",
                    gallery_model=str(bound),
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

    @staticmethod
    def _bump(s: Session) -> str:
        rev = uuid.uuid4().hex
        row = s.get(GalleryMeta, "revision")
        if row is None:
            s.add(GalleryMeta(key="revision", value=rev))
        else:
            row.value = rev
        return rev

    @classmethod
    def bump_revision(cls, s: Session) -> tuple[str, str]:
        """Move the revision inside the caller's transaction (a change made outside this class,
        such as a person merge); returns (old, new) for :meth:`carry_index`."""
        row = s.get(GalleryMeta, "revision")
        old = "" if row is None else row.value
        return old, cls._bump(s)

    def carry_index(self, old: str, new: str, removed: Sequence[int] = ()) -> bool:
        """After a committed change that moved the revision from ``old`` to ``new`` and changed
        no template's id or vector, only which person owns it (the index maps template ids to
        vectors; owners are looked up in the database at search time), the index at ``old`` minus
        ``removed`` is the index at ``new``: carry it over and persist it instead of rebuilding.

        Returns False when no index at ``old`` was at hand (in memory or on disk); the next search
        then rebuilds, as for any stale index."""
        index = self._index if self._index_revision == old else None
        if index is None:
            index = FaissIndex.load(self.index_dir, old, params=self._params)
        if index is None:
            return False
        if removed:
            index.remove(np.asarray(list(removed), dtype=np.int64))
        index.save(self.index_dir, revision=new)
        self._index, self._index_revision, self._dirty = index, new, False
        return True

    def revision(self) -> str:
        with self._sessions() as s:
            row = s.get(GalleryMeta, "revision")
            return "" if row is None else row.value

    def _all_vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        with self._sessions() as s:
            rows = s.execute(select(TemplateRow.id, TemplateRow.vector).order_by(TemplateRow.id))
            ids: list[int] = []
            chunks: list[bytes] = []
            for tid, blob in rows:
                ids.append(tid)
                chunks.append(blob)
        vecs = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(ids), self.dim)
        return np.asarray(ids, dtype=np.int64), vecs.astype(np.float32)

    def all_vectors(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Every template id and vector, in id order (evaluation against the real gallery)."""
        return self._all_vectors()

    def rebuild_index(self) -> FaissIndex:
        """Build the index from the database and persist it at the current revision."""
        rev = self.revision()
        ids, vecs = self._all_vectors()
        index = FaissIndex.build(ids, vecs, dim=self.dim, params=self._params, revision=rev)
        index.save(self.index_dir, revision=rev)
        self._index, self._index_revision = index, rev
        return index

    def index(self) -> FaissIndex:
        """The vector index at the database's revision: in memory, from disk, or rebuilt."""
        rev = self.revision()
        if self._index is not None and self._index_revision == rev:
            return self._index
        loaded = FaissIndex.load(self.index_dir, rev, params=self._params)
        if loaded is None:
            return self.rebuild_index()
        self._index, self._index_revision = loaded, rev
        return loaded

    def _apply(
        self,
        rev: str,
        add: tuple[Sequence[int], NDArray[np.float32]] | None = None,
        remove: Sequence[int] | None = None,
    ) -> None:
        """Apply a committed change to the in-memory index (persisted by ``flush``)."""
        if self._index is None:
            return  # loaded (and rebuilt if needed) on the next search
        if add is not None and len(add[0]):
            self._index.add(np.asarray(add[0], dtype=np.int64), add[1])
        if remove:
            self._index.remove(np.asarray(remove, dtype=np.int64))
        self._index_revision = rev
        self._dirty = True

    def flush(self) -> None:
        """Persist the in-memory index at the current revision (after a batch of changes)."""
        if self._index is not None and self._dirty:
            self._index.save(self.index_dir, revision=self.revision())
            self._dirty = False

    # -- enrollment ----------------------------------------------------------------------------

    def find_person(self, external_id: str) -> int | None:
        """The person enrolled under ``external_id``, or the person it was merged into."""
        with self._sessions() as s:
            return lineage.live_person(s, external_id)

    def has_image(self, external_id: str, sha256: str) -> bool:
        with self._sessions() as s:
            pid = lineage.live_person(s, external_id)
            if pid is None:
                return False
            q = select(EnrollmentImage.id).where(
                EnrollmentImage.person_id == pid, EnrollmentImage.sha256 == sha256
            )
            return s.scalar(q) is not None

    def enroll(
        self,
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
    ) -> Enrolled | None:
        """Add an image and its template to a person (created if new).

        Returns None when this person already has this exact image (enrollment is idempotent).
        An external id that was merged into another person enrols into that person: a source
        sending its old key again does not bring the merged person back.
        """
        self._require(template)
        now = utcnow()
        with self._sessions.begin() as s:
            pid = lineage.live_person(s, external_id)
            person = None if pid is None else s.get(Person, pid)
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
                thumbnail=thumbnail,
            )
            s.add(image)
            s.flush()
            row = TemplateRow(
                person_id=person.id,
                image_id=image.id,
                model_id=self.model.id,
                model_version=self.model.version,
                vector=_vec_bytes(template.vector),
                created_at=now,
            )
            s.add(row)
            s.flush()
            out = Enrolled(person.id, image.id, row.id)
            rev = self._bump(s)
        self._apply(rev, add=([out.template_id], template.vector[None, :]))
        return out

    def add_template_only(
        self,
        people: Iterable[tuple[str, str]],
        vectors: NDArray[np.float32],
        *,
        synthetic: bool = True,
        chunk: int = 50_000,
        progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Bulk-add identities that have a template but no image (synthetic distractors).

        Rows go in through Core ``INSERT``s of ``chunk`` rows at a time with their ids assigned
        here (the ORM's per-object bookkeeping made a million distractors take many minutes),
        all in one transaction with one revision bump: a failure adds nothing. ``progress`` is
        called with the number of identities added after each chunk.
        """
        people = list(people)
        if vectors.shape != (len(people), self.dim):
            raise ValueError(f"need {len(people)}×{self.dim} vectors, got {vectors.shape}")
        now = utcnow()
        vecs = np.ascontiguousarray(vectors, dtype="<f4")
        with self._sessions.begin() as s:
            first_pid = (s.scalar(select(func.max(Person.id))) or 0) + 1
            first_tid = (s.scalar(select(func.max(TemplateRow.id))) or 0) + 1
            for start in range(0, len(people), chunk):
                part = people[start : start + chunk]
                s.execute(
                    insert(Person),
                    [
                        {
                            "id": first_pid + start + i,
                            "external_id": e,
                            "display_name": d,
                            "synthetic": synthetic,
                            "created_at": now,
                        }
                        for i, (e, d) in enumerate(part)
                    ],
                )
                s.execute(
                    insert(TemplateRow),
                    [
                        {
                            "id": first_tid + start + i,
                            "person_id": first_pid + start + i,
                            "image_id": None,
                            "model_id": self.model.id,
                            "model_version": self.model.version,
                            "vector": vecs[start + i].tobytes(),
                            "created_at": now,
                        }
                        for i in range(len(part))
                    ],
                )
                if progress:
                    progress(len(part))
            rev = self._bump(s)
        tids = list(range(first_tid, first_tid + len(people)))
        self._apply(rev, add=(tids, vecs.astype(np.float32)))
        return tids

    def delete_person(self, person_id: int) -> int:
        """Delete a person with their images and templates; returns templates removed.

        The history of people merged into this one goes too: it describes this person."""
        with self._sessions.begin() as s:
            merges = [i.merge_id for i in lineage.identities(s, person_id) if i.merge_id]
            if merges:
                s.execute(delete(PersonMerge).where(PersonMerge.id.in_(merges)))
            tids = list(s.scalars(select(TemplateRow.id).where(TemplateRow.person_id == person_id)))
            s.execute(delete(TemplateRow).where(TemplateRow.person_id == person_id))
            s.execute(delete(EnrollmentImage).where(EnrollmentImage.person_id == person_id))
            s.execute(delete(Person).where(Person.id == person_id))
            rev = self._bump(s)
        self._apply(rev, remove=tids)
        return len(tids)

    def delete_image(self, image_id: int) -> int:
        """Delete one enrolled image and its templates; returns templates removed."""
        with self._sessions.begin() as s:
            tids = list(s.scalars(select(TemplateRow.id).where(TemplateRow.image_id == image_id)))
            s.execute(delete(TemplateRow).where(TemplateRow.image_id == image_id))
            s.execute(delete(EnrollmentImage).where(EnrollmentImage.id == image_id))
            rev = self._bump(s)
        self._apply(rev, remove=tids)
        return len(tids)

    # -- queries -------------------------------------------------------------------------------

    def size(self) -> GallerySize:
        """People and templates in the gallery. Counting a million rows takes SQLite ~140 ms,
        and every search reports the size, so the counts are kept per gallery revision (every
        change to people or templates bumps it) and recounted only when it moves."""
        rev = self.revision()
        cached = self._size_cache
        if cached is not None and cached[0] == rev:
            return cached[1]
        with self._sessions() as s:
            persons = s.scalar(select(func.count(Person.id))) or 0
            templates = s.scalar(select(func.count(TemplateRow.id))) or 0
        size = GallerySize(persons, templates)
        if self.revision() == rev:  # nothing changed while counting
            self._size_cache = (rev, size)
        return size

    def template_vector(self, template_id: int) -> NDArray[np.float32]:
        with self._sessions() as s:
            blob = s.scalar(select(TemplateRow.vector).where(TemplateRow.id == template_id))
        if blob is None:
            raise KeyError(template_id)
        return np.frombuffer(blob, dtype="<f4").astype(np.float32)

    def search(self, template: Template, top_k: int = 10) -> list[Hit]:
        """The ``top_k`` people whose best template scores highest against ``template``."""
        self._require(template)
        index = self.index()
        if index.ntotal == 0 or top_k <= 0:
            return []
        k = min(index.ntotal, top_k * 4)
        while True:
            scores, ids = index.search(template.vector, k)
            pairs = [(float(sc), int(t)) for sc, t in zip(scores[0], ids[0], strict=True) if t >= 0]
            with self._sessions() as s:
                rows = s.execute(
                    select(TemplateRow.id, TemplateRow.person_id).where(
                        TemplateRow.id.in_([t for _, t in pairs])
                    )
                )
                owner = {tid: pid for tid, pid in rows}
            best: dict[int, tuple[float, int]] = {}
            for sc, t in pairs:
                pid = owner.get(t)
                if pid is not None and (pid not in best or sc > best[pid][0]):
                    best[pid] = (sc, t)
            if len(best) >= top_k or k >= index.ntotal:
                break
            k = min(index.ntotal, k * 4)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:top_k]
        with self._sessions() as s:
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
        ]
