"""Shared by the index tests: realistic unit vectors, sparse ids, brute force."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.template.types import l2_normalise

BACKENDS = ("faiss-local", "pgvector", "milvus")
DIM = 16
Factory = Callable[..., Any]


def unit(n: int, rng: np.random.Generator, dim: int = DIM) -> NDArray[np.float32]:
    """Anisotropic unit vectors (real templates crowd into a cone; isotropic noise does not)."""
    scale = 1.0 / np.arange(1, dim + 1) ** 0.8
    return l2_normalise(rng.standard_normal((n, dim)) * scale + 0.5)


def sparse_ids(n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Large, shuffled ids: nothing may assume ids are row numbers."""
    return rng.choice(10**12, size=n, replace=False).astype(np.int64) + 1


def brute(
    ids: NDArray[np.int64], vecs: NDArray[np.float32], q: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    s = q.astype(np.float64) @ vecs.astype(np.float64).T
    order = np.array([np.lexsort((ids, -row))[:k] for row in s])
    return ids[order], np.take_along_axis(s, order, axis=1)
