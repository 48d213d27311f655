"""1:N search benchmark for the gallery vector index (``fieldid.gallery.index.FaissIndex``).

For each gallery size it enrols N synthetic distractors plus M mated templates and measures, for
exact (brute force) and approximate (IVF + exact re-rank) modes: build time, index memory,
single-query latency (p50/p99 over ``--queries`` queries after a warm-up, timing the full
``FaissIndex.search`` call including re-ranking), and the approximate index's recall against
exact search.

Recall figures (approximate vs exact, both at k=10):

* ``top1``: fraction of queries whose exact top-1 is also the approximate top-1;
* ``mate``: true-mate recall relative to exact: among queries whose exact top-1 is the true
  mate, the fraction where the approximate top-1 is the mate too (the 99.5 % target);
* ``top10``: mean overlap of the exact and approximate top-10 id sets.

How distractors, mates and queries are made is described in ``_distractors.py`` and printed in
the output. With ``--templates FILE.npy`` (n×dim real templates) the distractor model is a
Gaussian fitted to them; ``--labels FILE`` (one identity per line, or a .npy array, aligned with
the templates) lets the query/mate noise follow the real within-identity covariance. Without
``--templates`` a random low-rank anisotropic Gaussian is used, and the output says so.

Example (the figures in the index's docs)::

    python benchmarks/bench_search.py --templates lfw_dlib128.npy --labels lfw_labels.txt \\
        --sizes 100000,1000000 --out /tmp/bench_search.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _distractors as dist
from fieldid.gallery.index import FaissIndex, IndexParams


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency(
    index: FaissIndex, queries: NDArray[np.float32], k: int, warmup: int
) -> dict[str, float]:
    for q in queries[:warmup]:
        index.search(q, k)
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        index.search(q, k)
        times[i] = time.perf_counter() - t0
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    return {"p50_ms": float(p50), "p99_ms": float(p99), "mean_ms": float(times.mean() * 1e3)}


def build(
    ids: NDArray[np.int64], vecs: NDArray[np.float32], params: IndexParams
) -> tuple[FaissIndex, dict[str, float]]:
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    index = FaissIndex.build(ids, vecs, params=params)
    secs = time.perf_counter() - t0
    return index, {
        "build_s": secs,
        "index_mb": index.nbytes / 2**20,
        "rss_growth_mb": rss_mb() - before,
    }


def dataset_templates(
    dataset: Path, embedder: str = "dlib-resnet"
) -> tuple[NDArray[np.float32], NDArray[Any]]:
    """Real templates (of ``embedder``) and identities of a labelled set (acquired images only)."""
    from fieldid.dataset import read_labelled
    from fieldid.evaluation.harness import compute_templates
    from fieldid.pipeline import FacePipeline, PipelineSpec

    items = read_labelled(dataset)
    cache = Path(__file__).parent / ".cache" / f"{dataset.name}-{embedder}.npz"
    spec = PipelineSpec(embedder=embedder)
    ts = compute_templates(FacePipeline.from_spec(spec), items, cache=cache)
    ok = ts.acquired
    return ts.vectors[ok].astype(np.float32), np.array([i.identity for i in items])[ok]


def load_labels(path: str) -> NDArray[Any]:
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    return np.array(Path(path).read_text().splitlines())


def run_size(
    n_distractors: int,
    model: dist.TemplateModel,
    mated: dist.MatedSet,
    args: argparse.Namespace,
    params: IndexParams,
    rng: np.random.Generator,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    gallery = np.empty((n_distractors + len(mated.mates), model.dim), dtype=np.float32)
    gallery[:n_distractors] = model.sample(n_distractors, rng)
    gallery[n_distractors:] = mated.mates
    gen_s = time.perf_counter() - t0
    # ids: distractors 1..N, mates after them (shuffled so storage order says nothing)
    ids = np.arange(1, len(gallery) + 1, dtype=np.int64)
    perm = rng.permutation(len(gallery))
    gallery, ids = gallery[perm], ids[perm]
    mate_ids = n_distractors + 1 + mated.query_mate
    queries, k = mated.queries, args.k
    lat_queries = queries[: args.queries]
    out: dict[str, Any] = {"distractors": n_distractors, "gallery": len(gallery), "gen_s": gen_s}

    # exact: force brute force whatever the size
    exact, info = build(ids, gallery, replace(params, exact_threshold=len(gallery) + 1))
    t0 = time.perf_counter()
    _, exact_ids = exact.search(queries, k)  # batched ground truth
    info["batch_search_s"] = time.perf_counter() - t0
    if not args.skip_exact_latency:
        info |= latency(exact, lat_queries, k, args.warmup)
    exact_mate = exact_ids[:, 0] == mate_ids
    info["mate_rank1"] = float(exact_mate.mean())
    out["exact"] = info
    print(f"  exact: {json.dumps(_round(info))}", flush=True)
    del exact
    gc.collect()

    # approximate: force IVF whatever the size
    approx, info = build(ids, gallery, replace(params, exact_threshold=0))
    info["nlist"] = approx.nlist
    info["nprobe"] = approx.params.nprobe_for(approx.nlist or 1)
    info["reduced_dim"] = approx.reduced_dim
    info |= latency(approx, lat_queries, k, args.warmup)
    if args.compare_threads:
        approx.params = replace(approx.params, single_thread_single_query=False)
        multi = latency(approx, lat_queries, k, args.warmup)
        info["p50_ms_all_threads"], info["p99_ms_all_threads"] = multi["p50_ms"], multi["p99_ms"]
        approx.params = replace(approx.params, single_thread_single_query=True)
    _, approx_ids = approx.search(queries, k)
    approx_mate = approx_ids[:, 0] == mate_ids
    info["mate_rank1"] = float(approx_mate.mean())
    info["recall_top1"] = float((approx_ids[:, 0] == exact_ids[:, 0]).mean())
    info["recall_mate"] = float((approx_mate & exact_mate).sum() / max(1, exact_mate.sum()))
    info["overlap_top10"] = float(
        np.mean([len(set(a) & set(b)) / k for a, b in zip(approx_ids, exact_ids, strict=True)])
    )
    out["approx"] = info
    print(f"  approx: {json.dumps(_round(info))}", flush=True)
    del approx, gallery
    gc.collect()
    return out


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "| gallery | mode | build s | index MB | p50 ms | p99 ms | mate rank-1 "
        "| top-1 = exact | mate recall vs exact | top-10 overlap |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for mode in ("exact", "approx"):
            i = r[mode]
            label = (
                mode
                if mode == "exact"
                else f"ivf {i['nlist']}/{i['nprobe']}, pca {i['reduced_dim']}, {args.encoding_used}"
            )
            p50 = f"{i['p50_ms']:.2f}" if "p50_ms" in i else "—"
            p99 = f"{i['p99_ms']:.2f}" if "p99_ms" in i else "—"
            rec = (
                (f"{i['recall_top1']:.4f}", f"{i['recall_mate']:.4f}", f"{i['overlap_top10']:.4f}")
                if mode == "approx"
                else ("1", "1", "1")
            )
            lines.append(
                f"| {r['gallery']:,} | {label} | {i['build_s']:.1f} | {i['index_mb']:.0f} "
                f"| {p50} | {p99} | {i['mate_rank1']:.4f} | {rec[0]} | {rec[1]} | {rec[2]} |"
            )
    if args.compare_threads:
        lines.append("")
        lines.append("Approximate single-query latency with all OpenMP threads (p50 / p99 ms):")
        for r in results:
            i = r["approx"]
            lines.append(
                f"- {r['gallery']:,}: {i['p50_ms_all_threads']:.2f} / {i['p99_ms_all_threads']:.2f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--dataset",
        help="labelled face set (e.g. ../shared/faces/lfw-dev): its dlib templates (computed\n"
        "once, cached in benchmarks/.cache like bench_eval.py) and identities stand for\n"
        "--templates and --labels",
    )
    ap.add_argument(
        "--embedder",
        choices=("dlib-resnet", "mobileface-v2"),
        default="dlib-resnet",
        help="with --dataset: the model whose templates are used",
    )
    ap.add_argument("--templates", help="real templates, an (n, dim) .npy, to fit distractors to")
    ap.add_argument("--labels", help="identity per template (text lines or .npy), for the noise")
    ap.add_argument("--dim", type=int, default=128, help="dimension without --templates")
    ap.add_argument("--sizes", default="100000,1000000", help="distractor counts, comma-separated")
    ap.add_argument("--mates", type=int, default=1000, help="mated templates in the gallery")
    ap.add_argument("--queries", type=int, default=2000, help="queries (latency and recall)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument(
        "--noise",
        choices=["auto", "within", "subspace", "shaped"],
        default="auto",
        help="query/mate noise: within-identity (needs --labels), isotropic in the template\n"
        "subspace, or shaped like the template covariance; auto = within if labels else subspace",
    )
    ap.add_argument(
        "--mate-distance",
        type=float,
        default=dist.DLIB_SAME_PERSON_DISTANCE,
        help="mean query–mate Euclidean distance of the normalised templates",
    )
    ap.add_argument("--nprobe", type=int)
    ap.add_argument("--nlist", type=int)
    ap.add_argument("--nlist-factor", type=float)
    ap.add_argument("--probe-fraction", type=float)
    ap.add_argument("--reduce-dim", type=int)
    ap.add_argument("--encoding", choices=["pq4fs", "sq8", "flat"])
    ap.add_argument("--rerank-min", type=int)
    ap.add_argument("--compare-threads", action="store_true", help="also time all-thread search")
    ap.add_argument("--skip-exact-latency", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    real: NDArray[np.float32] | None = None
    labels: NDArray[Any] | None = load_labels(args.labels) if args.labels else None
    if args.dataset:
        real, labels = dataset_templates(Path(args.dataset), args.embedder)
        model = dist.fit_model(real)
    elif args.templates:
        real = np.load(args.templates, allow_pickle=False).astype(np.float32)
        model = dist.fit_model(real)
    else:
        model = dist.synthetic_model(args.dim, rng)
    noise_kind = args.noise
    if noise_kind == "auto":
        noise_kind = "within" if labels is not None else "subspace"
    if noise_kind == "within":
        if real is None or labels is None:
            ap.error("--noise within needs --dataset, or --templates and --labels")
        noise = dist.within_noise(real, labels)
    elif noise_kind == "subspace":
        noise = dist.subspace_noise(model)
    else:
        noise = dist.shaped_noise(model)
    n_queries = max(args.queries, 1000)
    args.queries = n_queries
    mated = dist.mated_set(model, noise, real, args.mates, n_queries, args.mate_distance, rng)

    overrides = {
        "nprobe": args.nprobe,
        "probe_fraction": args.probe_fraction,
        "reduce_dim": args.reduce_dim,
        "nlist": args.nlist,
        "nlist_factor": args.nlist_factor,
        "encoding": args.encoding,
        "rerank_min": args.rerank_min,
    }
    params = replace(IndexParams(), **{k: v for k, v in overrides.items() if v is not None})
    args.encoding_used = params.encoding

    profile_sample = model.sample(50_000, rng)
    header: dict[str, Any] = {
        "distractors": model.source,
        "noise": noise.kind,
        "noise_scale": mated.noise_scale,
        "mean_query_mate_distance": mated.mean_query_mate_distance,
        "distractor_cosines": dist.cosine_profile(profile_sample, rng),
        "real_cosines": dist.cosine_profile(real, rng) if real is not None else None,
        "mates": len(mated.mates),
        "queries": n_queries,
        "k": args.k,
        "params": asdict(params),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "faiss": faiss.__version__,
            "numpy": np.__version__,
            "loadavg_start": os.getloadavg(),
        },
    }
    print(f"distractors: {header['distractors']}")
    print(f"noise: {noise.kind}; mean query-mate distance {mated.mean_query_mate_distance:.3f}")
    print(f"distractor cosines: {_round(header['distractor_cosines'])}")
    if real is not None:
        print(f"real cosines:       {_round(header['real_cosines'])}")
    print(f"params: {header['params']}", flush=True)

    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"gallery of {size:,} distractors + {len(mated.mates)} mates", flush=True)
        results.append(run_size(size, model, mated, args, params, rng))
    header["machine"]["loadavg_end"] = os.getloadavg()
    table = markdown(results, args)
    print()
    print(table)
    print(
        f"\nload average start {header['machine']['loadavg_start']}, "
        f"end {header['machine']['loadavg_end']} ({os.cpu_count()} CPUs)"
    )
    if args.out:
        Path(args.out).write_text(json.dumps({**header, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
