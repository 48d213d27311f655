"""Serving a workspace: one server process, or several on PostgreSQL (``fieldid serve --workers``).

With ``workers`` above 1 this process becomes a supervisor (:func:`serve`) that starts that many
worker processes and restarts one that dies. Each worker listens on the address with its own
socket opened with ``SO_REUSEPORT``, so the kernel spreads new connections evenly among them (a
socket shared by all, as uvicorn's own ``--workers`` does, lets whichever worker wakes first take
a whole burst of connections, and with them all the work, while the others idle). Each worker
opens the workspace itself (:func:`worker_app`), with its own database pool, its own vector index
and its own face-work pool; nothing is shared between them but the database:

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
import multiprocessing
import os
import signal
import socket
import threading
import time
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


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket of this worker's own, in the kernel's ``SO_REUSEPORT`` group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker_main(spec: str, host: str, port: int, request_log: str | None) -> None:
    """One worker process (spawned by :func:`serve`): its own socket, its own app."""
    import uvicorn

    os.environ[ENV] = spec
    parent = os.getppid()

    def orphaned() -> None:  # the supervisor was killed (SIGKILL): stop serving, gracefully
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, daemon=True, name="fieldid-orphan-watch").start()
    sock = reuseport_socket(host, port)
    config = uvicorn.Config(
        worker_app(),
        log_level="warning",
        log_config=log_config(request_log),
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


class _Supervisor:
    """Starts the workers, restarts one that dies, stops them all on SIGINT or SIGTERM."""

    #: A worker that dies this soon after starting, this many times in a row, stops the server
    #: (it cannot start: a bad workspace, the port taken) instead of restarting forever.
    QUICK_DEATH_S = 10.0
    MAX_QUICK_DEATHS = 3

    def __init__(self, workers: int, args: tuple[Any, ...]) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.workers = workers
        self.args = args
        self.procs: list[tuple[Any, float]] = []
        self.stopping = threading.Event()

    def _start(self) -> tuple[Any, float]:
        proc = self.ctx.Process(target=_worker_main, args=self.args, daemon=False)
        proc.start()
        return proc, time.monotonic()

    def _stop(self, *_: object) -> None:
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        self.procs = [self._start() for _ in range(self.workers)]
        quick = 0
        try:
            while not self.stopping.wait(0.5):
                for i, (proc, started) in enumerate(self.procs):
                    if proc.is_alive():
                        continue
                    quick = quick + 1 if time.monotonic() - started < self.QUICK_DEATH_S else 0
                    if quick >= self.MAX_QUICK_DEATHS:
                        log.error("server workers keep dying at start (exit %s)", proc.exitcode)
                        return 1
                    log.warning(
                        "server worker %s exited with %s: restarted", proc.pid, proc.exitcode
                    )
                    self.procs[i] = self._start()
            return 0
        finally:
            for proc, _ in self.procs:
                if proc.is_alive() and proc.pid is not None:
                    os.kill(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            for proc, _ in self.procs:
                proc.join(max(0.1, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()
                    proc.join()


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
    # Refuse a taken port here, once, rather than in every worker.
    try:
        reuseport_socket(host, port).close()
    except OSError as e:
        raise WorkspaceError(
            f"cannot listen on {host}:{port}: {e.strerror}", code="serve.address_in_use"
        ) from None
    spec = json.dumps({"root": str(root.resolve()), "settings": dataclasses.asdict(settings)})
    code = _Supervisor(workers, (spec, host, port, request_log)).run()
    if code:
        raise WorkspaceError(
            "the server's worker processes could not start (see the messages above)",
            code="serve.workers_failed",
        )
