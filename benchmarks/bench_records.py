"""Identity-records benchmark: import rate and search-result assembly latency.

1. Import rate: ``--import-records`` synthetic records (``records.synth.generate``, 5 per person
   across four sources, each row naming its person by ``person_external_id`` and the source's
   subject key, so the links are created on import; the ``--people`` persons are created first,
   untimed, as the gallery would hold them) are written to one
   CSV per source, then imported with ``Importer.import_file`` (parse, validate, bulk
   upsert); rows/s is the total rows over the summed import time. A re-import of the same files
   (every row unchanged) is timed too.
2. Assembly latency: the database is grown to ``--people`` people with ``--records`` records in
   total (the rest through the same validation and bulk upsert, from the generator), then for
   ``--queries`` random top-10 candidate lists the records, summary, conflicts and a presented
   document comparison are assembled (``records.assemble.assemble`` + ``compare_documents``) and
   serialised to JSON, as the search service does; p50/p99 in milliseconds.

    python benchmarks/bench_records.py --out benchmarks/results/records.json

No face model or image is involved (records only). The machine's load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from fieldid.records.assemble import assemble
from fieldid.records.documents import PresentedDocument, compare_documents
from fieldid.records.importer import ImportReport, RecordWriter
from fieldid.records.synth import SOURCES, ensure_sources, generate, person_key
from fieldid.workspace import Workspace

RPP = 5


def rows_for(people: int, start: int, seed: int) -> Any:
    yield from generate(people, RPP, seed, start=start)


def create_people(ws: Workspace, people: int, seed: int) -> None:
    """The synthetic people the records name (``person_external_id``), as the gallery would hold
    them (persons only: the benchmark is about records, not templates)."""
    from sqlalchemy import insert

    from fieldid.store.schema import Person

    with ws.store.unit_of_work() as uow:
        now = uow.now()
        for start in range(0, people, 100_000):
            uow.session.execute(
                insert(Person),
                [
                    {
                        "external_id": person_key(seed, i),
                        "display_name": f"Subject {i:07d} (synthetic)",
                        "synthetic": True,
                        "created_at": now,
                    }
                    for i in range(start, min(people, start + 100_000))
                ],
            )


def write_csvs(directory: Path, people: int, seed: int) -> dict[str, Path]:
    import csv

    cols: list[str] = []
    for _, row in rows_for(min(people, 50), 0, seed):
        cols += [c for c in row if c not in cols]
    paths = {n: directory / f"{n}.csv" for n, _, _ in SOURCES}
    files = {n: p.open("w", newline="", encoding="utf-8") for n, p in paths.items()}
    writers = {n: csv.DictWriter(f, cols, extrasaction="ignore") for n, f in files.items()}
    for w in writers.values():
        w.writeheader()
    for src, row in rows_for(people, 0, seed):
        writers[src].writerow(row)
    for f in files.values():
        f.close()
    return paths


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--import-records", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=5_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="Work folder (default: a temp dir).")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    if a.records != a.people * RPP:
        sys.exit(f"--records must be {RPP} × --people (the generator makes {RPP} per person)")
    work = a.dir or Path(tempfile.mkdtemp(prefix="bench-records-"))
    ws = Workspace.init(work / "ws")
    sources = ensure_sources(ws.store, "bench")
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    create_people(ws, a.people, a.seed)
    print(f"{a.people:,} people created in {time.perf_counter() - t:.1f} s (not timed below)")

    # 1. import rate from CSV files
    import_people = a.import_records // RPP
    t = time.perf_counter()
    paths = write_csvs(work, import_people, a.seed)
    gen_s = time.perf_counter() - t
    imported, import_s = 0, 0.0
    for name, p in paths.items():
        t = time.perf_counter()
        rep = ws.importer.import_file(name, p, operator="bench")
        import_s += time.perf_counter() - t
        assert not rep.bad_rows, rep.bad_rows[:3]
        imported += rep.inserted
    reimport_s = 0.0
    for name, p in paths.items():
        t = time.perf_counter()
        rep = ws.importer.import_file(name, p, operator="bench")
        reimport_s += time.perf_counter() - t
        assert rep.inserted == 0 and rep.updated == 0
    print(f"import: {imported:,} rows in {import_s:.1f} s = {imported / import_s:,.0f} rows/s")
    print(f"re-import (unchanged): {reimport_s:.1f} s = {imported / reimport_s:,.0f} rows/s")

    # 2. grow to --people / --records through the same upsert, from the generator
    t = time.perf_counter()
    writers = {n: RecordWriter(s) for n, s in sources.items()}
    reports = {n: ImportReport(n, "bench", "generated") for n in sources}
    chunk = 50_000
    for start in range(import_people, a.people, chunk):
        by_src: dict[str, list[Any]] = {n: [] for n in sources}
        for line, (src, row) in enumerate(rows_for(min(a.people, start + chunk), start, a.seed)):
            by_src[src].append((line + 1, row, None))
        for n, rows in by_src.items():
            ws.importer.import_rows(
                sources[n], rows, reports[n], operator="bench", writer=writers[n]
            )
        done = min(a.people, start + chunk)
        if done % 200_000 == 0:
            print(f"  grown to {done:,} people", flush=True)
    grow_s = time.perf_counter() - t
    grown = sum(r.inserted for r in reports.values())
    with ws.store.read() as s:
        from sqlalchemy import func, select

        from fieldid.store.schema import Person, Record

        n_people = s.scalar(select(func.count(Person.id))) or 0
        n_records = s.scalar(select(func.count(Record.id))) or 0
        max_pid = s.scalar(select(func.max(Person.id))) or 0
    print(f"grew by {grown:,} records in {grow_s:.0f} s")
    print(f"db: {n_people:,} people, {n_records:,} records")

    # 3. assembly latency for top-10 lists
    rng = random.Random(a.seed)
    doc = PresentedDocument(
        "passport", number="SYN00000001", issuing_country="ARX", date_of_birth=date(1970, 1, 1)
    ).stored(ws.document_key())
    lat: list[float] = []
    n_recs: list[int] = []
    for q in range(a.queries + 20):
        ids = rng.sample(range(1, max_pid + 1), 10)
        t = time.perf_counter()
        with ws.store.read() as s:
            found = assemble(s, ids)
        out = []
        for pid in ids:
            pr = found[pid]
            conflicts, _agreements = compare_documents([doc], pr.records)
            out.append({**pr.to_dict(), "presented_document_conflicts": conflicts})
        json.dumps(out)
        ms = (time.perf_counter() - t) * 1000
        if q >= 20:  # warm-up
            lat.append(ms)
            n_recs.append(sum(len(found[p].records) for p in ids))
    p50, p99 = pct(lat, 50), pct(lat, 99)
    print(
        f"assembly of a top-10 list ({sum(n_recs) / len(n_recs):.0f} records): "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    )
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_start": load0,
        "load_avg_end": os.getloadavg()[0],
        "import": {
            "rows": imported,
            "seconds": round(import_s, 2),
            "rows_per_s": round(imported / import_s),
            "reimport_seconds": round(reimport_s, 2),
            "reimport_rows_per_s": round(imported / reimport_s),
            "csv_generation_seconds": round(gen_s, 2),
        },
        "grow": {"records": grown, "seconds": round(grow_s, 1)},
        "db": {"people": n_people, "records": n_records},
        "assembly": {
            "queries": len(lat),
            "candidates": 10,
            "mean_records_per_list": round(sum(n_recs) / len(n_recs), 1),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
        },
    }
    ws.close()
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
