"""Hostile photos against a real server: time to answer, peak memory, and liveness meanwhile.

For each photo, ``POST /api/v1/searches`` with an officer's bearer token to uvicorn in a
subprocess (this script with ``--serve``, as ``fieldid serve`` runs it), ``--repeats`` times;
meanwhile a second client polls ``GET /healthz`` every 50 ms and records each answer's latency.
Memory: the resident set of the server process and of each of its child processes (the face
workers), polled every 50 ms, plus each process's own high-water mark (VmHWM). CPU: user + system
time of the server and its workers during the request, which the machine's load inflates far
less than the wall time (on a shared 2-core machine the wall time is several times the CPU time).

Photos (generated, see tests/hostile_images.py):

* ``12mp-scene``: a 4000×3000 JPEG of things (no face), the "normal 12 MP photo with no face";
* ``12mp-texture``: a 4000×3000 JPEG of texture the detector scores as near-misses, so the
  fallback detector runs as well: the slowest way to find no face;
* ``png-39.7mp``: a 6300×6300 PNG of zeros (116 KB, 119 MB decoded), under the 40 MP limit.

``--baseline-src DIR`` runs the same against another checkout's ``src`` (e.g. today's main,
exported with ``git archive``) first, a fresh server for each photo, each request bounded by
``--baseline-timeout`` seconds and the server killed if its memory passes ``--baseline-kill-mb``
(today's main takes minutes and more than 10 GB on these photos; the machine is shared).

    python benchmarks/bench_hostile.py --out benchmarks/results/hostile.json
    git archive main | tar -x -C /tmp/fieldid-main
    python benchmarks/bench_hostile.py --baseline-src /tmp/fieldid-main/src --out h.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

OFFICER = "bench-officer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def family_cpu(pid: int) -> float:
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children(pid))


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                    out += [int(x) for x in fh.read().split()]
            except OSError:
                continue
    except OSError:
        pass
    return out


@dataclass
class Watch:
    """Memory of a server and its children, and /healthz latency, while a request runs."""

    pid: int
    url: str
    kill_mb: float = 0.0
    server_mb: float = 0.0
    worker_mb: float = 0.0
    total_mb: float = 0.0
    health_ms: list[float] = field(default_factory=list)
    health_failures: int = 0
    killed: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def memory(self) -> None:
        while not self._stop.wait(0.05):
            server = kb(self.pid, "VmRSS") / 1024
            self.server_mb = max(self.server_mb, server, kb(self.pid, "VmHWM") / 1024)
            total = server
            for c in children(self.pid):
                rss = kb(c, "VmRSS") / 1024
                self.worker_mb = max(self.worker_mb, rss, kb(c, "VmHWM") / 1024)
                total += rss
            self.total_mb = max(self.total_mb, total)
            if self.kill_mb and total > self.kill_mb and not self.killed:
                self.killed = True
                os.kill(self.pid, 9)

    def health(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=5.0) as c:
            while not self._stop.is_set():
                t = time.perf_counter()
                try:
                    ok = c.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                ms = (time.perf_counter() - t) * 1000
                if ok:
                    self.health_ms.append(ms)
                else:
                    self.health_failures += 1
                self._stop.wait(max(0.0, 0.05 - ms / 1000))

    def __enter__(self) -> Watch:
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.memory, self.health)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(timeout=10)


def photos() -> dict[str, bytes]:
    from hostile_images import no_face_12mp_jpeg, zero_png

    return {
        "12mp-scene": no_face_12mp_jpeg("scene"),
        "12mp-texture": no_face_12mp_jpeg("texture"),
        "png-39.7mp": zero_png(6300, 6300),
    }


def build(root: Path) -> str:
    """A workspace with the demo portrait enrolled and an officer; returns a bearer token."""
    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.dataset import LabelledImage
    from fieldid.demo import astronaut_path
    from fieldid.workspace import Workspace

    ws = Workspace.init(root)
    ws.enrollment.enroll_images(
        [LabelledImage(astronaut_path(), "subject-0001", "Subject 0001 (synthetic)")],
        operator="bench",
        source_name="benchmark: NASA public-domain portrait (no records)",
        synthetic=True,
    )
    accounts = Accounts(ws.store, ws.clock)
    accounts.add_user(OFFICER, Role.OFFICER, "bench-password-1", by="bench")
    token = accounts.issue_token(
        OFFICER, scopes=["search"], lifetime=timedelta(days=1), by="bench"
    ).secret
    ws.close()
    return token


def serve(root: Path, port: int) -> None:
    import uvicorn

    from fieldid.service import ServiceSettings, create_app
    from fieldid.workspace import Workspace

    ws = Workspace.open(root)
    try:
        uvicorn.run(
            create_app(ws, ServiceSettings()), host="127.0.0.1", port=port, log_level="warning"
        )
    finally:
        ws.close()


def run_server(
    label: str,
    src: Path,
    root: Path,
    token: str,
    data: dict[str, bytes],
    repeats: int,
    timeout: float,
    kill_mb: float,
    fresh: bool = False,
) -> dict[str, Any]:
    """``fresh``: a new server for each photo (a server still busy with the last one would
    make the next wait behind it)."""
    if fresh:
        parts = [
            run_server(label, src, root, token, {k: v}, repeats, timeout, kill_mb)
            for k, v in data.items()
        ]
        return {**parts[0], "photos": {k: p["photos"][k] for p, k in zip(parts, data, strict=True)}}
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src)}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(root), "--port", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"label": label, "src": str(src), "photos": {}}
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            t = time.perf_counter()
            while True:
                try:
                    r = c.get("/readyz")
                    work = r.json()["checks"].get("face_work") or {"ready_workers": 1}
                    if r.status_code == 200 and work.get("ready_workers", 1) >= 1:
                        break
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                if server.poll() is not None or time.perf_counter() - t > 300:
                    raise RuntimeError(f"{label}: the server did not become ready")
                time.sleep(0.2)
            time.sleep(2)  # every worker loaded
        # Control: /healthz with nothing else asked of the server, at the machine's load now.
        with Watch(server.pid, url) as idle:
            time.sleep(5)
        out["healthz_idle"] = {
            "answers": len(idle.health_ms),
            "max_ms": round(max(idle.health_ms), 1) if idle.health_ms else None,
            "median_ms": round(statistics.median(idle.health_ms), 1) if idle.health_ms else None,
        }
        headers = {"Authorization": f"Bearer {token}"}
        form = {"purpose": "evaluation", "case_ref": "BENCH-HOSTILE", "notice_given": "true"}
        for name, body in data.items():
            rows = []
            for _ in range(repeats):
                if server.poll() is not None:
                    break
                with Watch(server.pid, url, kill_mb=kill_mb) as w:
                    cpu0 = family_cpu(server.pid)
                    t = time.perf_counter()
                    try:
                        with httpx.Client(base_url=url, timeout=timeout) as c:
                            r = c.post(
                                "/api/v1/searches",
                                headers=headers,
                                files={"image": ("p", body, "application/octet-stream")},
                                data=form,
                            )
                        status, code = r.status_code, r.json().get("code", "")
                    except httpx.HTTPError as e:
                        status, code = 0, f"no answer ({type(e).__name__})"
                    seconds = time.perf_counter() - t
                    cpu = family_cpu(server.pid) - cpu0
                rows.append(
                    {
                        "seconds": round(seconds, 3),
                        "cpu_seconds": round(cpu, 3),
                        "status": status,
                        "code": code,
                        "server_peak_mb": round(w.server_mb),
                        "worker_peak_mb": round(w.worker_mb),
                        "total_peak_mb": round(w.total_mb),
                        "healthz_answers": len(w.health_ms),
                        "healthz_failures": w.health_failures,
                        "healthz_max_ms": round(max(w.health_ms), 1) if w.health_ms else None,
                        "healthz_p99_ms": (
                            round(sorted(w.health_ms)[int(0.99 * (len(w.health_ms) - 1))], 1)
                            if w.health_ms
                            else None
                        ),
                        "killed_at_memory_limit": w.killed,
                    }
                )
                print(f"  {label} {name}: {rows[-1]}", flush=True)
                if status == 0 or w.killed:
                    break  # a server that did not answer is not asked again
            secs = [r["seconds"] for r in rows]
            out["photos"][name] = {
                "bytes": len(body),
                "runs": rows,
                "median_s": statistics.median(secs) if secs else None,
                "median_cpu_s": (
                    statistics.median([r["cpu_seconds"] for r in rows]) if rows else None
                ),
                "max_s": max(secs) if secs else None,
                "max_total_peak_mb": max((r["total_peak_mb"] for r in rows), default=None),
                "max_healthz_ms": max(
                    (r["healthz_max_ms"] or float("inf") for r in rows), default=None
                ),
            }
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = photos()
    load_start = os.getloadavg()
    report: dict[str, Any] = {"load_avg_start": load_start, "servers": []}
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        root = Path(tmp) / "ws"
        token = build(root)
        if args.baseline_src:
            print(f"baseline: {args.baseline_src}", flush=True)
            report["servers"].append(
                run_server(
                    "baseline",
                    args.baseline_src,
                    root,
                    token,
                    data,
                    1,
                    args.baseline_timeout,
                    args.baseline_kill_mb,
                    fresh=True,
                )
            )
        report["servers"].append(
            run_server("this branch", ROOT / "src", root, token, data, args.repeats, 120.0, 0.0)
        )
    report["load_avg_end"] = os.getloadavg()
    return report


def table(report: dict[str, Any]) -> str:
    lines = [
        "| server | photo | answer | time, median (max) s | CPU s (server + workers) | "
        "peak RSS, all processes MB | largest worker MB | server MB | "
        "/healthz max ms (answers, failures) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["servers"]:
        for name, p in s["photos"].items():
            last = p["runs"][-1]
            answer = f"{last['status']} {last['code']}"
            if last["killed_at_memory_limit"]:
                answer += " (killed at the memory limit)"
            lines.append(
                f"| {s['label']} | {name} | {answer} | {p['median_s']:.2f} ({p['max_s']:.2f}) | "
                f"{p['median_cpu_s']:.2f} | {p['max_total_peak_mb']} | "
                f"{max(r['worker_peak_mb'] for r in p['runs'])} | "
                f"{max(r['server_peak_mb'] for r in p['runs'])} | "
                f"{max((r['healthz_max_ms'] or 0) for r in p['runs']):.0f} "
                f"({sum(r['healthz_answers'] for r in p['runs'])}, "
                f"{sum(r['healthz_failures'] for r in p['runs'])}) |"
            )
    for s in report["servers"]:
        idle = s.get("healthz_idle") or {}
        if idle.get("answers"):
            lines.append(
                f"\n{s['label']}: /healthz with no other request, 5 s: median "
                f"{idle['median_ms']} ms, max {idle['max_ms']} ms ({idle['answers']} answers)"
            )
    la, lb = report["load_avg_start"], report["load_avg_end"]
    lines.append(f"\nload average {la[0]:.1f} → {lb[0]:.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-src", type=Path, help="another checkout's src folder")
    ap.add_argument("--baseline-timeout", type=float, default=60.0)
    ap.add_argument("--baseline-kill-mb", type=float, default=4096.0)
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    report = run(args)
    print(table(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
