"""Vector indexes behind one port: faiss in process, pgvector in PostgreSQL, Milvus.

- :mod:`fieldid.index.port`: the protocol (:class:`~fieldid.index.port.VectorIndex`) and its
  contract: upsert, delete, search by gallery, count, ready, revision mark and check.
- :mod:`fieldid.index.faiss_local`, :mod:`fieldid.index.pgvector`, :mod:`fieldid.index.milvus`:
  the adapters; :mod:`fieldid.index.faiss_engine`: the in-process faiss engine itself.
- :mod:`fieldid.index.rerank`: exact re-ranking from stored templates (the same scores on every
  engine); :mod:`fieldid.index.maintenance`: rebuild and check from the database's templates.
- :mod:`fieldid.index.config`: ``[index]`` in ``fieldid.toml``; :func:`open_index` builds the
  configured adapter.

Scale figures and the 300-million sizing model: docs/scale.md.
"""

from __future__ import annotations

import os
from typing import Any

from fieldid.index.config import IndexConfig
from fieldid.index.port import VectorIndex


def open_index(
    config: IndexConfig,
    dim: int,
    *,
    directory: str | os.PathLike[str] | None = None,
    database: Any = None,
) -> VectorIndex:
    """The adapter ``config.backend`` names. ``directory``: where faiss-local keeps its files;
    ``database``: the workspace's SQLAlchemy engine or URL, used by pgvector when
    ``config.uri`` is empty."""
    if config.backend == "faiss-local":
        from fieldid.index.faiss_local import FaissLocalIndex

        return FaissLocalIndex(dim, config.faiss_params(), directory=directory)
    if config.backend == "pgvector":
        from fieldid.index.pgvector import PgvectorIndex

        target = config.uri or database
        if target is None:
            raise ValueError('[index] backend = "pgvector" needs a PostgreSQL database')
        return PgvectorIndex(target, dim, config.pgvector)
    from fieldid.index.milvus import MilvusIndex

    return MilvusIndex(config.uri, dim, config.milvus)


__all__ = ["IndexConfig", "VectorIndex", "open_index"]
