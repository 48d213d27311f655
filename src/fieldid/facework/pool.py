"""A pool of face-work processes: bounded in time, memory and queue.

Each worker process loads the pipeline once and then takes one job at a time (see
:mod:`fieldid.facework.worker`). The pool guarantees, per job:

- **time**: a job that has not answered after ``timeout_s`` is refused (``probe.timeout``) and its
  worker killed (SIGKILL) and replaced; nothing of it lingers;
- **memory**: a worker's address space is capped at what it holds after loading the models plus
  ``memory_mb``; a job that needs more fails in that worker (``probe.too_costly``), which is
  replaced. The server process itself never decodes or scans an image;
- **queue**: while every worker is busy, at most ``queue`` jobs wait; one more is refused at once
  (``service.busy``, HTTP 503 with ``Retry-After``) instead of tying up a server thread.

Each worker is a fresh interpreter (``python -m fieldid.facework.worker``), started when the pool
starts and again whenever one is killed; it is ready in about a second (imports and models). A job
sent to a worker that is still starting waits for it, up to ``start_timeout_s``, outside its own
time limit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from fieldid.errors import FieldidError, ProbeRejected, WorkspaceError
from fieldid.facework import WorkStats
from fieldid.pipeline import EnrollFace, FaceResult, FrameCheck, PipelineSpec
from fieldid.probe import IntakeLimits
from fieldid.probe.intake import read_probe_bytes

__all__ = ["FacePool", "PoolLimits", "ServiceBusy"]


class ServiceBusy(FieldidError):
    """Every face worker is busy and the queue is full (HTTP 503, retry shortly)."""

    code = "service.busy"


@dataclass(frozen=True)
class PoolLimits:
    """How many workers, and what one job may cost (``ServiceSettings``; docs/security.md)."""

    workers: int = 2
    #: Seconds a job may run before its worker is killed.
    timeout_s: float = 10.0
    #: Address space (MB) a job may add to a worker beyond what the loaded models take.
    memory_mb: int = 1024
    #: Jobs that may wait while every worker is busy; one more is refused (service.busy).
    queue: int = 8
    #: Seconds a job waits for a worker that is (re)starting and loading its models.
    start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("a face-work pool needs at least one worker")
        if self.timeout_s <= 0 or self.start_timeout_s <= 0:
            raise ValueError("face-work time limits must be positive")
        if self.queue < 0 or self.memory_mb < 0:
            raise ValueError("face-work queue and memory limits must not be negative")


class _Worker:
    """One worker: ``python -m fieldid.facework.worker`` with a socket pair as its pipe (a fresh
    interpreter: nothing of the server's threads, locks or open files comes with it)."""

    def __init__(self, spec: PipelineSpec, limits: IntakeLimits, memory_mb: int) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MALLOC_ARENA_MAX", "2")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fieldid.facework.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send((spec, limits, memory_mb))
        self.ready = False
        self.jobs = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def stop(self) -> None:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class FacePool:
    """Face work in worker processes (see the module note). Thread-safe; blocking calls."""

    def __init__(
        self,
        spec: PipelineSpec,
        limits: IntakeLimits | None = None,
        pool: PoolLimits | None = None,
        *,
        expect_model: str | None = None,
    ) -> None:
        """``expect_model``: the model the caller's own pipeline has (``str(ModelId)``); a worker
        that loads another refuses to work (the two would make incomparable templates)."""
        self.spec = spec
        self.expect_model = expect_model
        self.intake = limits or IntakeLimits()
        self.limits = pool or PoolLimits()
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._busy = 0
        self._waiting = 0
        self._timeouts = 0
        self._memory_failures = 0
        self._started = False
        self._closed = False

    # --- life cycle -----------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        return _Worker(self.spec, self.intake, self.limits.memory_mb)

    def start(self) -> FacePool:
        """Start the workers and wait until each has loaded its models. Idempotent."""
        self.wait_ready()
        return self

    def _launch(self) -> None:
        """Start the workers (they load their models in the background). Idempotent."""
        with self._cond:
            if self._closed:
                raise WorkspaceError("the face-work pool is closed", code="service.closed")
            if not self._started:
                self._all = [self._spawn() for _ in range(self.limits.workers)]
                self._idle = list(self._all)
                self._started = True

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every idle worker has loaded its models (start-up, tests)."""
        self._launch()
        with self._cond:
            workers = [w for w in self._idle if not w.ready]
        for w in workers:
            self._await_ready(w, timeout or self.limits.start_timeout_s)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers, self._all, self._idle = self._all, [], []
            self._cond.notify_all()
        for w in workers:
            w.stop()

    def __enter__(self) -> FacePool:
        self._launch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the port -------------------------------------------------------------------------------

    def process(self, source: bytes | str | Path) -> FaceResult:
        data = source if isinstance(source, bytes) else read_probe_bytes(source, self.intake)
        result = self._run(("process", data))
        assert isinstance(result, FaceResult)
        return result

    def enroll_face(self, source: bytes | str | Path) -> EnrollFace:
        data = source if isinstance(source, bytes) else read_probe_bytes(source, self.intake)
        result = self._run(("enroll", data))
        assert isinstance(result, EnrollFace)
        return result

    def check(self, frame: bytes, scale: float = 1.0) -> FrameCheck:
        result = self._run(("check", frame, scale))
        assert isinstance(result, FrameCheck)
        return result

    def stats(self) -> WorkStats:
        with self._cond:
            for w in self._idle:  # take in the start-up messages of idle workers, if any came
                if not w.ready and w.conn.poll(0):
                    with contextlib.suppress(FieldidError):
                        self._await_ready(w, 0.001)
            workers = list(self._all)
            busy, waiting = self._busy, self._waiting
            saturated = self._started and not self._idle and waiting >= self.limits.queue
            timeouts, memory = self._timeouts, self._memory_failures
        return WorkStats(
            workers=self.limits.workers,
            busy=busy,
            queued=waiting,
            queue_limit=self.limits.queue,
            saturated=saturated,
            ready_workers=sum(1 for w in workers if w.ready),
            timeouts=timeouts,
            memory_failures=memory,
            processes=[
                {"pid": w.pid, "ready": w.ready, "jobs": w.jobs, "peak_rss_mb": _peak_rss_mb(w.pid)}
                for w in workers
            ],
        )

    # --- dispatch -------------------------------------------------------------------------------

    def _acquire(self) -> _Worker:
        self._launch()
        with self._cond:
            if not self._idle and self._waiting >= self.limits.queue:
                raise ServiceBusy(
                    f"all {self.limits.workers} face workers are busy and {self._waiting} "
                    "requests are waiting: try again in a few seconds",
                    code="service.busy",
                    retry_after=2,
                )
            self._waiting += 1
            try:
                while not self._idle:
                    if self._closed:
                        raise WorkspaceError("the face-work pool is closed", code="service.closed")
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._busy += 1
            return self._idle.pop()

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            self._busy -= 1
            if self._closed:
                worker.stop()
                return
            self._idle.append(worker)
            self._cond.notify()

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop()
        fresh = self._spawn()
        with self._cond:
            self._all = [fresh if w is worker else w for w in self._all]
        return fresh

    def _await_ready(self, worker: _Worker, timeout: float) -> None:
        if worker.ready:
            return
        if not worker.conn.poll(timeout):
            raise WorkspaceError(
                f"a face worker did not start within {timeout:g} s", code="service.worker_start"
            )
        try:
            msg = worker.conn.recv()
        except (EOFError, OSError):
            raise WorkspaceError(
                "a face worker failed to start (see the server log)", code="service.worker_start"
            ) from None
        if msg[0] == "failed":
            _, cls, message, code, details = msg
            raise cls(message, code=code, **details)
        if self.expect_model is not None and msg[3] != self.expect_model:
            raise WorkspaceError(
                f"a face worker loaded model {msg[3]}, not the workspace's {self.expect_model}",
                code="service.worker_model",
            )
        worker.ready = True

    def _run(self, job: tuple[Any, ...]) -> Any:
        worker = self._acquire()
        try:
            try:
                self._await_ready(worker, self.limits.start_timeout_s)
            except FieldidError:
                worker = self._replace(worker)
                raise
            try:
                worker.conn.send(job)
                answered = worker.conn.poll(self.limits.timeout_s)
                msg = worker.conn.recv() if answered else None
            except (EOFError, OSError):
                msg = ("died",)
            worker.jobs += 1
            if msg is None:
                with self._cond:
                    self._timeouts += 1
                worker = self._replace(worker)
                raise ProbeRejected(
                    f"the photo took longer than {self.limits.timeout_s:g} s to process and was "
                    "abandoned: send an ordinary photo (JPEG, longest side about 4000 pixels)",
                    code="probe.timeout",
                    timeout_s=self.limits.timeout_s,
                )
            if msg[0] == "died" or (msg[0] == "error" and msg[3] == "probe.too_costly"):
                with self._cond:
                    self._memory_failures += 1
                worker = self._replace(worker)
                if msg[0] == "died":
                    raise ProbeRejected(
                        "the photo could not be processed within one request's memory "
                        f"({self.limits.memory_mb} MB): send an ordinary photo (JPEG, longest "
                        "side about 4000 pixels)",
                        code="probe.too_costly",
                        memory_mb=self.limits.memory_mb,
                    )
            if msg[0] == "error":
                _, cls, message, code, details = msg
                if code == "probe.unprocessable":
                    worker = self._replace(worker)
                raise cls(message, code=code, **details)
            return msg[1]
        finally:
            self._release(worker)


def default_workers() -> int:
    """Two workers on a machine with two or more cores, else one."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1
