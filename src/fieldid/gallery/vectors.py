"""How the gallery keeps its vector index (the port, :mod:`fieldid.index.port`) at the database.

The database is the truth; the index is derived from it and labelled with the gallery revision
(``gallery_meta.revision``) it reflects. Every change to templates moves that revision inside the
caller's unit of work and hands the change to the gallery's :class:`IndexSync`, which keeps the
configured engine following it in the way that engine allows:

``faiss-local`` (:class:`LocalSync`, the embedded default)
    The in-process faiss index follows after the commit and persists its files, as before
    (:class:`fieldid.gallery.follower.IndexFollower`): a crash or another process leaves it
    behind, and it is caught up from the database at its next use.
``pgvector`` in the workspace's own PostgreSQL database (:class:`TransactionalSync`)
    The vectors are written, and the index's revision mark moved, *in the enrollment's
    transaction* (the kernel's unit of work): they commit or roll back with the records, so the
    index never lags or leads them.
``milvus``, or pgvector in another database (:class:`OutboxSync`)
    The change writes one ``index_outbox`` row per template in the same transaction; after the
    commit the outbox is drained into the engine (upsert what the database still holds, delete
    what it no longer does: replaying is harmless), then its rows are deleted and the engine's
    revision mark moved. A crash between the commit and the upsert leaves the rows, and the next
    drain (at the next use in any process, at service start, ``fieldid index check --repair``)
    applies them: nothing committed is lost.

Whatever the engine, :meth:`IndexSync.current` returns the port at the database's revision (an
engine at no revision, a new collection or table, is rebuilt from the database first), and the
gallery re-ranks the engine's short list exactly from the stored templates
(:func:`fieldid.index.rerank.rerank`), so scores are the same on every backend.

Templates are stored sealed (``fieldid.store.keys``): every read of them for an index here
(:func:`stream_templates`, :func:`template_vectors`, the gallery's ``vectors``) opens them with the
store's keyring. faiss-local's files on disk are sealed with that keyring too; pgvector and Milvus
hold the vectors in the clear on their own servers, since an engine cannot search ciphertext
(docs/security.md: their storage is protected by the database's or cluster's own encryption).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from fieldid.gallery.follower import IndexFollower
from fieldid.index.config import IndexConfig
from fieldid.index.faiss_local import FaissLocalIndex
from fieldid.index.maintenance import CheckReport, Clearable, Progress, rebuild
from fieldid.index.maintenance import check as check_index
from fieldid.index.port import Gallery, VectorIndex, VectorIndexError
from fieldid.keys.envelope import Keyring
from fieldid.store import Store, UnitOfWork
from fieldid.store.keys import TEMPLATE_VECTOR, keys_of
from fieldid.store.schema import GalleryMeta, IndexOutbox, TemplateRow

log = logging.getLogger(__name__)

REVISION = "revision"
Vectors = tuple[NDArray[np.int64], NDArray[np.float32]]
#: Outbox rows applied per step of a drain.
DRAIN_BATCH = 5_000
#: Galleries at least this large are rebuilt through the engine's bulk path.
BULK_FROM = 20_000
#: Templates read per batch when a rebuild streams them from the database.
STREAM_BATCH = 10_000


def db_revision(s: Session) -> str:
    row = s.get(GalleryMeta, REVISION)
    return "" if row is None else row.value


def stream_templates(
    s: Session, dim: int, generation: int | None = None
) -> Iterator[tuple[int, NDArray[np.float32]]]:
    """Every template ``(id, vector)`` in id order, read in batches in session ``s`` and opened
    with its store's keyring; only template ``generation``'s when given (a re-templating's next
    generation, written beside the active one until its switch, is of another model and is never
    indexed before it)."""
    keys = keys_of(s)
    stmt = select(TemplateRow.id, TemplateRow.vector).order_by(TemplateRow.id)
    if generation is not None:
        stmt = stmt.where(TemplateRow.generation == generation)
    for tid, blob in s.execute(stmt.execution_options(yield_per=STREAM_BATCH)):
        plain = keys.open(TEMPLATE_VECTOR, int(tid), blob)
        yield int(tid), np.frombuffer(plain, dtype="<f4").reshape(dim).astype(np.float32)


def template_vectors(
    s: Session, ids: Sequence[int], dim: int, generation: int | None = None
) -> Vectors:
    """The templates among ``ids`` that the database holds (of ``generation`` when given), in
    id order (opened)."""
    keys = keys_of(s)
    out_ids: list[int] = []
    chunks: list[bytes] = []
    for start in range(0, len(ids), STREAM_BATCH):
        part = list(ids[start : start + STREAM_BATCH])
        stmt = (
            select(TemplateRow.id, TemplateRow.vector)
            .where(TemplateRow.id.in_(part))
            .order_by(TemplateRow.id)
        )
        if generation is not None:
            stmt = stmt.where(TemplateRow.generation == generation)
        for tid, blob in s.execute(stmt):
            out_ids.append(int(tid))
            chunks.append(keys.open(TEMPLATE_VECTOR, int(tid), blob))
    vecs = np.frombuffer(b"".join(chunks), dtype="<f4").reshape(len(out_ids), dim)
    return np.asarray(out_ids, dtype=np.int64), vecs.astype(np.float32)


class IndexSync(Protocol):
    """The gallery's side of one engine: follow changes, answer at the database's revision."""

    backend: str

    def changed(
        self,
        uow: UnitOfWork,
        old: str,
        new: str,
        add: tuple[Sequence[int], NDArray[np.float32]] | None,
        remove: Sequence[int],
        *,
        from_disk: bool = False,
        done: Callable[[bool], None] | None = None,
    ) -> None:
        """A change moved the revision ``old`` → ``new`` inside ``uow`` (not yet committed)."""
        ...

    def current(self, revision: str) -> VectorIndex:
        """The port at database revision ``revision`` (caught up or rebuilt if need be)."""
        ...

    @property
    def loaded(self) -> VectorIndex | None:
        """The port if this process already made it current once (readiness)."""
        ...

    @property
    def last_source(self) -> str | None:
        """How the last :meth:`current` got its index (memory, disk, caught_up, rebuilt)."""
        ...

    def rebuild(self, progress: Progress | None = None) -> int:
        """Reload the engine from every template in the database; returns how many."""
        ...

    def check(self, *, sample: int = 0) -> CheckReport:
        """Compare the engine with the database (revision, count, sampled self-searches)."""
        ...

    def repair(self) -> str:
        """Bring the engine to the database: drain, else rebuild. Returns what was done."""
        ...

    def reseal(self) -> bool:
        """Save what this engine keeps on local disk again under the keyring's current key
        (after a rotation). False when it keeps nothing sealed here (remote engines)."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------- faiss-local


