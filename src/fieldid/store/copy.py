"""Copying one fieldid database into another (``fieldid db copy``): an embedded workspace into
PostgreSQL, or back.

Every table is copied row for row, with its ids, in foreign-key order, from one consistent read
of the source into one transaction on the target: a copy that fails leaves the target as it was.
The target must be empty (a new database, or one only migrated). PostgreSQL's id sequences are
moved past the copied ids, so new rows get new ids. What :func:`copy_database` returns is the
evidence: each table's row count on both sides, read back after the commit; the caller adds
the audit chain's verification on the copy (``fieldid.audit.verify``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, func, select, text

from fieldid.store import Store, StoreError
from fieldid.store.schema import AuditHead, Base

#: Rows read and written at a time.
CHUNK = 5_000


@dataclass(frozen=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def ok(self) -> bool:
        return self.source == self.target


@dataclass
class CopyReport:
    source: str
    target: str
    tables: list[TableCount] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.source for t in self.tables)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "rows": self.rows,
            "counts_match": self.ok,
            "tables": {t.table: {"source": t.source, "target": t.target} for t in self.tables},
        }


def tables() -> list[Table]:
    """Every table of the schema, parents before children."""
    return list(Base.metadata.sorted_tables)


def counts(store: Store) -> dict[str, int]:
    with store.read() as s:
        return {t.name: int(s.scalar(select(func.count()).select_from(t)) or 0) for t in tables()}


def _check_empty(dst: Store) -> None:
    held = {k: n for k, n in counts(dst).items() if n and k != AuditHead.__tablename__}
    with dst.read() as s:
        head = s.get(AuditHead, 1)
        if head is not None and head.seq:
            held[AuditHead.__tablename__] = 1
    if held:
        raise StoreError(
            f"{dst.shown_url} already holds fieldid data ("
            + ", ".join(f"{k}: {n}" for k, n in sorted(held.items()))
            + "): copy into a new, empty database",
            code="database.not_empty",
            tables=held,
        )


def _reset_sequences(conn: Any) -> None:
    for t in tables():
        pk = list(t.primary_key.columns)
        if len(pk) != 1 or pk[0].type.python_type is not int or not pk[0].autoincrement:
            continue
        seq = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": t.name, "c": pk[0].name}
        ).scalar()
        if seq is None:
            continue
        conn.execute(
            text(
                f'SELECT setval(:seq, COALESCE((SELECT MAX("{pk[0].name}") FROM "{t.name}"), 0) '
                f"+ 1, false)"
            ),
            {"seq": seq},
        )


def copy_database(
    src: Store,
    dst: Store,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    chunk: int = CHUNK,
) -> CopyReport:
    """Copy every row of ``src`` into the empty ``dst`` (both at the current schema revision;
    ``dst`` is migrated first). ``progress(table, rows_done, rows_in_table)`` after each chunk.
    Returns the per-table counts read back from both sides."""
    if src.revision() != src.head():
        raise StoreError(
            f"{src.shown_url} is at schema revision {src.revision()}, not {src.head()}: open it "
            "once (or run `fieldid upgrade`) before copying",
            code="database.behind",
        )
    dst.migrate()
    _check_empty(dst)
    before = counts(src)
    report = CopyReport(src.shown_url, dst.shown_url)
    with src.engine.connect() as reader, dst.engine.begin() as writer:
        reader.execute(text("SELECT 1"))  # one read transaction: a consistent snapshot
        writer.execute(delete(AuditHead))
        for t in tables():
            total = before[t.name]
            done = 0
            order = list(t.primary_key.columns)
            rows = reader.execution_options(yield_per=chunk).execute(select(t).order_by(*order))
            for part in rows.partitions(chunk):
                writer.execute(t.insert(), [dict(r._mapping) for r in part])
                done += len(part)
                if progress:
                    progress(t.name, done, total)
            if progress and total == 0:
                progress(t.name, 0, 0)
        if writer.dialect.name == "postgresql":
            _reset_sequences(writer)
    after = counts(dst)
    report.tables = [TableCount(t.name, before[t.name], after[t.name]) for t in tables()]
    return report


__all__ = ["CopyReport", "TableCount", "copy_database", "counts"]
