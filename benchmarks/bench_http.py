"""End-to-end search over HTTP: a 1 MP JPEG POSTed to ``/api/v1/searches`` against a gallery of
one enrolled face and a million synthetic template-only distractors.

What is timed is what an officer waits for: the client's wall time from sending the multipart
request to having the JSON answer (upload, decode, detection, quality, template, 1:N search,
persisting the search and its probe, the audit entry, and the answer), with a bearer token, on
a keep-alive connection, one search at a time. The server's own breakdown comes back in each
answer (``timings_ms`` per pipeline stage and the index search, ``server_ms`` for the whole
search call) and is reported beside it.

The workspace is built once and kept (``--workspace``; default ``benchmarks/.cache/http-1m``):
the astronaut portrait enrolled as "Subject 0001 (synthetic)", then ``--distractors`` synthetic
template-only identities from the bundled distractor model (``fieldid.gallery.distractors``),
added in bulk, then the vector index built and saved. The build's times are reported too.

The server is ``uvicorn`` in a subprocess (this script with ``--serve``), as ``fieldid serve``
runs it. The probe is the astronaut portrait's head and shoulders enlarged to 866×866 on a
1155×866 frame (1.0 megapixels) with sensor-like noise, JPEG quality 90.

    python benchmarks/bench_http.py --distractors 1000000 --searches 50 \\
        --out benchmarks/results/http.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WS = ROOT / "benchmarks" / ".cache" / "http-1m"
OFFICER = "bench-officer"


def probe_jpeg() -> bytes:
    """A 1155×866 (1.0 MP) JPEG: the astronaut portrait's head and shoulders enlarged to 866 px
    on a grey frame, with sensor-like noise over the whole frame so the file is the size of a
    phone photo rather than of a flat synthetic one."""
    from PIL import Image

    from fieldid.demo import astronaut_path

    img = Image.open(astronaut_path()).convert("RGB")
    face = img.crop((30, 0, 430, 400)).resize((866, 866), Image.Resampling.LANCZOS)
    frame = Image.new("RGB", (1155, 866), (118, 124, 130))
    frame.paste(face, ((1155 - 866) // 2, 0))
    rng = np.random.default_rng(0)
    px = np.asarray(frame, dtype=np.float32) + rng.normal(0, 6, (866, 1155, 3))
    noisy = Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    noisy.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def build(root: Path, distractors: int, chunk: int = 100_000) -> dict[str, Any]:
    """Create the workspace (once). Returns the build's timings."""
    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.dataset import LabelledImage
    from fieldid.demo import astronaut_path
    from fieldid.gallery.distractors import bundled
    from fieldid.workspace import Workspace

    out: dict[str, Any] = {"distractors": distractors}
    t0 = time.perf_counter()
    ws = Workspace.init(root)
    ws.enrollment.enroll_images(
        [LabelledImage(astronaut_path(), "subject-0001", "Subject 0001 (synthetic)")],
        operator="bench",
        source_name="benchmark: NASA public-domain portrait (no records)",
        synthetic=True,
    )
    Accounts(ws.store, ws.clock).add_user(OFFICER, Role.OFFICER, "bench-password-1", by="bench")
    model = bundled(str(ws.pipeline.model))
    assert model is not None
    ws.close()
    # Reopened so the index is not in memory while the rows go in: it is built once at the end.
    ws = Workspace.open(root)
    t = time.perf_counter()
    for start in range(0, distractors, chunk):
        n = min(chunk, distractors - start)
        people = [
            (f"synthetic-{start + i + 2:07d}", f"Subject {start + i + 2:07d} (synthetic)")
            for i in range(n)
        ]
        with ws.store.unit_of_work() as uow:
            ws.gallery.add_template_only(uow, people, model.sample(n, seed=start + 1))
            uow.audit("synth", operator="bench", payload={"added": n, "synthetic": True})
        print(f"  {start + n:,} distractors, {time.perf_counter() - t:.0f} s", flush=True)
    out["add_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    index = ws.gallery.index()
    out["index_build_s"] = round(time.perf_counter() - t, 1)
    out["index_mode"] = index.engine().mode if hasattr(index, "engine") else index.backend
    size = ws.gallery.size()
    out["persons"], out["templates"] = size.persons, size.templates
    ws.close()
    out["total_s"] = round(time.perf_counter() - t0, 1)
    out["db_mb"] = round((root / "fieldid.db").stat().st_size / 2**20, 1)
    return out


def serve(root: Path, port: int) -> None:
    """The server side (run in a subprocess): the workspace served as ``fieldid serve`` does."""
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(xs), q)), 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from fieldid.access.accounts import Accounts
    from fieldid.workspace import Workspace

    root: Path = args.workspace
    build_info: dict[str, Any] | None = None
    if not (root / "fieldid.toml").exists():
        print(f"building {root} with {args.distractors:,} distractors (once)…", flush=True)
        build_info = build(root, args.distractors)
        (root / "build.json").write_text(json.dumps(build_info, indent=2))
    elif (root / "build.json").exists():
        build_info = json.loads((root / "build.json").read_text())
    ws = Workspace.open(root)
    size = ws.gallery.size()
    token = (
        Accounts(ws.store, ws.clock)
        .issue_token(OFFICER, scopes=["search"], lifetime=timedelta(days=1), by="bench")
        .secret
    )
    ws.close()

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(root), "--port", str(port)], env=env
    )
    url = f"http://127.0.0.1:{port}"
    data = probe_jpeg()
    rows: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            while True:
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.perf_counter() - t > 600:
                    raise RuntimeError("the server did not become ready")
                time.sleep(0.2)
            startup_s = time.perf_counter() - t
            headers = {"Authorization": f"Bearer {token}"}
            form = {"purpose": "evaluation", "case_ref": "BENCH-HTTP", "notice_given": "true"}
            load_start = os.getloadavg()
            for i in range(args.warmup + args.searches):
                t1 = time.perf_counter()
                r = c.post(
                    "/api/v1/searches",
                    headers=headers,
                    files={"image": ("probe.jpg", data, "image/jpeg")},
                    data=form,
                )
                wall = (time.perf_counter() - t1) * 1000
                if r.status_code != 201:
                    raise RuntimeError(f"search refused: {r.status_code} {r.text}")
                body = r.json()
                if i >= args.warmup:
                    rows.append(
                        {
                            "client_ms": wall,
                            "server_ms": body["server_ms"],
                            "timings_ms": body["timings_ms"],
                            "top1": body["candidates"][0]["display_name"]
                            if body["candidates"]
                            else None,
                        }
                    )
            load_end = os.getloadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)
    client = [r["client_ms"] for r in rows]
    srv = [r["server_ms"] for r in rows]
    stages = sorted({k for r in rows for k in r["timings_ms"]})
    return {
        "benchmark": "bench_http",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "gallery": {"persons": size.persons, "templates": size.templates},
        "build": build_info,
        "server_startup_s": round(startup_s, 1),
        "probe": {"width": 1155, "height": 866, "bytes": len(data)},
        "searches": len(rows),
        "warmup": args.warmup,
        "client_ms": {"p50": pct(client, 50), "p99": pct(client, 99), "max": pct(client, 100)},
        "server_ms": {"p50": pct(srv, 50), "p99": pct(srv, 99)},
        "stages_ms_p50": {k: pct([r["timings_ms"].get(k, 0.0) for r in rows], 50) for k in stages},
        "top1": sorted({str(r["top1"]) for r in rows}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=DEFAULT_WS)
    ap.add_argument("--distractors", type=int, default=1_000_000)
    ap.add_argument("--searches", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "http.json")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    g = res["gallery"]
    print(
        f"\ngallery {g['persons']:,} people / {g['templates']:,} templates; "
        f"{res['searches']} searches of a {res['probe']['bytes'] / 1024:.0f} KiB 1155×866 JPEG"
    )
    if res["build"]:
        b = res["build"]
        print(
            f"one-off build: add {b['add_s']} s, index {b['index_build_s']} s, "
            f"total {b['total_s']} s, database {b['db_mb']} MiB"
        )
    print(f"server start-up to ready: {res['server_startup_s']} s")
    print("| measure | p50 ms | p99 ms |\n|---|---|---|")
    print(f"| client wall time (HTTP) | {res['client_ms']['p50']} | {res['client_ms']['p99']} |")
    print(f"| server: search call | {res['server_ms']['p50']} | {res['server_ms']['p99']} |")
    for k, v in res["stages_ms_p50"].items():
        print(f"| stage {k} (p50) | {v} | |")
    print(
        f"load average start {res['loadavg_start']}, end {res['loadavg_end']}; top-1: {res['top1']}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