class LocalSync:
    """``faiss-local``: the in-process index follows after each commit (see the module doc)."""

    backend = "faiss-local"

    def __init__(
        self,
        store: Store,
        directory: Path,
        dim: int,
        config: IndexConfig,
        gallery: Gallery,
        template_ids: Callable[[], NDArray[np.int64]],
        vectors: Callable[[Sequence[int] | None], Vectors],
        generation: Callable[[], int] = lambda: 1,
        keyring: Callable[[], Keyring | None] = lambda: None,
    ) -> None:
        self.store = store
        self.dim = dim
        self.gallery: Gallery = gallery
        self._generation = generation
        #: The files on disk are sealed with ``keyring()`` (asked at each load and save: a
        #: rotation changes it); in memory the index is plain.
        self.keyring = keyring
        self.follower = IndexFollower(directory, dim, config.faiss_params(), keyring)
        self._template_ids = template_ids
        self._vectors = vectors
        self._port: FaissLocalIndex | None = None

    def _wrap(self) -> FaissLocalIndex | None:
        engine = self.follower.loaded
        if engine is None:
            return None
        if self._port is None or self._port.engine(self.gallery) is not engine:
            self._port = FaissLocalIndex.over(engine, gallery=self.gallery)
        return self._port

    def changed(
        self,
        uow: UnitOfWork,
        old: str,
        new: str,
        add: tuple[Sequence[int], NDArray[np.float32]] | None,
        remove: Sequence[int],
        *,
        from_disk: bool = False,
        done: Callable[[bool], None] | None = None,
    ) -> None:
        def follow() -> None:
            followed = self.follower.apply(old, new, add, remove, from_disk=from_disk)
            if from_disk:
                self.follower.flush()
            if done is not None:
                done(followed)

        uow.after_commit(follow)

    def current(self, revision: str) -> VectorIndex:
        self.follower.current(revision, self._template_ids, self._vectors)
        port = self._wrap()
        assert port is not None
        return port

    @property
    def loaded(self) -> VectorIndex | None:
        return self._wrap()

    @property
    def last_source(self) -> str | None:
        return self.follower.last_source

    def rebuild(self, progress: Progress | None = None) -> int:
        with self.store.read() as s:
            rev = db_revision(s)
        ids, vecs = self._vectors(None)
        self.follower.rebuild(rev, (ids, vecs))
        if progress is not None:
            progress(len(ids))
        return len(ids)

    def check(self, *, sample: int = 0) -> CheckReport:
        # The index on disk is what a new process would trust: check that one (the one in
        # memory is kept current by this process).
        from fieldid.index.faiss_engine import FaissIndex

        with self.store.read(stream=True) as s:
            rev = db_revision(s)
            saved = FaissIndex.load(
                self.follower.directory, rev, params=self.follower.params, keyring=self.keyring()
            )
            port = FaissLocalIndex(self.dim, self.follower.params)
            if saved is not None:
                port = FaissLocalIndex.over(saved, gallery=self.gallery)
            return check_index(
                port,
                stream_templates(s, self.dim, self._generation()),
                revision=rev,
                gallery=self.gallery,
                sample=sample,
            )

    def repair(self) -> str:
        with self.store.read() as s:
            rev = db_revision(s)
        self.follower.current(rev, self._template_ids, self._vectors)
        self.follower.flush()
        return self.follower.last_source or "memory"

    def reseal(self) -> bool:
        return self.follower.reseal()

    def flush(self) -> None:
        self.follower.flush()

    def close(self) -> None:
        self.follower.flush()


