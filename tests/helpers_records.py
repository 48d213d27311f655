"""Shared bits for the records tests: a registered source and record files on disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from fieldid.records.sources import add_source
from fieldid.workspace import Workspace

CSV_COLUMNS = [
    "kind",
    "source_record_id",
    "subject_id",
    "person_external_id",
    "event_date",
    "name",
    "date_of_birth",
    "nationality",
    "synthetic",
    "location",
    "outcome",
    "charges",
    "disposition",
    "document_type",
    "document_number",
    "issuing_country",
    "expiry",
    "recorded_status",
    "photo",
]


def register(ws: Workspace, name: str = "border-test", kind: str = "border") -> None:
    add_source(
        ws.store,
        name,
        kind=kind,
        authority="Test Authority (synthetic)",
        refresh="manual import in tests",
        synthetic=True,
        operator="test",
    )


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def write_jsonl(path: Path, lines: list[str | dict[str, Any]]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path
