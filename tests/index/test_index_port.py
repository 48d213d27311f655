"""The vector-index port, on every backend against its real engine (faiss in process, PostgreSQL
with pgvector, Milvus standalone): the same behaviour, and the same answers after the exact
re-rank."""

from __future__ import annotations

import numpy as np
import pytest

from fieldid.index import maintenance
from fieldid.index.port import TRAINING, VectorIndex
from fieldid.index.rerank import array_lookup, rerank, search_exact
from fieldid.template.types import l2_normalise
from index.helpers_index import BACKENDS, DIM, Factory, brute, sparse_ids, unit


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


@pytest.mark.parametrize("backend", BACKENDS)
def test_upsert_search_delete(
    backend: str, index_factory: Factory, rng: np.random.Generator
) -> None:
    index = index_factory(backend)
    assert isinstance(index, VectorIndex) and index.backend == backend
    assert index.ready() and index.count() == 0
    empty = index.search(unit(1, rng)[0], 3)
    assert empty.ids.tolist() == [[-1, -1, -1]] and np.isneginf(empty.scores).all()

    ids, vecs = sparse_ids(300, rng), unit(300, rng)
    index.upsert(ids, vecs)
    index.upsert(ids[:50], vecs[:50])  # idempotent: the same call again changes nothing
    assert index.count() == 300
    q = unit(5, rng)
    got = index.search(q, 10)
    want_ids, want_scores = brute(ids, vecs, q, 10)
    assert got.ids.shape == (5, 10) and got.ids.dtype == np.int64
    assert got.ids[:, 0].tolist() == want_ids[:, 0].tolist()
    np.testing.assert_allclose(got.scores, want_scores, atol=1e-5)

    # upsert replaces: the vector of one id moves next to the query
    index.upsert(ids[7:8], q[:1])
    hit = index.search(q[0], 1)
    assert hit.ids[0, 0] == ids[7] and hit.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert index.count() == 300

    # delete: removed ids never come back; unknown ids and repeats are fine
    index.delete([ids[7], 123, ids[7]])
    index.delete([ids[7]])
    assert index.count() == 299
    after = index.search(q, 20)
    assert ids[7] not in after.ids

    # fewer templates than k: padded
    index.delete(ids)
    index.upsert(ids[:2], vecs[:2])
    few = index.search(q[0], 4)
    assert sorted(few.ids[0, :2].tolist()) == sorted(ids[:2].tolist())
    assert few.ids[0, 2:].tolist() == [-1, -1] and np.isneginf(few.scores[0, 2:]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_galleries_are_separate(
    backend: str, index_factory: Factory, rng: np.random.Generator
) -> None:
    """The same ids in the operational and training galleries are different templates; a search
    of one never returns the other's."""
    index = index_factory(backend)
    ids = sparse_ids(40, rng)
    real, training = unit(40, rng), unit(40, rng)
    index.upsert(ids, real)
    index.upsert(ids[:10], training[:10], gallery=TRAINING)
    assert index.count() == 40 and index.count(gallery=TRAINING) == 10
    hit = index.search(training[3], 1, gallery=TRAINING)
    assert hit.ids[0, 0] == ids[3] and hit.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    op = index.search(training[3], 1)
    assert op.scores[0, 0] == pytest.approx(float((real @ training[3]).max()), abs=1e-5)
    in_training = index.search(real[20], 40, gallery=TRAINING)
    assert set(in_training.ids[0][in_training.ids[0] >= 0].tolist()) == set(ids[:10].tolist())
    index.delete(ids[:5], gallery=TRAINING)
    assert index.count() == 40 and index.count(gallery=TRAINING) == 5
    with pytest.raises(ValueError, match="unknown gallery"):
        index.search(real[0], 1, gallery="elsewhere")


@pytest.mark.parametrize("backend", BACKENDS)
def test_revision_mark_and_check(
    backend: str, index_factory: Factory, rng: np.random.Generator
) -> None:
    index = index_factory(backend, namespace=f"rev{backend.replace('-', '')}{rng.integers(10**9)}")
    assert index.revision() is None
    stale = index.check("r1")
    assert not stale.ok and stale.reason == "revision" and "revision" in stale.describe()
    ids, vecs = sparse_ids(20, rng), unit(20, rng)
    index.upsert(ids, vecs)
    index.mark("r1")
    ok = index.check("r1", expected_count=20)
    assert ok.ok and ok.reason == "ok" and ok.index_count == 20
    short = index.check("r1", expected_count=21)
    assert not short.ok and short.reason == "count"
    assert index.check("r2").reason == "revision"
    assert index.revision(gallery=TRAINING) is None  # marks are per gallery


@pytest.mark.parametrize("backend", BACKENDS)
def test_reopen_keeps_contents_and_revision(
    backend: str, index_factory: Factory, rng: np.random.Generator
) -> None:
    ns = f"keep{backend.replace('-', '')}{rng.integers(10**9)}"
    first = index_factory(backend, namespace=ns)
    ids, vecs = sparse_ids(30, rng), unit(30, rng)
    first.upsert(ids, vecs)
    first.mark("rev-7")
    again = index_factory(backend, namespace=ns)
    assert again.revision() == "rev-7" and again.count() == 30
    assert again.check("rev-7", expected_count=30).ok
    assert again.search(vecs[4], 1).ids[0, 0] == ids[4]
    if backend != "faiss-local":  # faiss-local persists at mark(); the database ones at once
        first.upsert(ids[:1], vecs[1:2])
        assert again.search(vecs[1], 2).ids[0].tolist().count(ids[0]) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_is_refused(
    backend: str, index_factory: Factory, rng: np.random.Generator
) -> None:
    index = index_factory(backend)
    v = unit(3, rng)
    with pytest.raises(ValueError, match="dimension"):
        index.upsert([1], unit(1, rng, dim=DIM + 1))
    with pytest.raises(ValueError, match="L2-normalised"):
        index.upsert([1], v[:1] * 2)
    with pytest.raises(ValueError, match="duplicate"):
        index.upsert([1, 1], v[:2])
    with pytest.raises(ValueError, match="non-negative"):
        index.upsert([-1], v[:1])
    with pytest.raises(ValueError, match="ids for"):
        index.upsert([1, 2, 3], v[:2])
    with pytest.raises(ValueError, match="k must be"):
        index.search(v[0], 0)
    assert index.count() == 0


def test_same_candidates_and_scores_on_every_backend(
    index_factory: Factory, rng: np.random.Generator
) -> None:
    """The same people enrolled on faiss-local, pgvector and Milvus: searches re-ranked exactly
    from the stored templates return the same top candidates with the same scores (1e-5), equal
    to brute force; each engine's own scores agree too."""
    n = 2000
    ids, vecs = sparse_ids(n, rng), unit(n, rng)
    mates = l2_normalise(vecs[:25] + 0.03 * rng.standard_normal((25, DIM)))
    queries = np.vstack([mates, unit(15, rng)])
    lookup = array_lookup(ids, vecs)
    want_ids, want_scores = brute(ids, vecs, queries, 10)
    results = {}
    for backend in BACKENDS:
        index = index_factory(backend)
        index.upsert(ids, vecs)
        raw = index.search(queries, 50)
        np.testing.assert_allclose(
            raw.scores[:, :10], want_scores, atol=1e-5, err_msg=f"{backend} engine scores"
        )
        results[backend] = search_exact(index, queries, 10, lookup, candidates=50)
    for backend, got in results.items():
        assert got.ids.tolist() == want_ids.tolist(), backend
        np.testing.assert_allclose(got.scores, want_scores, atol=1e-5, err_msg=backend)
    # the mates are found first everywhere
    assert (results["milvus"].ids[:25, 0] == ids[:25]).all()


def test_rerank_drops_deleted_and_breaks_ties_by_id(rng: np.random.Generator) -> None:
    vecs = unit(4, rng)
    ids = np.array([40, 10, 30, 20], dtype=np.int64)
    twin = np.vstack([vecs, vecs[0]])  # id 5 holds the same vector as id 40
    lookup = array_lookup(np.append(ids, 5), twin)
    out = rerank(vecs[0], [[40, 5, 99, -1, 10]], lookup, 3)  # 99: deleted since
    assert out.ids.tolist() == [[5, 40, 10]]
    assert out.scores[0, 0] == out.scores[0, 1]
    padded = rerank(vecs[0], [[99, -1]], lookup, 2)
    assert padded.ids.tolist() == [[-1, -1]] and np.isneginf(padded.scores).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_rebuild_and_check(backend: str, index_factory: Factory, rng: np.random.Generator) -> None:
    index = index_factory(backend)
    old_ids, old = sparse_ids(10, rng), unit(10, rng)
    index.upsert(old_ids, old)  # what the rebuild must throw away
    ids, vecs = sparse_ids(500, rng), unit(500, rng)
    seen: list[int] = []
    n = maintenance.rebuild(
        index, zip(ids.tolist(), vecs, strict=True), revision="r9", batch=128, progress=seen.append
    )
    assert n == 500 and seen == [128, 256, 384, 500]
    assert index.count() == 500 and index.revision() == "r9"
    assert index.search(old[0], 1).ids[0, 0] != old_ids[0]
    report = maintenance.check(
        index, zip(ids.tolist(), vecs, strict=True), revision="r9", sample=40
    )
    assert report.ok and report.sampled == 40, report.describe()
    index.delete(ids[:1])
    bad = maintenance.check(index, zip(ids.tolist(), vecs, strict=True), revision="r9", sample=500)
    assert not bad.ok and bad.consistency.reason == "count" and bad.not_found == (int(ids[0]),)
    assert "499 of 500" in bad.describe()