# ---------------------------------------------------------------------- remote engines


class _RemoteSync:
    """What pgvector and Milvus share: the port at the database revision, rebuilt when the
    engine reflects no revision of this gallery."""

    backend: str

    def __init__(
        self,
        store: Store,
        index: Clearable,
        dim: int,
        gallery: Gallery,
        generation: Callable[[], int] = lambda: 1,
    ) -> None:
        self.store = store
        #: The gallery's active template generation (only its templates are indexed).
        self._generation = generation
        self.index = index
        self.backend = index.backend
        self.dim = dim
        self.gallery: Gallery = gallery
        #: The database revision this process last saw the engine reflect.
        self._known: str | None = None
        self._source: str | None = None
        self._lock = threading.RLock()

    def adopt_if_empty(self) -> None:
        """An engine that never reflected this gallery, beside a gallery that holds no
        template, reflects it already: mark it, so that the first enrollments are followed
        (written in their transaction, or drained from the outbox) instead of followed by a
        rebuild. (A change committed meanwhile by another process is caught: its revision
        differs from the one marked here.)"""
        with self.store.read() as s:
            rev = db_revision(s)
            empty = not s.scalar(
                select(func.count(TemplateRow.id)).where(
                    TemplateRow.generation == self._generation()
                )
            )
        if not empty or self.index.revision(gallery=self.gallery) is not None:
            return
        if self.index.count(gallery=self.gallery) == 0:
            self.index.mark(rev, gallery=self.gallery)

    @property
    def loaded(self) -> VectorIndex | None:
        return self.index if self._known is not None else None

    @property
    def last_source(self) -> str | None:
        return self._source

    def check(self, *, sample: int = 0) -> CheckReport:
        with self.store.read(stream=True) as s:
            rev = db_revision(s)
            return check_index(
                self.index,
                stream_templates(s, self.dim, self._generation()),
                revision=rev,
                gallery=self.gallery,
                sample=sample,
            )

    def reseal(self) -> bool:
        return False  # the vectors are on the engine's server, in the clear (docs/security.md)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        closer: Any = getattr(self.index, "close", None)
        if closer is not None:
            closer()


