"""The gallery's in-process vector index (moved to :mod:`fieldid.index.faiss_engine`).

Kept for the faiss engine's own tests and benchmarks. The Gallery itself depends on the port
(:class:`fieldid.index.port.VectorIndex`, :mod:`fieldid.gallery.vectors`); ``FaissIndex`` is the
engine behind the ``faiss-local`` adapter (:mod:`fieldid.index.faiss_local`).
"""

from __future__ import annotations

from fieldid.index.faiss_engine import (
    PAD_SCORE,
    FaissIndex,
    IndexParams,
    IndexStale,
    InProcessIndex,
    Mode,
)

#: The gallery's name for the in-process protocol (before the port).
VectorIndex = InProcessIndex

__all__ = [
    "PAD_SCORE",
    "FaissIndex",
    "InProcessIndex",
    "IndexParams",
    "IndexStale",
    "Mode",
    "VectorIndex",
]
