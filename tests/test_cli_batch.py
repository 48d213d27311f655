"""``fieldid search --batch``: one model load, one audited search and one JSON line per probe;
and CLI tables that never cut an id short."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import FACES, enrolled, enrolled_template
from fieldid.access import Role
from fieldid.candidate import Candidate, CandidateList
from fieldid.cli.app import app, candidates_table
from fieldid.pipeline import FacePipeline
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens

__all__ = ["enrolled", "enrolled_template"]  # fixtures

runner = CliRunner()
USE = ["--purpose", "field-identification", "--case", "BATCH-1"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _searches(root: Path) -> list:
    ws = Workspace.open(root)
    try:
        return list(ws.store.audit_entries("search"))
    finally:
        ws.close()


@pytest.fixture()
def ws_root(enrolled: Workspace) -> Path:
    root = enrolled.root
    enrolled.close()
    return root


@pytest.fixture()
def officer(ws_root: Path) -> str:
    """An officer's API token (the batch acts as that account, authenticated once)."""
    return tokens(ws_root)[Role.OFFICER]


def test_batch_over_a_folder_loads_the_model_once(
    ws_root: Path, officer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "probes"
    for n in (2, 5, 9):
        sid = f"subject-{n:04d}"
        (folder / sid).mkdir(parents=True)
        shutil.copy(FACES / sid / f"{sid}_0002.jpg", folder / sid)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not a probe")  # not an image: not a probe
    loads: list[object] = []
    real = FacePipeline.from_spec.__func__  # type: ignore[attr-defined]

    def counting(cls: type[FacePipeline], *a: object, **kw: object) -> FacePipeline:
        loads.append(a)
        return real(cls, *a, **kw)

    monkeypatch.setattr(FacePipeline, "from_spec", classmethod(counting))
    before = len(_searches(ws_root))
    out = tmp_path / "out.jsonl"
    r = cli(["search", "--batch", folder, "-w", ws_root, *USE, "--out", out], token=officer)
    assert r.exit_code == 0, r.output
    assert len(loads) == 1  # the model, once for the whole batch
    lines = _lines(out)
    assert [Path(x["probe"]).name for x in lines] == [
        "broken.jpg",
        "subject-0002_0002.jpg",
        "subject-0005_0002.jpg",
        "subject-0009_0002.jpg",
    ]
    broken, *faces = lines
    assert broken["outcome"] == "refused" and broken["error"]["code"].startswith("probe.")
    assert broken["search_id"] is None and broken["result"] is None
    for x in faces:
        sid = Path(x["probe"]).parent.name
        assert x["outcome"] == "candidates" and x["error"] is None
        assert x["result"]["candidates"][0]["external_id"] == sid
        assert x["result"]["search_id"] == x["search_id"] and x["case_ref"] == "BATCH-1"
    # One audited use per probe, the refusal too, each with its case.
    entries = _searches(ws_root)[before:]
    assert len(entries) == 4
    assert {e.case_ref for e in entries} == {"BATCH-1"}
    assert {e.operator for e in entries} == {"cli-officer"}
    assert sorted(e.payload["outcome"] for e in entries) == ["candidates"] * 3 + ["refused"]
    assert "4 probes: 3 searched (3 with candidates, 0 without), 1 refused" in r.output


def test_batch_from_a_csv_with_a_case_per_row(ws_root: Path, officer: str, tmp_path: Path):
    shutil.copy(FACES / "subject-0003" / "subject-0003_0002.jpg", tmp_path / "a.jpg")
    csv = tmp_path / "probes.csv"
    csv.write_text(
        "path,case_ref\n"
        "a.jpg,CASE-A\n"
        "missing.jpg,CASE-B\n"
        f"{FACES / 'subject-0007' / 'subject-0007_0002.jpg'},\n"
    )
    before = len(_searches(ws_root))
    r = cli(["search", "--batch", csv, "-w", ws_root, *USE], token=officer)
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.splitlines()]  # JSON lines on stdout
    assert [x["line"] for x in lines] == [2, 3, 4]
    assert [x["case_ref"] for x in lines] == ["CASE-A", "CASE-B", "BATCH-1"]
    assert [x["outcome"] for x in lines] == ["candidates", "unreadable", "candidates"]
    assert lines[1]["error"]["code"] == "dataset.unreadable"
    # The unreadable row searched nothing: two audited searches, with their own cases.
    entries = _searches(ws_root)[before:]
    assert [e.case_ref for e in entries] == ["CASE-A", "BATCH-1"]


def test_batch_usage_errors(ws_root: Path, officer: str, tmp_path: Path):
    photo = FACES / "subject-0003" / "subject-0003_0002.jpg"
    both = runner.invoke(app, ["search", str(photo), "--batch", str(tmp_path), *USE])
    assert both.exit_code == 2 and "not both" in both.output
    neither = runner.invoke(app, ["search", *USE])
    assert neither.exit_code == 2
    doc = runner.invoke(
        app, ["search", "--batch", str(tmp_path), "--document", "type=passport", *USE]
    )
    assert doc.exit_code == 2 and "--document" in doc.output
    empty = runner.invoke(app, ["search", "--batch", str(tmp_path), "-w", str(ws_root), *USE])
    assert empty.exit_code == 2 and "dataset.empty" in empty.output
    (tmp_path / "bad.csv").write_text("file,case\nx.jpg,C\n")
    bad = runner.invoke(
        app, ["search", "--batch", str(tmp_path / "bad.csv"), "-w", str(ws_root), *USE]
    )
    assert bad.exit_code == 2 and "dataset.columns" in bad.output
    # Without an account nothing is searched: refused once, before any probe.
    (tmp_path / "p").mkdir()
    shutil.copy(photo, tmp_path / "p")
    before = len(_searches(ws_root))
    anon = cli(["search", "--batch", tmp_path / "p", "-w", ws_root, *USE])
    assert anon.exit_code == 2 and "access.unauthenticated" in anon.output
    assert len(_searches(ws_root)) == before
    ok = cli(["search", "--batch", tmp_path / "p", "-w", ws_root, *USE], token=officer)
    assert ok.exit_code == 0 and len(_searches(ws_root)) == before + 1


def test_candidate_tables_never_cut_an_id(monkeypatch: pytest.MonkeyPatch):
    long_id = "border-agency-x:person-000012345678-ABCDEFGH-IJKLMNOP"
    result = CandidateList(
        audit_seq=1,
        model="m",
        threshold=0.9,
        gallery_persons=1,
        gallery_templates=1,
        quality={"band": "good"},
        candidates=[
            Candidate(1, 7, long_id, "A Person With Quite A Long Display Name", False, 0.97, 3)
        ],
        faces_in_frame=1,
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(candidates_table(result))
    text = console.export_text()
    assert "…" not in text
    cells = "".join(line.split("│")[2].strip() for line in text.splitlines() if line.count("│") > 2)
    assert long_id in cells
