"""``[index]`` in ``fieldid.toml``: which engine holds the gallery's vectors, and its parameters.

.. code-block:: toml

    [index]
    backend = "faiss-local"   # faiss-local | pgvector | milvus
    uri = ""                  # milvus: "http://127.0.0.1:19530"; pgvector: "" = the workspace's
                              #   PostgreSQL database (or a postgresql:// URL of another)
    exact_below = 50000       # faiss-local: exact search up to this many templates
    candidates = 100          # short list asked of the engine before the exact re-rank

    [index.pgvector]
    m = 32
    ef_construction = 128
    ef_search = 200
    iterative_scan = "relaxed_order"

    [index.milvus]
    index_type = "HNSW"       # HNSW | IVF_FLAT | IVF_SQ8 | IVF_PQ
    m = 32
    ef_construction = 128
    ef = 256

Unknown keys are refused with their name, so a typo never silently leaves a default in force.
The Workspace builds the configured backend for its gallery (:mod:`fieldid.gallery.vectors`);
``fieldid index rebuild --backend …`` moves a gallery and rewrites ``backend`` and ``uri``
(:func:`with_index_settings`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fieldid.index.faiss_engine import IndexParams
from fieldid.index.milvus import MilvusParams
from fieldid.index.pgvector import PgvectorParams
from fieldid.index.port import BACKENDS, Backend


def _section(cls: Any, d: dict[str, Any], name: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"[{name}] must be a table")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"[{name}] has unknown settings: {', '.join(sorted(unknown))}")
    return cls(**d)


@dataclass(frozen=True)
class IndexConfig:
    backend: Backend = "faiss-local"
    #: Milvus server address, or a PostgreSQL URL for pgvector ("" = the workspace database).
    uri: str = ""
    exact_below: int = 50_000
    #: Candidates asked of the engine per search before the exact re-rank (at least k).
    candidates: int = 100
    pgvector: PgvectorParams = field(default_factory=PgvectorParams)
    milvus: MilvusParams = field(default_factory=MilvusParams)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"[index] backend must be one of {', '.join(BACKENDS)}")
        if self.backend == "milvus" and not self.uri:
            raise ValueError('[index] backend = "milvus" needs uri = "http://host:19530"')
        if (
            self.backend == "pgvector"
            and self.uri
            and not self.uri.startswith(("postgresql://", "postgresql+psycopg://", "postgres://"))
        ):
            raise ValueError("[index] uri for pgvector must be a postgresql:// URL or empty")
        if self.exact_below < 0 or self.candidates < 1:
            raise ValueError("[index] exact_below must be >= 0 and candidates >= 1")

    def faiss_params(self) -> IndexParams:
        return IndexParams(exact_threshold=self.exact_below)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IndexConfig:
        if not isinstance(d, dict):
            raise ValueError("[index] must be a table")
        top = {k: v for k, v in d.items() if k not in ("pgvector", "milvus")}
        known = {f.name for f in dataclasses.fields(cls)} - {"pgvector", "milvus"}
        unknown = set(top) - known
        if unknown:
            raise ValueError(f"[index] has unknown settings: {', '.join(sorted(unknown))}")
        return cls(
            backend=str(top.get("backend", "faiss-local")),  # type: ignore[arg-type]
            uri=str(top.get("uri", "")),
            exact_below=int(top.get("exact_below", 50_000)),
            candidates=int(top.get("candidates", 100)),
            pgvector=_section(PgvectorParams, d.get("pgvector", {}), "index.pgvector"),
            milvus=_section(MilvusParams, d.get("milvus", {}), "index.milvus"),
        )


def with_index_settings(toml: str, **settings: str) -> str:
    """``toml`` (a fieldid.toml's text) with top-level ``[index]`` settings set (``backend``,
    ``uri``): each replaces its line in ``[index]``, or is added to the section (made if absent).
    Other lines, comments and sections are kept as they are."""
    lines = toml.splitlines()
    values = {
        k: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for k, v in settings.items()
    }
    section = None
    start: int | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.split("#")[0].strip()
            if section == "[index]":
                start = i
        elif section == "[index]":
            key = stripped.split("=")[0].strip()
            if key in values:
                comment = line.split("#", 1)[1] if "#" in line.split("=", 1)[-1] else ""
                lines[i] = f"{key} = {values.pop(key)}" + (f"  #{comment}" if comment else "")
    if values:
        added = [f"{k} = {v}" for k, v in values.items()]
        if start is None:
            lines += ["", "[index]", *added]
        else:
            lines[start + 1 : start + 1] = added
    return "\n".join(lines) + "\n"


DEFAULT_INDEX_TOML = """\
[index]
backend = "faiss-local"        # faiss-local (in-process, the default) | pgvector | milvus
# milvus: the server, e.g. "http://127.0.0.1:19530"; pgvector: "" = this workspace's PostgreSQL
# database (or a postgresql:// URL of another).
uri = ""
exact_below = 50000            # faiss-local: exact search up to this many templates
candidates = 100               # short list asked of the engine, then re-ranked exactly

# [index.pgvector]             # HNSW in PostgreSQL (inner product)
# m = 32
# ef_construction = 128
# ef_search = 200
# iterative_scan = "relaxed_order"   # keeps recall when searches filter by gallery
# max_scan_tuples = 20000
# storage = "vector"           # or "halfvec": half the memory, scores re-ranked exactly

# [index.milvus]               # one collection per gallery
# index_type = "HNSW"          # HNSW | IVF_FLAT | IVF_SQ8 | IVF_PQ
# m = 32
# ef_construction = 128
# ef = 256
# nlist = 1024                 # IVF
# nprobe = 64
# consistency = "Session"
"""


__all__ = ["DEFAULT_INDEX_TOML", "IndexConfig", "with_index_settings"]
