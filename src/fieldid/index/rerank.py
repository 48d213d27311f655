"""Exact re-ranking: the same scores on every engine.

An engine proposes a short list (HNSW, IVF with compressed codes, half precision: its scores are
approximate or rounded differently); the gallery re-scores every candidate from the float32
templates it stores, as the inner product computed in float64, and keeps the best ``k``. Ties
are broken by the smaller id, so two engines that propose the same candidates give the same
answer in the same order, and calibration (score → false-positive rate) means the same thing
whichever engine is configured.

:func:`search_exact` is the whole path the gallery calls: ask the index for
``shortlist(k)`` candidates, look their templates up, re-rank.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldid.index.port import (
    OPERATIONAL,
    PAD_SCORE,
    Gallery,
    Neighbours,
    VectorIndex,
    check_k,
)

#: Looks templates up by id: returns the ids found (a subset, any order) and their vectors.
TemplateLookup = Callable[[NDArray[np.int64]], tuple[NDArray[np.int64], NDArray[np.float32]]]

#: Candidates asked of the engine per result kept: ``max(SHORTLIST_FACTOR * k, SHORTLIST_MIN)``.
SHORTLIST_FACTOR = 4
SHORTLIST_MIN = 100


def shortlist(k: int, factor: int = SHORTLIST_FACTOR, minimum: int = SHORTLIST_MIN) -> int:
    """How many candidates to ask an approximate engine for when ``k`` results are wanted."""
    return max(check_k(k) * max(1, factor), minimum, 1)


def rerank(
    queries: ArrayLike,
    candidates: ArrayLike,
    lookup: TemplateLookup,
    k: int,
) -> Neighbours:
    """Re-score candidate ids exactly and keep the best ``k`` per query.

    ``queries`` (q, dim) or (dim,); ``candidates`` (q, c) ids, ``-1`` for padding (ignored);
    ``lookup`` returns stored templates. Ids the lookup does not return (deleted since the
    index saw them) are dropped. Scores are float64 inner products stored as float32; ties go to
    the smaller id. Padding: id ``-1``, score ``-inf``.
    """
    k = check_k(k)
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    cand = np.asarray(candidates, dtype=np.int64)
    if cand.ndim == 1:
        cand = cand[None, :]
    if cand.shape[0] != q.shape[0]:
        raise ValueError(f"{cand.shape[0]} candidate rows for {q.shape[0]} queries")
    out = Neighbours.empty(len(q), k)
    wanted = np.unique(cand[cand >= 0])
    if len(wanted) == 0:
        return out
    found, vecs = lookup(wanted)
    found = np.asarray(found, dtype=np.int64)
    vecs = np.asarray(vecs, dtype=np.float32)
    if len(found) == 0:
        return out
    if vecs.shape != (len(found), q.shape[1]):
        raise ValueError(f"lookup returned vectors of shape {vecs.shape}, wanted (n, {q.shape[1]})")
    order = np.argsort(found, kind="stable")
    found, vecs = found[order], vecs[order]
    for row in range(len(q)):
        c = np.unique(cand[row][cand[row] >= 0])  # sorted, duplicates removed
        pos = np.searchsorted(found, c)
        pos = np.minimum(pos, len(found) - 1)
        present = found[pos] == c
        c, pos = c[present], pos[present]
        if len(c) == 0:
            continue
        s = vecs[pos].astype(np.float64) @ q[row].astype(np.float64)
        best = np.lexsort((c, -s))[:k]  # score descending, then id ascending
        n = len(best)
        out.ids[row, :n] = c[best]
        out.scores[row, :n] = s[best].astype(np.float32)
    return out


def search_exact(
    index: VectorIndex,
    queries: ArrayLike,
    k: int,
    lookup: TemplateLookup,
    *,
    gallery: Gallery = OPERATIONAL,
    candidates: int | None = None,
) -> Neighbours:
    """Search ``index`` for ``candidates`` (default :func:`shortlist` of ``k``) and re-rank them
    exactly from ``lookup``'s stored templates: the search the gallery runs on every backend."""
    k = check_k(k)
    want = shortlist(k) if candidates is None else max(check_k(candidates), k)
    proposed = index.search(queries, want, gallery=gallery)
    return rerank(queries, proposed.ids, lookup, k)


def array_lookup(ids: ArrayLike, vectors: ArrayLike) -> TemplateLookup:
    """A :data:`TemplateLookup` over arrays held in memory (tests, benchmarks, rebuilds)."""
    id_arr = np.asarray(ids, dtype=np.int64)
    vec = np.asarray(vectors, dtype=np.float32)
    order = np.argsort(id_arr, kind="stable")
    sid, svec = id_arr[order], vec[order]

    def lookup(wanted: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        if len(sid) == 0:
            return sid[:0], svec[:0]
        pos = np.minimum(np.searchsorted(sid, wanted), len(sid) - 1)
        hit = sid[pos] == wanted
        return sid[pos[hit]], svec[pos[hit]]

    return lookup


__all__ = [
    "PAD_SCORE",
    "SHORTLIST_FACTOR",
    "SHORTLIST_MIN",
    "TemplateLookup",
    "array_lookup",
    "rerank",
    "search_exact",
    "shortlist",
]