class TransactionalSync(_RemoteSync):
    """pgvector in the workspace's own database: vectors written in the change's transaction."""

    def _bound(self, uow: UnitOfWork) -> Any:
        return self.index.within(uow.session)  # type: ignore[attr-defined]

    def changed(
        self,
        uow: UnitOfWork,
        old: str,
        new: str,
        add: tuple[Sequence[int], NDArray[np.float32]] | None,
        remove: Sequence[int],
        *,
        from_disk: bool = False,
        done: Callable[[bool], None] | None = None,
    ) -> None:
        bound = self._bound(uow)
        if add is not None and len(add[0]):
            bound.upsert(np.asarray(add[0], dtype=np.int64), add[1], gallery=self.gallery)
        if len(remove):
            bound.delete(np.asarray(list(remove), dtype=np.int64), gallery=self.gallery)
        # Mark the new revision only over an index that reflected the old one: an index never
        # built (the backend just configured) stays unmarked and is rebuilt at its next use.
        followed = bound.revision(gallery=self.gallery) == old
        if followed:
            bound.mark(new, gallery=self.gallery)

        def after() -> None:
            if followed:
                self._known = new
            if done is not None:
                done(followed)

        uow.after_commit(after)

    def current(self, revision: str) -> VectorIndex:
        with self._lock:
            if self._known == revision:
                self._source = "memory"
                return self.index
            if self.index.revision(gallery=self.gallery) == revision:
                self._known, self._source = revision, "disk"
                return self.index
            self.rebuild()
            self._source = "rebuilt"
            return self.index

    def rebuild(self, progress: Progress | None = None) -> int:
        """Clear and reload the gallery's rows, and mark the revision, in one transaction that
        also read the templates: the rebuilt index is exactly the database at that revision."""
        with self._lock, self.store.unit_of_work() as uow:
            s = uow.session
            rev = db_revision(s)
            n = rebuild(
                self._bound(uow),
                stream_templates(s, self.dim, self._generation()),
                revision=rev,
                gallery=self.gallery,
                progress=progress,
            )
            uow.after_commit(lambda: setattr(self, "_known", rev))
        log.info("pgvector index of the %s gallery rebuilt: %d templates", self.gallery, n)
        return n

    def repair(self) -> str:
        with self.store.read() as s:
            rev = db_revision(s)
        if self.index.revision(gallery=self.gallery) == rev:
            return "current"
        self.rebuild()
        return "rebuilt"

    def close(self) -> None:
        # The engine is the workspace's own (the store closes it).
        pass


class _Plain:
    """An engine seen through the port and ``clear`` only (no bulk-load hooks)."""

    def __init__(self, index: Clearable) -> None:
        self._index = index
        self.backend = index.backend

    def __getattr__(self, name: str) -> Any:
        if name in ("insert_new", "bulk_begin", "bulk_end"):
            raise AttributeError(name)
        return getattr(self._index, name)

    def clear(self, *, gallery: Gallery) -> None:
        # A new collection (no revision, nothing in it) has nothing to clear: dropping and
        # making it again would cost seconds.
        if self._index.revision(gallery=gallery) is None and not self._index.count(gallery=gallery):
            return
        self._index.clear(gallery=gallery)


