"""``fieldid import``: records from a source's CSV, JSONL or Parquet file.

Each row is validated against the schema of its kind (a ``kind`` column, or ``--kind`` for the
whole file). Good rows go in; every bad row is reported with its line (CSV/JSONL: the line in the
file; Parquet: the row number, from 1) and the reason; nothing is dropped silently. Records are
upserted in batches with SQL bulk statements, keyed by (source, the source's record id): a row
whose content is unchanged changes nothing, a changed row updates its record (and says so if a
person had corrected it). Rows name the source's own subject key (``subject_id``), mapped to a
fieldid person through ``person_links`` (a new key creates a new person); ``person_external_id``
links a row to an existing fieldid person explicitly. Nothing is merged across sources
automatically. Photos referenced by rows are enrolled through the face pipeline, each refusal
reported with its line.

Each batch is written in one unit of work with an ``import`` audit entry saying which lines of
which file it wrote (``stage: batch``); the import ends with an ``import`` entry holding the totals
(``stage: done``). Killed at any moment, an import leaves whole batches, each audited.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import DateTime, Table, insert, select

from fieldid.access import Actor, require
from fieldid.gallery.enroll import Enrollment, EnrollRequest
from fieldid.records.kinds import KINDS, RecordBase, describe_errors, validate_row
from fieldid.records.sources import RecordsError, SourceInfo, get_source
from fieldid.store import Store, UnitOfWork
from fieldid.store.keys import record_hash_key
from fieldid.store.repos import lineage
from fieldid.store.schema import Person, PersonLink, Record, Source

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
PERSONS = cast(Table, Person.__table__)
LINKS = cast(Table, PersonLink.__table__)
_KNOWN_COLUMNS = {"kind"} | {f for m in KINDS.values() for f in m.model_fields}


@dataclass(frozen=True)
class RowProblem:
    """A row that did not go in (or whose photo did not), with where and why."""

    line: int
    code: str
    reason: str
    source_record_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImportReport:
    source: str
    file: str
    format: str
    dry_run: bool = False
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    new_people: int = 0
    #: Updated records a person had corrected: the source's new content replaced the correction
    #: (the correction stays in the record's history).
    corrections_superseded: int = 0
    bad_rows: list[RowProblem] = field(default_factory=list)
    photos_enrolled: int = 0
    photos_already_enrolled: int = 0
    photo_refusals: list[RowProblem] = field(default_factory=list)
    possible_duplicates: list[int] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def good_rows(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def counts(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "bad_rows": len(self.bad_rows),
            "new_people": self.new_people,
            "corrections_superseded": self.corrections_superseded,
            "photos_enrolled": self.photos_enrolled,
            "photos_already_enrolled": self.photos_already_enrolled,
            "photo_refusals": len(self.photo_refusals),
            "possible_duplicates": len(self.possible_duplicates),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "file": self.file,
            "format": self.format,
            "dry_run": self.dry_run,
            **self.counts(),
            "bad_row_details": [b.to_dict() for b in self.bad_rows],
            "photo_refusal_details": [b.to_dict() for b in self.photo_refusals],
            "possible_duplicate_items": list(self.possible_duplicates),
            "unknown_columns": list(self.unknown_columns),
        }


# -- reading ------------------------------------------------------------------------------------

RowOrError = tuple[int, dict[str, Any] | None, str | None]


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise RecordsError(
            f"{path}: unsupported file type {path.suffix!r}; use .csv, .jsonl or .parquet",
            code="import.format",
        )
    return fmt


def read_rows(path: Path) -> Iterator[RowOrError]:
    """(line, row, None) for each row, or (line, None, reason) for one that cannot be read."""
    fmt = file_format(path)
    if not path.is_file():
        raise RecordsError(f"{path} does not exist", code="import.not_found")
    if fmt == "csv":
        yield from _read_csv(path)
    elif fmt == "jsonl":
        yield from _read_jsonl(path)
    else:
        yield from _read_parquet(path)


def _read_csv(path: Path) -> Iterator[RowOrError]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return
        header = [h.strip() for h in header]
        start = reader.line_num + 1
        for values in reader:
            line = start
            start = reader.line_num + 1
            if not any(v.strip() for v in values):
                continue  # a blank line is not a row
            if len(values) != len(header):
                yield (
                    line,
                    None,
                    f"row has {len(values)} columns, the header has {len(header)}",
                )
                continue
            yield line, dict(zip(header, values, strict=True)), None


def _read_jsonl(path: Path) -> Iterator[RowOrError]:
    with path.open(encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield n, None, f"not valid JSON: {e.msg} at column {e.colno}"
                continue
            if not isinstance(obj, dict):
                yield n, None, "a line must hold one JSON object"
                continue
            yield n, obj, None


def _read_parquet(path: Path) -> Iterator[RowOrError]:
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            n += 1
            yield n, row, None


def count_rows(path: Path) -> int | None:
    """Rows in the file (for a progress bar): lines for text files, metadata for Parquet."""
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as f:
        lines = sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))
    return max(0, lines - (1 if fmt == "csv" else 0))


# -- validating ---------------------------------------------------------------------------------


def _json_safe(v: Any) -> Any:
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        return v
    if isinstance(v, date | datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, float) and v != v:  # NaN from a data frame means "empty"
        return None
    return v


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class ValidRow:
    line: int
    kind: str
    rec: RecordBase
    #: The typed fields and the raw payload as JSON text (serialised once, stored as is).
    fields_json: str
    raw_json: str
    content_sha: str


def validate(
    line: int, row: dict[str, Any], *, kind: str | None, key: bytes
) -> ValidRow | RowProblem:
    row_kind = row.get("kind")
    row_kind = row_kind.strip() if isinstance(row_kind, str) else row_kind
    if kind and row_kind and row_kind != kind:
        return RowProblem(
            line, "import.kind_mismatch", f"kind: row says {row_kind!r}, --kind {kind!r}"
        )
    k = row_kind or kind
    if not k:
        return RowProblem(line, "import.no_kind", "kind: no kind column value and no --kind given")
    try:
        rec = validate_row(str(k), row, key)
    except (ValidationError, ValueError) as e:
        srid = row.get("source_record_id")
        return RowProblem(
            line, "import.invalid_row", describe_errors(e), None if srid is None else str(srid)
        )
    fields = rec.typed_fields()
    raw = {str(k): _json_safe(v) for k, v in row.items()}
    if "document_number" in raw:
        raw["document_number"] = fields.get("document_number_hash")
    raw["kind"] = rec.kind
    raw_json = _dumps(raw)
    ev = None if rec.event_date is None else rec.event_date.isoformat()
    body = f"{raw_json}|{rec.subject_id}|{rec.person_external_id}|{ev}"
    return ValidRow(
        line, rec.kind, rec, _dumps(fields), raw_json, hashlib.sha256(body.encode()).hexdigest()
    )


# -- writing ------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    new_people: int = 0
    corrections_superseded: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    #: (row, record id, person external id) of written rows that reference a photo.
    photos: list[tuple[ValidRow, int, str]] = field(default_factory=list)


class RecordWriter:
    """Upserts validated rows of one source in batches with SQL bulk statements, each batch in
    the caller's unit of work."""

    def __init__(self, source: SourceInfo, *, dry_run: bool = False) -> None:
        self.source = source
        self.dry_run = dry_run
        self._seen: dict[str, int] = {}  # source_record_id -> line, duplicates within a run
        self._virtual: dict[str, int] = {}  # dry run: subject keys that would become people
        self._virtual_next = -1

    def _person_ids(
        self, uow: UnitOfWork, rows: list[ValidRow], out: BatchResult
    ) -> dict[int, int]:
        """Row line -> person id, creating people and links for new subject keys."""
        src = self.source
        conn = uow.session
        ext_ids = {r.rec.person_external_id for r in rows if r.rec.person_external_id}
        by_ext: dict[str, int] = {}
        if ext_ids:
            by_ext = {
                e: pid
                for pid, e in conn.execute(
                    select(Person.id, Person.external_id).where(Person.external_id.in_(ext_ids))
                )
            }
            missing = ext_ids - set(by_ext)
            # An external id merged into another person reaches the person kept.
            for e in missing:
                live = lineage.live_person(uow.session, e)
                if live is not None:
                    by_ext[e] = live
        keys = {r.rec.subject_id for r in rows if r.rec.subject_id}
        links: dict[str, int] = {}
        if keys:
            links = {
                k: pid
                for k, pid in conn.execute(
                    select(PersonLink.subject_key, PersonLink.person_id).where(
                        PersonLink.source_id == src.id, PersonLink.subject_key.in_(keys)
                    )
                )
            }
        links.update(self._virtual)
        result: dict[int, int] = {}
        new_people: dict[str, dict[str, Any]] = {}
        new_links: dict[str, int] = {}
        pending: list[ValidRow] = []
        for r in rows:
            ext, key = r.rec.person_external_id, r.rec.subject_id
            if ext is not None:
                pid = by_ext.get(ext)
                if pid is None:
                    out.problems.append(
                        RowProblem(
                            r.line,
                            "import.unknown_person",
                            f"person_external_id: no fieldid person {ext!r}",
                            r.rec.source_record_id,
                        )
                    )
                    continue
                if key is not None:
                    linked = links.get(key, new_links.get(key))
                    if linked is not None and linked != pid:
                        out.problems.append(
                            RowProblem(
                                r.line,
                                "import.link_conflict",
                                f"subject_id {key!r} of source {src.name} is linked to another "
                                f"person than {ext!r}; links change only by explicit review",
                                r.rec.source_record_id,
                            )
                        )
                        continue
                    if linked is None:
                        new_links[key] = pid
                result[r.line] = pid
            elif key is not None:
                if key in links:
                    result[r.line] = links[key]
                else:
                    if key not in new_people:
                        name = r.rec.name or f"{src.name} subject {key}"
                        if r.rec.synthetic and "(synthetic)" not in name:
                            name += " (synthetic)"
                        new_people[key] = {
                            "external_id": f"{src.name}:{key}",
                            "display_name": name[:200],
                            "synthetic": r.rec.synthetic,
                        }
                    pending.append(r)
        if new_people:
            out.new_people += len(new_people)
            if self.dry_run:
                for k in new_people:
                    self._virtual[k] = self._virtual_next
                    new_links[k] = self._virtual_next
                    self._virtual_next -= 1
            else:
                now = uow.now()
                rows_p = [{**p, "created_at": now} for p in new_people.values()]
                ids = [
                    x[0]
                    for x in conn.execute(
                        insert(PERSONS).returning(PERSONS.c.id, sort_by_parameter_order=True),
                        rows_p,
                    )
                ]
                for k, pid in zip(new_people, ids, strict=True):
                    new_links[k] = pid
        for r in pending:
            result[r.line] = new_links[cast(str, r.rec.subject_id)]
        if new_links and not self.dry_run:
            now = uow.now()
            conn.execute(
                insert(LINKS),
                [
                    {"source_id": src.id, "subject_key": k, "person_id": pid, "created_at": now}
                    for k, pid in new_links.items()
                    if k not in links
                ],
            )
        return result

    def write(self, uow: UnitOfWork, batch: list[ValidRow]) -> BatchResult:
        """Upsert ``batch`` in ``uow`` (nothing is written in a dry run)."""
        out = BatchResult()
        rows: list[ValidRow] = []
        for r in batch:
            srid = r.rec.source_record_id
            first = self._seen.get(srid)
            if first is not None:
                out.problems.append(
                    RowProblem(
                        r.line,
                        "import.duplicate_record_id",
                        f"source_record_id {srid!r} appears again (first at line {first})",
                        srid,
                    )
                )
                continue
            self._seen[srid] = r.line
            rows.append(r)
        if not rows:
            return out
        conn = uow.session.connection()
        pg = conn.dialect.name == "postgresql"
        people = self._person_ids(uow, rows, out)
        rows = [r for r in rows if r.line in people]
        existing = {
            srid: (rid, sha, corrected)
            for srid, rid, sha, corrected in conn.execute(
                select(
                    Record.source_record_id, Record.id, Record.content_sha, Record.corrected_at
                ).where(
                    Record.source_id == self.source.id,
                    Record.source_record_id.in_([r.rec.source_record_id for r in rows]),
                )
            )
        }
        now = uow.now()
        proc = DateTime(timezone=True).bind_processor(conn.dialect)
        stamp = proc(now) if proc else now
        inserts: list[tuple[Any, ...]] = []
        insert_rows: list[ValidRow] = []
        updates: list[tuple[Any, ...]] = []
        for r in rows:
            values = (
                people[r.line],
                r.kind,
                None if r.rec.event_date is None else r.rec.event_date.isoformat(),
                r.fields_json,
                r.raw_json,
                r.content_sha,
                bool(r.rec.synthetic) if pg else int(r.rec.synthetic),
                stamp,
            )
            known = existing.get(r.rec.source_record_id)
            if known is None:
                inserts.append((*values, self.source.id, r.rec.source_record_id, stamp))
                insert_rows.append(r)
            elif known[1] == r.content_sha:
                out.unchanged += 1
                if r.rec.photo:
                    out.photos.append((r, known[0], ""))
            else:
                updates.append((*values, known[0]))
                out.corrections_superseded += int(known[2] is not None)
                if r.rec.photo:
                    out.photos.append((r, known[0], ""))
        out.inserted += len(inserts)
        out.updated += len(updates)
        if self.dry_run:  # nothing was written; photos are only checked for existence
            out.photos.extend((r, 0, "") for r in insert_rows if r.rec.photo)
            return out
        # Plain executemany: the JSON is serialised once (above) and stored as the text the
        # JSON columns read back; SQLAlchemy's per-row bind processing was half the cost.
        insert_sql, update_sql = _SQL["postgresql" if pg else "sqlite"]
        if inserts:
            conn.exec_driver_sql(insert_sql, inserts)
            with_photo = [r for r in insert_rows if r.rec.photo]
            if with_photo:
                ids = dict(
                    conn.execute(
                        select(Record.source_record_id, Record.id).where(
                            Record.source_id == self.source.id,
                            Record.source_record_id.in_(
                                [r.rec.source_record_id for r in with_photo]
                            ),
                        )
                    ).all()
                )
                out.photos.extend((r, ids[r.rec.source_record_id], "") for r in with_photo)
        if updates:
            conn.exec_driver_sql(update_sql, updates)
        if out.photos:
            pid_of = {r.line: people[r.line] for r, _, _ in out.photos}
            ext = dict(
                conn.execute(
                    select(Person.id, Person.external_id).where(Person.id.in_(set(pid_of.values())))
                ).all()
            )
            out.photos = [(r, rid, ext[pid_of[r.line]]) for r, rid, _ in out.photos]
        return out


