"""Import: good rows in, every bad row reported with line and reason, idempotent re-import."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from conftest import make_workspace
from fieldid.access import Actor, Role
from fieldid.errors import AuthorisationError
from fieldid.records.api import get_record
from fieldid.records.correct import correct_record, record_history
from fieldid.records.sources import RecordsError
from fieldid.store.schema import PersonLink, Record
from helpers_cli import cli, tokens
from helpers_records import register, write_csv, write_jsonl

GOOD = {
    "kind": "border_apprehension",
    "subject_id": "B-1",
    "event_date": "2019-03-02",
    "name": "Arlo Ardwell",
    "date_of_birth": "1980-01-31",
    "nationality": "ARX",
    "location": "Sector 12",
    "outcome": "returned",
    "synthetic": "true",
}


def rows_with_bad_ones() -> list[dict[str, str]]:
    return [
        {**GOOD, "source_record_id": "R1"},  # line 2
        {**GOOD, "source_record_id": "R2", "event_date": "2019-13-40"},  # 3: bad date
        {**GOOD, "source_record_id": "R3", "subject_id": "B-2"},  # 4
        {**GOOD, "source_record_id": "", "subject_id": "B-3"},  # 5: no record id
        {**GOOD, "source_record_id": "R5", "kind": "parking_ticket"},  # 6: unknown kind
        {**GOOD, "source_record_id": "R6", "location": ""},  # 7: missing location
        {**GOOD, "source_record_id": "R1"},  # 8: duplicate id
        {
            "kind": "identity_document",
            "source_record_id": "D1",
            "subject_id": "B-1",
            "document_type": "passport",
            "document_number": "ab 123-4567",
            "issuing_country": "arx",
            "expiry": "2030-05-01",
            "synthetic": "true",
        },  # 9
        {**GOOD, "source_record_id": "R9", "date_of_birth": "yesterday"},  # 10
    ]


@pytest.fixture()
def ws(backend, tmp_path):
    w = make_workspace(tmp_path / "ws")
    register(w)
    yield w
    w.close()


def snapshot(ws) -> list[tuple]:
    with ws.store.read() as s:
        return [
            (r.id, r.person_id, r.source_record_id, r.fields, r.raw, r.updated_at, r.imported_at)
            for r in s.scalars(select(Record).order_by(Record.id))
        ]


def test_bad_rows_are_reported_with_line_and_reason_and_good_rows_go_in(ws, tmp_path):
    path = write_csv(tmp_path / "border.csv", rows_with_bad_ones())
    report = ws.importer.import_file("border-test", path, operator="t")
    assert report.rows == 9
    assert report.inserted == 3 and report.updated == 0
    bad = {b.line: b for b in report.bad_rows}
    assert sorted(bad) == [3, 5, 6, 7, 8, 10]
    assert "event_date" in bad[3].reason
    assert "source_record_id" in bad[5].reason
    assert "unknown record kind" in bad[6].reason
    assert "location" in bad[7].reason
    assert bad[8].code == "import.duplicate_record_id" and "line 2" in bad[8].reason
    assert "date_of_birth" in bad[10].reason
    assert report.new_people == 2  # B-1 and B-2; nothing merged across subjects
    with ws.store.read() as s:
        assert s.scalar(select(func.count(Record.id))) == 3
        assert s.scalar(select(func.count(PersonLink.id))) == 2
    entry = list(ws.store.audit_entries("import"))[-1]
    assert entry.payload["inserted"] == 3 and entry.payload["bad_rows"] == 6
    assert entry.payload["bad_lines"] == [3, 5, 6, 7, 8, 10]


def test_reimport_changes_nothing(ws, tmp_path):
    path = write_csv(tmp_path / "border.csv", rows_with_bad_ones())
    ws.importer.import_file("border-test", path, operator="t")
    before = snapshot(ws)
    again = ws.importer.import_file("border-test", path, operator="t")
    assert (again.inserted, again.updated, again.unchanged, again.new_people) == (0, 0, 3, 0)
    assert snapshot(ws) == before


def test_a_changed_row_updates_its_record_in_place(ws, tmp_path):
    write_csv(tmp_path / "a.csv", [{**GOOD, "source_record_id": "R1"}])
    ws.importer.import_file("border-test", tmp_path / "a.csv", operator="t")
    write_csv(tmp_path / "b.csv", [{**GOOD, "source_record_id": "R1", "outcome": "processed"}])
    report = ws.importer.import_file("border-test", tmp_path / "b.csv", operator="t")
    assert (report.inserted, report.updated) == (0, 1)
    with ws.store.read() as s:
        recs = list(s.scalars(select(Record)))
    assert len(recs) == 1 and recs[0].fields["outcome"] == "processed"


def test_dry_run_writes_nothing(ws, tmp_path):
    path = write_csv(tmp_path / "border.csv", rows_with_bad_ones())
    report = ws.importer.import_file("border-test", path, operator="t", dry_run=True)
    assert report.inserted == 3 and len(report.bad_rows) == 6 and report.new_people == 2
    assert snapshot(ws) == []
    with ws.store.read() as s:
        assert s.scalar(select(func.count(PersonLink.id))) == 0


def test_document_numbers_are_stored_only_as_keyed_hashes(backend, ws, tmp_path):
    path = write_csv(tmp_path / "border.csv", rows_with_bad_ones())
    ws.importer.import_file("border-test", path, operator="t")
    with ws.store.read() as s:
        fields, raw = s.execute(
            select(Record.fields, Record.raw).where(Record.source_record_id == "D1")
        ).one()
    ws.close()
    blob = backend.raw_bytes(ws.root)
    assert b"1234567" not in blob and b"ab 123" not in blob
    assert "hmac-sha256:" in json.dumps(fields) and "hmac-sha256:" in json.dumps(raw)
    # the key is in the keyring, wrapped by the key-encryption key kept outside the workspace
    assert not (ws.root / "secrets").exists()


def test_jsonl_and_parquet_report_lines_and_rows(ws, tmp_path):
    path = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {**GOOD, "source_record_id": "J1"},
            "{not json",
            {**GOOD, "source_record_id": "J3", "outcome": None},
            "",
            {**GOOD, "source_record_id": "J5", "kind": "recorded_status", "recorded_status": "x"},
        ],
    )
    report = ws.importer.import_file("border-test", path, operator="t")
    assert report.inserted == 2
    assert [(b.line, b.code) for b in report.bad_rows] == [
        (2, "import.unreadable_row"),
        (3, "import.invalid_row"),
    ]
    table = pa.table(
        {
            "source_record_id": ["P1", "P2", "P3"],
            "subject_id": ["B-9", "B-9", "B-9"],
            "event_date": ["2020-01-01", "2020-02-01", None],
            "location": ["Sector 1", "Sector 2", "Sector 3"],
            "outcome": ["returned", "returned", "processed"],
        }
    )
    pq.write_table(table, tmp_path / "b.parquet")
    report = ws.importer.import_file(
        "border-test", tmp_path / "b.parquet", operator="t", kind="border_apprehension"
    )
    assert report.inserted == 2
    assert [(b.line, "event_date" in b.reason) for b in report.bad_rows] == [(3, True)]


def test_import_from_an_unregistered_source_is_refused(ws, tmp_path):
    path = write_csv(tmp_path / "x.csv", [{**GOOD, "source_record_id": "R1"}])
    with pytest.raises(RecordsError) as e:
        ws.importer.import_file("nowhere", path, operator="t")
    assert e.value.code == "records.unknown_source"


def test_import_needs_the_import_permission(ws, tmp_path):
    path = write_csv(tmp_path / "x.csv", [{**GOOD, "source_record_id": "R1"}])
    with pytest.raises(AuthorisationError):
        ws.importer.import_file("border-test", path, operator="o", actor=Actor("o", Role.OFFICER))


def test_correction_keeps_history_and_is_audited(ws, tmp_path):
    write_csv(tmp_path / "a.csv", [{**GOOD, "source_record_id": "R1"}])
    ws.importer.import_file("border-test", tmp_path / "a.csv", operator="t")
    with ws.store.read() as s:
        rid = s.scalar(select(Record.id))
    sup = Actor("sup-1", Role.SUPERVISOR)
    with pytest.raises(AuthorisationError):
        correct_record(
            ws.store, ws.root, rid, {"outcome": "x"}, actor=Actor("o", Role.OFFICER), reason="r"
        )
    with pytest.raises(RecordsError):
        correct_record(
            ws.store, ws.root, rid, {"event_date": "not a date"}, actor=sup, reason="typo"
        )
    c = correct_record(
        ws.store,
        ws.root,
        rid,
        {"date_of_birth": "1980-01-13"},
        actor=sup,
        reason="source confirmed a typo",
    )
    assert c.old_fields["date_of_birth"] == "1980-01-31"
    assert c.new_fields["date_of_birth"] == "1980-01-13"
    hist = record_history(ws.store, rid)
    assert [h.operator for h in hist] == ["sup-1"]
    rec = get_record(ws.store, rid)
    assert rec["fields"]["date_of_birth"] == "1980-01-13" and rec["corrections"]
    entry = list(ws.store.audit_entries("record_correct"))[-1]
    assert entry.payload["changed"] == ["date_of_birth"] and entry.seq == c.audit_seq
    # Re-importing the unchanged source row leaves the correction in place.
    again = ws.importer.import_file("border-test", tmp_path / "a.csv", operator="t")
    assert again.unchanged == 1
    assert get_record(ws.store, rid)["fields"]["date_of_birth"] == "1980-01-13"


def test_cli_import_reports_bad_lines_and_exits_non_zero(ws, tmp_path):
    ws.close()
    path = write_csv(tmp_path / "border.csv", rows_with_bad_ones())
    args = ["import", str(path), "--source", "border-test", "--workspace", str(ws.root), "--json"]
    tok = tokens(ws.root)
    res = cli(args, tok[Role.SUPERVISOR])
    assert res.exit_code == 2 and "access.forbidden" in res.output  # imports are an admin's
    res = cli(args, tok[Role.ADMIN])
    assert res.exit_code == 1, res.output
    import json

    out = json.loads(res.stdout[res.stdout.index("{") :])
    assert out["inserted"] == 3
    assert [b["line"] for b in out["bad_row_details"]] == [3, 5, 6, 7, 8, 10]


def test_cli_source_synth_and_training_search(backend, tmp_path):
    import json

    from conftest import subject_images

    root = tmp_path / "ws"
    make_workspace(root).close()
    tok = tokens(root)
    w = ["--workspace", str(root)]
    add = ["source", "add", "poe-1", "--kind", "port_of_entry", "--authority", "A"]
    res = cli([*add, "--refresh", "m", *w], tok[Role.ADMIN])
    assert res.exit_code == 0, res.output
    res = cli(["source", "list", "--json", *w], tok[Role.OFFICER])
    assert json.loads(res.stdout)[0]["name"] == "poe-1"
    synth = ["synth", "--people", "20", "--distractors", "10", "--training", *w]
    assert "access.unauthenticated" in cli(synth).output
    res = cli(synth, tok[Role.ADMIN])
    assert res.exit_code == 0, res.output
    res = cli(
        [
            "search",
            str(subject_images("subject-0001")[1]),
            "--purpose",
            "field-identification",
            "--case",
            "C-1",
            "--training",
            "--document",
            "type=passport,number=X1,country=ARX,dob=1990-01-02",
            "--json",
            *w,
        ],
        tok[Role.OFFICER],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["training"] is True and out["gallery"]["persons"] == 30
    assert out["presented_documents"][0]["number_hash"].startswith("hmac-sha256:")
    # Writing CSV files touches no workspace: no account needed.
    res = cli(["synth", "--export", str(tmp_path / "csv"), "--people", "5"])
    assert res.exit_code == 0 and (tmp_path / "csv" / "synthetic-border.csv").is_file()
