"""Rebuild and check an index from the database's templates, whatever the backend.

The logic behind ``fieldid index rebuild`` and ``fieldid index check`` (:mod:`fieldid.cli.index`,
through :mod:`fieldid.gallery.vectors`). Both take the templates as an iterable of
``(id, vector)`` (the database streams them) and the port; neither loads the whole gallery into
memory.

* :func:`rebuild` clears the gallery in the index, loads every template in batches (an engine's
  bulk path when it has one: COPY for pgvector, plain insert for Milvus) between the engine's
  ``bulk_begin`` and ``bulk_end`` (pgvector: the HNSW index is built once after the load of an
  empty table; Milvus: the collection is released during the load, then flushed, indexed,
  loaded) and only then marks the database revision. A rebuild that dies part-way leaves the
  index at no revision, which :func:`check` reports as stale: it is run again, never trusted.
* :func:`check` compares revision and count (the port's ``check``) and, with ``sample``, searches
  a sample of templates for themselves: each must come back as its own top candidate with score
  ~1. That catches a vector missing, stored wrongly or unreachable in the graph, which a count
  cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldid.index.port import OPERATIONAL, Consistency, Gallery, VectorIndex

#: ``progress(done)`` after each batch.
Progress = Callable[[int], None]


class Clearable(VectorIndex, Protocol):
    """What a rebuild needs beyond the port: forget a gallery (every adapter has it)."""

    def clear(self, *, gallery: Gallery = OPERATIONAL) -> None: ...


def batches(
    items: Iterable[tuple[int, ArrayLike]], size: int, dim: int
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
    """Group ``(id, vector)`` pairs into arrays of at most ``size`` rows."""
    ids: list[int] = []
    vecs: list[NDArray[np.float32]] = []
    for i, v in items:
        ids.append(int(i))
        vecs.append(np.asarray(v, dtype=np.float32).reshape(dim))
        if len(ids) >= size:
            yield np.asarray(ids, dtype=np.int64), np.stack(vecs)
            ids, vecs = [], []
    if ids:
        yield np.asarray(ids, dtype=np.int64), np.stack(vecs)


def rebuild(
    index: Clearable,
    items: Iterable[tuple[int, ArrayLike]],
    *,
    revision: str,
    gallery: Gallery = OPERATIONAL,
    batch: int = 10_000,
    progress: Progress | None = None,
    expected: int | None = None,
) -> int:
    """Replace the gallery's contents in ``index`` by ``items``; mark ``revision``. Returns the
    number of templates loaded. ``expected``, the number of ``items`` when known, lets the
    engine choose its bulk path (pgvector: drop the HNSW index and build it once after the
    load even when another gallery keeps rows in the table)."""
    index.clear(gallery=gallery)
    bulk: Any = getattr(index, "insert_new", None)
    begin: Any = getattr(index, "bulk_begin", None)
    if begin is not None:
        begin(gallery=gallery, expected=expected)
    n = 0
    for ids, vecs in batches(items, batch, index.dim):
        if bulk is not None:
            bulk(ids, vecs, gallery=gallery)
        else:
            index.upsert(ids, vecs, gallery=gallery)
        n += len(ids)
        if progress is not None:
            progress(n)
    end: Any = getattr(index, "bulk_end", None)
    if end is not None:
        end(gallery=gallery)
    index.mark(revision, gallery=gallery)
    return n


@dataclass(frozen=True)
class CheckReport:
    consistency: Consistency
    #: Templates searched for themselves, and those not found as their own top candidate.
    sampled: int = 0
    not_found: tuple[int, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.consistency.ok and not self.not_found

    def describe(self) -> str:
        text = self.consistency.describe()
        if self.sampled:
            miss = len(self.not_found)
            text += f"; {self.sampled - miss} of {self.sampled} sampled templates find themselves"
            if miss:
                text += f" (not: {', '.join(map(str, self.not_found[:10]))})"
        return text


def check(
    index: VectorIndex,
    items: Iterable[tuple[int, ArrayLike]],
    *,
    revision: str,
    gallery: Gallery = OPERATIONAL,
    sample: int = 0,
    seed: int = 0,
    min_score: float = 0.999,
) -> CheckReport:
    """Count ``items``, compare with the index (revision and count), and search ``sample`` of
    them (chosen uniformly by reservoir sampling) for themselves."""
    rng = np.random.default_rng(seed)
    n = 0
    chosen_ids: list[int] = []
    chosen_vecs: list[NDArray[np.float32]] = []
    for i, v in items:
        if len(chosen_ids) < sample:
            chosen_ids.append(int(i))
            chosen_vecs.append(np.asarray(v, dtype=np.float32))
        elif sample:
            j = int(rng.integers(0, n + 1))
            if j < sample:
                chosen_ids[j], chosen_vecs[j] = int(i), np.asarray(v, dtype=np.float32)
        n += 1
    verdict = index.check(revision, expected_count=n, gallery=gallery)
    if not chosen_ids or verdict.reason == "unavailable":
        return CheckReport(verdict)
    q = np.stack(chosen_vecs).reshape(len(chosen_ids), index.dim)
    found = index.search(q, 10, gallery=gallery)
    missing: list[int] = []
    for row, tid in enumerate(chosen_ids):
        hit = found.ids[row] == tid
        if not hit.any() or float(found.scores[row][hit][0]) < min_score:
            missing.append(tid)
    return CheckReport(verdict, len(chosen_ids), tuple(missing))


__all__ = ["CheckReport", "Clearable", "Progress", "batches", "check", "rebuild"]