_COLS = "person_id, kind, event_date, fields, raw, content_sha, synthetic, updated_at"


def _statements(p: str, date: str, json: str) -> tuple[str, str]:
    """The bulk INSERT and UPDATE in a driver's parameter style, with its casts."""
    values = ", ".join([p, p, date, json, json, p, p, p, p, p, p])
    return (
        f"INSERT INTO records ({_COLS}, source_id, source_record_id, imported_at) "
        f"VALUES ({values})",
        f"UPDATE records SET person_id = {p}, kind = {p}, event_date = {date}, fields = {json}, "
        f"raw = {json}, content_sha = {p}, synthetic = {p}, updated_at = {p} WHERE id = {p}",
    )


#: Plain executemany per dialect: SQLite's ``?``; psycopg's ``%s`` with the casts PostgreSQL
#: needs for text given to date and json columns.
_SQL = {
    "sqlite": _statements("?", "?", "?"),
    "postgresql": _statements("%s", "%s::date", "%s::json"),
}


class Importer:
    """Imports records files into one store; photos referenced by rows go through
    ``enrollment`` (None: photos are reported, not enrolled); ``root`` is the workspace folder
    (its document-number key). Built once by ``Workspace``."""

    def __init__(self, store: Store, root: Path, enrollment: Enrollment | None) -> None:
        self.store = store
        self.root = root
        self.enrollment = enrollment

    def _enroll_photos(
        self,
        file: Path,
        source: SourceInfo,
        res: BatchResult,
        report: ImportReport,
        operator: str,
    ) -> None:
        requests: list[EnrollRequest] = []
        rows: list[ValidRow] = []
        for r, record_id, external_id in res.photos:
            photo = Path(cast(str, r.rec.photo))
            path = photo if photo.is_absolute() else file.parent / photo
            if report.dry_run or self.enrollment is None:
                if not path.is_file():
                    report.photo_refusals.append(
                        RowProblem(
                            r.line,
                            "probe.not_found",
                            f"photo {photo} not found",
                            r.rec.source_record_id,
                        )
                    )
                continue
            rows.append(r)
            requests.append(
                EnrollRequest(
                    path,
                    external_id,
                    synthetic=r.rec.synthetic,
                    record_id=record_id,
                    capture_date=r.rec.photo_date or r.rec.event_date,
                    provenance=f"source {source.name}, record {r.rec.source_record_id}, "
                    f"file {photo}",
                )
            )
        if not requests or self.enrollment is None:
            return
        _, outcomes = self.enrollment.enroll(
            requests,
            operator=operator,
            source_name=f"import {file.name} (source {source.name})",
            audit_extra={"import_source": source.name, "file": str(file)},
        )
        for r, out in zip(rows, outcomes, strict=True):
            photo = Path(cast(str, r.rec.photo))
            if out.outcome == "enrolled":
                report.photos_enrolled += 1
            elif out.outcome == "already_enrolled":
                report.photos_already_enrolled += 1
            elif out.refusal is not None:
                report.photo_refusals.append(
                    RowProblem(
                        r.line,
                        out.refusal.code,
                        f"photo {photo}: {out.refusal.message}",
                        r.rec.source_record_id,
                    )
                )
            if out.review_item is not None:
                report.possible_duplicates.append(out.review_item)

    def import_rows(
        self,
        source: SourceInfo,
        rows: Iterable[RowOrError],
        report: ImportReport,
        *,
        kind: str | None = None,
        operator: str,
        file: Path | None = None,
        batch_size: int = 5000,
        progress: Callable[[int], None] | None = None,
        writer: RecordWriter | None = None,
    ) -> ImportReport:
        """Validate and upsert rows into ``report``, one unit of work (and one ``import``
        audit entry) per batch (shared by the file import and ``synth``, which passes one
        ``writer`` per source across calls so duplicate ids are caught across them)."""
        key = record_hash_key(self.store)
        writer = writer or RecordWriter(source, dry_run=report.dry_run)
        unknown: set[str] = set()
        batch: list[ValidRow] = []
        batches = 0

        def flush() -> None:
            nonlocal batches
            with self.store.unit_of_work() as uow:
                res = writer.write(uow, batch)
                if report.dry_run:
                    uow.rollback()
                elif res.inserted or res.updated or res.new_people:
                    batches += 1
                    uow.audit(
                        "import",
                        operator=operator,
                        payload={
                            "stage": "batch",
                            "batch": batches,
                            "source": source.name,
                            "file": None if file is None else str(file),
                            "lines": [batch[0].line, batch[-1].line],
                            "inserted": res.inserted,
                            "updated": res.updated,
                            "unchanged": res.unchanged,
                            "new_people": res.new_people,
                            "corrections_superseded": res.corrections_superseded,
                        },
                    )
            report.inserted += res.inserted
            report.updated += res.updated
            report.unchanged += res.unchanged
            report.new_people += res.new_people
            report.corrections_superseded += res.corrections_superseded
            report.bad_rows.extend(res.problems)
            if res.photos and file is not None:
                self._enroll_photos(file, source, res, report, operator)
            if progress:
                progress(len(batch))
            batch.clear()

        pending_bad = 0
        for line, row, error in rows:
            report.rows += 1
            if row is None:
                report.bad_rows.append(
                    RowProblem(line, "import.unreadable_row", error or "unreadable")
                )
                pending_bad += 1
                continue
            unknown.update(k for k in row if k not in _KNOWN_COLUMNS)
            v = validate(line, row, kind=kind, key=key)
            if isinstance(v, RowProblem):
                report.bad_rows.append(v)
                pending_bad += 1
                continue
            batch.append(v)
            if len(batch) >= batch_size:
                flush()
                if progress and pending_bad:
                    progress(pending_bad)
                pending_bad = 0
        if batch:
            flush()
        if progress and pending_bad:
            progress(pending_bad)
        report.bad_rows.sort(key=lambda b: b.line)
        report.unknown_columns = sorted(unknown)
        return report

    def import_file(
        self,
        source_name: str,
        path: Path,
        *,
        kind: str | None = None,
        dry_run: bool = False,
        operator: str,
        actor: Actor | None = None,
        batch_size: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import one file from a registered source. Audited (``import``) per batch and with
        its totals at the end."""
        if actor is not None:
            require(actor, "import")
        if kind is not None and kind not in KINDS:
            raise RecordsError(
                f"unknown record kind {kind!r}; known: {', '.join(KINDS)}", code="import.kind"
            )
        source = get_source(self.store, source_name)
        fmt = file_format(path)
        report = ImportReport(source.name, str(path), fmt, dry_run=dry_run)
        try:
            self.import_rows(
                source,
                read_rows(path),
                report,
                kind=kind,
                operator=operator,
                file=path,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            with self.store.unit_of_work() as uow:
                if not dry_run:
                    src = uow.session.get(Source, source.id)
                    if src is not None:
                        src.refreshed_at = uow.now()
                uow.audit(
                    "import",
                    operator=operator,
                    payload={
                        "stage": "done",
                        "source": source.name,
                        "file": str(path),
                        "format": fmt,
                        "kind": kind,
                        "dry_run": dry_run,
                        **report.counts(),
                        "bad_lines": [b.line for b in report.bad_rows[:1000]],
                    },
                )
        return report
