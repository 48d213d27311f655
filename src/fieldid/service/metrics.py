"""Prometheus text-format metrics, kept by hand (a few counters and one histogram)."""

from __future__ import annotations

import threading
from collections import defaultdict

#: Search latency buckets (seconds).
BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


def _labels(d: dict[str, str]) -> str:
    if not d:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(d.items()))
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.outcomes: dict[tuple[str, str], int] = defaultdict(int)
        self.search_buckets = [0] * len(BUCKETS)
        self.search_count = 0
        self.search_sum = 0.0

    def request(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1

    def outcome(self, kind: str, outcome: str) -> None:
        """``kind``: search, verify, quality_check, login; ``outcome``: a result or error code."""
        with self._lock:
            self.outcomes[(kind, outcome)] += 1

    def search_seconds(self, seconds: float) -> None:
        with self._lock:
            self.search_count += 1
            self.search_sum += seconds
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    self.search_buckets[i] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        lines: list[str] = []
        with self._lock:
            lines += [
                "# HELP fieldid_http_requests_total HTTP requests by route and status.",
                "# TYPE fieldid_http_requests_total counter",
            ]
            for (m, r, s), n in sorted(self.requests.items()):
                lab = _labels({"method": m, "route": r, "status": str(s)})
                lines.append(f"fieldid_http_requests_total{lab} {n}")
            lines += [
                "# HELP fieldid_outcomes_total Searches, verifications, quality checks and "
                "logins by outcome.",
                "# TYPE fieldid_outcomes_total counter",
            ]
            for (k, o), n in sorted(self.outcomes.items()):
                lines.append(f"fieldid_outcomes_total{_labels({'kind': k, 'outcome': o})} {n}")
            lines += [
                "# HELP fieldid_search_seconds Time to answer a search (server side).",
                "# TYPE fieldid_search_seconds histogram",
            ]
            for b, n in zip(BUCKETS, self.search_buckets, strict=True):
                lines.append(f'fieldid_search_seconds_bucket{{le="{b}"}} {n}')
            lines.append(f'fieldid_search_seconds_bucket{{le="+Inf"}} {self.search_count}')
            lines.append(f"fieldid_search_seconds_sum {self.search_sum:.6f}")
            lines.append(f"fieldid_search_seconds_count {self.search_count}")
        for name, (help_, value) in sorted(gauges.items()):
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
