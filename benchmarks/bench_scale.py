"""Scale benchmark: the vector-index backends (faiss-local, pgvector, milvus) at 1M and 10M.

    nice -n 10 python benchmarks/bench_scale.py --dataset ../shared/faces/lfw-dev \\
        --backends faiss-local,pgvector,milvus --distractors 1000000 \\
        --out benchmarks/results/scale-1m.json

The gallery: ``--distractors`` synthetic templates (a Gaussian fitted to the real dlib templates of
the dataset, L2-normalised: benchmarks/_distractors.py) plus ``--mates`` real templates. The mates
are real pairs: for every identity of the dataset with two or more images, the first image is
enrolled and every other image is a query (lfw-dev: 525 identities, 2,104 queries); further real
templates of single-image identities fill the mates up to ``--mates`` (they are enrolled, never
queried). Mates are spread at random through the load order, so none is inserted into an empty
graph. The gallery is written once to a memory-mapped file in benchmarks/.cache (5 GB at 10M),
which also serves as the "stored templates" the exact re-rank reads, as the database does in
fieldid; the exact ground truth (top-10 of every query by brute force) is cached beside it.

Per backend: its server is started here (pgserver's PostgreSQL 18 + pgvector, Milvus standalone)
with a private data directory under benchmarks/.cache and free ports; the gallery is loaded
through the adapter's bulk path, then the index is built (pgvector: CREATE INDEX after the load;
Milvus: flush, then wait for every segment's index). Reported:

* build: load seconds, index-build seconds, total;
* memory: server resident set (process tree) after the build, peak over the run sampled each
  second (server + this process), and on-disk size;
* single-search latency over every query, one at a time: the engine search for the short list
  (``--candidates``) and the exact re-rank from the stored templates, p50/p99 of the total;
* recall: ``mate`` = true-mate recall against exact search (among queries whose exact top-1 is
  their mate, the share whose top-1 here is the mate too); ``top1`` = same top-1 as exact;
  ``top10`` = mean overlap of the top-10 sets;
* throughput: searches per second with ``--clients`` concurrent client threads (each search the
  full engine + re-rank path), ``--throughput-searches`` searches in all.

``uptime``'s load average is recorded before and after every phase: on the shared 2-core machine
it says how much of a time was someone else's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _distractors as dist
from fieldid.index import servers
from fieldid.index.faiss_engine import IndexParams
from fieldid.index.faiss_local import FaissLocalIndex
from fieldid.index.port import VectorIndex
from fieldid.index.rerank import TemplateLookup, rerank

CACHE = Path(__file__).resolve().parent / ".cache"
K = 10
CHUNK = 200_000


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------- data


@dataclass
class Data:
    n: int  # gallery size (mates + distractors)
    mates: int
    vectors: NDArray[np.float32]  # memmap (n, dim), row i holds id i
    queries: NDArray[np.float32]
    query_mate: NDArray[np.int64]  # id of each query's mate
    truth_ids: NDArray[np.int64]  # (q, K) exact
    truth_scores: NDArray[np.float32]
    order: NDArray[np.int64]  # load order of ids
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def lookup(self) -> TemplateLookup:
        vecs = self.vectors

        def get(ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
            ok = ids[(ids >= 0) & (ids < self.n)]
            return ok, np.asarray(vecs[ok])

        return get


def real_pairs(
    vectors: NDArray[np.float32], labels: NDArray[Any], mates: int, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64], int]:
    """Mates (enrolled), queries and each query's mate row, from real labelled templates."""
    by: dict[str, list[int]] = {}
    for i, lab in enumerate(labels.tolist()):
        by.setdefault(str(lab), []).append(i)
    multi = sorted(k for k, v in by.items() if len(v) >= 2)
    single = sorted(k for k, v in by.items() if len(v) == 1)
    mate_rows = [by[k][0] for k in multi]
    q_rows: list[int] = []
    q_mate: list[int] = []
    for m, k in enumerate(multi):
        for r in by[k][1:]:
            q_rows.append(r)
            q_mate.append(m)
    fill = max(0, mates - len(mate_rows))
    extra = rng.choice(len(single), size=min(fill, len(single)), replace=False)
    mate_rows += [by[single[int(j)]][0] for j in extra]
    return vectors[mate_rows], vectors[q_rows], np.asarray(q_mate, dtype=np.int64), len(multi)


