"""Engines by URL: SQLite for an embedded workspace, PostgreSQL (psycopg 3) as a real server.

``database_url`` says which database a workspace uses: ``FIELDID_DATABASE_URL`` if set, else
``[database] url`` in its ``fieldid.toml``, else ``sqlite:///<workspace>/fieldid.db``.

SQLite: foreign keys on, WAL, a 30 s busy timeout, and transactions begun by fieldid itself: a
unit of work begins ``BEGIN IMMEDIATE`` (it takes the database's write lock before it reads, so
two writers never both read the same audit head), a read begins a plain deferred ``BEGIN``.

PostgreSQL: ``postgresql://`` means psycopg 3; a connection pool (5 + 10 overflow) per process;
every session in UTC. A connection taken from the pool after more than ``PING_AFTER_IDLE_S``
idle is pinged first (one left by a restarted server is replaced, not handed out); one in steady
use is not, which saves a round trip per check-out. Reads (``Store.read``) run in autocommit
(``read_engine``): under READ COMMITTED every statement sees what was committed when it began,
in a transaction or not, so a read needs no ``BEGIN`` and no ``ROLLBACK``; a write sent
through a read session is refused (``before_cursor_execute``), never committed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from fieldid.errors import WorkspaceError

ENV_URL = "FIELDID_DATABASE_URL"
SQLITE_NAME = "fieldid.db"
#: The PostgreSQL schema a workspace's training gallery lives in (its own tables, same database).
TRAINING_SCHEMA = "fieldid_training"
#: Execution option a unit of work sets on its connection: SQLite begins ``BEGIN IMMEDIATE``.
WRITE_OPTION = "fieldid_write"
#: Execution option of the reads' engine (PostgreSQL, autocommit): nothing but reads are sent.
READ_OPTION = "fieldid_read"
#: A pooled PostgreSQL connection idle longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 10.0
_READS = ("SELECT", "WITH", "SHOW", "VALUES")
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


def _checked_in(_dbapi_conn: Any, record: Any) -> None:
    record.info["fieldid_idle_since"] = time.monotonic()


def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat idle in the pool (the server may have gone away meanwhile);
    one that was just used is handed out as it is."""
    since = record.info.get("fieldid_idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
        return
    try:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("SELECT 1")
        finally:
            cur.close()
        if not dbapi_conn.autocommit:
            dbapi_conn.rollback()
    except Exception as e:  # the pool replaces the connection and tries again
        raise exc.DisconnectionError(f"a pooled connection failed its ping: {e}") from e


def _reads_only(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    if conn.get_execution_options().get(READ_OPTION) and not statement.lstrip().upper().startswith(
        _READS
    ):
        raise RuntimeError(
            "a write was sent through a read session (Store.read): writes go through a unit of "
            f"work. Statement: {statement[:80]}"
        )


def read_engine(engine: Engine) -> Engine:
    """The engine reads go through: on PostgreSQL the same pool in autocommit, refusing anything
    but reads; on SQLite the engine itself (a read there is a deferred transaction: one
    snapshot, no lock, no round trip)."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT", **{READ_OPTION: True})


def make_engine(url: URL | str, *, pool: bool = True) -> Engine:
    """An engine for ``url`` (see the module docstring). ``pool=False``: no pooling (one-shot
    tools, and the child processes of the concurrency tests)."""
    url = parse_url(url)
    if is_postgres(url):
        kwargs: dict[str, Any] = {
            "connect_args": {"application_name": "fieldid", "options": "-c timezone=UTC"},
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
        engine = create_engine(url, **kwargs)
        if pool:
            event.listen(engine, "checkin", _checked_in)
            event.listen(engine, "checkout", _checked_out)
        event.listen(engine, "before_cursor_execute", _reads_only)
        return engine
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
