"""What each adapter adds to the port: pgvector's transactions and filtered scans, faiss-local's
files, Milvus' collections; and the ``[index]`` configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fieldid.config import DEFAULT_TOML, WorkspaceConfig
from fieldid.errors import WorkspaceError
from fieldid.index.config import IndexConfig
from fieldid.index.faiss_engine import IndexParams
from fieldid.index.faiss_local import FaissLocalIndex
from fieldid.index.port import TRAINING, VectorIndexError
from index.helpers_index import DIM, sparse_ids, unit

Factory = Callable[..., Any]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(5)


# ---------------------------------------------------------------------------- pgvector


def test_pgvector_writes_commit_and_roll_back_with_the_callers_transaction(
    index_factory: Factory, rng: np.random.Generator
) -> None:
    index = index_factory("pgvector")
    ids, vecs = sparse_ids(100, rng), unit(100, rng)
    with Session(index.engine) as s:
        bound = index.within(s)
        bound.upsert(ids, vecs)
        bound.mark("r1")
        assert bound.count() == 100  # the transaction sees its own writes
        assert index.count() == 0  # nobody else does, yet
        s.rollback()
    assert index.count() == 0 and index.revision() is None
    with Session(index.engine) as s, s.begin():
        index.within(s).upsert(ids, vecs)  # a COPY-sized batch, in the caller's transaction
        s.execute(text("SELECT 1"))  # the caller's own statements share it
        index.within(s).mark("r2")
    assert index.count() == 100 and index.check("r2", expected_count=100).ok
    with pytest.raises(RuntimeError), Session(index.engine) as s, s.begin():
        index.within(s).delete(ids[:10])
        index.within(s).mark("r3")
        raise RuntimeError("the enrollment failed")
    assert index.count() == 100 and index.revision() == "r2"


def test_pgvector_schema_and_parameters(index_factory: Factory) -> None:
    index = index_factory("pgvector", m=40, ef_construction=160)
    with index.engine.connect() as c:
        ddl = c.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
            {"n": f"{index.params.table}_hnsw"},
        ).scalar()
        version = c.execute(
            text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        ).scalar()
    assert "hnsw (embedding vector_ip_ops)" in ddl and "m='40'" in ddl
    assert "ef_construction='160'" in ddl
    assert tuple(int(x) for x in version.split(".")[:2]) >= (0, 8)  # iterative scans
    with pytest.raises(VectorIndexError) as e:
        type(index)(index.engine, DIM + 8, index.params)
    assert e.value.code == "index.dim_mismatch"


def _hnsw_oid(index: Any) -> int | None:
    with index.engine.connect() as c:
        oid = c.execute(text("SELECT to_regclass(:i)::oid"), {"i": f"{index.params.table}_hnsw"})
        found = oid.scalar()
    return None if found is None else int(found)


def test_pgvector_rebuild_builds_the_graph_once_after_the_load(
    index_factory: Factory, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild (fieldid index rebuild, a move to pgvector) loads by COPY into a table without
    the HNSW index and builds it once after, with maintenance_work_mem sized so the graph fits;
    a small gallery beside a large one is loaded into the live index instead."""
    from fieldid.index import pgvector
    from fieldid.index.maintenance import rebuild

    monkeypatch.setattr(pgvector, "BULK_REBUILD_FROM", 200)
    index = index_factory("pgvector")
    index.upsert(sparse_ids(30, rng), unit(30, rng), gallery=TRAINING)
    before = _hnsw_oid(index)
    assert before is not None
    ids, vecs = sparse_ids(400, rng), unit(400, rng)
    built: list[str] = []
    create = type(index)._create_index

    def spy(self: Any, c: Any) -> None:
        create(self, c)
        built.append(str(c.execute(text("SHOW maintenance_work_mem")).scalar()))

    monkeypatch.setattr(type(index), "_create_index", spy)
    items = zip(ids.tolist(), vecs, strict=True)
    assert rebuild(index, items, revision="r1", expected=400) == 400
    after = _hnsw_oid(index)
    assert after is not None and after != before  # dropped, then built once over 430 rows
    assert built == ["64MB"]  # "auto": 430 rows need far less than the 64 MB floor
    assert index.count() == 400 and index.count(gallery=TRAINING) == 30
    found = index.search(vecs[:5], 1)
    assert found.ids[:, 0].tolist() == ids[:5].tolist()
    # The small training gallery rebuilt beside 400 operational rows: into the live index.
    t_ids, t_vecs = sparse_ids(30, rng), unit(30, rng)
    items = zip(t_ids.tolist(), t_vecs, strict=True)
    rebuild(index, items, revision="t1", gallery=TRAINING, expected=30)
    assert _hnsw_oid(index) == after and built == ["64MB"]
    assert index.search(t_vecs[:3], 1, gallery=TRAINING).ids[:, 0].tolist() == t_ids[:3].tolist()