def prepare(args: argparse.Namespace) -> Data:
    from bench_search import dataset_templates

    real, labels = dataset_templates(Path(args.dataset))
    rng = np.random.default_rng(args.seed)
    mates, queries, q_mate, n_pairs = real_pairs(real, labels, args.mates, rng)
    model = dist.fit_model(real)
    m = len(mates)
    n = m + args.distractors
    dim = real.shape[1]
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = f"scale-{args.distractors}-{m}-s{args.seed}"
    path = CACHE / f"{tag}.f32"
    truth_path = CACHE / f"{tag}-truth.npz"
    if not _cached(path, (n, dim)):
        t0 = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        mm[:m] = mates
        grng = np.random.default_rng(args.seed + 1)
        for start in range(m, n, CHUNK):
            stop = min(n, start + CHUNK)
            mm[start:stop] = model.sample(stop - start, grng)
        mm.flush()
        del mm
        tmp.replace(path)
        truth_path.unlink(missing_ok=True)
        print(f"generated {n:,} templates in {time.perf_counter() - t0:.0f} s", flush=True)
    vectors = np.load(path, mmap_mode="r")
    assert np.array_equal(vectors[:m], mates), "cached gallery does not hold these mates"
    if truth_path.exists():
        with np.load(truth_path) as z:
            truth_ids, truth_scores = z["ids"], z["scores"]
    else:
        t0 = time.perf_counter()
        truth_ids, truth_scores = exact_topk(vectors, queries, K)
        np.savez(truth_path, ids=truth_ids, scores=truth_scores)
        print(f"exact ground truth in {time.perf_counter() - t0:.0f} s", flush=True)
    # load order: distractors in id order, each mate at a random position among them
    order = np.arange(m, n, dtype=np.int64)
    pos = np.sort(rng.integers(0, len(order) + 1, size=m))
    order = np.insert(order, pos, rng.permutation(m).astype(np.int64))
    desc = {
        "distractors": args.distractors,
        "distractor_model": model.source,
        "mates": m,
        "real_pair_identities": n_pairs,
        "queries": len(queries),
        "gallery": n,
        "dim": dim,
        "distractor_cosines": dist.cosine_profile(model.sample(50_000, rng), rng),
        "real_cosines": dist.cosine_profile(real, rng),
    }
    return Data(n, m, vectors, queries, q_mate, truth_ids, truth_scores, order, desc)


def _cached(path: Path, shape: tuple[int, int]) -> bool:
    try:
        return tuple(np.load(path, mmap_mode="r").shape) == shape
    except (OSError, ValueError):
        return False


def exact_topk(
    vectors: NDArray[np.float32], queries: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(vectors), CHUNK):
        chunk = np.ascontiguousarray(vectors[start : start + CHUNK])
        s, i = faiss.knn(queries, chunk, k, faiss.METRIC_INNER_PRODUCT)
        s_all = np.concatenate([best_s, s], axis=1)
        i_all = np.concatenate([best_i, i + start], axis=1)
        o = _topk_order(s_all, i_all, k)
        best_s = np.take_along_axis(s_all, o, axis=1)
        best_i = np.take_along_axis(i_all, o, axis=1)
    return best_i, best_s


def _topk_order(s: NDArray[np.float32], i: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    out = np.empty((len(s), k), dtype=np.int64)
    for r in range(len(s)):
        out[r] = np.lexsort((i[r], -s[r].astype(np.float64)))[:k]
    return out


def batches(data: Data, size: int) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
    for start in range(0, len(data.order), size):
        ids = data.order[start : start + size]
        yield ids, np.ascontiguousarray(data.vectors[ids])


# ---------------------------------------------------------------------------- memory


def tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.Error):
            total += q.memory_info().rss
    return total / 2**20


class PeakSampler:
    """Samples server and own RSS every second; keeps the peak of their sum."""

    def __init__(self, server_pids: list[int]) -> None:
        self.pids = server_pids
        self.peak_total = 0.0
        self.peak_server = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        server = sum(tree_rss_mb(p) for p in self.pids)
        total = server + tree_rss_mb(os.getpid())
        self.peak_server = max(self.peak_server, server)
        self.peak_total = max(self.peak_total, total)

    def stop(self) -> None:
        self._stop.set()
        self._t.join()
        self.sample()


