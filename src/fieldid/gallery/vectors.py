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

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
#: Template ids are locked for a drain by bucket (id modulo this; PostgreSQL's lock table
#: holds a few thousand locks, so one lock per template of a 5,000-row batch would not fit).
DRAIN_BUCKETS = 64
#: Advisory-lock namespace of the outbox drains (two int4 keys: namespace + gallery, key).
_LOCK_NAMESPACE = 0x66696400  # "fid\0"
_REBUILD_KEY = -1
_MARK_KEY = -2
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
            total = s.scalar(
                select(func.count(TemplateRow.id)).where(
                    TemplateRow.generation == self._generation()
                )
            )
            n = rebuild(
                self._bound(uow),
                stream_templates(s, self.dim, self._generation()),
                revision=rev,
                gallery=self.gallery,
                progress=progress,
                expected=int(total or 0),
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
        holds now, or deletes it from the engine when the database no longer holds it.

        Several processes may drain at once (every worker drains after its own commits). Each
        batch is one transaction that *claims* its rows and holds them until the engine has
        acknowledged what it applied; only then are the rows deleted (a drainer that dies
        leaves them for the next). On PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP
        LOCKED`` (drainers take disjoint rows) plus a transaction lock per bucket of template
        ids (:data:`DRAIN_BUCKETS`, taken in ascending order, so never a deadlock): two
        drainers never apply the same template at once, and the template's state is read from
        the database only once its lock is held, so the later drainer applies the later state
        and an older upsert can never land after a newer delete. On SQLite the batch's
        drainers take turns by a lock file beside the database: each reads its rows and their
        templates' state after the one before it has applied, and writers are never held
        while the engine is called. The revision is marked only once the
        outbox is empty (rows another drainer holds are waited for), under a lock of its own,
        so that marks never go backwards."""
        applied = 0
        with self._lock:
            while True:
                n = self._drain_batch()
                if n is None:
                    return applied
                applied += n
                if n and progress is not None:
                    progress(applied)

    def _drain_batch(self) -> int | None:
        """One claimed batch: the rows applied (0: rows other drainers hold, waited for), or
        None when there is nothing to drain now (the outbox is empty and the revision marked,
        or a rebuild is under way and will drain at its end)."""
        if self.store.backend == "postgresql":
            return self._drain_batch_pg()
        with _flock(self._lock_path("rebuild"), shared=True, wait=False) as free:
            if not free:
                return None  # a rebuild is under way: it drains what is left at its end
            with _flock(self._lock_path("drain")):
                # One drainer at a time: it reads the rows and the templates' state now, after
                # every drainer before it applied theirs, and writers are not held meanwhile.
                # Its own session (``stream``), never a use's shared read session, whose
                # snapshot may have begun before the drainer before it committed.
                with self.store.read(stream=True) as s:
                    rows = self._claim(s, skip_locked=False)
                    if not rows:
                        return None if self._mark_if_empty(s) else 0
                    wanted = sorted({int(t) for _, t in rows})
                    ids, vecs = template_vectors(s, wanted, self.dim, self._generation())
                self._apply(wanted, ids, vecs)
                with self.store.unit_of_work() as uow:
                    self._forget(uow.session, rows)
                return len(rows)

    def _drain_batch_pg(self) -> int | None:
        with self.store.unit_of_work() as uow:
            s = uow.session
            if not self._try_lock(s, _REBUILD_KEY, shared=True):
                return None  # a rebuild is under way: it drains what is left at its end
            rows = self._claim(s, skip_locked=True)
            if not rows:
                self._lock_key(s, _MARK_KEY)
                rev = db_revision(s)
                held = s.execute(
                    select(IndexOutbox.seq).order_by(IndexOutbox.seq).limit(1).with_for_update()
                ).first()  # waits for the drainer holding it; None once it committed
                if held is not None:
                    return 0
                return None if self._mark_if_empty(s, rev) else 0
            wanted = sorted({int(t) for _, t in rows})
            for bucket in sorted({t % DRAIN_BUCKETS for t in wanted}):
                self._lock_key(s, bucket)
            # Read after the locks: each statement sees what was committed when it began, so
            # this is the templates' state after every drainer of these templates before us.
            ids, vecs = template_vectors(s, wanted, self.dim, self._generation())
            self._apply(wanted, ids, vecs)
            self._forget(s, rows)  # committed with the claim, after the engine acknowledged
            return len(rows)

    @staticmethod
    def _claim(s: Session, *, skip_locked: bool) -> list[Any]:
        q = select(IndexOutbox.seq, IndexOutbox.template_id).order_by(IndexOutbox.seq)
        q = q.limit(DRAIN_BATCH)
        if skip_locked:
            q = q.with_for_update(skip_locked=True)
        return list(s.execute(q).all())

    def _apply(self, wanted: list[int], ids: NDArray[np.int64], vecs: NDArray[np.float32]) -> None:
        """Upsert what the database holds of ``wanted``; delete the rest from the engine."""
        gone = np.setdiff1d(np.asarray(wanted, dtype=np.int64), ids)
        if len(ids):
            self.index.upsert(ids, vecs, gallery=self.gallery)
        if len(gone):
            self.index.delete(gone, gallery=self.gallery)

    @staticmethod
    def _forget(s: Session, rows: list[Any]) -> None:
        seqs = [int(q) for q, _ in rows]
        for start in range(0, len(seqs), 1_000):
            part = seqs[start : start + 1_000]
            s.execute(delete(IndexOutbox).where(IndexOutbox.seq.in_(part)))

    def _mark_if_empty(self, s: Session, rev: str | None = None) -> bool:
        """Mark the engine at the database's revision if the outbox is empty (the caller holds
        the lock that orders marks). The revision is read first, then the emptiness: every
        change up to it committed before it was read, so an empty outbox afterwards means all
        of them were applied."""
        if rev is None:
            rev = db_revision(s)
        if s.scalar(select(func.count()).select_from(IndexOutbox)):
            return False  # rows committed meanwhile: the next batch takes them
        # Only an engine that reflected some revision of this gallery can be marked: one that
        # never did (a new collection) lacks the templates from before the outbox; it is
        # rebuilt.
        have = self.index.revision(gallery=self.gallery)
        if have is not None:
            if have != rev:
                self.index.mark(rev, gallery=self.gallery)
            self._known = rev
        return True

    def _lock_path(self, what: str) -> Path:
        """A lock file beside the SQLite database, per gallery (drains, rebuilds)."""
        db = Path(str(self.store.engine.url.database))
        return db.with_name(f"{db.name}.index-{self.gallery}.{what}.lock")

    def _key(self, key: int) -> tuple[int, int]:
        return (_LOCK_NAMESPACE + (1 if self.gallery == "training" else 0), key)

    def _lock_key(self, s: Session, key: int) -> None:
        ns, k = self._key(key)
        s.execute(text("SELECT pg_advisory_xact_lock(:ns, :k)"), {"ns": ns, "k": k})

    def _try_lock(self, s: Session, key: int, *, shared: bool) -> bool:
        ns, k = self._key(key)
        fn = "pg_try_advisory_xact_lock_shared" if shared else "pg_try_advisory_xact_lock"
        return bool(s.scalar(text(f"SELECT {fn}(:ns, :k)"), {"ns": ns, "k": k}))

    def current(self, revision: str) -> VectorIndex:
        with self._lock:
            if self._known == revision:
                self._source = "memory"
                return self.index
            applied = self.drain()
            if self.index.revision(gallery=self.gallery) is None:
                self.rebuild(if_stale=True)
                self._source = "rebuilt"
            else:
                self._source = "caught_up" if applied else "disk"
            return self.index

    def rebuild(self, progress: Progress | None = None, *, if_stale: bool = False) -> int:
        """Reload the engine from a snapshot of the database's templates, mark that revision,
        then drain what was committed since (outbox rows already in the snapshot are replayed
        harmlessly). ``if_stale``: only when the engine reflects no revision of the gallery
        once this process holds the rebuild lock (another process may have just rebuilt it).

        No drain may apply a change between the clear and the snapshot's load (an older
        snapshot would overwrite it): the rebuild holds an exclusive lock that every drain
        batch tries to share (PostgreSQL: an advisory lock; SQLite: a lock file beside the
        database), and a drain finding it taken leaves its rows to the rebuild's final
        drain."""
        with self._lock, self._rebuilding() as s:
            self._known = None
            if if_stale and self.index.revision(gallery=self.gallery) is not None:
                return 0
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
                expected=total,
            )
        with self._lock:
            self.drain()
        log.info("%s index of the %s gallery rebuilt: %d templates", self.backend, self.gallery, n)
        return n

    @contextmanager
    def _rebuilding(self) -> Iterator[Session]:
        """A session to read the rebuild's snapshot in, holding the rebuild lock."""
        if self.store.backend != "postgresql":
            with _flock(self._lock_path("rebuild")), self.store.read(stream=True) as s:
                yield s
            return
        ns, k = self._key(_REBUILD_KEY)
        with self.store.engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:ns, :k)"), {"ns": ns, "k": k})
            lock.commit()
            try:
                with self.store.read(stream=True) as s:
                    yield s
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:ns, :k)"), {"ns": ns, "k": k})
                lock.commit()

    def repair(self) -> str:
        with self._lock:
            applied = self.drain()
            with self.store.read() as s:
                rev = db_revision(s)
            if self.index.revision(gallery=self.gallery) != rev:
                self.rebuild()
                return "rebuilt"
            return f"caught up ({applied} changes applied)" if applied else "current"


@contextmanager
def _flock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """An advisory lock on ``path`` (made if missing) for the block; yields whether it was
    taken (always, when ``wait``). Released when the block ends, or when the process dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


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
