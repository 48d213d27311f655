"""The gallery vector index: exact and IVF modes, removal, persistence, staleness."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest
from numpy.typing import NDArray

from fieldid.gallery.index import FaissIndex, IndexParams, IndexStale, VectorIndex
from fieldid.template.types import l2_normalise

DIM = 32


def unit(n: int, rng: np.random.Generator, dim: int = DIM) -> NDArray[np.float32]:
    """Random unit vectors, anisotropic like real templates (so the IVF's PCA step engages)."""
    scale = 1.0 / np.arange(1, dim + 1) ** 0.8
    return l2_normalise(rng.standard_normal((n, dim)) * scale)


def near(
    x: NDArray[np.float32], rng: np.random.Generator, sigma: float = 0.05
) -> NDArray[np.float32]:
    return l2_normalise(x + sigma * rng.standard_normal(x.shape))


def make_ids(n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Sparse, shuffled, large ids: nothing may assume ids are row numbers."""
    return rng.choice(10**12, size=n, replace=False).astype(np.int64) + 1


# low threshold so the IVF path is exercised on small data
IVF = IndexParams(exact_threshold=500, nlist=16, nprobe=4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small data: OpenMP fork/join only costs time (a lot on a busy 2-core machine)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def brute(
    ids: NDArray[np.int64], vecs: NDArray[np.float32], q: NDArray[np.float32], k: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    s = q @ vecs.T
    o = np.argsort(-s, axis=1)[:, :k]
    return np.take_along_axis(s, o, axis=1), ids[o]


def test_exact_search_returns_true_nearest(rng: np.random.Generator) -> None:
    vecs, ids = unit(300, rng), make_ids(300, rng)
    index = FaissIndex.build(ids, vecs)
    assert isinstance(index, VectorIndex)
    assert index.mode == "exact" and index.ntotal == 300 and index.dim == DIM
    q = unit(20, rng)
    scores, got = index.search(q, 5)
    want_s, want_i = brute(ids, vecs, q, 5)
    assert got.dtype == np.int64 and scores.dtype == np.float32 and got.shape == (20, 5)
    np.testing.assert_array_equal(got, want_i)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    # one query as a (dim,) vector gives a (1, k) answer
    _, i1 = index.search(q[0], 5)
    assert i1.shape == (1, 5)
    np.testing.assert_array_equal(i1[0], want_i[0])


def test_padding_when_k_exceeds_gallery(rng: np.random.Generator) -> None:
    index = FaissIndex(DIM)
    s, i = index.search(unit(1, rng), 3)
    assert (i == -1).all() and np.isneginf(s).all()
    index.add([5, 9], unit(2, rng))
    s, i = index.search(unit(1, rng), 4)
    assert sorted(i[0, :2].tolist()) == [5, 9]
    assert (i[0, 2:] == -1).all() and np.isneginf(s[0, 2:]).all()


@pytest.mark.parametrize(
    "params",
    [
        IVF,
        replace(IVF, encoding="sq8"),
        replace(IVF, pca_energy=1.0),
        replace(IVF, pca_energy=1.0, encoding="flat"),
    ],
    ids=["pca-pq4fs", "pca-sq8", "pq4fs", "flat"],
)
def test_ivf_reranks_exactly_and_finds_planted_duplicates(
    rng: np.random.Generator, params: IndexParams
) -> None:
    vecs, ids = unit(3000, rng), make_ids(3000, rng)
    index = FaissIndex.build(ids, vecs, params=params)
    assert index.mode == "ivf" and index.nlist == 16
    assert (index.reduced_dim is not None) == (params.pca_energy < 1)
    picks = rng.choice(3000, 50, replace=False)
    queries = near(vecs[picks], rng, 0.02)
    scores, got = index.search(queries, 10)
    # the planted near-duplicate is found first
    np.testing.assert_array_equal(got[:, 0], ids[picks])
    # every returned score is the exact inner product with the stored vector
    by_id = dict(zip(ids.tolist(), vecs, strict=True))
    for qi in range(len(queries)):
        exact = np.array([by_id[i] @ queries[qi] for i in got[qi]], dtype=np.float32)
        np.testing.assert_allclose(scores[qi], exact, atol=1e-5)
        assert (np.diff(scores[qi]) <= 1e-7).all()
    # with uncompressed codes and every list probed, the answer equals brute force
    if params.encoding == "flat":
        full = FaissIndex.build(ids, vecs, params=replace(params, nprobe=16))
        s_full, i_full = full.search(queries, 10)
        want_s, want_i = brute(ids, vecs, queries, 10)
        np.testing.assert_array_equal(i_full, want_i)
        np.testing.assert_allclose(s_full, want_s, atol=1e-5)


@pytest.mark.parametrize("params", [IndexParams(), IVF], ids=["exact", "ivf"])
def test_remove_in_both_modes(rng: np.random.Generator, params: IndexParams) -> None:
    n = 1200
    vecs, ids = unit(n, rng), make_ids(n, rng)
    index = FaissIndex.build(ids, vecs, params=params)
    mode = index.mode
    gone = ids[rng.choice(n, 100, replace=False)]
    assert index.remove(np.concatenate([gone, [123]])) == 100  # unknown id ignored
    assert index.remove(gone) == 0
    assert index.ntotal == n - 100 and index.mode == mode
    assert set(index.ids().tolist()) == set(ids.tolist()) - set(gone.tolist())
    # querying with the removed vectors themselves never brings them back
    removed_vecs = vecs[np.isin(ids, gone)]
    _, got = index.search(removed_vecs, 20)
    assert not np.isin(got, gone).any()
    # the survivors are still found (rows moved by the removal keep their ids)
    keep = ~np.isin(ids, gone)
    _, got = index.search(vecs[keep][:100], 1)
    np.testing.assert_array_equal(got[:, 0], ids[keep][:100])
    # a bulk removal (compaction path) too
    bulk = ids[keep][:600]
    assert index.remove(bulk) == 600
    _, got = index.search(vecs[keep][:700], 5)
    assert not np.isin(got, np.concatenate([gone, bulk])).any()
    np.testing.assert_array_equal(got[600:, 0], ids[keep][600:700])
    # removed ids can be enrolled again
    index.add(gone[:3], vecs[np.isin(ids, gone[:3])])
    assert all(int(i) in index for i in gone[:3])


def test_crossing_threshold_switches_mode(rng: np.random.Generator) -> None:
    index = FaissIndex(DIM, IVF)
    vecs, ids = unit(1200, rng), make_ids(1200, rng)
    index.add(ids[:500], vecs[:500])
    assert index.mode == "exact"
    index.add(ids[500:501], vecs[500:501])
    assert index.mode == "ivf"
    index.add(ids[501:], vecs[501:])
    assert index.mode == "ivf" and index.ntotal == 1200
    _, got = index.search(near(vecs[::40], rng, 0.02), 1)
    np.testing.assert_array_equal(got[:, 0], ids[::40])
    # shrinking well below the threshold goes back to exact (hysteresis at half)
    index.remove(ids[:1000])
    assert index.mode == "exact" and index.ntotal == 200
    _, got = index.search(vecs[1000:], 1)
    np.testing.assert_array_equal(got[:, 0], ids[1000:])


def test_growth_retrains_ivf(rng: np.random.Generator) -> None:
    params = IndexParams(exact_threshold=200, nlist_factor=1.0, retrain_growth=2.0)
    vecs, ids = unit(1000, rng), make_ids(1000, rng)
    index = FaissIndex.build(ids[:300], vecs[:300], params=params)
    first = index.nlist
    index.add(ids[300:], vecs[300:])
    assert index.nlist is not None and first is not None and index.nlist > first


def test_rejects_bad_input(rng: np.random.Generator) -> None:
    index = FaissIndex.build([1, 2], unit(2, rng))
    with pytest.raises(ValueError):
        index.add([1], unit(1, rng))  # duplicate id
    with pytest.raises(ValueError):
        index.add([3, 3], unit(2, rng))
    with pytest.raises(ValueError):
        index.add([3], unit(1, rng, DIM + 1))
    with pytest.raises(ValueError):
        index.add([3], np.full((1, DIM), np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        index.add([3], 2 * unit(1, rng))  # not L2-normalised
    with pytest.raises(ValueError):
        index.search(unit(1, rng), 0)
    assert index.ntotal == 2


@pytest.mark.parametrize("params", [IndexParams(), IVF], ids=["exact", "ivf"])
def test_save_load_roundtrip(tmp_path: Path, rng: np.random.Generator, params: IndexParams) -> None:
    vecs, ids = unit(1300, rng), make_ids(1300, rng)
    index = FaissIndex.build(ids, vecs, params=params, revision="r1")
    index.remove(ids[:50])
    index.save(tmp_path)
    loaded = FaissIndex.load(tmp_path, "r1", params=params)
    assert loaded is not None
    assert loaded.mode == index.mode and loaded.ntotal == 1250 and loaded.revision == "r1"
    assert loaded.reduced_dim == index.reduced_dim and loaded.nlist == index.nlist
    np.testing.assert_array_equal(np.sort(loaded.ids()), np.sort(ids[50:]))
    q = near(vecs[50:90], rng)
    s0, i0 = index.search(q, 5)
    s1, i1 = loaded.search(q, 5)
    np.testing.assert_array_equal(i0, i1)
    np.testing.assert_allclose(s0, s1)
    # a loaded index stays mutable
    loaded.add(ids[:1], vecs[:1])
    assert loaded.search(vecs[0], 1)[1][0, 0] == ids[0]
    # saving again replaces the set and removes the old files
    loaded.save(tmp_path, revision="r2")
    assert FaissIndex.load(tmp_path, "r2") is not None
    names = sorted(p.name for p in tmp_path.iterdir())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert names == sorted(["manifest.json", *(f["name"] for f in manifest["files"].values())])
    assert manifest["count"] == 1251 and manifest["dim"] == DIM


def _saved(tmp_path: Path, rng: np.random.Generator) -> Path:
    vecs, ids = unit(800, rng), make_ids(800, rng)
    FaissIndex.build(ids, vecs, params=IVF).save(tmp_path, revision="r1")
    return tmp_path


def _file(d: Path, kind: str) -> Path:
    return d / json.loads((d / "manifest.json").read_text())["files"][kind]["name"]


def test_load_missing_directory(tmp_path: Path) -> None:
    assert FaissIndex.load(tmp_path / "nothing", "r1") is None
    with pytest.raises(IndexStale) as e:
        FaissIndex.load(tmp_path, "r1", strict=True)
    assert e.value.details["reason"] == "missing"


def test_wrong_revision_is_stale(tmp_path: Path, rng: np.random.Generator) -> None:
    d = _saved(tmp_path, rng)
    assert FaissIndex.load(d, "r2") is None
    assert FaissIndex.load(d, None) is None
    with pytest.raises(IndexStale) as e:
        FaissIndex.load(d, "r2", strict=True)
    assert e.value.details["reason"] == "revision" and e.value.code == "gallery.index_stale"


@pytest.mark.parametrize("kind", ["ids", "vectors", "ivf"])
def test_truncated_file_is_stale(tmp_path: Path, rng: np.random.Generator, kind: str) -> None:
    d = _saved(tmp_path, rng)
    p = _file(d, kind)
    p.write_bytes(p.read_bytes()[:-100])
    assert FaissIndex.load(d, "r1") is None


@pytest.mark.parametrize("kind", ["ids", "vectors", "ivf"])
def test_deleted_file_is_stale(tmp_path: Path, rng: np.random.Generator, kind: str) -> None:
    d = _saved(tmp_path, rng)
    _file(d, kind).unlink()
    with pytest.raises(IndexStale) as e:
        FaissIndex.load(d, "r1", strict=True)
    assert e.value.details["reason"] == "missing"


def test_same_size_corruption_is_stale(tmp_path: Path, rng: np.random.Generator) -> None:
    d = _saved(tmp_path, rng)
    p = _file(d, "vectors")
    raw = bytearray(p.read_bytes())
    raw[-7] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(IndexStale) as e:
        FaissIndex.load(d, "r1", strict=True)
    assert e.value.details["reason"] == "corrupt"


def test_corrupt_manifest_is_stale(tmp_path: Path, rng: np.random.Generator) -> None:
    d = _saved(tmp_path, rng)
    (d / "manifest.json").write_text('{"format": "fieldid-vec')
    assert FaissIndex.load(d, "r1") is None


def test_interrupted_save_leaves_a_stale_or_old_set(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    d = _saved(tmp_path, rng)
    # a crash after the new data files but before the manifest: the old manifest still names
    # the old, intact files, whose revision is old: loading for the new revision says stale
    (d / "ids-deadbeef.npy").write_bytes(b"half")
    assert FaissIndex.load(d, "r2") is None
    old = FaissIndex.load(d, "r1")
    assert old is not None and old.ntotal == 800


def test_loaded_mode_follows_threshold(tmp_path: Path, rng: np.random.Generator) -> None:
    d = _saved(tmp_path, rng)
    loaded = FaissIndex.load(d, "r1", params=IndexParams(exact_threshold=10_000))
    assert loaded is not None and loaded.mode == "exact"


def test_ids_are_preserved(rng: np.random.Generator) -> None:
    big = np.array([2**62, 1, 7, 10**15], dtype=np.int64)
    vecs = unit(4, rng)
    for params in (IndexParams(), IndexParams(exact_threshold=2, nlist=1)):
        index = FaissIndex.build(big, vecs, params=params)
        np.testing.assert_array_equal(np.sort(index.ids()), np.sort(big))
        _, got = index.search(vecs, 1)
        np.testing.assert_array_equal(got[:, 0], big)
        np.testing.assert_allclose(index.vectors(big[::-1]), vecs[::-1])
