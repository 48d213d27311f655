"""The gallery's in-process vector index (moved to :mod:`fieldid.index.faiss_engine`).

Kept so that the gallery and its callers work unchanged until the Gallery depends on the port
(:class:`fieldid.index.port.VectorIndex`); ``FaissIndex`` is the engine behind the
``faiss-local`` adapter (:mod:`fieldid.index.faiss_local`).
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
