"""The gallery's whole search path on each vector-index backend, at a small scale.

    nice -n 10 python benchmarks/bench_gallery_backends.py --people 20000 --queries 300 \\
        --out benchmarks/results/gallery-backends.json

Not the engines alone (benchmarks/bench_scale.py measures those at 1M and 10M) but what a search
costs through :meth:`fieldid.gallery.store.Gallery.search`: the engine's short list, the exact
re-rank from the templates stored in the database, people ranked by their best template. One
workspace per backend, each holding the same ``--people`` template-only synthetic people (unit
Gaussian vectors of the model's dimension), added in one unit of work as ``fieldid synth`` does:
faiss-local and Milvus beside a SQLite database, pgvector in a PostgreSQL one (the servers are
started here, as the test suite starts them). Queries are enrolled templates with noise added
(cosine ~0.8 to their source). Reported per backend: seconds to add the people (pgvector: vectors
written in the same transaction; Milvus: through the outbox, drained after the commit) and to
have the index current, single-search p50/p99 over the queries (after a warm-up), and the share
of queries whose top-1 and top-5 people and scores equal faiss-local's (to 1e-5; faiss-local is
exact below 50,000 templates). The synthetic people are random directions, all about equally far
from a query but its source: the hardest case for an approximate engine's ranks 2 to 5.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fieldid.index.config import with_index_settings
from fieldid.index.servers import milvus, postgresql
from fieldid.template.types import Template
from fieldid.workspace import Workspace


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_backend(
    name: str, root: Path, database_url: str | None, settings: dict[str, str], args: Any
) -> dict[str, Any]:
    ws = Workspace.init(root, database_url=database_url)
    ws.close()
    toml = root / "fieldid.toml"
    toml.write_text(with_index_settings(toml.read_text(), **settings))
    ws = Workspace.open(root)
    out: dict[str, Any] = {"backend": name, "load_before": _uptime()}
    try:
        dim = ws.gallery.dim
        rng = np.random.default_rng(7)
        vecs = rng.standard_normal((args.people, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        people = [(f"synthetic-{i:07d}", f"Synthetic {i:07d}") for i in range(args.people)]
        t = time.perf_counter()
        with ws.store.unit_of_work() as uow:
            ws.gallery.add_template_only(uow, people, vecs)
            uow.audit("synth", operator="bench", payload={"added": args.people, "synthetic": True})
        out["add_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        ws.gallery.index()
        out["index_current_s"] = round(time.perf_counter() - t, 2)
        qrng = np.random.default_rng(11)
        src = qrng.choice(args.people, args.queries, replace=False)
        noise = qrng.standard_normal((args.queries, dim)).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        q = vecs[src] + 0.75 * noise
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        model = ws.gallery.model
        for v in q[:10]:  # warm-up
            ws.gallery.search(Template(v, model), top_k=5)
        times: list[float] = []
        answers: list[list[tuple[str, float]]] = []
        for v in q:
            t = time.perf_counter()
            hits = ws.gallery.search(Template(v, model), top_k=5)
            times.append(time.perf_counter() - t)
            answers.append([(h.external_id, h.score) for h in hits])
        ms = np.asarray(times) * 1000
        out["search_p50_ms"] = round(float(np.percentile(ms, 50)), 2)
        out["search_p99_ms"] = round(float(np.percentile(ms, 99)), 2)
        out["top1_is_source"] = float(
            np.mean([a[0][0] == people[i][0] for a, i in zip(answers, src, strict=True)])
        )
        out["answers"] = answers
        out["load_after"] = _uptime()
    finally:
        ws.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--backends", default="faiss-local,pgvector,milvus")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    wanted = args.backends.split(",")
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fid-gb-")))
        for name in wanted:
            print(f"{name}: {args.people:,} people …", flush=True)
            if name == "faiss-local":
                r = run_backend(name, base / name, None, {"backend": "faiss-local"}, args)
            elif name == "pgvector":
                url = stack.enter_context(postgresql())
                r = run_backend(name, base / name, url, {"backend": "pgvector", "uri": ""}, args)
            else:
                uri = stack.enter_context(milvus())
                r = run_backend(name, base / name, None, {"backend": "milvus", "uri": uri}, args)
            results.append(r)
            print({k: v for k, v in r.items() if k != "answers"}, flush=True)
    ref = results[0]["answers"]
    for r in results:
        top1 = top5 = 0
        for a, b in zip(ref, r["answers"], strict=True):
            top1 += a[0][0] == b[0][0] and abs(a[0][1] - b[0][1]) <= 1e-5
            top5 += [x for x, _ in a] == [x for x, _ in b] and np.allclose(
                [s for _, s in a], [s for _, s in b], atol=1e-5, rtol=0
            )
        # Share of queries whose top-1 (top-5) people and scores equal the first backend's.
        r["top1_same"] = round(top1 / len(ref), 4)
        r["top5_same"] = round(top5 / len(ref), 4)
        del r["answers"]
    report = {"people": args.people, "queries": args.queries, "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