class OutboxSync(_RemoteSync):
    """Milvus (or pgvector in another database): changes through the ``index_outbox`` table."""

    def changed(
        self,
        uow: UnitOfWork,
        old: str,
        new: str,
        add: tuple[Sequence[int], NDArray[np.float32]] | None,
        remove: Sequence[int],
        *,
        from_disk: bool = False,
        done: Callable[[bool], None] | None = None,
    ) -> None:
        tids = [int(t) for t in (add[0] if add is not None else ())] + [int(t) for t in remove]
        for start in range(0, len(tids), 20_000):
            uow.session.execute(
                insert(IndexOutbox),
                [{"template_id": t, "revision": new} for t in tids[start : start + 20_000]],
            )

        def after() -> None:
            followed = False
            try:
                self.drain()
                followed = self._known is not None
            finally:
                if done is not None:
                    done(followed)

        uow.after_commit(after)

    def pending(self) -> int:
        """Outbox rows not yet applied to the engine."""
        with self.store.read() as s:
            return int(s.scalar(select(func.count()).select_from(IndexOutbox)) or 0)

    def drain(self, progress: Progress | None = None) -> int:
        """Apply every outbox row to the engine, delete the rows, mark the revision; returns the
        rows applied. Replaying rows is harmless: each row upserts the template the database
        holds now, or deletes it from the engine when the database no longer holds it."""
        applied = 0
        with self._lock:
            while True:
                with self.store.read() as s:
                    rev = db_revision(s)
                    rows = s.execute(
                        select(IndexOutbox.seq, IndexOutbox.template_id)
                        .order_by(IndexOutbox.seq)
                        .limit(DRAIN_BATCH)
                    ).all()
                    wanted = sorted({int(t) for _, t in rows})
                    ids, vecs = template_vectors(s, wanted, self.dim, self._generation())
                if not rows:
                    # Every change up to ``rev`` is in the engine, but only an engine that
                    # reflected some revision of this gallery can be marked: one that never did
                    # (a new collection) lacks the templates from before the outbox; rebuild it.
                    have = self.index.revision(gallery=self.gallery)
                    if have is not None:
                        if have != rev:
                            self.index.mark(rev, gallery=self.gallery)
                        self._known = rev
                    return applied
                gone = np.setdiff1d(np.asarray(wanted, dtype=np.int64), ids)
                if len(ids):
                    self.index.upsert(ids, vecs, gallery=self.gallery)
                if len(gone):
                    self.index.delete(gone, gallery=self.gallery)
                seqs = [int(q) for q, _ in rows]
                with self.store.unit_of_work() as uow:
                    uow.session.execute(delete(IndexOutbox).where(IndexOutbox.seq.in_(seqs)))
                applied += len(rows)
                if progress is not None:
                    progress(applied)

    def current(self, revision: str) -> VectorIndex:
        with self._lock:
            if self._known == revision:
                self._source = "memory"
                return self.index
            applied = self.drain()
            if self.index.revision(gallery=self.gallery) is None:
                self.rebuild()
                self._source = "rebuilt"
            else:
                self._source = "caught_up" if applied else "disk"
            return self.index

    def rebuild(self, progress: Progress | None = None) -> int:
        """Reload the engine from a snapshot of the database's templates, mark that revision,
        then drain what was committed since (outbox rows already in the snapshot are replayed
        harmlessly)."""
        with self._lock:
            self._known = None
            with self.store.read(stream=True) as s:
                rev = db_revision(s)
                total = int(
                    s.scalar(
                        select(func.count(TemplateRow.id)).where(
                            TemplateRow.generation == self._generation()
                        )
                    )
                    or 0
                )
                # A small gallery is loaded by plain upserts into the live collection: the bulk
                # path (release, seal, index, reload) costs seconds of fixed waiting.
                target: Any = self.index if total >= BULK_FROM else _Plain(self.index)
                n = rebuild(
                    target,
                    stream_templates(s, self.dim, self._generation()),
                    revision=rev,
                    gallery=self.gallery,
                    progress=progress,
                )
            self.drain()
        log.info("%s index of the %s gallery rebuilt: %d templates", self.backend, self.gallery, n)
        return n

    def repair(self) -> str:
        with self._lock:
            applied = self.drain()
            with self.store.read() as s:
                rev = db_revision(s)
            if self.index.revision(gallery=self.gallery) != rev:
                self.rebuild()
                return "rebuilt"
            return f"caught up ({applied} changes applied)" if applied else "current"