def dir_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total / 2**20


# ---------------------------------------------------------------------------- backends


class Backend:
    name = ""
    index: Any
    server_pids: list[int]
    data_dir: Path | None = None

    def start(self) -> None: ...

    def holds(self, tag: str, data: Data) -> bool:
        """True when the (kept) engine already holds this gallery, built as ``tag`` says."""
        return False

    def load(self, data: Data, args: argparse.Namespace) -> dict[str, float]:
        raise NotImplementedError

    def warm(self) -> None: ...

    def memory(self) -> dict[str, float]:
        return {}

    def stop(self) -> None: ...


class FaissBackend(Backend):
    name = "faiss-local"

    def start(self) -> None:
        self.server_pids = []

    def load(self, data: Data, args: argparse.Namespace) -> dict[str, float]:
        t0 = time.perf_counter()
        ids = data.order
        vecs = np.empty((len(ids), data.dim), dtype=np.float32)
        for start in range(0, len(ids), CHUNK):
            sl = ids[start : start + CHUNK]
            vecs[start : start + len(sl)] = data.vectors[sl]
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.index = FaissLocalIndex(data.dim, IndexParams())
        self.index.insert_new(ids, vecs)
        del vecs
        return {"load_s": read_s, "build_s": time.perf_counter() - t0}

    def memory(self) -> dict[str, float]:
        return {"index_mb": self.index.engine().nbytes / 2**20}


class PgvectorBackend(Backend):
    name = "pgvector"

    def __init__(self, args: argparse.Namespace) -> None:
        from fieldid.index.pgvector import PgvectorParams

        self.params = PgvectorParams(
            m=args.m,
            ef_construction=args.ef_construction,
            ef_search=args.pg_ef_search,
            storage=args.pg_storage,
            build_memory=args.pg_build_memory,
            build_memory_max=args.pg_build_memory_max,
            build_workers=args.pg_build_workers,
        )
        self.shared_buffers = args.pg_shared_buffers
        self.data_dir = Path(args.data_dir) / "pgvector" if args.data_dir else None
        self.notices: list[str] = []

    def start(self) -> None:
        from sqlalchemy import event

        from fieldid.index.pgvector import PgvectorIndex, sqlalchemy_url

        self.stack = contextlib.ExitStack()
        url = self.stack.enter_context(
            servers.postgresql(
                f"\nshared_buffers = '{self.shared_buffers}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_wal_size = '8GB'\n"
                "checkpoint_timeout = '30min'\nmax_parallel_maintenance_workers = 2\n",
                data_dir=None if self.data_dir is None else str(self.data_dir),
            )
        )
        self.server_pids = [_postmaster_pid(url)]
        from sqlalchemy import create_engine

        engine = create_engine(sqlalchemy_url(url), pool_pre_ping=True)

        @event.listens_for(engine, "connect")
        def _notices(dbapi_conn: Any, _record: Any) -> None:
            # pgvector says here when the graph outgrew maintenance_work_mem
            dbapi_conn.add_notice_handler(
                lambda d: self.notices.append(f"{d.severity}: {d.message_primary}")
            )

        self.index = PgvectorIndex(engine, 128, self.params)

    def holds(self, tag: str, data: Data) -> bool:
        return self.index.revision() == tag and self.index.count() == data.n

    def load(self, data: Data, args: argparse.Namespace) -> dict[str, float]:
        from sqlalchemy import text

        self.index.clear()
        self.index.bulk_begin(expected=data.n)
        t0 = time.perf_counter()
        for ids, vecs in batches(data, 100_000):
            self.index.insert_new(ids, vecs)
        load_s = time.perf_counter() - t0
        memory = self.params.build_memory_for(data.n, data.dim)
        print(
            f"  loaded in {load_s:.0f} s; building HNSW, maintenance_work_mem {memory}, "
            f"{self.params.build_workers} workers ({uptime()})",
            flush=True,
        )
        t0 = time.perf_counter()
        with _BuildProgress(self.index.engine):
            self.index.build_hnsw()
        build_s = time.perf_counter() - t0
        with self.index.engine.begin() as c:
            c.execute(text("ANALYZE fieldid_vectors"))
        return {
            "load_s": load_s,
            "build_s": build_s,
            "build_memory": memory,  # type: ignore[dict-item]
            "build_workers": self.params.build_workers,
            "build_notices": list(self.notices),  # type: ignore[dict-item]
        }

    def warm(self) -> None:
        from sqlalchemy import text

        # warm the index into shared buffers / the page cache
        with self.index.engine.begin() as c, contextlib.suppress(Exception):
            c.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
            c.execute(text("SELECT pg_prewarm('fieldid_vectors_hnsw')"))

    def memory(self) -> dict[str, float]:
        from sqlalchemy import text

        with self.index.engine.connect() as c:
            table = c.execute(text("SELECT pg_table_size('fieldid_vectors')")).scalar()
            index = c.execute(text("SELECT pg_relation_size('fieldid_vectors_hnsw')")).scalar()
        return {"table_mb": (table or 0) / 2**20, "index_mb": (index or 0) / 2**20}

    def stop(self) -> None:
        self.index.close()
        self.stack.close()


