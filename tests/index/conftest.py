"""Fixtures for the vector-index adapters: one PostgreSQL (the storage tests' own, from
tests/conftest.py) and one Milvus per test session.

The Milvus server (``milvus_uri``) is tests/conftest.py's, shared with the gallery tests that
run on every index backend. ``index_factory(backend)`` makes a fresh, empty adapter in its own
namespace (a faiss directory, a pgvector table, a Milvus collection prefix) on the session's
server, and removes it afterwards.
A backend whose server cannot start here is skipped with the reason; CI installs and starts both.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fieldid.index.servers import STARTS


@pytest.fixture(scope="session")
def pg_url(pg_server: Any) -> str:
    """A database of its own on the session's one PostgreSQL server (tests/conftest.py)."""
    url: str = pg_server.url(pg_server.empty_database())
    return url


IndexFactory = Callable[..., Any]


@pytest.fixture
def index_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexFactory]:
    """``make(backend, dim=16, namespace=None, **params)``: an adapter; the same namespace
    twice reopens the same stored index (persistence tests)."""
    made: list[tuple[str, Any, str]] = []

    def make(backend: str, dim: int = 16, namespace: str | None = None, **params: Any) -> Any:
        ns = namespace or f"t{uuid.uuid4().hex[:10]}"
        if backend == "faiss-local":
            from fieldid.index.faiss_engine import IndexParams
            from fieldid.index.faiss_local import FaissLocalIndex

            index: Any = FaissLocalIndex(dim, IndexParams(**params), directory=tmp_path / ns)
        elif backend == "pgvector":
            from fieldid.index.pgvector import PgvectorIndex, PgvectorParams

            url = request.getfixturevalue("pg_url")
            index = PgvectorIndex(url, dim, PgvectorParams(table=ns, **params))
        elif backend == "milvus":
            from fieldid.index.milvus import MilvusIndex, MilvusParams

            uri = request.getfixturevalue("milvus_uri")
            index = MilvusIndex(uri, dim, MilvusParams(collection_prefix=ns, **params))
        else:  # pragma: no cover
            raise ValueError(backend)
        made.append((backend, index, ns))
        return index

    yield make
    dropped: set[tuple[str, str]] = set()
    for backend, index, ns in reversed(made):
        if (backend, ns) in dropped:
            continue
        dropped.add((backend, ns))
        with contextlib.suppress(Exception):
            _drop(backend, index, ns)


def _drop(backend: str, index: Any, ns: str) -> None:
    if backend == "pgvector":
        from sqlalchemy import text

        with index.engine.begin() as c:
            c.execute(text(f"DROP TABLE IF EXISTS {ns}, {ns}_meta"))
        index.close()
    elif backend == "milvus":
        from pymilvus import utility

        for name in (f"{ns}_operational", f"{ns}_training", f"{ns}_meta"):
            if utility.has_collection(name, using=index._alias):
                utility.drop_collection(name, using=index._alias)
        index.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STARTS:
        told = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(STARTS.items()))
        terminalreporter.write_line(f"index test servers started: {told}")
