"""Face work (decode → detect → align → embed → re-encode) behind one narrow port.

``FaceWork`` is what the search service and the HTTP service call:

- ``process(source) -> FaceResult``: a probe for a search or a verification;
- ``enroll_face(source) -> EnrollFace``: an image to enrol (its template, thumbnail and pixels);
- ``check(frame, scale) -> FrameCheck``: live guidance for a camera frame (no template);
- ``stats() -> WorkStats``: capacity and load, for ``/readyz``;
- ``start()`` (load the models now; returns when work can be taken) and ``close()``.

Two adapters:

- :class:`InlineFaceWork` runs the pipeline in the calling thread (the CLI, tests, tools);
- :class:`fieldid.facework.pool.FacePool` runs it in worker processes that are killed when a job
  overruns its time limit, whose address space is capped, and whose queue refuses work
  (``service.busy``) rather than grow without bound. The server uses the pool, so face work never
  holds the server's interpreter: ``/healthz`` answers while a hostile photo is being refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fieldid.pipeline import EnrollFace, FacePipeline, FaceResult, FrameCheck

__all__ = [
    "FaceWork",
    "InlineFaceWork",
    "WorkStats",
    "outside_lock",
]


@dataclass(frozen=True)
class WorkStats:
    """Capacity and load of a face-work adapter."""

    workers: int
    busy: int
    queued: int
    queue_limit: int
    #: True when a new job would be refused now (``service.busy``).
    saturated: bool = False
    #: Workers that have loaded their models and can take a job.
    ready_workers: int = 0
    #: Jobs ended by the time limit / by the memory cap (or a crash) since start.
    timeouts: int = 0
    memory_failures: int = 0
    #: Per worker process: pid, jobs done, peak resident memory (MB).
    processes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "busy": self.busy,
            "queued": self.queued,
            "queue_limit": self.queue_limit,
            "saturated": self.saturated,
            "ready_workers": self.ready_workers,
            "timeouts": self.timeouts,
            "memory_failures": self.memory_failures,
        }


class FaceWork(Protocol):
    """Where face work runs (see the module note)."""

    def process(self, source: bytes | str | Path) -> FaceResult: ...

    def enroll_face(self, source: bytes | str | Path) -> EnrollFace: ...

    def check(self, frame: bytes, scale: float = 1.0) -> FrameCheck: ...

    def stats(self) -> WorkStats: ...

    def start(self) -> object: ...

    def close(self) -> None: ...


class InlineFaceWork:
    """Face work in the calling thread, on a pipeline built elsewhere (a workspace's)."""

    def __init__(self, pipeline: FacePipeline) -> None:
        self.pipeline = pipeline
        self._busy = 0

    def process(self, source: bytes | str | Path) -> FaceResult:
        self._busy += 1
        try:
            return self.pipeline.process(source).result()
        finally:
            self._busy -= 1

    def enroll_face(self, source: bytes | str | Path) -> EnrollFace:
        self._busy += 1
        try:
            return self.pipeline.process(source).enrollment()
        finally:
            self._busy -= 1

    def check(self, frame: bytes, scale: float = 1.0) -> FrameCheck:
        return self.pipeline.check_frame(frame, scale)

    def stats(self) -> WorkStats:
        return WorkStats(
            workers=1, busy=min(1, self._busy), queued=0, queue_limit=0, ready_workers=1
        )

    def start(self) -> InlineFaceWork:
        return self

    def close(self) -> None:
        return None


class _OutsideLock:
    def __init__(self, faces: FaceWork, lock: Any) -> None:
        self.faces = faces
        self.lock = lock

    def process(self, source: bytes | str | Path) -> FaceResult:
        self.lock.release()
        try:
            return self.faces.process(source)
        finally:
            self.lock.acquire()

    def enroll_face(self, source: bytes | str | Path) -> EnrollFace:
        self.lock.release()
        try:
            return self.faces.enroll_face(source)
        finally:
            self.lock.acquire()

    def check(self, frame: bytes, scale: float = 1.0) -> FrameCheck:
        return self.faces.check(frame, scale)

    def stats(self) -> WorkStats:
        return self.faces.stats()

    def start(self) -> object:
        return self.faces.start()

    def close(self) -> None:
        self.faces.close()


def outside_lock(faces: FaceWork, lock: threading.Lock) -> FaceWork:
    """``faces``, for a caller that holds ``lock`` around a whole use (the service's work lock
    around a search: the database and the gallery one request at a time). ``process`` lets the
    lock go while the face work runs and takes it back before returning, so another officer's
    search proceeds meanwhile. Only for callers that hold ``lock`` when they call ``process``."""
    return _OutsideLock(faces, lock)