class _BuildProgress:
    """Prints PostgreSQL's CREATE INDEX progress (pg_stat_progress_create_index) each minute."""

    def __init__(self, engine: Any, every: float = 60.0) -> None:
        self.engine = engine
        self.every = every
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _BuildProgress:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def _run(self) -> None:
        from sqlalchemy import text

        t0 = time.perf_counter()
        while not self._stop.wait(self.every):
            with contextlib.suppress(Exception), self.engine.connect() as c:
                row = c.execute(
                    text(
                        "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total "
                        "FROM pg_stat_progress_create_index"
                    )
                ).first()
                if row is not None:
                    print(
                        f"  CREATE INDEX {time.perf_counter() - t0:.0f} s: {row[0]}, tuples "
                        f"{row[1]:,}/{row[2]:,}, blocks {row[3]:,}/{row[4]:,} ({uptime()})",
                        flush=True,
                    )


def _postmaster_pid(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as c:
        row = c.execute("SELECT pg_postmaster_start_time(), pg_backend_pid()").fetchone()
        data = c.execute("SHOW data_directory").fetchone()
    assert row is not None and data is not None
    pidfile = Path(str(data[0])) / "postmaster.pid"
    try:
        return int(pidfile.read_text().split()[0])
    except OSError:  # owned by the pgserver user and unreadable: fall back to the backend
        return int(row[1])


def _milvus_pid(uri: str) -> int:
    import psutil

    port = int(uri.rsplit(":", 1)[1])
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return int(c.pid)
    return 0


class MilvusBackend(Backend):
    name = "milvus"

    def __init__(self, args: argparse.Namespace) -> None:
        from fieldid.index.milvus import MilvusParams

        self.params = MilvusParams(
            index_type=args.milvus_index,
            m=args.m,
            ef_construction=args.ef_construction,
            ef=args.milvus_ef,
            nlist=args.nlist,
            nprobe=args.nprobe,
            pq_m=args.pq_m,
            batch=20_000,
            timeout=600,
        )
        self.segment_mb = args.milvus_segment_mb
        self.keep_dir = Path(args.data_dir) / "milvus" if args.data_dir else None

    def start(self) -> None:
        from fieldid.index.milvus import MilvusIndex

        extra: dict[str, Any] = {}
        if self.segment_mb:  # bigger segments: fewer per-segment searches at 10M
            extra = {
                "dataCoord.segment.maxSize": self.segment_mb,
                "dataCoord.segment.sealProportion": 1.0,
            }
        self.stack = contextlib.ExitStack()
        if self.keep_dir is not None:
            uri = self.stack.enter_context(servers.milvus(extra, data_dir=str(self.keep_dir)))
            self.data_dir = self.keep_dir
        else:
            uri = self.stack.enter_context(servers.milvus(extra, directory=str(CACHE)))
            self.data_dir = max(CACHE.glob("fid-milvus-*"), key=lambda p: p.stat().st_mtime)
        self.server_pids = [_milvus_pid(uri)]
        self.index = MilvusIndex(uri, 128, self.params)

    def holds(self, tag: str, data: Data) -> bool:
        return self.index.revision() == tag and self.index.count() == data.n

    def load(self, data: Data, args: argparse.Namespace) -> dict[str, float]:
        if self.index.revision() is not None or self.index.count():
            self.index.clear()  # a kept collection of another gallery or build
        t0 = time.perf_counter()
        self.index.bulk_begin()  # released while loading: no raw segments in the query node
        for ids, vecs in batches(data, 100_000):
            self.index.insert_new(ids, vecs)
        self.index.flush()
        load_s = time.perf_counter() - t0
        print(f"  loaded in {load_s:.0f} s; building indexes ({uptime()})", flush=True)
        t0 = time.perf_counter()
        self.index.wait_indexed()
        self.index._load([self.index._collection("operational")])
        self.index.wait_loaded()
        build_s = time.perf_counter() - t0
        return {"load_s": load_s, "build_s": build_s}

    def memory(self) -> dict[str, float]:
        return {"disk_mb": dir_mb(self.data_dir) if self.data_dir else 0.0}

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.index.close()
        self.stack.close()


# ---------------------------------------------------------------------------- measures


def sweep_params(name: str, index: Any, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Search-time operating points to measure on one build: (label, params)."""
    from dataclasses import replace

    values: list[int] = []
    for group in (args.sweep or "").split(";"):
        who, _, vals = group.rpartition(":")
        if vals and who in ("", name):
            values = [int(v) for v in vals.split(",")]
    if name == "pgvector":
        return [(f"ef_search={v}", replace(index.params, ef_search=v)) for v in values]
    if name == "milvus":
        key = "ef" if index.params.index_type == "HNSW" else "nprobe"
        return [(f"{key}={v}", replace(index.params, **{key: v})) for v in values]
    return [(f"probe={v}%", replace(index.params, probe_fraction=v / 100)) for v in values]


def warm(data: Data) -> None:
    """Read the stored templates once, so that the re-rank reads a warm page cache (as a database
    serving them from memory would) rather than whatever the other runs left there."""
    for start in range(0, data.n, CHUNK):
        float(np.asarray(data.vectors[start : start + CHUNK, 0]).sum())


def latency_recall(index: VectorIndex, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    lookup = data.lookup()
    warm(data)
    c = args.candidates
    for q in data.queries[: args.warmup]:
        rerank(q, index.search(q, c).ids, lookup, K)
    nq = len(data.queries)
    eng = np.empty(nq)
    tot = np.empty(nq)
    got = np.full((nq, K), -1, dtype=np.int64)
    for i, q in enumerate(data.queries):
        t0 = time.perf_counter()
        cand = index.search(q, c)
        t1 = time.perf_counter()
        res = rerank(q, cand.ids, lookup, K)
        t2 = time.perf_counter()
        eng[i], tot[i] = t1 - t0, t2 - t0
        got[i] = res.ids[0]
    exact_mate = data.truth_ids[:, 0] == data.query_mate
    mine_mate = got[:, 0] == data.query_mate
    out: dict[str, Any] = {
        "engine_p50_ms": float(np.percentile(eng, 50) * 1e3),
        "engine_p99_ms": float(np.percentile(eng, 99) * 1e3),
        "p50_ms": float(np.percentile(tot, 50) * 1e3),
        "p99_ms": float(np.percentile(tot, 99) * 1e3),
        "mean_ms": float(tot.mean() * 1e3),
        "exact_mate_rank1": float(exact_mate.mean()),
        "mate_rank1": float(mine_mate.mean()),
        "recall_mate": float((mine_mate & exact_mate).sum() / max(1, exact_mate.sum())),
        "recall_top1": float((got[:, 0] == data.truth_ids[:, 0]).mean()),
        "overlap_top10": float(
            np.mean([len(set(a) & set(b)) / K for a, b in zip(got, data.truth_ids, strict=True)])
        ),
        "uptime_after_latency": uptime(),
    }
    return out


def measure(name: str, index: Any, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    out = latency_recall(index, data, args)
    out |= throughput(index, data, args, data.lookup())
    base = index.params
    sweep = []
    for label, params in sweep_params(name, index, args):
        if name == "faiss-local":
            index.engine().params = params
        else:
            index.params = params
        r = latency_recall(index, data, args)
        r["point"] = label
        sweep.append(r)
        print(f"  {name} {label}: {json.dumps(_round(r))}", flush=True)
    if name == "faiss-local":
        index.engine().params = base
    else:
        index.params = base
    out["sweep"] = sweep
    return out


def throughput(
    index: VectorIndex, data: Data, args: argparse.Namespace, lookup: TemplateLookup
) -> dict[str, Any]:
    total = args.throughput_searches
    clients = args.clients
    counter = iter(range(total))
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            q = data.queries[i % len(data.queries)]
            try:
                rerank(q, index.search(q, args.candidates).ids, lookup, K)
            except Exception as e:  # counted, never hidden
                errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    return {
        "throughput_clients": clients,
        "throughput_searches": total,
        "searches_per_s": total / secs,
        "throughput_errors": len(errors),
        "uptime_after_throughput": uptime(),
    }


def build_tag(name: str, data: Data, args: argparse.Namespace) -> str:
    """What a kept engine must have been built from to be reused: the gallery (its file's tag
    and size) and the build-time parameters (search-time ones, ef and nprobe, may differ)."""
    gallery = f"scale-{args.distractors}-{data.mates}-s{args.seed}:{data.n}x{data.dim}"
    if name == "pgvector":
        build = f"hnsw-m{args.m}-efc{args.ef_construction}-{args.pg_storage}"
    elif name == "milvus":
        build = (
            f"{args.milvus_index}-m{args.m}-efc{args.ef_construction}-nlist{args.nlist}"
            f"-pqm{args.pq_m}-seg{args.milvus_segment_mb}"
        )
    else:
        build = "faiss"
    return f"bench:{gallery}:{build}"


def run_backend(name: str, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    backend: Backend
    if name == "faiss-local":
        backend = FaissBackend()
    elif name == "pgvector":
        backend = PgvectorBackend(args)
    elif name == "milvus":
        backend = MilvusBackend(args)
    else:
        raise SystemExit(f"unknown backend {name}")
    out: dict[str, Any] = {"backend": name, "uptime_start": uptime()}
    t0 = time.perf_counter()
    backend.start()
    out["server_start_s"] = time.perf_counter() - t0
    sampler = PeakSampler(backend.server_pids)
    tag = build_tag(name, data, args)
    try:
        if args.reuse and backend.holds(tag, data):
            out |= {"reused": True, "load_s": 0.0, "build_s": 0.0}
            print(f"  {name}: reusing the gallery kept in {args.data_dir} ({tag})", flush=True)
        else:
            out |= backend.load(data, args)
            out["reused"] = False
            if args.data_dir:
                backend.index.mark(tag)
        out["build_tag"] = tag
        out["total_build_s"] = out["load_s"] + out["build_s"]
        out["uptime_after_build"] = uptime()
        backend.warm()
        print(f"  {name}: built {json.dumps(_round(out))}", flush=True)
        assert backend.index.count() == data.n, (backend.index.count(), data.n)
        sampler.sample()
        out["server_rss_mb"] = sum(tree_rss_mb(p) for p in backend.server_pids)
        out["bench_rss_mb"] = tree_rss_mb(os.getpid())
        out |= backend.memory()
        out |= measure(name, backend.index, data, args)
    finally:
        sampler.stop()
        out["peak_server_rss_mb"] = sampler.peak_server
        out["peak_total_rss_mb"] = sampler.peak_total
        backend.stop()
    print(f"  {name}: {json.dumps(_round(out))}", flush=True)
    return out


def _round(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}


def markdown(results: list[dict[str, Any]], data: Data) -> str:
    lines = [
        "| backend | index | gallery | build s (load + index) | server RSS MB (peak) "
        "| p50 ms | p99 ms | mate recall vs exact | top-1 = exact | top-10 overlap "
        "| searches/s (8 clients) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r.get('index_desc', '')} | {data.n:,} "
            f"| {_build_cell(r)} "
            f"| {r['server_rss_mb']:.0f} ({r['peak_server_rss_mb']:.0f}) "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['recall_mate']:.4f} "
            f"| {r['recall_top1']:.4f} | {r['overlap_top10']:.4f} | {r['searches_per_s']:.0f} |"
        )
    return "\n".join(lines)


def _build_cell(r: dict[str, Any]) -> str:
    if r.get("reused"):
        return f"kept ({r['server_start_s']:.0f} s to reopen)"
    return f"{r['total_build_s']:.0f} ({r['load_s']:.0f} + {r['build_s']:.0f})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", required=True, help="labelled faces (../shared/faces/lfw-dev)")
    ap.add_argument("--backends", default="faiss-local,pgvector,milvus")
    ap.add_argument("--distractors", type=int, default=1_000_000)
    ap.add_argument("--mates", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=100, help="short list before re-rank")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--throughput-searches", type=int, default=2000)
    ap.add_argument("--m", type=int, default=32, help="HNSW M (pgvector, milvus)")
    ap.add_argument("--ef-construction", type=int, default=128)
    ap.add_argument("--pg-ef-search", type=int, default=200)
    ap.add_argument("--pg-storage", default="vector", choices=["vector", "halfvec"])
    ap.add_argument(
        "--pg-build-memory",
        default="auto",
        help="maintenance_work_mem for the HNSW build; auto: sized so the graph fits",
    )
    ap.add_argument("--pg-build-memory-max", default="12GB", help="cap on auto")
    ap.add_argument("--pg-build-workers", type=int, default=2)
    ap.add_argument("--pg-shared-buffers", default="2GB")
    ap.add_argument("--milvus-index", default="HNSW")
    ap.add_argument("--milvus-ef", type=int, default=256)
    ap.add_argument("--milvus-segment-mb", type=int, default=0, help="dataCoord segment maxSize")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=64)
    ap.add_argument("--pq-m", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sweep",
        help="also measure latency/recall at these search settings, comma-separated:\n"
        "pgvector ef_search, milvus ef (HNSW) or nprobe (IVF), faiss probe %%;\n"
        "per backend: 'pgvector:100,400;milvus:128,512'",
    )
    ap.add_argument("--keep-data", action="store_true", help="keep the cached gallery file")
    ap.add_argument(
        "--data-dir",
        help="keep the servers' data (pgvector, milvus) in DIR/<backend> between runs\n"
        "(implies --keep-data: the re-rank reads the cached gallery file)",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="with --data-dir: when a kept engine already holds this gallery, built with\n"
        "the same build parameters, skip load and build and measure it as it is",
    )
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.reuse and not args.data_dir:
        ap.error("--reuse needs --data-dir")
    if args.data_dir:
        args.keep_data = True

    header: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "args": vars(args),
        "uptime_start": uptime(),
        "cpus": os.cpu_count(),
        "faiss": faiss.__version__,
    }
    print(f"start: {header['uptime_start']}", flush=True)
    t0 = time.perf_counter()
    data = prepare(args)
    header["data"] = data.description
    header["prepare_s"] = time.perf_counter() - t0
    print(f"data: {json.dumps(data.description)}", flush=True)
    results = []
    for name in args.backends.split(","):
        print(f"{name}: {uptime()}", flush=True)
        r = run_backend(name.strip(), data, args)
        r["index_desc"] = describe_index(name.strip(), args)
        results.append(r)
        if args.out:
            Path(args.out).write_text(json.dumps({**header, "results": results}, indent=2))
    header["uptime_end"] = uptime()
    table = markdown(results, data)
    print()
    print(table)
    print(f"\nstart: {header['uptime_start']}\nend:   {header['uptime_end']}")
    if args.out:
        Path(args.out).write_text(
            json.dumps({**header, "results": results, "markdown": table}, indent=2)
        )
    if not args.keep_data:
        for p in CACHE.glob(f"scale-{args.distractors}-*"):
            p.unlink(missing_ok=True)
    return 0


def describe_index(name: str, args: argparse.Namespace) -> str:
    if name == "faiss-local":
        p = IndexParams()
        return f"IVF-PQ4fs on PCA {p.pca_energy:.0%}, probe {p.probe_fraction:.0%}, exact re-rank"
    if name == "pgvector":
        return (
            f"HNSW m={args.m} efC={args.ef_construction} ef_search={args.pg_ef_search} "
            f"({args.pg_storage})"
        )
    if args.milvus_index == "HNSW":
        return f"HNSW M={args.m} efC={args.ef_construction} ef={args.milvus_ef}"
    return f"{args.milvus_index} nlist={args.nlist} nprobe={args.nprobe}"


if __name__ == "__main__":
    raise SystemExit(main())