def test_pgvector_build_memory_fits_the_graph() -> None:
    from fieldid.index.pgvector import PgvectorParams, hnsw_build_bytes, memory_bytes

    p = PgvectorParams()
    assert p.build_memory == "auto" and p.build_workers == 2
    # ~1.7 kB per 128-d template at m 32: 1 M need 1.6 GiB, +25 %
    assert 1.55 * 2**30 < hnsw_build_bytes(1_000_000, 128, 32) < 1.75 * 2**30
    assert p.build_memory_for(1_000_000, 128) == "2042MB"  # (the 1M benchmark: 1,001,000)
    assert p.build_memory_for(100, 128) == "64MB"
    assert p.build_memory_for(10_000_000, 128) == "8192MB"  # capped at build_memory_max
    assert PgvectorParams(build_memory="3GB").build_memory_for(10, 128) == "3GB"
    assert memory_bytes("512MB") == 512 * 2**20
    with pytest.raises(ValueError):
        PgvectorParams(build_memory="lots")


@pytest.mark.parametrize("iterative", ["relaxed_order", "strict_order", "off"])
def test_pgvector_filtered_search_keeps_recall_with_iterative_scans(
    index_factory: Factory, rng: np.random.Generator, iterative: str
) -> None:
    """A small training gallery beside a large operational one, on one HNSW index. With
    ``ef_search`` 10 the graph scan yields ~10 rows, nearly all operational: iterative scans go
    on until the filtered search has its k rows; without them it comes back short. (Here the
    HNSW plan is forced; left to itself the planner reads a gallery this small through the
    primary key and sorts, which is exact.)"""
    index = index_factory("pgvector", ef_search=10, iterative_scan=iterative)
    big_ids, big = sparse_ids(3000, rng), unit(3000, rng)
    small_ids, small = sparse_ids(30, rng), unit(30, rng)
    index.upsert(big_ids, big)
    index.upsert(small_ids, small, gallery=TRAINING)
    with index.engine.begin() as c:
        c.execute(text(f"ANALYZE {index.params.table}"))
    q = unit(5, rng)
    exact = [small_ids[e].tolist() for e in np.argsort(-(q @ small.T), axis=1)[:, :10]]
    planned = index.search(q, 10, gallery=TRAINING)
    assert [r.tolist() for r in planned.ids] == exact
    with index.engine.connect() as c:
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            c.execute(text(f"SET {setting} = off"))
        got = index.within(c).search(q, 10, gallery=TRAINING)
        c.rollback()
    found = (got.ids >= 0).sum(axis=1)
    if iterative == "off":
        assert found.min() < 10  # the failure iterative scans exist for
        return
    assert (found == 10).all()
    assert [r.tolist() for r in got.ids] == exact


# ---------------------------------------------------------------------------- faiss-local


