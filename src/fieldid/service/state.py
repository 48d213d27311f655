"""What the running service holds: the workspace, accounts, counters, the scheduled purge.

Nothing about a search is held here: searches, probes and adjudications are persisted by the
search and adjudication services, and every page reads them back from the database, so the
retention purge governs all of it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from fieldid.access.accounts import Accounts
from fieldid.adjudication.service import Adjudicator, DocumentConflicts
from fieldid.facework import FaceWork
from fieldid.search.service import SearchService
from fieldid.service.metrics import Metrics
from fieldid.service.settings import ServiceSettings
from fieldid.workspace import Workspace


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

    def adjudicator(self) -> Adjudicator:
        """The adjudicator with the workspace's rules as they are now in ``fieldid.toml``."""
        return self.workspace.adjudicator(self.conflicts)

    metrics: Metrics = field(default_factory=Metrics)
    #: The face pipeline and the gallery run one request at a time: on a small machine running
    #: two in parallel only makes both slower, and the SQLite writer is single anyway.
    work_lock: threading.Lock = field(default_factory=threading.Lock)
    ready: bool = False
    purge: PurgeSchedule | None = None
    #: Where face work runs (the worker pool; see ``fieldid.service.app.face_work``).
    faces: FaceWork | None = None
