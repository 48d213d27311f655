"""What the running service holds: the workspace, accounts, recent results, counters."""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps

from fieldid.access.accounts import Accounts
from fieldid.search.service import SearchService
from fieldid.service.metrics import Metrics
from fieldid.service.settings import ServiceSettings
from fieldid.workspace import Workspace


@dataclass
class StoredResult:
    """One search's answer, kept in memory (only) so its pages can be shown for a while."""

    ref: int
    operator: str
    purpose: str
    case_ref: str
    notice_given: bool | None
    created: float
    result: dict[str, Any]
    #: The probe as uploaded until first shown, then a small JPEG for display.
    probe: bytes
    probe_is_thumbnail: bool = False

    @property
    def nbytes(self) -> int:
        return len(self.probe)

    def probe_thumbnail(self, max_side: int = 480) -> bytes:
        if not self.probe_is_thumbnail:
            with Image.open(io.BytesIO(self.probe)) as opened:
                im = ImageOps.exif_transpose(opened).convert("RGB")
                im.thumbnail((max_side, max_side))
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=85)
            self.probe, self.probe_is_thumbnail = buf.getvalue(), True
        return self.probe


class RecentResults:
    """Search results for display, bounded by age and bytes. Nothing here reaches disk: the
    durable record of a search is its audit entry."""

    def __init__(self, ttl_seconds: int, max_bytes: int) -> None:
        self.ttl = ttl_seconds
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, StoredResult] = OrderedDict()
        self._lock = threading.Lock()

    def _evict(self) -> None:
        now = time.time()
        total = sum(r.nbytes for r in self._items.values())
        while self._items:
            ref, oldest = next(iter(self._items.items()))
            if now - oldest.created > self.ttl or total > self.max_bytes:
                total -= oldest.nbytes
                del self._items[ref]
            else:
                break

    def put(self, item: StoredResult) -> None:
        with self._lock:
            self._items[item.ref] = item
            self._evict()

    def get(self, ref: int) -> StoredResult | None:
        with self._lock:
            self._evict()
            return self._items.get(ref)


@dataclass
class AppState:
    workspace: Workspace
    settings: ServiceSettings
    accounts: Accounts
    searches: SearchService
    results: RecentResults
    metrics: Metrics = field(default_factory=Metrics)
    #: The face pipeline and the gallery run one request at a time: on a small machine running
    #: two in parallel only makes both slower, and the SQLite writer is single anyway.
    work_lock: threading.Lock = field(default_factory=threading.Lock)
    ready: bool = False
