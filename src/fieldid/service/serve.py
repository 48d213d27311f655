"""Serving a workspace: one server process, or several on PostgreSQL (``fieldid serve --workers``).

With ``workers`` above 1, uvicorn starts that many worker processes sharing one listening socket
(and restarts one that dies); each opens the workspace itself (:func:`worker_app`), with its own
database pool, its own vector index and its own face-work pool. Nothing is shared between them
but the database:

- every use is committed with its audit entry in the database (the audit head row is locked in
  the transaction, so the workers append to one chain);
- each worker's index follows the database's gallery revision (``gallery/follower.py``): an
  enrollment or a merge committed by one worker moves the revision, and every other worker
  catches its index up at its next search;
- the scheduled retention purge runs in one worker only: the one holding ``W/.serve-purge.lock``
  (an advisory file lock, released when that process ends).

SQLite refuses ``workers`` above 1 (:func:`check_workers`): its database file has one writer at a
time, so N processes would queue on its write lock while each held a copy of the index.

Every request is logged as one JSON line (``fieldid.requests``; see ``app.py``): route template,
status, milliseconds, operator, worker. Never a path's ids, a query string, an image, a template
or a record.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import fcntl
import json
import logging
import math
import os
from pathlib import Path
from typing import IO, Any

from fieldid.errors import WorkspaceError
from fieldid.service.settings import ServiceSettings

#: The environment variable that carries the workspace and settings to the worker processes.
ENV = "FIELDID_SERVE"
#: The logger of request lines (one JSON object per line).
REQUEST_LOGGER = "fieldid.requests"
PURGE_LOCK = ".serve-purge.lock"

log = logging.getLogger(__name__)
_held: list[IO[str]] = []  # the purge lock's file, kept open for the worker's lifetime


def check_workers(backend: str, workers: int) -> None:
    """Refuse a worker count the workspace's database cannot serve."""
    if workers < 1:
        raise WorkspaceError("--workers must be 1 or more", code="serve.workers")
    if workers > 1 and backend != "postgresql":
        raise WorkspaceError(
            f"--workers {workers} needs PostgreSQL; this workspace's database is SQLite, which "
            "lets one process write at a time: several server processes would wait on its write "
            "lock one after another, each holding its own copy of the index, and answer no "
            "faster. Serve with --workers 1, or move the workspace into PostgreSQL first "
            "(fieldid db copy --from WS --to postgresql://… --switch; docs/deploy-postgresql.md)",
            code="serve.workers_sqlite",
            backend=backend,
            workers=workers,
        )


def face_workers_per_process(workers: int, cores: int | None = None) -> int:
    """Face-work processes per server process, so that all of them together match the cores
    (face work is CPU-bound: more processes than cores only makes each search slower)."""
    cores = cores or os.cpu_count() or 1
    return max(1, math.ceil(cores / max(1, workers)))


def log_config(request_log: str | None) -> dict[str, Any]:
    """uvicorn's logging configuration plus the request lines: to stderr (``"-"``), appended to
    a file, or nowhere (``None``). uvicorn's own access log is off: it logs query strings."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["request_line"] = {"format": "%(message)s"}
    if request_log is None:
        handler: dict[str, Any] = {"class": "logging.NullHandler"}
    elif request_log == "-":
        handler = {
            "class": "logging.StreamHandler",
            "formatter": "request_line",
            "stream": "ext://sys.stderr",
        }
    else:
        # O_APPEND: each worker's lines go whole to the end of the one file.
        handler = {
            "class": "logging.FileHandler",
            "formatter": "request_line",
            "filename": str(Path(request_log).resolve()),
            "mode": "a",
            "encoding": "utf-8",
        }
    config["handlers"]["request_lines"] = handler
    config["loggers"][REQUEST_LOGGER] = {
        "handlers": ["request_lines"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def _purge_leader(root: Path) -> bool:
    """Whether this process holds the workspace's purge lock (taken now if free)."""
    if _held:
        return True
    fh = open(root / PURGE_LOCK, "a", encoding="utf-8")  # noqa: SIM115 (held open on purpose)
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return False
    _held.append(fh)
    return True


def worker_app() -> Any:
    """The app of one worker process (uvicorn's factory, from the settings in ``ENV``)."""
    from fieldid.service.app import create_app
    from fieldid.workspace import Workspace

    spec = json.loads(os.environ[ENV])
    root = Path(spec["root"])
    settings = ServiceSettings(**spec["settings"])
    if settings.purge_interval_s > 0 and not _purge_leader(root):
        settings = dataclasses.replace(settings, purge_interval_s=0)
    ws = Workspace.open(root)
    atexit.register(ws.close)
    return create_app(ws, settings)


def serve(
    root: Path,
    settings: ServiceSettings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    request_log: str | None = "-",
) -> None:
    """Serve the workspace at ``root`` until interrupted (see the module note)."""
    import uvicorn

    from fieldid.service.app import create_app
    from fieldid.workspace import Workspace

    ws = Workspace.open(root)  # applies pending migrations once, before any worker starts
    try:
        check_workers(ws.store.backend, workers)
        if workers == 1:
            uvicorn.run(
                create_app(ws, settings),
                host=host,
                port=port,
                log_level="warning",
                log_config=log_config(request_log),
                access_log=False,
            )
            return
    finally:
        ws.close()
    os.environ[ENV] = json.dumps(
        {"root": str(root.resolve()), "settings": dataclasses.asdict(settings)}
    )
    uvicorn.run(
        "fieldid.service.serve:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        log_config=log_config(request_log),
        access_log=False,
    )
