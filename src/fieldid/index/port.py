"""The vector-index port: what the gallery needs from a nearest-neighbour engine.

The database is the system of record for templates; an index is a derived copy that answers
"which stored templates are nearest this probe". Three adapters implement the port:
``faiss-local`` (in-process, persisted to files, :mod:`fieldid.index.faiss_local`), ``pgvector``
(a table and an HNSW index in the workspace's PostgreSQL database, :mod:`fieldid.index.pgvector`)
and ``milvus`` (a collection per gallery on a Milvus server, :mod:`fieldid.index.milvus`).

Contract, for every adapter:

* **Ids** are the database's non-negative int64 template ids. **Vectors** are L2-normalised
  float32 rows of the index's ``dim``; similarity is the inner product (cosine).
* **Galleries.** Every call names the gallery it works on: ``"operational"`` (the real one) or
  ``"training"`` (synthetic people for officer training). A search of one gallery never returns
  an id of another, whatever the engine.
* ``upsert(ids, vectors)`` inserts or replaces; ``delete(ids)`` removes, unknown ids ignored.
  Both are **idempotent**: applying the same call twice leaves the same state, so a caller that
  does not know whether a call reached the engine (a crash, a timeout, an outbox drainer
  replaying) simply repeats it. Calls for one gallery must be applied in the order they were
  made (an upsert then a delete of the same id is not the same as the reverse).
* ``search(queries, k)`` returns :class:`Neighbours`, best first, padded with id ``-1`` and score
  ``-inf`` when the gallery holds fewer than ``k``. Scores are the engine's inner products;
  candidates are approximate on every engine but an exact one. Whatever the engine, the gallery
  re-scores the short list exactly from its stored templates before calibration is applied
  (:func:`fieldid.index.rerank.rerank`), so scores mean the same thing on every backend.
* ``count()`` is the number of templates in the gallery; ``ready()`` says whether the engine
  answers now (a remote one may be down: the caller reports it rather than searching nothing).
* **Revision.** The database moves a revision token in every transaction that changes
  templates. ``mark(revision)`` records the revision the index now reflects (after the changes
  of that revision were applied); ``check(revision, expected_count)`` compares it and the count
  with the database's and says whether the index can be trusted or must be caught up or rebuilt
  (:class:`Consistency`). ``faiss-local`` persists its files at ``mark``; ``pgvector`` writes the
  mark in the caller's transaction, so it can never disagree with the records; ``milvus`` keeps
  it in a small metadata collection beside the galleries.

There is no ``save(directory)`` here: persistence belongs to each adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldid.errors import FieldidError

Gallery = Literal["operational", "training"]
OPERATIONAL: Gallery = "operational"
TRAINING: Gallery = "training"
GALLERIES: tuple[Gallery, ...] = (OPERATIONAL, TRAINING)
Backend = Literal["faiss-local", "pgvector", "milvus"]
BACKENDS: tuple[Backend, ...] = ("faiss-local", "pgvector", "milvus")

#: Score in padding slots (id ``-1``) when fewer than ``k`` templates exist.
PAD_SCORE = -np.inf
#: Largest allowed deviation of a vector's squared norm from 1.
NORM_TOLERANCE = 2e-3


class VectorIndexError(FieldidError):
    """A vector index refused a call or could not be reached. Codes start with ``index.``."""

    code = "index.error"


class IndexUnavailable(VectorIndexError):
    """The engine does not answer (server down, not loaded, missing extension)."""

    code = "index.unavailable"


@dataclass(frozen=True)
class Neighbours:
    """Result of a search: ``ids`` (q, k) int64 and ``scores`` (q, k) float32, best first."""

    ids: NDArray[np.int64]
    scores: NDArray[np.float32]

    @classmethod
    def empty(cls, nq: int, k: int) -> Neighbours:
        return cls(
            np.full((nq, k), -1, dtype=np.int64), np.full((nq, k), PAD_SCORE, dtype=np.float32)
        )


@dataclass(frozen=True)
class Consistency:
    """What :meth:`VectorIndex.check` found."""

    #: True when the index reflects the database revision (and count, when one was given).
    ok: bool
    #: ``ok``, ``revision`` (the index reflects another revision or none), ``count`` (same
    #: revision, different number of templates: a partial rebuild or a lost write), or
    #: ``unavailable`` (the engine does not answer).
    reason: Literal["ok", "revision", "count", "unavailable"]
    backend: str
    gallery: str
    expected_revision: str
    index_revision: str | None
    expected_count: int | None
    index_count: int | None

    def describe(self) -> str:
        if self.ok:
            return f"{self.backend} index of the {self.gallery} gallery is current"
        if self.reason == "unavailable":
            return f"{self.backend} index of the {self.gallery} gallery does not answer"
        if self.reason == "revision":
            return (
                f"{self.backend} index of the {self.gallery} gallery is at revision "
                f"{self.index_revision!r}, the database at {self.expected_revision!r}"
            )
        return (
            f"{self.backend} index of the {self.gallery} gallery holds {self.index_count} "
            f"templates, the database {self.expected_count}"
        )


@runtime_checkable
class VectorIndex(Protocol):
    """A nearest-neighbour index over one model's templates, by gallery. See the module doc."""

    #: ``"faiss-local"``, ``"pgvector"`` or ``"milvus"``.
    backend: str

    @property
    def dim(self) -> int: ...

    def upsert(self, ids: ArrayLike, vectors: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        """Insert or replace templates (idempotent)."""
        ...

    def delete(self, ids: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        """Remove templates; ids not present are ignored (idempotent)."""
        ...

    def search(self, queries: ArrayLike, k: int, *, gallery: Gallery = OPERATIONAL) -> Neighbours:
        """Top-``k`` by inner product for a (dim,) or (q, dim) query."""
        ...

    def count(self, *, gallery: Gallery = OPERATIONAL) -> int: ...

    def ready(self) -> bool:
        """True when the engine answers searches now."""
        ...

    def revision(self, *, gallery: Gallery = OPERATIONAL) -> str | None:
        """The database revision the index last recorded with :meth:`mark` (None: never)."""
        ...

    def mark(self, revision: str, *, gallery: Gallery = OPERATIONAL) -> None:
        """Record that the index now reflects database ``revision`` (the adapter persists)."""
        ...

    def check(
        self,
        revision: str,
        *,
        expected_count: int | None = None,
        gallery: Gallery = OPERATIONAL,
    ) -> Consistency:
        """Compare the index with the database's revision (and template count)."""
        ...


# ---------------------------------------------------------------------- shared argument checks


def as_ids(ids: ArrayLike) -> NDArray[np.int64]:
    """Ids as a contiguous 1-d int64 array; refuses negatives (``-1`` marks padding)."""
    a = np.asarray(ids)
    if a.ndim == 0:
        a = a[None]
    if a.ndim != 1:
        raise ValueError("ids must be one-dimensional")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError("ids must be integers")
    a = a.astype(np.int64, copy=False)
    if a.size and (a < 0).any():
        raise ValueError("ids must be non-negative (-1 marks padding)")
    return np.ascontiguousarray(a)


def as_vectors(v: ArrayLike, dim: int) -> NDArray[np.float32]:
    """Rows of width ``dim`` as contiguous float32 ((dim,) becomes (1, dim))."""
    a = np.asarray(v, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {a.shape}")
    return np.ascontiguousarray(a)


def checked_batch(
    ids: ArrayLike, vectors: ArrayLike, dim: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Validate an upsert batch: same length, finite, unit norm, no repeated id."""
    id_arr = as_ids(ids)
    vec = as_vectors(vectors, dim) if len(id_arr) else np.empty((0, dim), dtype=np.float32)
    if len(id_arr) != len(vec):
        raise ValueError(f"{len(id_arr)} ids for {len(vec)} vectors")
    if len(id_arr) == 0:
        return id_arr, vec
    if not np.isfinite(vec).all():
        raise ValueError("vectors contain NaN or infinity")
    if np.abs(np.einsum("ij,ij->i", vec, vec) - 1.0).max() > NORM_TOLERANCE:
        raise ValueError("vectors must be L2-normalised (see template.types.l2_normalise)")
    if len(np.unique(id_arr)) != len(id_arr):
        raise ValueError("duplicate ids in one upsert")
    return id_arr, vec


def check_gallery(gallery: str) -> Gallery:
    if gallery not in GALLERIES:
        raise ValueError(f"unknown gallery {gallery!r}: one of {', '.join(GALLERIES)}")
    return gallery  # type: ignore[return-value]


def check_k(k: int) -> int:
    if int(k) < 1:
        raise ValueError("k must be >= 1")
    return int(k)


def consistency(
    backend: str,
    gallery: str,
    expected_revision: str,
    index_revision: str | None,
    expected_count: int | None,
    index_count: int | None,
) -> Consistency:
    """The verdict shared by every adapter's :meth:`VectorIndex.check`."""
    if index_revision != expected_revision:
        reason: Literal["ok", "revision", "count"] = "revision"
    elif expected_count is not None and index_count != expected_count:
        reason = "count"
    else:
        reason = "ok"
    return Consistency(
        ok=reason == "ok",
        reason=reason,
        backend=backend,
        gallery=gallery,
        expected_revision=expected_revision,
        index_revision=index_revision,
        expected_count=expected_count,
        index_count=index_count,
    )


def unavailable(
    backend: str, gallery: str, expected_revision: str, expected_count: int | None
) -> Consistency:
    return Consistency(
        ok=False,
        reason="unavailable",
        backend=backend,
        gallery=gallery,
        expected_revision=expected_revision,
        index_revision=None,
        expected_count=expected_count,
        index_count=None,
    )


__all__ = [
    "BACKENDS",
    "GALLERIES",
    "OPERATIONAL",
    "PAD_SCORE",
    "TRAINING",
    "Backend",
    "Consistency",
    "Gallery",
    "IndexUnavailable",
    "Neighbours",
    "VectorIndex",
    "VectorIndexError",
    "as_ids",
    "as_vectors",
    "check_gallery",
    "check_k",
    "checked_batch",
    "consistency",
    "unavailable",
]
