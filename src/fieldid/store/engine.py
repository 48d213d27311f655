"""Engines by URL: SQLite for an embedded workspace, PostgreSQL (psycopg 3) as a real server.

``database_url`` says which database a workspace uses: ``FIELDID_DATABASE_URL`` if set, else
``[database] url`` in its ``fieldid.toml``, else ``sqlite:///<workspace>/fieldid.db``.

SQLite: foreign keys on, WAL, a 30 s busy timeout, and transactions begun by fieldid itself: a
unit of work begins ``BEGIN IMMEDIATE`` (it takes the database's write lock before it reads, so
two writers never both read the same audit head), a read begins a plain deferred ``BEGIN``.

PostgreSQL: ``postgresql://`` means psycopg 3; a connection pool (5 + 10 overflow, pre-ping) per
process; every session in UTC.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from fieldid.errors import WorkspaceError

ENV_URL = "FIELDID_DATABASE_URL"
SQLITE_NAME = "fieldid.db"
#: The PostgreSQL schema a workspace's training gallery lives in (its own tables, same database).
TRAINING_SCHEMA = "fieldid_training"
#: Execution option a unit of work sets on its connection: SQLite begins ``BEGIN IMMEDIATE``.
WRITE_OPTION = "fieldid_write"
BUSY_TIMEOUT_MS = 30_000


def default_url(root: Path) -> URL:
    return URL.create("sqlite", database=str(root / SQLITE_NAME))


def parse_url(text: str | URL) -> URL:
    """A URL fieldid accepts: ``sqlite:///path`` or ``postgresql://…`` (psycopg 3)."""
    try:
        url = make_url(text)
    except Exception as e:  # sqlalchemy.exc.ArgumentError, ValueError
        raise WorkspaceError(
            f"{text!r} is not a database URL: write sqlite:///path/to/fieldid.db or "
            "postgresql://user@host:5432/dbname",
            code="database.bad_url",
        ) from e
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise WorkspaceError(
                "an SQLite database must be a file (sqlite:///path/to/fieldid.db)",
                code="database.bad_url",
            )
        return url.set(drivername="sqlite")
    raise WorkspaceError(
        f"unsupported database {backend!r}: fieldid runs on SQLite or PostgreSQL",
        code="database.unsupported",
        backend=backend,
    )


def database_url(root: Path, configured: str | None) -> URL:
    """Which database the workspace at ``root`` uses (see the module docstring)."""
    text = os.environ.get(ENV_URL) or configured
    return parse_url(text) if text else default_url(root)


def is_postgres(url: URL) -> bool:
    return url.get_backend_name() == "postgresql"


def shown(url: URL) -> str:
    """The URL with any password masked, for messages and logs."""
    return url.render_as_string(hide_password=True)


def training_url(url: URL, training_root: Path) -> URL:
    """Where the training gallery of a workspace on ``url`` lives: its own SQLite file in
    ``training_root``, or its own schema of the same PostgreSQL database."""
    if not is_postgres(url):
        return default_url(training_root)
    return url.update_query_dict({"options": f"-csearch_path={TRAINING_SCHEMA}"})


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # fieldid begins every transaction itself (below): the driver must not.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Deleted and overwritten content is zeroed, not left in free pages (a purged probe, a
    # value sealed in place: docs/security.md).
    cur.execute("PRAGMA secure_delete=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: URL | str, *, pool: bool = True) -> Engine:
    """An engine for ``url`` (see the module docstring). ``pool=False``: no pooling (one-shot
    tools, and the child processes of the concurrency tests)."""
    url = parse_url(url)
    if is_postgres(url):
        kwargs: dict[str, Any] = {
            "connect_args": {"application_name": "fieldid", "options": "-c timezone=UTC"},
            "pool_pre_ping": True,
        }
        if "options" in url.query:  # a training schema's search_path
            opts = url.query["options"]
            extra = opts if isinstance(opts, str) else " ".join(opts)
            kwargs["connect_args"]["options"] += " " + extra
            url = url.difference_update_query(["options"])
        if pool:
            kwargs.update(pool_size=5, max_overflow=10)
        else:
            kwargs["poolclass"] = NullPool
        return create_engine(url, **kwargs)
    path = Path(str(url.database))
    if not path.parent.is_dir():
        raise WorkspaceError(
            f"the folder of the SQLite database {path} does not exist",
            code="database.no_folder",
        )
    if not path.exists():
        # Created private (0600), whatever the umask: SQLite gives its WAL and SHM files the
        # database file's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        **({} if pool else {"poolclass": NullPool}),
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine
