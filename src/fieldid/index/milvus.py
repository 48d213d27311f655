"""The ``milvus`` adapter: one Milvus collection per gallery, on a standalone server or a cluster.

Layout on the server (``prefix`` defaults to ``fieldid``):

``{prefix}_operational``, ``{prefix}_training``
    One collection per gallery: ``id`` (INT64, primary key, the database's template id) and
    ``vector`` (FLOAT_VECTOR of the model's dimension), an ``IP`` (inner product) index of the
    configured type (HNSW by default, M 32 and efConstruction 128; IVF_FLAT, IVF_SQ8 or IVF_PQ),
    loaded into the query nodes. ``shards`` sets the collection's shard count (a cluster spreads
    them over data nodes).
``{prefix}_meta``
    Two strings per gallery: the database revision the collection reflects (:meth:`mark`) and
    the model dimension. (Milvus needs a vector field in every collection: a 2-d dummy.)

Writes are idempotent by construction, which is what an outbox drainer needs to be crash-safe:
``upsert`` replaces by primary key (Milvus' upsert is delete + insert under one timestamp) and
``delete`` by ``id in [...]`` ignores missing ids. A drainer that dies after the engine applied a
change but before it recorded so simply applies it again. Changes of one gallery are applied in
order; the adapter never reorders within a call.

Visibility: searches use the configured consistency level. ``Session`` (the default) guarantees
this process sees its own writes at once and others' within Milvus' bounded staleness (a few
seconds); ``Strong`` waits for every write (one time-tick, ~200 ms, on each search). ``count``
and ``check`` always read ``Strong``.

Written against the ORM API of pymilvus (``connections``, ``Collection``, ``utility``) that
pymilvus 2.3 to 2.6 provide and Milvus 2.3 to 2.6 serve.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from fieldid.index.port import (
    GALLERIES,
    OPERATIONAL,
    Consistency,
    Gallery,
    IndexUnavailable,
    Neighbours,
    VectorIndexError,
    as_ids,
    as_vectors,
    check_gallery,
    check_k,
    checked_batch,
    consistency,
    unavailable,
)

MilvusIndexType = Literal["HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "SCANN", "FLAT"]
MILVUS_INDEX_TYPES: tuple[str, ...] = ("HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "SCANN", "FLAT")
ConsistencyLevel = Literal["Strong", "Session", "Bounded", "Eventually"]

_ID = "id"
_VEC = "vector"
_DELETE_BATCH = 4096
_GROWING = 2  # common.SegmentState.Growing
#: Milvus' default ``minSegmentNumRowsToEnableIndex``: smaller sealed segments get no index and
#: are searched brute force (exactly).
_MIN_INDEXED_ROWS = 1024  # ids per ``id in [...]`` expression
_aliases = itertools.count()


@dataclass(frozen=True)
class MilvusParams:
    """``[index.milvus]``: the collection's index and how it is searched."""

    index_type: MilvusIndexType = "HNSW"
    #: HNSW graph degree and build beam (the engines' defaults, 16/64 or so, lose several points
    #: of true-mate recall on face templates at 1 M; see docs/scale.md).
    m: int = 32
    ef_construction: int = 128
    #: HNSW search beam; raised to ``k`` when a search asks for more.
    ef: int = 256
    #: IVF lists per segment and lists probed per search.
    nlist: int = 1024
    nprobe: int = 64
    #: IVF_PQ: sub-quantisers (must divide the dimension) and bits per code.
    pq_m: int = 16
    nbits: int = 8
    collection_prefix: str = "fieldid"
    consistency: ConsistencyLevel = "Session"
    shards: int = 1
    #: Rows per insert/upsert request.
    batch: int = 10_000
    #: Seconds allowed for each request.
    timeout: float = 60.0
    extra_index_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.index_type not in MILVUS_INDEX_TYPES:
            raise ValueError(
                f"[index.milvus] index_type must be one of {', '.join(MILVUS_INDEX_TYPES)}"
            )
        if self.index_type == "HNSW" and not (4 <= self.m <= 64 and self.ef_construction >= 8):
            raise ValueError("[index.milvus] HNSW needs 4 <= m <= 64 and ef_construction >= 8")
        if self.consistency not in ("Strong", "Session", "Bounded", "Eventually"):
            raise ValueError("[index.milvus] consistency: Strong, Session, Bounded or Eventually")
        if min(self.ef, self.nlist, self.nprobe, self.shards, self.batch) < 1:
            raise ValueError("[index.milvus] ef, nlist, nprobe, shards and batch must be >= 1")
        if not self.collection_prefix.replace("_", "").isalnum():
            raise ValueError("[index.milvus] collection_prefix: letters, digits and _ only")

    def index_params(self, dim: int) -> dict[str, Any]:
        params: dict[str, Any]
        if self.index_type == "HNSW":
            params = {"M": self.m, "efConstruction": self.ef_construction}
        elif self.index_type == "IVF_PQ":
            if dim % self.pq_m:
                raise ValueError(f"[index.milvus] pq_m = {self.pq_m} must divide dim {dim}")
            params = {"nlist": self.nlist, "m": self.pq_m, "nbits": self.nbits}
        elif self.index_type == "FLAT":
            params = {}
        else:
            params = {"nlist": self.nlist}
        params.update(self.extra_index_params)
        return {"index_type": self.index_type, "metric_type": "IP", "params": params}

    def search_params(self, k: int) -> dict[str, Any]:
        if self.index_type == "HNSW":
            p: dict[str, Any] = {"ef": max(self.ef, k)}
        elif self.index_type == "FLAT":
            p = {}
        else:
            p = {"nprobe": min(self.nprobe, self.nlist)}
        return {"metric_type": "IP", "params": p}