def test_faiss_local_persists_at_mark_and_reads_as_stale_when_damaged(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    ids, vecs = sparse_ids(700, rng), unit(700, rng)
    params = IndexParams(exact_threshold=500, nlist=8, nprobe=8)  # IVF above 500
    index = FaissLocalIndex(DIM, params, directory=tmp_path)
    index.upsert(ids, vecs)
    index.upsert(ids[:3], vecs[:3], gallery=TRAINING)
    assert index.engine().mode == "ivf"
    again = FaissLocalIndex(DIM, params, directory=tmp_path)
    assert again.count() == 0 and again.revision() is None  # nothing saved before mark
    index.mark("r1")
    index.mark("t1", gallery=TRAINING)
    again = FaissLocalIndex(DIM, params, directory=tmp_path)
    assert again.check("r1", expected_count=700).ok
    assert again.check("t1", expected_count=3, gallery=TRAINING).ok
    assert again.search(vecs[9], 1).ids[0, 0] == ids[9]
    manifest = json.loads((tmp_path / "operational" / "manifest.json").read_text())
    (tmp_path / "operational" / manifest["files"]["vectors"]["name"]).write_bytes(b"junk")
    damaged = FaissLocalIndex(DIM, params, directory=tmp_path)
    assert damaged.count() == 0 and damaged.check("r1").reason == "revision"
    assert damaged.check("t1", gallery=TRAINING).ok
    with pytest.raises(VectorIndexError) as e:
        FaissLocalIndex(DIM * 2, params, directory=tmp_path)
    assert e.value.code == "index.dim_mismatch"


def test_faiss_local_with_a_keyring_saves_sealed_and_opens_only_with_it(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    from fieldid.keys import Keyring
    from fieldid.keys.kek import new_key

    ids, vecs = sparse_ids(600, rng), unit(600, rng)
    params = IndexParams(exact_threshold=500, nlist=8, nprobe=8)  # the IVF file sealed too
    ring = Keyring(new_key())
    index = FaissLocalIndex(DIM, params, directory=tmp_path, keyring=ring)
    index.upsert(ids, vecs)
    index.mark("r1")
    d = tmp_path / "operational"
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["sealed"] and set(manifest["files"]) == {"ids", "vectors", "ivf"}
    for f in manifest["files"].values():
        raw = (d / f["name"]).read_bytes()
        assert raw[:4] == b"FIDF", f["name"]  # a sealed file, not an .npy or faiss file
        assert vecs[0].astype("<f4").tobytes()[:16] not in raw
    again = FaissLocalIndex(DIM, params, directory=tmp_path, keyring=ring)
    assert again.check("r1", expected_count=600).ok
    assert again.search(vecs[9], 1).ids[0, 0] == ids[9]
    # without the key, or with another, the sealed index opens empty: stale, rebuilt
    for other in (None, Keyring(new_key())):
        stale = FaissLocalIndex(DIM, params, directory=tmp_path, keyring=other)
        assert stale.count() == 0 and not stale.check("r1").ok


def test_gallery_index_module_still_serves_the_faiss_engine() -> None:
    from fieldid.gallery import index as legacy
    from fieldid.index import faiss_engine

    assert legacy.FaissIndex is faiss_engine.FaissIndex
    assert isinstance(faiss_engine.FaissIndex(4), legacy.VectorIndex)


# ---------------------------------------------------------------------------- milvus


def test_milvus_collections_per_gallery_and_dimension_guard(
    index_factory: Factory, rng: np.random.Generator
) -> None:
    from pymilvus import Collection

    index = index_factory("milvus", m=48, ef_construction=200)
    index.upsert(sparse_ids(5, rng), unit(5, rng))
    names = {g: index.collection_name(g) for g in ("operational", "training")}
    assert names["training"].endswith("_training")
    coll = Collection(names["operational"], using=index._alias)
    params = coll.indexes[0].params
    assert params["index_type"] == "HNSW" and params["metric_type"] == "IP"
    assert int(params["params"]["M"]) == 48 and int(params["params"]["efConstruction"]) == 200
    with pytest.raises(VectorIndexError) as e:
        index_factory("milvus", dim=DIM * 2, namespace=index.params.collection_prefix)
    assert e.value.code == "index.dim_mismatch"


def test_milvus_ivf_index_answers_exactly_after_rerank(
    index_factory: Factory, rng: np.random.Generator
) -> None:
    from fieldid.index.rerank import array_lookup, search_exact

    index = index_factory("milvus", index_type="IVF_SQ8", nlist=16, nprobe=16)
    ids, vecs = sparse_ids(3000, rng), unit(3000, rng)
    index.insert_new(ids, vecs)
    index.flush()
    index.wait_indexed()
    index.wait_loaded()
    q = vecs[:20]
    got = search_exact(index, q, 5, array_lookup(ids, vecs), candidates=50)
    assert (got.ids[:, 0] == ids[:20]).all()
    np.testing.assert_allclose(got.scores[:, 0], 1.0, atol=1e-5)


def test_milvus_unreachable_is_a_clear_error() -> None:
    from fieldid.index.milvus import MilvusIndex, MilvusParams
    from fieldid.index.port import IndexUnavailable
    from fieldid.index.servers import free_port

    with pytest.raises(IndexUnavailable) as e:
        MilvusIndex(f"http://127.0.0.1:{free_port()}", DIM, MilvusParams(timeout=2))
    assert e.value.code == "index.unavailable"


# ---------------------------------------------------------------------------- configuration


def test_index_configuration() -> None:
    cfg = WorkspaceConfig.from_toml(DEFAULT_TOML)
    assert cfg.index == IndexConfig() and cfg.index.backend == "faiss-local"
    assert cfg.exact_below == cfg.index.exact_below == 50_000
    assert cfg.index.pgvector.m >= 32 and cfg.index.pgvector.ef_construction >= 128
    assert cfg.index.milvus.m >= 32 and cfg.index.milvus.ef_construction >= 128
    custom = WorkspaceConfig.from_toml(
        '[index]\nbackend = "milvus"\nuri = "http://127.0.0.1:19530"\nexact_below = 10\n'
        '[index.milvus]\nindex_type = "IVF_SQ8"\nnlist = 4096\nnprobe = 256\n'
        "[index.pgvector]\nef_search = 400\n"
    )
    assert custom.index.backend == "milvus" and custom.exact_below == 10
    assert custom.index.milvus.index_params(128) == {
        "index_type": "IVF_SQ8",
        "metric_type": "IP",
        "params": {"nlist": 4096},
    }
    assert custom.index.milvus.search_params(10)["params"] == {"nprobe": 256}
    assert custom.index.pgvector.ef_search == 400
    for bad, why in [
        ('[index]\nbackend = "elastic"', "backend must be one of"),
        ('[index]\nbackend = "milvus"', "needs uri"),
        ("[index]\nexact_bellow = 3", "unknown settings: exact_bellow"),
        ("[index.pgvector]\nm = 8\nef_construction = 4", "ef_construction"),
        ('[index.milvus]\nindex_type = "ANNOY"', "index_type"),
        ('[index.pgvector]\ntable = "x; drop table y"', "table"),
        ("[index.milvus]\nnprobes = 3", "unknown settings: nprobes"),
    ]:
        with pytest.raises(WorkspaceError, match=why):
            WorkspaceConfig.from_toml(bad)


def test_open_index_builds_the_configured_adapter(
    tmp_path: Path, pg_url: str, milvus_uri: str
) -> None:
    from fieldid.index import open_index
    from fieldid.index.milvus import MilvusIndex, MilvusParams
    from fieldid.index.pgvector import PgvectorIndex, PgvectorParams

    local = open_index(IndexConfig(exact_below=7), DIM, directory=tmp_path)
    assert isinstance(local, FaissLocalIndex) and local.engine().params.exact_threshold == 7
    pg = open_index(
        IndexConfig(backend="pgvector", pgvector=PgvectorParams(table="opened")),
        DIM,
        database=pg_url,
    )
    assert isinstance(pg, PgvectorIndex) and pg.ready()
    pg.close()
    with pytest.raises(ValueError, match="PostgreSQL"):
        open_index(IndexConfig(backend="pgvector"), DIM)
    mv = open_index(
        IndexConfig(
            backend="milvus", uri=milvus_uri, milvus=MilvusParams(collection_prefix="opened")
        ),
        DIM,
    )
    assert isinstance(mv, MilvusIndex) and mv.ready() and mv.count() == 0
    mv.close()
