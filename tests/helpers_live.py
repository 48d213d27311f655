"""A real server for tests that need one: uvicorn in a subprocess on a free port, serving a
workspace as ``fieldid serve`` does (face-work pool included), with its memory watched.

``python tests/helpers_live.py ROOT PORT SETTINGS_JSON`` is the server side.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (Linux: every thread's children file)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out += [int(x) for x in fh.read().split()]
        except OSError:
            continue
    return out


@dataclass
class MemoryWatch:
    """Peak resident memory (MB) of the server and of each face worker, polled every 50 ms,
    plus each process's own high-water mark (VmHWM) read at every poll."""

    pid: int
    server_peak_mb: float = 0.0
    worker_peak_mb: dict[int, float] = field(default_factory=dict)
    total_peak_mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> None:
        server = max(_status_kb(self.pid, "VmRSS"), _status_kb(self.pid, "VmHWM")) / 1024
        self.server_peak_mb = max(self.server_peak_mb, server)
        total = _status_kb(self.pid, "VmRSS") / 1024
        for child in children(self.pid):
            rss = _status_kb(child, "VmRSS") / 1024
            hwm = max(rss, _status_kb(child, "VmHWM") / 1024)
            self.worker_peak_mb[child] = max(self.worker_peak_mb.get(child, 0.0), hwm)
            total += rss
        self.total_peak_mb = max(self.total_peak_mb, total)

    def run(self) -> None:
        while not self._stop.wait(0.05):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        self.poll()

    @property
    def max_worker_mb(self) -> float:
        return max(self.worker_peak_mb.values(), default=0.0)


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen[bytes]
    memory: MemoryWatch

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 120), **kw)


@contextmanager
def live_server(root: Path, **settings: Any) -> Iterator[LiveServer]:
    """Serve ``root`` until the block ends; waits until ``/readyz`` says ready and every face
    worker has loaded its models."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, str(root), str(port), json.dumps(settings)],
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    watch = MemoryWatch(proc.pid)
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        started = time.monotonic()
        with httpx.Client(base_url=url, timeout=10) as c:
            while True:
                try:
                    r = c.get("/readyz")
                    work = r.json()["checks"].get("face_work") or {}
                    if r.status_code == 200 and work.get("ready_workers") == work.get("workers"):
                        break
                except (httpx.TransportError, ValueError, KeyError):
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"the test server exited with {proc.returncode}")
                if time.monotonic() - started > 180:
                    raise RuntimeError("the test server did not become ready in 180 s")
                time.sleep(0.1)
        yield LiveServer(url, proc, watch)
    finally:
        watch.stop()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(root: str, port: int, settings: dict[str, Any]) -> None:
    import uvicorn

    from fieldid.service import ServiceSettings, create_app
    from fieldid.workspace import Workspace

    ws = Workspace.open(Path(root))
    app = create_app(ws, ServiceSettings(**settings))
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        ws.close()


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