class MilvusIndex:
    """The port over a Milvus server at ``uri`` (``http://host:19530``). See the module doc."""

    backend = "milvus"

    def __init__(
        self,
        uri: str,
        dim: int,
        params: MilvusParams | None = None,
        *,
        token: str = "",
        create: bool = True,
        galleries: tuple[Gallery, ...] = GALLERIES,
    ) -> None:
        from pymilvus import connections

        if dim <= 0:
            raise ValueError("dim must be positive")
        self._dim = int(dim)
        self.params = params or MilvusParams()
        self.uri = uri
        self._alias = f"fieldid-{next(_aliases)}-{uuid.uuid4().hex[:6]}"
        self._lock = threading.Lock()
        self._collections: dict[Gallery, Any] = {}
        try:
            kwargs: dict[str, Any] = {"uri": uri, "timeout": self.params.timeout}
            if token:
                kwargs["token"] = token
            connections.connect(alias=self._alias, **kwargs)
        except Exception as e:  # pymilvus raises MilvusException and grpc errors
            raise IndexUnavailable(
                f"cannot reach Milvus at {uri}: {e}", code="index.unavailable", uri=uri
            ) from e
        # open every collection first, then load them together (each load takes seconds)
        self._meta = self._open_meta(create)
        for g in galleries:
            self._collections[check_gallery(g)] = self._open(
                self.collection_name(g), self._dim, create, vector=True, load=False
            )
        self._load([self._meta, *self._collections.values()])

    # ------------------------------------------------------------------ port
    @property
    def dim(self) -> int:
        return self._dim

    def upsert(self, ids: ArrayLike, vectors: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        id_arr, vec = checked_batch(ids, vectors, self._dim)
        if len(id_arr) == 0:
            return
        coll = self._collection(check_gallery(gallery))
        b = self.params.batch
        for start in range(0, len(id_arr), b):
            stop = min(len(id_arr), start + b)
            coll.upsert([id_arr[start:stop].tolist(), vec[start:stop]], timeout=self.params.timeout)

    def insert_new(
        self, ids: ArrayLike, vectors: ArrayLike, *, gallery: Gallery = OPERATIONAL
    ) -> None:
        """Bulk load of ids known to be absent (a rebuild into an empty collection): a plain
        insert, cheaper than upsert. Inserting an id twice would store it twice."""
        id_arr, vec = checked_batch(ids, vectors, self._dim)
        coll = self._collection(check_gallery(gallery))
        b = self.params.batch
        for start in range(0, len(id_arr), b):
            stop = min(len(id_arr), start + b)
            coll.insert([id_arr[start:stop].tolist(), vec[start:stop]], timeout=self.params.timeout)

    def delete(self, ids: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        id_arr = np.unique(as_ids(ids))
        if len(id_arr) == 0:
            return
        coll = self._collection(check_gallery(gallery))
        for start in range(0, len(id_arr), _DELETE_BATCH):
            chunk = id_arr[start : start + _DELETE_BATCH].tolist()
            coll.delete(f"{_ID} in {chunk}", timeout=self.params.timeout)

    def search(self, queries: ArrayLike, k: int, *, gallery: Gallery = OPERATIONAL) -> Neighbours:
        k = check_k(k)
        q = as_vectors(queries, self._dim)
        out = Neighbours.empty(len(q), k)
        if len(q) == 0:
            return out
        coll = self._collection(check_gallery(gallery))
        try:
            res = coll.search(
                data=q,
                anns_field=_VEC,
                param=self.params.search_params(k),
                limit=k,
                timeout=self.params.timeout,
                consistency_level=self.params.consistency,
            )
        except Exception as e:
            raise IndexUnavailable(
                f"Milvus search failed: {e}", code="index.unavailable", uri=self.uri
            ) from e
        for row, hits in enumerate(res):
            ids = list(hits.ids)
            n = len(ids)
            if n:
                out.ids[row, :n] = ids
                out.scores[row, :n] = hits.distances
        return out

    def count(self, *, gallery: Gallery = OPERATIONAL) -> int:
        coll = self._collection(check_gallery(gallery))
        rows = coll.query(
            expr="",
            output_fields=["count(*)"],
            consistency_level="Strong",
            timeout=self.params.timeout,
        )
        return int(rows[0]["count(*)"])

    def ready(self) -> bool:
        from pymilvus import utility

        try:
            for g in self._collections:
                state = utility.load_state(self.collection_name(g), using=self._alias)
                if getattr(state, "name", str(state)) != "Loaded":
                    return False
            return True
        except Exception:
            return False

    def revision(self, *, gallery: Gallery = OPERATIONAL) -> str | None:
        return self._meta_get(f"revision:{check_gallery(gallery)}")

    def mark(self, revision: str, *, gallery: Gallery = OPERATIONAL) -> None:
        self._meta_put(f"revision:{check_gallery(gallery)}", str(revision))

    def check(
        self,
        revision: str,
        *,
        expected_count: int | None = None,
        gallery: Gallery = OPERATIONAL,
    ) -> Consistency:
        g = check_gallery(gallery)
        try:
            have, n = self.revision(gallery=g), self.count(gallery=g)
        except Exception:
            return unavailable(self.backend, g, revision, expected_count)
        return consistency(self.backend, g, revision, have, expected_count, n)

    def clear(self, *, gallery: Gallery = OPERATIONAL) -> None:
        """Drop the gallery's collection and make it anew, empty (a rebuild starts here)."""
        from pymilvus import utility

        g = check_gallery(gallery)
        with self._lock:
            self._collections.pop(g, None)
            self._meta_delete(f"revision:{g}")
            name = self.collection_name(g)
            if utility.has_collection(name, using=self._alias):
                utility.drop_collection(name, using=self._alias)
        self._collection(g, create=True)

    # ------------------------------------------------------------------ extras
    def collection_name(self, gallery: Gallery) -> str:
        return f"{self.params.collection_prefix}_{gallery}"

    def bulk_begin(self, *, gallery: Gallery = OPERATIONAL, expected: int | None = None) -> None:
        """Before loading a whole gallery: release it from the query nodes, so that they do not
        hold every flushed segment's raw vectors while its index is being built (at 10 M that
        is 5 GB more at the peak). Searches of the gallery fail until :meth:`bulk_end`.
        (``expected``, the rows about to be loaded, is not needed here.)"""
        self._collection(check_gallery(gallery)).release(timeout=self.params.timeout)

    def bulk_end(self, *, gallery: Gallery = OPERATIONAL, timeout: float = 7200) -> None:
        """After a bulk load: seal, build every segment's index, load, and wait until the query
        nodes serve the gallery from indexed segments only."""
        g = check_gallery(gallery)
        self.flush(gallery=g)
        self.wait_indexed(gallery=g, timeout=timeout)
        self._load([self._collection(g)])
        self.wait_loaded(gallery=g, timeout=timeout)

    def flush(self, *, gallery: Gallery = OPERATIONAL) -> None:
        """Seal the gallery's growing segments so that they are indexed (after a bulk load)."""
        self._collection(check_gallery(gallery)).flush(timeout=max(self.params.timeout, 600))

    def wait_indexed(self, *, gallery: Gallery = OPERATIONAL, timeout: float = 7200) -> None:
        """Block until every sealed segment of the gallery has its index built."""
        from pymilvus import utility

        utility.wait_for_index_building_complete(
            self.collection_name(check_gallery(gallery)), timeout=timeout, using=self._alias
        )

    def wait_loaded(self, *, gallery: Gallery = OPERATIONAL, timeout: float = 3600) -> None:
        """Block until the query nodes serve the gallery from sealed, indexed segments only (after
        a bulk load: until then searches also scan growing segments through Milvus' interim
        index, whose recall is lower)."""
        import time

        from pymilvus import utility

        name = self.collection_name(check_gallery(gallery))
        deadline = time.monotonic() + timeout
        while True:
            infos = utility.get_query_segment_info(name, using=self._alias)
            waiting = [
                i
                for i in infos
                if i.state == _GROWING or (not i.indexID and i.num_rows >= _MIN_INDEXED_ROWS)
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise IndexUnavailable(
                    f"{len(waiting)} segments of {name} still growing or without their index "
                    f"after {timeout:.0f} s",
                    code="index.unavailable",
                )
            time.sleep(2)

    def close(self) -> None:
        from pymilvus import connections

        self._collections.clear()
        connections.disconnect(self._alias)

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _collection(self, gallery: Gallery, *, create: bool = True) -> Any:
        coll = self._collections.get(gallery)
        if coll is not None:
            return coll
        with self._lock:
            coll = self._collections.get(gallery)
            if coll is None:
                coll = self._open(self.collection_name(gallery), self._dim, create, vector=True)
                self._collections[gallery] = coll
            return coll

    def _load(self, collections: list[Any]) -> None:
        from pymilvus import utility

        timeout = max(self.params.timeout, 600)
        for coll in collections:
            coll.load(timeout=timeout, _async=True)
        for coll in collections:
            utility.wait_for_loading_complete(coll.name, timeout=timeout, using=self._alias)

    def _open(self, name: str, dim: int, create: bool, *, vector: bool, load: bool = True) -> Any:
        from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, utility

        try:
            exists = utility.has_collection(name, using=self._alias)
        except Exception as e:
            raise IndexUnavailable(
                f"cannot reach Milvus at {self.uri}: {e}", code="index.unavailable", uri=self.uri
            ) from e
        if exists:
            coll = Collection(name, using=self._alias)
            have = _vector_dim(coll)
            if have != dim:
                raise VectorIndexError(
                    f"Milvus collection {name} holds {have}-d vectors, this index is {dim}-d: "
                    "use another collection_prefix for another model",
                    code="index.dim_mismatch",
                    collection=name,
                )
        elif not create:
            raise IndexUnavailable(
                f"Milvus collection {name} does not exist", code="index.unavailable", uri=self.uri
            )
        else:
            if vector:
                fields = [
                    FieldSchema(_ID, DataType.INT64, is_primary=True, auto_id=False),
                    FieldSchema(_VEC, DataType.FLOAT_VECTOR, dim=dim),
                ]
                desc = f"fieldid templates ({dim}-d, inner product)"
            else:
                fields = [
                    FieldSchema("key", DataType.VARCHAR, is_primary=True, max_length=128),
                    FieldSchema("value", DataType.VARCHAR, max_length=1024),
                    FieldSchema(_VEC, DataType.FLOAT_VECTOR, dim=dim),
                ]
                desc = "fieldid index metadata (revision per gallery)"
            coll = Collection(
                name,
                CollectionSchema(fields, description=desc),
                using=self._alias,
                shards_num=self.params.shards if vector else 1,
                consistency_level=self.params.consistency,
            )
            index = (
                self.params.index_params(dim)
                if vector
                else {"index_type": "FLAT", "metric_type": "L2", "params": {}}
            )
            coll.create_index(_VEC, index, timeout=self.params.timeout)
        if not coll.has_index():
            coll.create_index(_VEC, self.params.index_params(dim), timeout=self.params.timeout)
        if load:
            self._load([coll])
        return coll

    def _open_meta(self, create: bool) -> Any:
        return self._open(
            f"{self.params.collection_prefix}_meta", 2, create, vector=False, load=False
        )

    def _meta_get(self, key: str) -> str | None:
        rows = self._meta.query(
            expr=f'key == "{key}"',
            output_fields=["value"],
            consistency_level="Strong",
            timeout=self.params.timeout,
        )
        return None if not rows else str(rows[0]["value"])

    def _meta_put(self, key: str, value: str) -> None:
        self._meta.upsert([[key], [value], [[0.0, 0.0]]], timeout=self.params.timeout)

    def _meta_delete(self, key: str) -> None:
        self._meta.delete(f'key in ["{key}"]', timeout=self.params.timeout)


def _vector_dim(coll: Any) -> int:
    for f in coll.schema.fields:
        if f.name == _VEC:
            return int(f.params["dim"])
    raise VectorIndexError(
        f"Milvus collection {coll.name} has no field {_VEC!r}: not a fieldid collection",
        code="index.foreign_collection",
    )


__all__ = ["MILVUS_INDEX_TYPES", "MilvusIndex", "MilvusParams"]
