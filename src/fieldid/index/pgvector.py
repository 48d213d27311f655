"""The ``pgvector`` adapter: templates in the PostgreSQL database itself, searched by HNSW.

Tables (created by :meth:`PgvectorIndex.create_schema` for now; the storage kernel's migrations
take the DDL over next):

``fieldid_vectors`` (``table``)
    ``gallery`` (``'operational'`` or ``'training'``), ``id`` (the template id), ``embedding``
    (``vector(dim)``, or ``halfvec(dim)`` with ``storage = "halfvec"``), primary key
    ``(gallery, id)``; one HNSW index over ``embedding`` with ``vector_ip_ops`` (inner product),
    ``m`` 32 and ``ef_construction`` 128 by default.
``fieldid_vectors_meta``
    Per gallery: the database revision the rows reflect (:meth:`mark`) and the dimension.

**Same transaction as the records.** :meth:`within` binds the adapter to a SQLAlchemy
``Connection`` or ``Session`` the caller owns: upserts, deletes and the revision mark then run in
the caller's transaction and commit or roll back with the enrollment, so this index can never lag
or lead the records. Without a binding each call runs in its own short transaction.

**Galleries are a filter in SQL** (``WHERE gallery = :g``) on one HNSW index. A filtered HNSW scan
returns at most ``hnsw.ef_search`` rows before filtering, so a small gallery beside a large one
could come back short; pgvector 0.8's iterative index scans (``hnsw.iterative_scan``) keep
scanning until ``k`` rows pass the filter or ``hnsw.max_scan_tuples`` were visited, so filtered
searches keep their recall. ``relaxed_order`` may return rows slightly out of order: the adapter
sorts what comes back, and the gallery re-ranks exactly anyway. Search settings are ``SET LOCAL``
inside each search's transaction, so a connection from a shared pool is left as it was.

Scores are pgvector's inner products over the stored float32 values (exact to float32 rounding)
with ``storage = "vector"``; ``halfvec`` halves the memory and makes them approximate (the exact
re-rank restores them).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session

from fieldid.index.port import (
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

Storage = Literal["vector", "halfvec"]
IterativeScan = Literal["off", "relaxed_order", "strict_order"]
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_MEMORY = re.compile(r"^(\d+)\s*(kB|MB|GB)$")
_UNITS = {"kB": 2**10, "MB": 2**20, "GB": 2**30}
#: Rows per statement for small upserts; larger batches go through COPY.
_VALUES_MAX = 64
#: A rebuild loading at least this many rows (and no fewer than the other galleries hold) drops
#: the HNSW index and builds it once after the load (:meth:`PgvectorIndex.bulk_begin`).
BULK_REBUILD_FROM = 20_000


@dataclass(frozen=True)
class PgvectorParams:
    """``[index.pgvector]``: the HNSW index and how it is searched."""

    #: HNSW graph degree and build beam. pgvector's defaults (16, 64) lose several points of
    #: true-mate recall on face templates at 1 M; M >= 32 and ef_construction >= 128 hold it.
    m: int = 32
    ef_construction: int = 128
    #: ``hnsw.ef_search`` for each search (pgvector caps it at 1000); raised to ``k``.
    ef_search: int = 200
    #: ``hnsw.iterative_scan``: keep scanning until a filtered search has ``k`` rows.
    iterative_scan: IterativeScan = "relaxed_order"
    #: ``hnsw.max_scan_tuples``: bound on the rows an iterative scan visits.
    max_scan_tuples: int = 20_000
    storage: Storage = "vector"
    table: str = "fieldid_vectors"
    #: ``maintenance_work_mem`` for index builds, or ``"auto"``: sized from the rows to index
    #: (:func:`hnsw_build_bytes`, ~1.7 kB per template at dim 128, m 32, plus a quarter), capped
    #: at ``build_memory_max``. The whole graph must fit: when it does not, pgvector writes the
    #: graph built so far to disk and inserts every further row into that on-disk index one by
    #: one, many times slower (at 1 M templates, 2 GB was short: the build crawled for an hour).
    build_memory: str = "auto"
    build_memory_max: str = "8GB"
    #: ``max_parallel_maintenance_workers`` for index builds (the leader builds too).
    build_workers: int = 2

    def __post_init__(self) -> None:
        if not _NAME.match(self.table):
            raise ValueError("[index.pgvector] table: lower-case letters, digits and _ only")
        if not (2 <= self.m <= 100 and self.ef_construction >= 2 * self.m):
            raise ValueError("[index.pgvector] needs 2 <= m <= 100 and ef_construction >= 2 m")
        if not 1 <= self.ef_search <= 1000:
            raise ValueError("[index.pgvector] ef_search must lie in 1..1000")
        if self.iterative_scan not in ("off", "relaxed_order", "strict_order"):
            raise ValueError("[index.pgvector] iterative_scan: off, relaxed_order or strict_order")
        if self.storage not in ("vector", "halfvec"):
            raise ValueError("[index.pgvector] storage: vector or halfvec")
        if self.build_memory != "auto" and not _MEMORY.match(self.build_memory):
            raise ValueError("[index.pgvector] build_memory like '1GB' or '512MB', or 'auto'")
        if not _MEMORY.match(self.build_memory_max):
            raise ValueError("[index.pgvector] build_memory_max like '8GB' or '512MB'")
        if self.max_scan_tuples < 1 or self.build_workers < 0:
            raise ValueError("[index.pgvector] max_scan_tuples >= 1, build_workers >= 0")

    @property
    def opclass(self) -> str:
        return f"{self.storage}_ip_ops"

    def build_memory_for(self, rows: int, dim: int) -> str:
        """``maintenance_work_mem`` for building the index over ``rows`` templates."""
        if self.build_memory != "auto":
            return self.build_memory
        need = hnsw_build_bytes(rows, dim, self.m, self.storage) * 5 // 4
        mb = max(64, -(-need // 2**20))
        return f"{min(mb, memory_bytes(self.build_memory_max) // 2**20)}MB"


def memory_bytes(setting: str) -> int:
    """``'2GB'`` as bytes."""
    found = _MEMORY.match(setting)
    if found is None:
        raise ValueError(f"not a memory size: {setting!r}")
    return int(found.group(1)) * _UNITS[found.group(2)]


def hnsw_build_bytes(rows: int, dim: int, m: int, storage: Storage = "vector") -> int:
    """Memory pgvector 0.8's in-memory HNSW build takes for ``rows`` templates: per element its
    header and heap pointers (~144 B), the vector (8 + 4 or 2 bytes per dimension), the layer-0
    neighbour array (2 m candidates of 16 B) and, for the 1 / (m - 1) elements expected on each
    upper layer, m more."""
    width = 4 if storage == "vector" else 2
    upper = (8 + 16 * m) / max(1, m - 1)
    per = 144 + 8 + width * dim + 8 + 16 * 2 * m + upper
    return int(rows * per)


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` as SQLAlchemy's psycopg 3 URL (other schemes unchanged)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


class PgvectorIndex:
    """The port over a PostgreSQL database with pgvector. See the module doc."""

    backend = "pgvector"

    def __init__(
        self,
        engine: Engine | str,
        dim: int,
        params: PgvectorParams | None = None,
        *,
        create: bool = True,
        _bound: Connection | None = None,
        _schema: str | None = None,
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        self.engine = (
            create_engine(sqlalchemy_url(engine), pool_pre_ping=True)
            if isinstance(engine, str)
            else engine
        )
        self._dim = int(dim)
        self.params = params or PgvectorParams()
        self._bound = _bound
        p = self.params
        self._t = p.table
        self._meta = f"{p.table}_meta"
        self._type = f"{p.storage}({self._dim})"
        #: The schema pgvector's extension lives in: its type, operator and operator class are
        #: named with it, so that a connection whose search_path leaves it out (the training
        #: gallery's schema on PostgreSQL) still finds them.
        self._schema = _schema
        if _bound is None and create:
            self.create_schema()
        elif _bound is None:
            self._check_schema()

    # ------------------------------------------------------------------ binding
    def within(self, conn: Connection | Session) -> PgvectorIndex:
        """This index bound to the caller's connection or session: every call runs in the
        caller's transaction and is committed (or rolled back) with it."""
        c = conn.connection() if isinstance(conn, Session) else conn
        if self._schema is None:
            self._schema = self._find_schema(c)
        return PgvectorIndex(
            self.engine, self._dim, self.params, create=False, _bound=c, _schema=self._schema
        )

    @staticmethod
    def _find_schema(c: Connection) -> str | None:
        found = c.execute(
            text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                "ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
            )
        ).scalar()
        return None if found is None else str(found)

    def _q(self) -> str:
        return "" if self._schema is None else '"' + self._schema.replace('"', '""') + '".'

    @property
    def _cast(self) -> str:
        return f"{self._q()}{self._type}"

    @property
    def _ip(self) -> str:
        return f"OPERATOR({self._q()}<#>)"

    def _run(self, fn: Any) -> Any:
        """Run ``fn(connection)`` on the bound connection, or in a transaction of its own."""
        if self._bound is not None:
            return fn(self._bound)
        try:
            with self.engine.begin() as c:
                return fn(c)
        except VectorIndexError:
            raise
        except Exception as e:
            if _is_connection_error(e):
                raise IndexUnavailable(
                    f"PostgreSQL does not answer: {e}", code="index.unavailable"
                ) from e
            raise

    # ------------------------------------------------------------------ schema
    def create_schema(self) -> None:
        """Extension, tables and the HNSW index (idempotent)."""

        def ddl(c: Connection) -> None:
            c.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            self._schema = self._find_schema(c)
            c.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {self._t} ("
                    " gallery text NOT NULL CHECK (gallery IN ('operational', 'training')),"
                    " id bigint NOT NULL CHECK (id >= 0),"
                    f" embedding {self._cast} NOT NULL,"
                    " PRIMARY KEY (gallery, id))"
                )
            )
            c.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {self._meta} ("
                    " gallery text PRIMARY KEY, revision text, dim integer NOT NULL)"
                )
            )
            self._require_dim(c)
            if not self._has_index(c):
                self._create_index(c)

        self._run(ddl)

    def _check_schema(self) -> None:
        def check(c: Connection) -> None:
            self._schema = self._find_schema(c)
            exists = c.execute(text("SELECT to_regclass(:t)"), {"t": self._t}).scalar()
            if exists is None:
                raise IndexUnavailable(
                    f"table {self._t} does not exist (create the index first)",
                    code="index.unavailable",
                )
            self._require_dim(c)

        self._run(check)

    def _require_dim(self, c: Connection) -> None:
        row = c.execute(
            text(
                "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = to_regclass(:t) AND a.attname = 'embedding'"
            ),
            {"t": self._t},
        ).scalar()
        if row is not None and str(row).rsplit(".", 1)[-1] != self._type:
            raise VectorIndexError(
                f"table {self._t} holds {row}, this index is {self._type}: use another table "
                "for another model",
                code="index.dim_mismatch",
                table=self._t,
            )

    def _has_index(self, c: Connection) -> bool:
        return (
            c.execute(text("SELECT to_regclass(:i)"), {"i": f"{self._t}_hnsw"}).scalar() is not None
        )

    def _create_index(self, c: Connection) -> None:
        p = self.params
        rows = 0
        if p.build_memory == "auto":
            # reltuples is the planner's estimate (-1 before the first ANALYZE): count instead
            rows = int(c.execute(text(f"SELECT count(*) FROM {self._t}")).scalar() or 0)
        memory = p.build_memory_for(rows, self._dim)
        c.execute(text(f"SET LOCAL maintenance_work_mem = '{memory}'"))
        c.execute(text(f"SET LOCAL max_parallel_maintenance_workers = {int(p.build_workers)}"))
        c.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {self._t}_hnsw ON {self._t} "
                f"USING hnsw (embedding {self._q()}{p.opclass}) "
                f"WITH (m = {int(p.m)}, ef_construction = {int(p.ef_construction)})"
            )
        )

    def bulk_begin(self, *, gallery: Gallery = OPERATIONAL, expected: int | None = None) -> None:
        """Before loading a whole gallery (a rebuild, after :meth:`clear`): drop the HNSW index
        so that it is built once after the load (:meth:`bulk_end`), far faster than inserting
        the rows one by one into a live graph. That is done when the table is empty, or when
        ``expected`` (the rows about to be loaded) is at least :data:`BULK_REBUILD_FROM` and
        at least the rows other galleries keep in the table: rebuilding their part of the graph
        too costs less than inserting into it. Otherwise (a small gallery beside a large one)
        the index stays and takes the rows live. Dropping the index inside a caller's
        transaction locks the table until it commits: the other gallery's searches wait for
        the rebuild rather than scan without the index."""
        g = check_gallery(gallery)

        def run(c: Connection) -> None:
            if not self._has_index(c):
                return
            others = int(
                c.execute(
                    text(f"SELECT count(*) FROM {self._t} WHERE gallery <> :g"), {"g": g}
                ).scalar()
                or 0
            )
            mine = c.execute(
                text(f"SELECT EXISTS (SELECT 1 FROM {self._t} WHERE gallery = :g)"), {"g": g}
            ).scalar()
            big = expected is not None and expected >= max(BULK_REBUILD_FROM, others)
            if not mine and (others == 0 or big):
                c.execute(text(f"DROP INDEX IF EXISTS {self._t}_hnsw"))

        self._run(run)

    def bulk_end(self, *, gallery: Gallery = OPERATIONAL) -> None:
        """After a bulk load: build the HNSW index if :meth:`bulk_begin` dropped it."""
        check_gallery(gallery)
        self.build_hnsw()

    def drop_hnsw(self) -> None:
        """Drop the HNSW index (before a bulk load: building once afterwards is far faster than
        inserting into the graph row by row). Searches are exact scans until
        :meth:`build_hnsw`."""
        self._run(lambda c: c.execute(text(f"DROP INDEX IF EXISTS {self._t}_hnsw")))

    def build_hnsw(self) -> None:
        """(Re)build the HNSW index if it is missing."""

        def build(c: Connection) -> None:
            if not self._has_index(c):
                self._create_index(c)

        self._run(build)

    # ------------------------------------------------------------------ port
    @property
    def dim(self) -> int:
        return self._dim

    def upsert(self, ids: ArrayLike, vectors: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        id_arr, vec = checked_batch(ids, vectors, self._dim)
        if len(id_arr) == 0:
            return
        g = check_gallery(gallery)
        self._run(lambda c: self._write(c, g, id_arr, vec, upsert=True))

    def insert_new(
        self, ids: ArrayLike, vectors: ArrayLike, *, gallery: Gallery = OPERATIONAL
    ) -> None:
        """Bulk load of ids known to be absent: COPY straight into the table (a rebuild)."""
        id_arr, vec = checked_batch(ids, vectors, self._dim)
        if len(id_arr) == 0:
            return
        g = check_gallery(gallery)
        self._run(lambda c: self._write(c, g, id_arr, vec, upsert=False))

    def delete(self, ids: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        id_arr = np.unique(as_ids(ids))
        if len(id_arr) == 0:
            return
        g = check_gallery(gallery)
        self._run(
            lambda c: c.execute(
                text(f"DELETE FROM {self._t} WHERE gallery = :g AND id = ANY(:ids)"),
                {"g": g, "ids": id_arr.tolist()},
            )
        )

    def search(self, queries: ArrayLike, k: int, *, gallery: Gallery = OPERATIONAL) -> Neighbours:
        k = check_k(k)
        q = as_vectors(queries, self._dim)
        g = check_gallery(gallery)
        out = Neighbours.empty(len(q), k)
        if len(q) == 0:
            return out
        p = self.params
        sql = text(
            f"SELECT id, (embedding {self._ip} CAST(:q AS {self._cast})) AS d FROM {self._t} "
            f"WHERE gallery = :g ORDER BY embedding {self._ip} CAST(:q AS {self._cast}) LIMIT :k"
        )
        settings = text(
            "SELECT set_config('hnsw.ef_search', :ef, true),"
            " set_config('hnsw.iterative_scan', :it, true),"
            " set_config('hnsw.max_scan_tuples', :mx, true)"
        )
        ef = str(min(1000, max(p.ef_search, k)))
        mx = str(max(p.max_scan_tuples, k))

        def run(c: Connection) -> None:
            c.execute(settings, {"ef": ef, "it": p.iterative_scan, "mx": mx})
            for row, v in enumerate(q):
                res = c.execute(sql, {"q": _literal(v), "g": g, "k": k}).all()
                if not res:
                    continue
                ids = np.fromiter((r[0] for r in res), np.int64, len(res))
                scores = -np.fromiter((r[1] for r in res), np.float64, len(res))
                order = np.argsort(-scores, kind="stable")  # relaxed_order may be out of order
                out.ids[row, : len(res)] = ids[order]
                out.scores[row, : len(res)] = scores[order]

        self._run(run)
        return out

    def count(self, *, gallery: Gallery = OPERATIONAL) -> int:
        g = check_gallery(gallery)
        n = self._run(
            lambda c: c.execute(
                text(f"SELECT count(*) FROM {self._t} WHERE gallery = :g"), {"g": g}
            ).scalar()
        )
        return int(n or 0)

    def ready(self) -> bool:
        try:
            return bool(self._run(self._has_index))
        except Exception:
            return False

    def revision(self, *, gallery: Gallery = OPERATIONAL) -> str | None:
        g = check_gallery(gallery)
        r = self._run(
            lambda c: c.execute(
                text(f"SELECT revision FROM {self._meta} WHERE gallery = :g"), {"g": g}
            ).scalar()
        )
        return None if r is None else str(r)

    def mark(self, revision: str, *, gallery: Gallery = OPERATIONAL) -> None:
        g = check_gallery(gallery)
        self._run(
            lambda c: c.execute(
                text(
                    f"INSERT INTO {self._meta} (gallery, revision, dim) VALUES (:g, :r, :d) "
                    "ON CONFLICT (gallery) DO UPDATE SET revision = excluded.revision"
                ),
                {"g": g, "r": str(revision), "d": self._dim},
            )
        )

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
        except IndexUnavailable:
            return unavailable(self.backend, g, revision, expected_count)
        return consistency(self.backend, g, revision, have, expected_count, n)

    def clear(self, *, gallery: Gallery = OPERATIONAL) -> None:
        """Remove every template of the gallery and its revision mark (a rebuild starts here)."""
        g = check_gallery(gallery)

        def run(c: Connection) -> None:
            c.execute(text(f"DELETE FROM {self._t} WHERE gallery = :g"), {"g": g})
            c.execute(text(f"DELETE FROM {self._meta} WHERE gallery = :g"), {"g": g})

        self._run(run)

    def close(self) -> None:
        if self._bound is None:
            self.engine.dispose()

    # ------------------------------------------------------------------ internals
    def _write(
        self,
        c: Connection,
        g: str,
        ids: NDArray[np.int64],
        vec: NDArray[np.float32],
        *,
        upsert: bool,
    ) -> None:
        if upsert and len(ids) <= _VALUES_MAX:
            rows = ", ".join(f"(:g, :i{j}, CAST(:v{j} AS {self._cast}))" for j in range(len(ids)))
            args: dict[str, Any] = {"g": g}
            for j, (i, v) in enumerate(zip(ids.tolist(), vec, strict=True)):
                args[f"i{j}"], args[f"v{j}"] = i, _literal(v)
            c.execute(
                text(
                    f"INSERT INTO {self._t} (gallery, id, embedding) VALUES {rows} "
                    "ON CONFLICT (gallery, id) DO UPDATE SET embedding = excluded.embedding"
                ),
                args,
            )
            return
        target = self._t
        if upsert:
            target = f"{self._t}_load"
            c.execute(
                text(
                    f"CREATE TEMP TABLE IF NOT EXISTS {target} "
                    f"(LIKE {self._t} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
            )
            c.execute(text(f"TRUNCATE {target}"))
        raw = c.connection.driver_connection
        if raw is None:  # pragma: no cover - a closed connection
            raise IndexUnavailable("connection closed", code="index.unavailable")
        copy = f"COPY {target} (gallery, id, embedding) FROM STDIN (FORMAT BINARY)"
        with raw.cursor() as cur, cur.copy(copy) as cp:
            cp.write(_COPY_HEADER)
            for start in range(0, len(ids), 65_536):
                stop = start + 65_536
                cp.write(_copy_rows(g, ids[start:stop], vec[start:stop], self.params.storage))
            cp.write(_COPY_TRAILER)
        if upsert:
            c.execute(
                text(
                    f"INSERT INTO {self._t} (gallery, id, embedding) "
                    f"SELECT gallery, id, embedding FROM {target} "
                    "ON CONFLICT (gallery, id) DO UPDATE SET embedding = excluded.embedding"
                )
            )
            c.execute(text(f"TRUNCATE {target}"))


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def _copy_rows(
    gallery: str, ids: NDArray[np.int64], vec: NDArray[np.float32], storage: Storage
) -> bytes:
    """Rows in PostgreSQL's binary COPY format: (gallery text, id bigint, embedding vector).

    pgvector's binary ``vector`` is int16 dim, int16 unused, then dim big-endian float32
    (``halfvec``: float16)."""
    n, dim = vec.shape
    g = gallery.encode()
    width = 4 if storage == "vector" else 2
    dt = np.dtype(
        [
            ("nf", ">i2"),
            ("lg", ">i4"),
            ("g", f"S{len(g)}"),
            ("li", ">i4"),
            ("id", ">i8"),
            ("lv", ">i4"),
            ("vd", ">i2"),
            ("vu", ">i2"),
            ("v", (">f4" if storage == "vector" else ">f2", (dim,))),
        ]
    )
    rows = np.empty(n, dtype=dt)
    rows["nf"] = 3
    rows["lg"] = len(g)
    rows["g"] = g
    rows["li"] = 8
    rows["id"] = ids
    rows["lv"] = 4 + width * dim
    rows["vd"] = dim
    rows["vu"] = 0
    rows["v"] = vec
    return rows.tobytes()


def _literal(v: NDArray[np.float32]) -> str:
    """pgvector's text form; ``repr`` of each float32 (as a double) reads back exactly."""
    return "[" + ",".join(map(repr, v.tolist())) + "]"


def _is_connection_error(e: Exception) -> bool:
    from sqlalchemy.exc import DBAPIError

    return (isinstance(e, DBAPIError) and bool(e.connection_invalidated)) or (
        "connection" in str(e).lower() and "refused" in str(e).lower()
    )


__all__ = [
    "BULK_REBUILD_FROM",
    "PgvectorIndex",
    "PgvectorParams",
    "hnsw_build_bytes",
    "memory_bytes",
    "sqlalchemy_url",
]