def open_sync(
    store: Store,
    config: IndexConfig,
    *,
    directory: Path,
    dim: int,
    gallery: Gallery,
    template_ids: Callable[[], NDArray[np.int64]],
    vectors: Callable[[Sequence[int] | None], Vectors],
    generation: Callable[[], int] = lambda: 1,
    keyring: Callable[[], Keyring | None] = lambda: None,
) -> IndexSync:
    """The :class:`IndexSync` for ``config.backend`` over the workspace's ``store``; it indexes
    template ``generation()`` only (the gallery's active one); ``keyring()`` seals faiss-local's
    files on disk.

    An engine that holds vectors of another dimension for this gallery (the gallery was
    re-templated to a model of another dimension) is a stale cache of the database: a pgvector
    table of another dimension is left to the model that fills it, this one uses the table
    ``<table>_<dim>``, and the gallery's rows in the other table are deleted; a Milvus
    collection of another dimension is dropped and made again. Either is then rebuilt from the
    database at its next use."""
    if config.backend == "faiss-local":
        return LocalSync(
            store, directory, dim, config, gallery, template_ids, vectors, generation, keyring
        )
    if config.backend == "pgvector":
        if not config.uri:
            if store.backend != "postgresql":
                raise VectorIndexError(
                    '[index] backend = "pgvector" keeps the vectors in the workspace\'s '
                    "PostgreSQL database, and this workspace's database is SQLite: set "
                    "[database] url to PostgreSQL, or [index] uri to a postgresql:// URL",
                    code="index.pgvector_needs_postgresql",
                )
            sync: TransactionalSync | OutboxSync = TransactionalSync(
                store, _pgvector(store.engine, dim, config, gallery), dim, gallery, generation
            )
        else:
            pg = _pgvector(config.uri, dim, config, gallery)
            sync = OutboxSync(store, pg, dim, gallery, generation)
    else:
        from fieldid.index.milvus import MilvusIndex

        try:
            index = MilvusIndex(config.uri, dim, config.milvus, galleries=(gallery,))
        except VectorIndexError as e:
            if e.code != "index.dim_mismatch":
                raise
            stale = MilvusIndex(config.uri, dim, config.milvus, galleries=())
            try:
                log.warning("%s: dropped, to be rebuilt at %d-d", e, dim)
                stale.clear(gallery=gallery)
            finally:
                stale.close()
            index = MilvusIndex(config.uri, dim, config.milvus, galleries=(gallery,))
        sync = OutboxSync(store, index, dim, gallery, generation)
    sync.adopt_if_empty()
    return sync


def _pgvector(engine: Any, dim: int, config: IndexConfig, gallery: Gallery) -> Any:
    """The pgvector index of ``dim``-d vectors: the configured table, or ``<table>_<dim>`` when
    the configured one holds vectors of another dimension (see :func:`open_sync`); then the
    gallery's rows in the configured table are deleted."""
    from dataclasses import replace

    from fieldid.index.pgvector import PgvectorIndex

    try:
        return PgvectorIndex(engine, dim, config.pgvector)
    except VectorIndexError as e:
        if e.code != "index.dim_mismatch":
            raise
        old = config.pgvector.table
        index = PgvectorIndex(engine, dim, replace(config.pgvector, table=f"{old}_{dim}"))

        def forget(c: Any) -> None:
            # The gallery is of this dimension now (the database says so): its rows in the
            # table of the other dimension are the old model's, stale; they go.
            for table in (old, f"{old}_meta"):
                c.execute(text(f"DELETE FROM {table} WHERE gallery = :g"), {"g": gallery})

        index._run(forget)
        return index


__all__ = [
    "IndexSync",
    "LocalSync",
    "OutboxSync",
    "TransactionalSync",
    "db_revision",
    "open_sync",
    "stream_templates",
    "template_vectors",
]
