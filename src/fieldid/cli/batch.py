"""``fieldid search --batch FOLDER|CSV``: many probes, the model loaded once, one JSON line each.

Input:

- a **folder**: every image in it and its subfolders (``.jpg``, ``.jpeg``, ``.png``, ``.webp``),
  in path order; every probe uses ``--purpose`` and ``--case``;
- a **CSV** with a header: ``path`` (required; relative to the CSV's folder) and optionally
  ``case_ref`` (or ``case``) and ``purpose``, which override ``--case`` and ``--purpose`` for
  that row.

Each probe is one search, attributed and audited exactly as ``fieldid search`` would (a refused
probe is audited as a refusal). Output is JSON lines, one per probe in input order, written and
flushed as each search ends (so an interrupted batch keeps what it did)::

    {"probe": "...", "line": 2, "case_ref": "...", "purpose": "...",
     "outcome": "candidates" | "no_candidate_above_threshold" | "investigation_list" | "refused"
                | "unreadable",
     "search_id": 17 | null, "result": {...the search answer...} | null,
     "error": {"code": "...", "message": "...", ...} | null}

``unreadable``: the file could not be read, so nothing was searched (and nothing audited).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fieldid.access import Actor
from fieldid.audit import Attribution
from fieldid.dataset import IMAGE_SUFFIXES
from fieldid.errors import DatasetError, FieldidError
from fieldid.search.service import SearchService


@dataclass(frozen=True)
class BatchProbe:
    path: Path
    #: The CSV line (None for a folder).
    line: int | None = None
    case_ref: str | None = None
    purpose: str | None = None


@dataclass
class BatchSummary:
    probes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)

    @property
    def searched(self) -> int:
        return self.probes - self.outcomes["refused"] - self.outcomes["unreadable"]

    def text(self) -> str:
        out = (
            f"{self.probes} probes: {self.searched} searched "
            f"({self.outcomes['candidates']} with candidates, "
            f"{self.outcomes['no_candidate_above_threshold']} without"
        )
        if self.outcomes["investigation_list"]:
            out += f", {self.outcomes['investigation_list']} investigation lists"
        out += f"), {self.outcomes['refused']} refused"
        if self.outcomes["unreadable"]:
            out += f", {self.outcomes['unreadable']} unreadable"
        if self.refusals:
            out += " (" + ", ".join(f"{c}: {n}" for c, n in self.refusals.most_common()) + ")"
        return out


def read_probes(source: Path) -> list[BatchProbe]:
    """The probes of a folder or a CSV, in order (see the module doc)."""
    if not source.exists():
        raise DatasetError(f"{source} does not exist", code="dataset.not_found")
    if source.is_dir():
        found = [
            BatchProbe(p)
            for p in sorted(source.rglob("*"))
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(source).parts)
        ]
        if not found:
            raise DatasetError(f"{source} holds no images", code="dataset.empty")
        return found
    if source.suffix.lower() != ".csv":
        raise DatasetError(
            f"{source}: give a folder of photos or a .csv with a path column",
            code="dataset.unsupported",
        )
    with source.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if "path" not in (reader.fieldnames or []):
            raise DatasetError(
                f"{source}: the header needs a path column (optional: case_ref, purpose)",
                code="dataset.columns",
            )
        rows = []
        for row in reader:
            raw = (row.get("path") or "").strip()
            path = Path(raw) if Path(raw).is_absolute() else source.parent / raw
            case = (row.get("case_ref") or row.get("case") or "").strip() or None
            purpose = (row.get("purpose") or "").strip() or None
            rows.append(BatchProbe(path, reader.line_num, case, purpose))
    if not rows:
        raise DatasetError(f"{source} lists no probes", code="dataset.empty")
    return rows


def _outcome(list_kind: str, candidates: int) -> str:
    if list_kind == "investigation":
        return "investigation_list"
    return "candidates" if candidates else "no_candidate_above_threshold"


def run_batch(
    service: SearchService,
    probes: Iterable[BatchProbe],
    out: IO[str],
    *,
    operator: str,
    purpose: str,
    case_ref: str,
    actor: Actor | None = None,
    top_k: int | None = None,
    investigation: bool = False,
    training: bool = False,
    progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Search each probe with one service (one model load), writing one JSON line per probe."""
    summary = BatchSummary()
    for probe in probes:
        attr = Attribution(operator, probe.purpose or purpose, probe.case_ref or case_ref)
        line: dict[str, Any] = {
            "probe": str(probe.path),
            "line": probe.line,
            "case_ref": attr.case_ref,
            "purpose": attr.purpose,
            "outcome": "refused",
            "search_id": None,
            "result": None,
            "error": None,
        }
        try:
            data = probe.path.read_bytes()
        except OSError as e:
            line["outcome"] = "unreadable"
            line["error"] = {"code": "dataset.unreadable", "message": f"{e.strerror or e}"}
        else:
            try:
                result = service.search(
                    data,
                    attr,
                    top_k=top_k,
                    investigation=investigation,
                    actor=actor,
                    training=training,
                )
            except FieldidError as e:
                line["error"] = e.to_dict()
                summary.refusals[e.code] += 1
            else:
                line["outcome"] = _outcome(result.list_kind, len(result.candidates))
                line["search_id"] = result.search_id
                line["result"] = result.to_dict()
        summary.probes += 1
        summary.outcomes[line["outcome"]] += 1
        out.write(json.dumps(line, default=str) + "\n")
        out.flush()
        if progress is not None:
            progress(1)
    return summary


def search_batch(
    source: Path,
    *,
    workspace: Path,
    purpose: str,
    case_ref: str,
    out: Path | None,
    top_k: int | None,
    investigation: bool,
    training: bool,
) -> None:
    """The command: open the workspace once, search every probe, print a summary (stderr)."""
    import sys

    from fieldid.cli.auth import operator
    from fieldid.cli.common import err_console, fail, open_workspace, progress_bar

    try:
        probes = read_probes(source)
        ws = open_workspace(workspace)
    except FieldidError as e:
        fail(e)
    try:  # the account, once for the whole batch (token or password)
        actor = operator(ws, "investigation" if investigation else None)
    except FieldidError as e:
        ws.close()
        fail(e)
    service = ws.searches
    target = out.open("w", encoding="utf-8") if out is not None else sys.stdout
    try:
        with progress_bar() as bar:
            task = bar.add_task("searching", total=len(probes))
            summary = run_batch(
                service,
                probes,
                target,
                operator=actor.name,
                purpose=purpose,
                case_ref=case_ref,
                actor=actor,
                top_k=top_k,
                investigation=investigation,
                training=training,
                progress=lambda n: bar.advance(task, n),
            )
    finally:
        if out is not None:
            target.close()
        ws.close()
    where = f"; JSON lines in {out}" if out is not None else ""
    err_console.print(summary.text() + where, highlight=False, soft_wrap=True)
