"""The in-process faiss engine: 1:N inner-product search over templates (exact or IVF).

The SQL database is the source of truth; this index is a derived artefact persisted beside it,
sealed when saved with a keyring (``fieldid.keys.files``: the workspace's index always is).
It is saved with a caller-supplied ``revision`` (for example the gallery's change counter) and
:meth:`FaissIndex.load` refuses a set whose revision, size or checksums do not match, so the caller
rebuilds it from the database with :meth:`FaissIndex.build`.

Templates are L2-normalised float32 vectors, so inner product is cosine similarity. Every score
returned by :meth:`FaissIndex.search` is the exact inner product of the query with the stored
full-precision template, in both modes:

``exact``
    Brute-force inner product over all templates (faiss ``knn`` on the full-precision store).
    Used while the gallery holds at most ``IndexParams.exact_threshold`` templates.
``ivf``
    Above the threshold, an inverted-file index proposes a short list of
    ``max(rerank_factor·k, rerank_min)`` candidates, which are re-ranked exactly against the
    full-precision store. By default the IVF works on a PCA projection keeping 90 % of the
    variance (face templates are strongly anisotropic: 48 of 128 dims for dlib), with 4-bit
    product-quantised fast-scan codes, ``sqrt(n)`` lists of which 38 % are probed, and a short
    list of 256. The search is
    approximate only in which templates reach the short list; the scores are exact.

The mode switches automatically when an ``add`` crosses the threshold (and back, with hysteresis,
when removals shrink the gallery below half of it). Not safe for concurrent mutation: callers
serialise writers; concurrent searches are fine once mutation has stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import faiss
import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldid.errors import FieldidError
from fieldid.keys.envelope import Keyring
from fieldid.keys.errors import KeysError
from fieldid.keys.files import SealedReader, SealedWriter

log = logging.getLogger(__name__)

Mode = Literal["exact", "ivf"]
Encoding = Literal["pq4fs", "sq8", "flat"]

MANIFEST = "manifest.json"
FORMAT = "fieldid-vector-index"
FORMAT_VERSION = 1
#: Score returned in padding slots (with id ``-1``) when fewer than ``k`` templates exist.
PAD_SCORE = -np.inf


class IndexStale(FieldidError):
    """A persisted index is missing, corrupt, or does not match the database; rebuild it."""

    code = "gallery.index_stale"


@dataclass(frozen=True)
class IndexParams:
    """Tuning of :class:`FaissIndex`. Defaults were measured on the 2-core target with realistic
    (anisotropic, dlib/LFW-fitted) 128-d galleries; see ``benchmarks/bench_search.py``."""

    #: Exact brute force while ``ntotal <= exact_threshold``, IVF above. ``None``: 6.4 M floats
    #: (a 25 MB store, inside the 32 MB L3 cache), i.e. 50 000 templates at dim 128 — exact
    #: search measured 0.8 ms p50 there and 1.6–2.0 ms at 100 000.
    exact_threshold: int | None = None
    #: Number of IVF lists; ``None`` means ``nlist_factor * sqrt(n)`` at (re)training.
    nlist: int | None = None
    nlist_factor: float = 1.0
    #: Lists visited per query: ``nprobe`` if set, else ``probe_fraction`` of the lists (so the
    #: share of the gallery scanned, and with it recall, holds as the gallery grows; latency
    #: grows with n). Tuned at 1 M dlib-like templates: 1000 lists, 380 probed, 99.9 % true-mate
    #: recall vs exact, 1.2 ms p50 / 1.6 ms p99 (bench_search.py, busy 2-core machine). Real
    #: face galleries are low-contrast (a mate at cosine 0.95 among distractors up to 0.93), so
    #: a wide probe over cheap codes beats a narrow one over rich codes: SQ8 needed ~2 ms for the
    #: same recall, HNSW reached 92 % at efSearch 512.
    nprobe: int | None = None
    probe_fraction: float = 0.38
    #: The IVF (coarse partition and scanned codes) works on a PCA projection that keeps this
    #: share of the variance (48 of 128 dims for dlib), with L2 distance there, which ranks like
    #: inner product for unit vectors; ``reduce_dim`` fixes the width instead; ``pca_energy=1``
    #: with ``reduce_dim=None`` disables the projection (inner-product IVF on full vectors).
    pca_energy: float = 0.9
    reduce_dim: int | None = None
    #: Codes stored in the IVF lists. ``pq4fs``: 4-bit product quantiser with SIMD fast scan,
    #: two dimensions per byte-half (12 bytes for 48 dims); ``sq8``: 8-bit scalar quantiser;
    #: ``flat``: float32. Ranking errors of the codes are removed by the exact re-rank, which is
    #: why the short list is long.
    encoding: Encoding = "pq4fs"
    #: Short list size is ``max(rerank_factor * k, rerank_min)``.
    rerank_factor: int = 4
    rerank_min: int = 256
    #: k-means/PCA training sample: ``train_per_list * nlist`` templates (faiss wants >= 39).
    train_per_list: int = 64
    kmeans_iterations: int = 10
    #: Retrain the IVF (new ``nlist``) once the gallery has grown this many times past the size it
    #: was trained at. ``0`` disables retraining on ``add`` (``rebuild`` still retrains).
    retrain_growth: float = 4.0
    #: Run single-query searches on one OpenMP thread of the calling thread (measured: 2.0 vs
    #: 11 ms p50 for exact search of 100 000 on 2 busy cores; fork/join costs more than it saves).
    single_thread_single_query: bool = True
    seed: int = 1234

    def nlist_for(self, n: int) -> int:
        if self.nlist is not None:
            return max(1, self.nlist)
        return max(1, round(self.nlist_factor * math.sqrt(max(n, 1))))

    def nprobe_for(self, nlist: int) -> int:
        if self.nprobe is not None:
            return max(1, min(self.nprobe, nlist))
        return max(1, min(nlist, math.ceil(self.probe_fraction * nlist)))

    def threshold_for(self, dim: int) -> int:
        if self.exact_threshold is not None:
            return self.exact_threshold
        return 6_400_000 // max(dim, 1)


@runtime_checkable
class InProcessIndex(Protocol):
    """What today's gallery needs from its in-process index (``FaissIndex``). Ids are the
    database's int64 primary keys. The engine-neutral port is
    :class:`fieldid.index.port.VectorIndex`."""

    #: Caller-supplied revision of the database state the index reflects (saved and checked).
    revision: str | None

    @property
    def dim(self) -> int: ...

    @property
    def ntotal(self) -> int: ...

    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None: ...

    def remove(self, ids: ArrayLike) -> int: ...

    def search(self, query: ArrayLike, k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]: ...

    def ids(self) -> NDArray[np.int64]: ...

    def save(self, directory: str | os.PathLike[str], *, revision: str | None = None) -> None: ...


@contextlib.contextmanager
def _omp_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class FaissIndex:
    """Exact below a size threshold, IVF with exact re-ranking above it. See the module doc."""

    def __init__(
        self,
        dim: int,
        params: IndexParams | None = None,
        *,
        revision: str | None = None,
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        self._dim = int(dim)
        self.params = params or IndexParams()
        self.revision = revision
        self._vecs = np.empty((0, self._dim), dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self._n = 0
        self._row: dict[int, int] = {}
        self._ivf: Any = None  # faiss.IndexIVF when mode == "ivf"
        self._trained_n = 0

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ntotal(self) -> int:
        return self._n

    def __len__(self) -> int:
        return self._n

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, int | np.integer) and int(id_) in self._row

    @property
    def _threshold(self) -> int:
        return self.params.threshold_for(self._dim)

    @property
    def mode(self) -> Mode:
        return "exact" if self._ivf is None else "ivf"

    @property
    def nlist(self) -> int | None:
        return None if self._ivf is None else int(faiss.extract_index_ivf(self._ivf).nlist)

    @property
    def reduced_dim(self) -> int | None:
        """Width of the PCA projection the IVF works in (``None``: exact mode or no projection)."""
        if self._ivf is None or not isinstance(self._ivf, faiss.IndexPreTransform):
            return None
        return int(self._ivf.index.d)

    @property
    def nbytes(self) -> int:
        """Approximate memory held: the full-precision store plus the IVF (codes, ids, lists)."""
        total = self._vecs.nbytes + self._ids.nbytes + self._n * 100  # ~100 B/id in the dict
        if self._ivf is not None:
            ivf = faiss.extract_index_ivf(self._ivf)
            total += self._n * (int(ivf.code_size) + 8) + int(ivf.nlist) * int(ivf.d) * 4
            if isinstance(self._ivf, faiss.IndexPreTransform):
                total += self._dim * int(ivf.d) * 4
        return total

    def ids(self) -> NDArray[np.int64]:
        """Ids currently in the index (in storage order)."""
        return self._ids[: self._n].copy()

    def vectors(self, ids: ArrayLike) -> NDArray[np.float32]:
        """The stored full-precision vectors of ``ids``; ``KeyError`` for an unknown id."""
        rows = [self._row[int(i)] for i in _as_ids(ids)]
        return self._vecs[rows].copy()

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        ids: ArrayLike,
        vectors: ArrayLike,
        *,
        dim: int | None = None,
        params: IndexParams | None = None,
        revision: str | None = None,
    ) -> FaissIndex:
        """A fresh index over ``ids``/``vectors`` (a rebuild from the database)."""
        v = np.asarray(vectors)
        if dim is None:
            if v.ndim != 2:
                raise ValueError("vectors must be (n, dim); pass dim= for an empty build")
            dim = int(v.shape[1])
        index = cls(dim, params, revision=revision)
        index.add(ids, vectors)
        return index

    def rebuild(self) -> None:
        """Re-choose the mode for the current size and retrain the IVF if there is one."""
        if self._n > self._threshold:
            self._build_ivf()
        else:
            self._ivf = None
            self._trained_n = 0

    # ------------------------------------------------------------------ mutation
    def add(self, ids: ArrayLike, vectors: ArrayLike) -> None:
        """Add templates. Ids must be new; vectors are (n, dim) (or (dim,) for one) and finite."""
        id_arr = _as_ids(ids)
        vec = self._as_vectors(vectors)
        if len(id_arr) != len(vec):
            raise ValueError(f"{len(id_arr)} ids for {len(vec)} vectors")
        if len(id_arr) == 0:
            return
        if not np.isfinite(vec).all():
            raise ValueError("vectors contain NaN or infinity")
        if np.abs(np.einsum("ij,ij->i", vec, vec) - 1.0).max() > 2e-3:
            raise ValueError("vectors must be L2-normalised (see template.types.l2_normalise)")
        if len(np.unique(id_arr)) != len(id_arr):
            raise ValueError("duplicate ids in one add")
        if self._row:
            dup = [int(i) for i in id_arr if int(i) in self._row]
            if dup:
                raise ValueError(f"ids already in the index: {dup[:10]}")
        n0, m = self._n, len(id_arr)
        self._reserve(n0 + m)
        self._vecs[n0 : n0 + m] = vec
        self._ids[n0 : n0 + m] = id_arr
        self._row.update(zip(id_arr.tolist(), range(n0, n0 + m), strict=True))
        self._n = n0 + m

        p = self.params
        if self._ivf is None:
            if self._n > self._threshold:
                self._build_ivf()
        elif p.retrain_growth > 0 and self._n > p.retrain_growth * self._trained_n:
            self._build_ivf()
        else:
            self._ivf.add_with_ids(vec, id_arr)

    def remove(self, ids: ArrayLike) -> int:
        """Remove templates by id; unknown ids are ignored. Returns how many were removed."""
        id_arr = np.unique(_as_ids(ids))
        present = np.array([i for i in id_arr.tolist() if i in self._row], dtype=np.int64)
        if len(present) == 0:
            return 0
        rows = np.array([self._row.pop(i) for i in present.tolist()], dtype=np.int64)
        if len(rows) * 8 > self._n:
            keep = np.ones(self._n, dtype=bool)
            keep[rows] = False
            k = int(keep.sum())
            self._vecs[:k] = self._vecs[: self._n][keep]
            self._ids[:k] = self._ids[: self._n][keep]
            self._n = k
            self._row = dict(zip(self._ids[:k].tolist(), range(k), strict=True))
        else:
            # swap-remove, highest rows first so a moved row is never one still to be removed
            for r in np.sort(rows)[::-1].tolist():
                last = self._n - 1
                if r != last:
                    self._vecs[r] = self._vecs[last]
                    moved = int(self._ids[last])
                    self._ids[r] = moved
                    self._row[moved] = r
                self._n = last
        if self._ivf is not None:
            removed = int(self._ivf.remove_ids(faiss.IDSelectorBatch(present)))
            if removed != len(present):  # pragma: no cover - would be an internal bug
                raise RuntimeError(f"IVF removed {removed} of {len(present)} ids")
            if self._n < self._threshold // 2:
                self._ivf = None
                self._trained_n = 0
        if self._n < len(self._vecs) // 4:
            self._shrink()
        return len(present)

    # ------------------------------------------------------------------ search
    def search(self, query: ArrayLike, k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-``k`` by inner product for a (dim,) or (q, dim) query.

        Returns ``scores`` (q, k) float32, best first, and ``ids`` (q, k) int64; slots beyond the
        gallery size hold id ``-1`` and score ``-inf``. Scores are exact inner products.
        """
        if k < 1:
            raise ValueError("k must be >= 1")
        q = self._as_vectors(query)
        nq = len(q)
        scores = np.full((nq, k), PAD_SCORE, dtype=np.float32)
        out = np.full((nq, k), -1, dtype=np.int64)
        if nq == 0 or self._n == 0:
            return scores, out
        threads = 1 if (nq == 1 and self.params.single_thread_single_query) else None
        with _omp_threads(threads):
            if self._ivf is None:
                kk = min(k, self._n)
                d, rows = faiss.knn(q, self._vecs[: self._n], kk, faiss.METRIC_INNER_PRODUCT)
                valid = rows >= 0
                scores[:, :kk] = np.where(valid, d, PAD_SCORE)
                out[:, :kk] = np.where(valid, self._ids[np.where(valid, rows, 0)], -1)
                return scores, out
            kc = min(max(self.params.rerank_factor * k, self.params.rerank_min), self._n)
            params, _keep = self._search_params()
            _, cand = self._ivf.search(q, kc, params=params)
        return self._rerank(q, cand, k, scores, out)

    def _rerank(
        self,
        q: NDArray[np.float32],
        cand: NDArray[np.int64],
        k: int,
        scores: NDArray[np.float32],
        out: NDArray[np.int64],
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        get = self._row.get
        rows = np.fromiter((get(i, -1) for i in cand.ravel().tolist()), np.int64, cand.size)
        rows = rows.reshape(cand.shape)
        valid = rows >= 0
        vecs = self._vecs[np.where(valid, rows, 0)]  # (q, kc, dim)
        exact = np.einsum("qcd,qd->qc", vecs, q, dtype=np.float32)
        exact[~valid] = PAD_SCORE
        kk = min(k, exact.shape[1])
        order = np.argsort(-exact, axis=1, kind="stable")[:, :kk]
        top = np.take_along_axis(exact, order, axis=1)
        top_ids = np.take_along_axis(cand, order, axis=1)
        ok = np.isfinite(top)
        scores[:, :kk] = np.where(ok, top, PAD_SCORE)
        out[:, :kk] = np.where(ok, top_ids, -1)
        return scores, out

    # ------------------------------------------------------------------ persistence
    def save(
        self,
        directory: str | os.PathLike[str],
        *,
        revision: str | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        """Persist atomically into ``directory``; with a ``keyring`` every data file is sealed
        (``fieldid.keys.files``: templates are biometric data), else stored in the clear.

        Data files get fresh names, are written to temporary files, fsynced and renamed; the
        manifest (dim, count, mode, revision, sizes and SHA-256 of every file) is written last the
        same way and is the commit point. A crash before it leaves the previous manifest, whose
        checksums no longer match or whose revision is old, so the set reads as stale. Files of
        earlier saves are deleted afterwards.
        """
        if revision is not None:
            self.revision = revision
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:12]
        files: dict[str, dict[str, Any]] = {}

        def commit(kind: str, name: str, write: Any) -> None:
            tmp = d / f".{name}.tmp"
            write(tmp)
            _fsync_file(tmp)
            os.replace(tmp, d / name)
            files[kind] = {
                "name": name,
                "size": (d / name).stat().st_size,
                "sha256": _sha256(d / name),
            }

        def write_npy(kind: str, arr: NDArray[Any]) -> Any:
            def w(p: Path) -> None:
                with open(p, "wb") as f:
                    if keyring is None:
                        np.save(f, arr, allow_pickle=False)
                        return
                    with SealedWriter(f, keyring, f"index/{kind}") as sealed:
                        np.lib.format.write_array(sealed, arr, allow_pickle=False)

            return w

        def write_ivf(ivf: Any) -> Any:
            def w(p: Path) -> None:
                if keyring is None:
                    faiss.write_index(ivf, str(p))
                    return
                data = faiss.serialize_index(ivf)
                with open(p, "wb") as f, SealedWriter(f, keyring, "index/ivf") as sealed:
                    sealed.write(data.tobytes())

            return w

        commit("ids", f"ids-{token}.npy", write_npy("ids", self._ids[: self._n]))
        commit("vectors", f"vectors-{token}.npy", write_npy("vectors", self._vecs[: self._n]))
        if self._ivf is not None:
            commit("ivf", f"ivf-{token}.faiss", write_ivf(self._ivf))
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "revision": self.revision,
            "dim": self._dim,
            "count": self._n,
            "mode": self.mode,
            "nlist": self.nlist,
            "trained_count": self._trained_n,
            "reduced_dim": self.reduced_dim,
            "params": asdict(self.params),
            "faiss_version": faiss.__version__,
            "sealed": keyring is not None,
            "files": files,
        }
        tmp = d / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _fsync_file(tmp)
        os.replace(tmp, d / MANIFEST)
        _fsync_dir(d)
        keep = {f["name"] for f in files.values()}
        for p in d.iterdir():
            stale_tmp = p.name.startswith(".") and p.name.endswith(".tmp")
            old = p.name.split("-", 1)[0] in {"ids", "vectors", "ivf"} and p.name not in keep
            if stale_tmp or old:
                with contextlib.suppress(OSError):
                    p.unlink()

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        expected_revision: str | None,
        *,
        params: IndexParams | None = None,
        verify: bool = True,
        strict: bool = False,
        keyring: Keyring | None = None,
    ) -> FaissIndex | None:
        """Load a saved index, or ``None`` when it is missing, corrupt or of another revision.

        With ``strict=True`` raises :class:`IndexStale` (its ``reason`` detail says why) instead of
        returning ``None``. ``verify`` checks file SHA-256s (about 1 s per GB). ``params`` tune
        search; the stored IVF structure is kept, and the mode is adapted to
        ``params.exact_threshold`` when needed. ``keyring``: the index must be sealed and open
        with it (an index stored in the clear is then stale: it is rebuilt sealed); without
        one, a sealed index is stale.
        """
        try:
            return cls._load(Path(directory), expected_revision, params, verify, keyring)
        except IndexStale as e:
            if strict:
                raise
            log.info("vector index at %s is stale: %s", directory, e.message)
            return None

    @classmethod
    def _load(
        cls,
        d: Path,
        expected_revision: str | None,
        params: IndexParams | None,
        verify: bool,
        keyring: Keyring | None = None,
    ) -> FaissIndex:
        def stale(reason: str, message: str) -> IndexStale:
            return IndexStale(message, reason=reason, directory=str(d))

        mpath = d / MANIFEST
        if not mpath.is_file():
            raise stale("missing", "no index manifest")
        try:
            m = json.loads(mpath.read_text())
            if m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
                raise stale("format", "unknown index format")
            dim, count, mode = int(m["dim"]), int(m["count"]), str(m["mode"])
            files: dict[str, dict[str, Any]] = m["files"]
        except (ValueError, KeyError, TypeError) as e:
            raise stale("corrupt", f"unreadable manifest: {e}") from e
        if m.get("revision") != expected_revision:
            raise stale(
                "revision",
                f"index revision {m.get('revision')!r} != expected {expected_revision!r}",
            )
        sealed = bool(m.get("sealed", False))
        if sealed != (keyring is not None):
            raise stale(
                "sealed" if sealed else "plaintext",
                "the index is sealed and no key was given"
                if sealed
                else "the index is stored in the clear; it is rebuilt sealed",
            )
        needed = {"ids", "vectors"} | ({"ivf"} if mode == "ivf" else set())
        if mode not in ("exact", "ivf") or not needed <= files.keys():
            raise stale("corrupt", "manifest lists the wrong files")
        for kind in needed:
            f = files[kind]
            p = d / str(f["name"])
            if not p.is_file():
                raise stale("missing", f"{kind} file {p.name} is missing")
            if p.stat().st_size != f["size"]:
                raise stale("corrupt", f"{kind} file {p.name} has the wrong size")
            if verify and _sha256(p) != f["sha256"]:
                raise stale("corrupt", f"{kind} file {p.name} fails its checksum")

        def read_npy(kind: str) -> NDArray[Any]:
            path = d / files[kind]["name"]
            if keyring is None:
                arr: NDArray[Any] = np.load(path, allow_pickle=False)
                return arr
            with open(path, "rb") as f:
                reader = SealedReader(f, keyring, f"index/{kind}")
                out: NDArray[Any] = np.lib.format.read_array(reader, allow_pickle=False)  # type: ignore[arg-type]
                if reader.read(1):
                    raise ValueError("bytes after the array")
                return out

        try:
            ids = read_npy("ids")
            vecs = read_npy("vectors")
        except (OSError, ValueError) as e:
            raise stale("corrupt", f"unreadable arrays: {e}") from e
        except KeysError as e:
            raise stale("key", f"sealed arrays do not open: {e.message}") from e
        if (
            ids.dtype != np.int64
            or vecs.dtype != np.float32
            or ids.shape != (count,)
            or vecs.shape != (count, dim)
        ):
            raise stale("corrupt", "array shapes or types differ from the manifest")
        index = cls(dim, params, revision=expected_revision)
        index._vecs = np.ascontiguousarray(vecs)
        index._ids = ids
        index._n = count
        index._row = dict(zip(ids.tolist(), range(count), strict=True))
        if len(index._row) != count:
            raise stale("corrupt", "duplicate ids")
        if mode == "ivf":
            try:
                ivf_path = d / files["ivf"]["name"]
                if keyring is None:
                    ivf = faiss.read_index(str(ivf_path))
                else:
                    with open(ivf_path, "rb") as fh:
                        raw = SealedReader(fh, keyring, "index/ivf").readall()
                    ivf = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8))
            except RuntimeError as e:
                raise stale("corrupt", f"unreadable IVF: {e}") from e
            except KeysError as e:
                raise stale("key", f"the sealed IVF does not open: {e.message}") from e
            try:
                faiss.extract_index_ivf(ivf)
            except RuntimeError as e:
                raise stale("corrupt", "not an IVF index") from e
            if ivf.ntotal != count or ivf.d != dim:
                raise stale("corrupt", "IVF does not match the manifest")
            index._ivf = ivf
            index._trained_n = int(m.get("trained_count") or count)
        if (index._ivf is None) != (count <= index._threshold):
            index.rebuild()
        return index

    # ------------------------------------------------------------------ internals
    def _as_vectors(self, v: ArrayLike) -> NDArray[np.float32]:
        a = np.asarray(v, dtype=np.float32)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] != self._dim:
            raise ValueError(f"expected vectors of dimension {self._dim}, got shape {a.shape}")
        return np.ascontiguousarray(a)

    def _reserve(self, n: int) -> None:
        if n <= len(self._vecs):
            return
        cap = max(n, int(len(self._vecs) * 1.5), 1024)
        vecs = np.empty((cap, self._dim), dtype=np.float32)
        vecs[: self._n] = self._vecs[: self._n]
        ids = np.empty(cap, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        self._vecs, self._ids = vecs, ids

    def _shrink(self) -> None:
        cap = max(self._n * 2, 1024)
        if cap < len(self._vecs):
            self._vecs = self._vecs[:cap].copy()
            self._ids = self._ids[:cap].copy()

    def _search_params(self) -> tuple[Any, Any]:
        """(parameters to pass, the IVF parameters they point to: keep both alive)."""
        ivf_params = faiss.SearchParametersIVF()
        ivf_params.nprobe = self.params.nprobe_for(self.nlist or 1)
        if isinstance(self._ivf, faiss.IndexPreTransform):
            outer = faiss.SearchParametersPreTransform()
            outer.index_params = ivf_params
            return outer, ivf_params
        return ivf_params, ivf_params

    def _build_ivf(self) -> None:
        p = self.params
        n = self._n
        nlist = min(p.nlist_for(n), max(1, n // 39))
        data = self._vecs[:n]
        rng = np.random.default_rng(p.seed)
        m = min(n, p.train_per_list * nlist)
        sample = data if m == n else data[np.sort(rng.choice(n, m, replace=False))]
        sample = np.ascontiguousarray(sample)

        d_out = self._reduced_width(sample)
        metric = faiss.METRIC_INNER_PRODUCT if d_out is None else faiss.METRIC_L2
        d_ivf = d_out or self._dim
        quantizer = faiss.IndexFlatIP(d_ivf) if d_out is None else faiss.IndexFlatL2(d_ivf)
        ivf: Any
        encoding = p.encoding
        if encoding == "pq4fs" and len(sample) < 1000:
            encoding = "sq8"  # too few points to train 16-centroid sub-quantisers
        if encoding == "pq4fs":
            m = d_ivf // 2 if d_ivf % 2 == 0 else d_ivf
            ivf = faiss.IndexIVFPQFastScan(quantizer, d_ivf, nlist, m, 4, metric)
        elif encoding == "flat":
            ivf = faiss.IndexIVFFlat(quantizer, d_ivf, nlist, metric)
        elif encoding == "sq8":
            ivf = faiss.IndexIVFScalarQuantizer(
                quantizer, d_ivf, nlist, faiss.ScalarQuantizer.QT_8bit, metric
            )
        else:
            raise ValueError(f"unknown encoding {p.encoding!r}")
        ivf.cp.niter = p.kmeans_iterations
        ivf.cp.seed = p.seed
        index: Any = ivf
        if d_out is not None:
            index = faiss.IndexPreTransform(faiss.PCAMatrix(self._dim, d_out), ivf)
        index.train(sample)
        for start in range(0, n, 262_144):
            stop = min(n, start + 262_144)
            index.add_with_ids(data[start:stop], self._ids[start:stop])
        self._ivf = index
        self._trained_n = n

    def _reduced_width(self, sample: NDArray[np.float32]) -> int | None:
        p = self.params
        if p.reduce_dim is not None:
            ok = 0 < p.reduce_dim < self._dim and len(sample) >= self._dim
            return p.reduce_dim if ok else None
        if p.pca_energy >= 1.0 or len(sample) < 2 * self._dim:
            return None
        var = np.linalg.eigvalsh(np.cov(sample, rowvar=False))[::-1]
        total = float(var.sum())
        if total <= 0:
            return None
        width = int(np.searchsorted(np.cumsum(var) / total, p.pca_energy)) + 1
        width = min(self._dim, max(8, round(width / 8) * 8))  # nearest multiple of 8
        return width if width < self._dim else None


def discard_plaintext(directory: str | os.PathLike[str]) -> bool:
    """Delete an index saved in the clear in ``directory`` (by a fieldid before encryption at
    rest); the sealed one is rebuilt from the database at its next use. True if one was."""
    d = Path(directory)
    try:
        m = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(m, dict) or m.get("sealed"):
        return False
    for p in d.iterdir():
        if p.name == MANIFEST or p.name.split("-", 1)[0] in {"ids", "vectors", "ivf"}:
            with contextlib.suppress(OSError):
                p.unlink()
    log.info("the vector index stored in the clear in %s was deleted", d)
    return True


def _as_ids(ids: ArrayLike) -> NDArray[np.int64]:
    a = np.asarray(ids)
    if a.ndim == 0:
        a = a[None]
    if a.ndim != 1:
        raise ValueError("ids must be one-dimensional")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError("ids must be integers")
    a = a.astype(np.int64, copy=False)
    if a.size and (a < 0).any():
        raise ValueError("ids must be non-negative (-1 marks padding)")
    return np.ascontiguousarray(a)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "FaissIndex",
    "InProcessIndex",
    "IndexParams",
    "IndexStale",
    "Mode",
]
