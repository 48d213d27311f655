"""What the running service holds: the workspace, accounts, counters, the scheduled purge.

Nothing about a search is held here: searches, probes and adjudications are persisted by the
search and adjudication services, and every page reads them back from the database, so the
retention purge governs all of it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from fieldid.access.accounts import Accounts
from fieldid.adjudication.service import Adjudicator, DocumentConflicts
from fieldid.facework import FaceWork, InlineFaceWork, outside_lock
from fieldid.gallery.enroll import Enrollment
from fieldid.search.service import SearchService
from fieldid.service.metrics import Metrics
from fieldid.service.settings import ServiceSettings
from fieldid.workspace import Workspace


def face_work(workspace: Workspace, settings: ServiceSettings) -> FaceWork:
    """The face-work pool the settings ask for (``face_workers`` 0: in the server process), on
    the workspace's pipeline as it is now."""
    if settings.face_workers <= 0:
        return InlineFaceWork(workspace.pipeline)
    from fieldid.facework.pool import FacePool, PoolLimits

    return FacePool(
        workspace.config.pipeline,
        workspace.config.limits,
        PoolLimits(
            workers=settings.face_workers,
            timeout_s=settings.face_timeout_s,
            memory_mb=settings.face_memory_mb,
            queue=settings.face_queue,
        ),
        expect_model=str(workspace.pipeline.model),
    )


def retire(faces: FaceWork, *, poll_s: float = 0.2, limit_s: float = 600.0) -> threading.Thread:
    """Close ``faces`` once the jobs it has in hand are done (a search that took its photo to the
    old pool just before a switch finishes there, on the model its gallery has), in a thread of
    its own; after ``limit_s`` at the latest."""

    def wait_then_close() -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            work = faces.stats()
            if work.busy == 0 and work.queued == 0:
                break
            time.sleep(poll_s)
        faces.close()

    thread = threading.Thread(target=wait_then_close, name="fieldid-retire-faces", daemon=True)
    thread.start()
    return thread


@dataclass
class PurgeSchedule:
    """The server's scheduled retention purge: when it last ran and what it found."""

    interval_s: float
    runs: int = 0
    last_at: datetime | None = None
    last_total: int | None = None
    last_error: str | None = None


@dataclass
class AppState:
    workspace: Workspace
    settings: ServiceSettings
    accounts: Accounts
    searches: SearchService
    #: Compares documents presented with a candidate's records (None: the workspace default).
    conflicts: DocumentConflicts | None = None

    def follow_model(self) -> None:
        """Before face work (under ``work_lock``): follow a re-templating that switched the
        gallery to another model since the last request (``Workspace.follow_model``). The face
        work follows too: a new pool of workers on the new model takes the searches from now on
        (with the same time, memory and queue limits), and the old pool is closed once the jobs
        it has in hand are done."""
        if not self.workspace.follow_model():
            return
        old = self.faces
        faces = face_work(self.workspace, self.settings)
        self.faces = faces
        self.searches = self.workspace.search_service(outside_lock(faces, self.work_lock))
        self.enrollment = self.workspace.enrollment_service(outside_lock(faces, self.work_lock))
        if old is not None:
            retire(old)
        # The new workers load their models now, under the work lock (once per switch): the
        # request that found the switch waits for them, as the first one after a start would.
        faces.start()

    def adjudicator(self) -> Adjudicator:
        """The adjudicator with the workspace's rules as they are now in ``fieldid.toml``."""
        return self.workspace.adjudicator(self.conflicts)

    metrics: Metrics = field(default_factory=Metrics)
    #: The face pipeline and the gallery run one request at a time: on a small machine running
    #: two in parallel only makes both slower, and the SQLite writer is single anyway.
    work_lock: threading.Lock = field(default_factory=threading.Lock)
    ready: bool = False
    purge: PurgeSchedule | None = None
    #: Where face work runs (the worker pool; see ``fieldid.service.state.face_work``).
    faces: FaceWork | None = None
    #: The API's enrollment, its face work in ``faces`` (called under ``work_lock``, which the
    #: face work lets go meanwhile, as a search's does).
    enrollment: Enrollment | None = None
