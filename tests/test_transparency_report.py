"""The publishable transparency report: nothing identifying leaks, small cells are suppressed and
cannot be worked back from the totals, the figures are right, and the signature holds (and fails
when one byte changes)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from fieldid.access import Actor, Role
from fieldid.access.accounts import Accounts
from fieldid.adjudication.store import new_receipt_code
from fieldid.cli.app import app
from fieldid.clock import ManualClock
from fieldid.errors import AuthorisationError, WorkspaceError
from fieldid.records.correct import correct_record
from fieldid.store.schema import Person, Record
from fieldid.transparency.public_report import build_public_report, publish
from fieldid.transparency.signing import verify_file
from fieldid.workspace import Workspace
from helpers_account import T0, open_copy, search
from helpers_cli import cli, tokens
from helpers_records import register, write_csv

OFFICER = Actor("officer-quill", Role.OFFICER)
SUPERVISOR = Actor("sup-marlowe", Role.SUPERVISOR)
AUDITOR = Actor("aud-vance", Role.AUDITOR)
ADMIN = Actor("admin-okafor", Role.ADMIN)
RECORD_NAME = "Ottoline Quayle"

#: Two whole months after T0's month: the synthetic load is spread over them.
MONTH_A = (T0.replace(day=1) + timedelta(days=40)).replace(day=3, hour=9)
MONTH_B = (MONTH_A.replace(day=1) + timedelta(days=40)).replace(day=5, hour=9)


def synthetic_search(
    ws: Workspace, operator: str, purpose: str, case: str, outcome: str, code: str | None = None
) -> None:
    """A search entry as SearchService writes it (the report reads only the audit log)."""
    payload: dict[str, object] = {
        "outcome": outcome,
        "receipt_code": new_receipt_code(),
        "training": False,
        "candidates": [],
    }
    if code is not None:
        payload["error"] = {"code": code, "message": "refused"}
    ws.store.append_audit(
        "search", operator=operator, purpose=purpose, case_ref=case, payload=payload
    )


@pytest.fixture()
def busy(enrolled_template: Path, tmp_path: Path) -> Iterator[Workspace]:
    """Real searches, an identification later corrected after redress, a synthetic load spread
    over two months (big and small cells), verifications, training searches and a purge."""
    clock = ManualClock(T0)
    ws = open_copy(enrolled_template, tmp_path, clock)
    Accounts(ws.store, ws.clock).add_user(
        "officer-quill", "officer", "long enough password", by="admin-okafor"
    )
    register(ws)
    csv = write_csv(
        tmp_path / "records.csv",
        [
            {
                "kind": "border_apprehension",
                "source_record_id": "BR-41",
                "subject_id": "S-41",
                "person_external_id": "subject-0002",
                "event_date": "2019-03-02",
                "name": RECORD_NAME,
                "date_of_birth": "1980-01-31",
                "nationality": "ARX",
                "location": "Sector 12",
                "outcome": "returned",
                "synthetic": "true",
            }
        ],
    )
    ws.importer.import_file("border-test", csv, operator="admin-okafor")
    adj = ws.adjudicator()
    r = search(ws, "subject-0002", operator="officer-quill")
    adj.adjudicate(
        r.search_id,
        OFFICER,
        "confirm",
        person_id=r.candidates[0].person_id,
        reason="face and card agree",
    )
    clock.advance(hours=2)
    r2 = search(ws, "subject-0005", operator="officer-quill")
    adj.close(
        r2.search_id,
        OFFICER,
        "not_identified" if r2.candidates else "no_lead",
        reason="documents show another person",
    )
    clock.advance(hours=1)
    ws.redress.export(AUDITOR, person="subject-0002")
    with ws.store.read() as s:
        record_id = s.scalar(select(Record.id).where(Record.source_record_id == "BR-41"))
    correct_record(
        ws.store, ws.root, record_id, {"location": "Sector 9"}, actor=SUPERVISOR, reason="redress"
    )
    for _ in range(2):
        ws.store.append_audit(
            "search",
            operator="trainee-pell",
            purpose="field-identification",
            case_ref="TRAINING-9",
            payload={"training": True, "outcome": "candidates", "candidates": []},
        )
    clock.set(MONTH_A)
    for i in range(23):
        synthetic_search(
            ws,
            "officer-wren",
            "field-identification",
            f"CASE-WR-{i:03d}",
            "no_candidate_above_threshold",
        )
    for i in range(3):
        synthetic_search(ws, "officer-wren", "evaluation", f"EV-{i}", "candidates")
    for i in range(12):
        synthetic_search(
            ws,
            "officer-ashby",
            "field-identification",
            f"CASE-AS-{i:03d}",
            "refused",
            "quality.too_far",
        )
    clock.set(MONTH_B)
    for i in range(11):
        synthetic_search(
            ws, "officer-ashby", "evaluation", f"EV-B-{i}", "no_candidate_above_threshold"
        )
    for i in range(2):
        synthetic_search(
            ws,
            "officer-wren",
            "field-identification",
            f"CASE-WR-B{i}",
            "refused",
            "acquire.no_face",
        )
    for above in (True, False, False):
        ws.store.append_audit(
            "verify",
            operator="officer-wren",
            purpose="field-identification",
            case_ref="CASE-VF-1",
            payload={"score": 0.99 if above else 0.5, "threshold": 0.9},
        )
    ws.retention.purge(actor=ADMIN)
    yield ws
    ws.close()


def period(ws: Workspace) -> tuple[datetime, datetime]:
    start = datetime(T0.year, T0.month, 1, tzinfo=UTC)
    return start, ws.clock.now() + timedelta(days=1)


def identifying_strings(ws: Workspace) -> set[str]:
    """Every operator, person, case and receipt string the workspace holds."""
    out: set[str] = set()
    for e in ws.store.audit_entries():
        out.add(e.operator)
        if e.case_ref:
            out.add(e.case_ref)
        if e.payload.get("receipt_code"):
            out.add(e.payload["receipt_code"])
        for key in ("by", "first_by"):
            if isinstance(e.payload.get(key), str):
                out.add(e.payload[key])
    out |= {u.name for u in Accounts(ws.store, ws.clock).list_users()}
    with ws.store.read() as s:
        for p in s.scalars(select(Person)):
            out |= {p.external_id, p.display_name}
        for rec in s.scalars(select(Record)):
            out |= {str(v) for k, v in rec.fields.items() if k == "name"}
            out.add(rec.source_record_id)
    return {x for x in out if x}


def leaks(text: str, strings: set[str]) -> list[str]:
    """Strings that occur in ``text`` as a whole token (not inside a longer word)."""
    return [
        x
        for x in strings
        if re.search(rf"(?<![A-Za-z0-9._-]){re.escape(x)}(?![A-Za-z0-9._-])", text)
    ]


def test_no_operator_person_case_or_receipt_string_appears(busy: Workspace, tmp_path: Path) -> None:
    strings = identifying_strings(busy)
    # The check is real: these are in the workspace and would be found.
    assert {"officer-quill", "officer-wren", "CASE-WR-007", RECORD_NAME, "subject-0002"} <= strings
    assert len([s for s in strings if re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", s)]) >= 50
    start, end = period(busy)
    for name in ("report.html", "report.json"):
        out = tmp_path / name
        publish(busy, AUDITOR, start, end, out)
        text = out.read_text(encoding="utf-8")
        assert leaks(text, strings) == [], name
    assert leaks(json.dumps(build_public_report(busy, start, end)), strings) == []


def test_counts_are_right_and_small_cells_are_suppressed(busy: Workspace) -> None:
    start, end = period(busy)
    data = build_public_report(busy, start, end)
    assert data["suppression"]["k"] == 10
    s = data["searches"]
    month_0, month_a, month_b = (
        T0.strftime("%Y-%m"),
        MONTH_A.strftime("%Y-%m"),
        MONTH_B.strftime("%Y-%m"),
    )
    grid = s["by_purpose_and_month"]
    # True counts: field-identification 2 / 35 / 2, evaluation 0 / 3 / 11.
    assert grid["field-identification"][month_0] == "< 10"
    assert grid["field-identification"][month_a] in (35, "withheld")
    assert grid["field-identification"][month_b] == "< 10"
    assert grid["evaluation"][month_0] == "< 10"  # zero too: nothing under k is shown
    assert grid["evaluation"][month_a] == "< 10"
    assert grid["evaluation"][month_b] in (11, "withheld")
    assert s["by_purpose"]["field-identification"] in (39, "withheld")
    assert s["total"] in (53, "withheld")
    assert s["training_excluded"] == "< 10"
    o = data["outcomes"]
    assert o["identified"] == "< 10" and o["not identified"] == "< 10"
    assert o["no candidate above threshold"] in (34, "withheld")
    assert o["refused"] in (14, "withheld")
    assert o["inconclusive"] == "< 10"
    assert data["refusals_by_reason"] == {
        "acquire.no_face": "< 10",
        "quality.too_far": data["refusals_by_reason"]["quality.too_far"],
    }
    assert data["refusals_by_reason"]["quality.too_far"] in (12, "withheld")
    assert data["verifications"]["above threshold"] == "< 10"
    ids = data["identifications"]
    assert ids == {
        "confirmed": "< 10",
        "redress_afterwards": "< 10",
        "corrected_after_redress": "< 10",
    }
    assert data["purges"]["by_trigger"]["manual"] == "< 10"
    assert data["purges"]["by_trigger"]["adjudication"] == "< 10"  # the rejected search's probe
    # No published sum leaves a "< 10" cell as its only hidden cell: none is found by subtraction.
    # (A withheld cell may be: it is at least 10 and withheld only to protect the small ones; the
    # exact check of what a reader can deduce is in test_transparency_cells.py.)
    lines = (
        [[*grid[p].values(), s["by_purpose"][p]] for p in s["purposes"]]
        + [[*(grid[p][m] for p in s["purposes"]), s["by_month"][m]] for m in s["months"]]
        + [
            [*s["by_purpose"].values(), s["total"]],
            [*s["by_month"].values(), s["total"]],
            [*o.values(), s["total"]],
            [*data["refusals_by_reason"].values(), o["refused"]],
            list(data["verifications"].values()),
        ]
    )
    for line in lines:
        hidden = [v for v in line if not isinstance(v, int)]
        assert hidden != ["< 10"], line


def test_identifications_corrected_after_redress_are_counted(busy: Workspace) -> None:
    from fieldid.report.data import adjudication_states, search_outcome
    from fieldid.transparency.public_report import identifications_after_redress

    entries = list(busy.store.audit_entries())
    states = adjudication_states(entries)
    identified = [
        e for e in entries if e.event == "search" and search_outcome(e, states) == "identified"
    ]
    assert len(identified) == 1
    assert identifications_after_redress(busy, entries, identified) == (1, 1)
    # Without the redress export first, the same correction is not "through redress".
    no_redress = [e for e in entries if e.event != "redress_export"]
    assert identifications_after_redress(busy, no_redress, identified) == (0, 0)
    # Without a correction after it, a redress export alone is not a correction.
    no_correction = [e for e in entries if e.event != "record_correct"]
    assert identifications_after_redress(busy, no_correction, identified) == (1, 0)


def test_a_configured_k_is_used(busy: Workspace) -> None:
    cfg = (busy.root / "fieldid.toml").read_text()
    assert "min_cell = 10" in cfg  # written with its default by fieldid init
    (busy.root / "fieldid.toml").write_text(cfg.replace("min_cell = 10", "min_cell = 3"))
    start, end = period(busy)
    data = build_public_report(busy, start, end)
    assert data["suppression"]["k"] == 3
    assert data["outcomes"]["open"] in (3, "withheld")  # 3 is not under k = 3
    assert data["identifications"]["confirmed"] == "< 3"
    (busy.root / "fieldid.toml").write_text(cfg.replace("min_cell = 10", "min_cell = 2"))
    with pytest.raises(WorkspaceError) as e:
        build_public_report(busy, start, end)
    assert e.value.code == "config.invalid"


def test_signature_verifies_and_fails_when_one_byte_changes(
    busy: Workspace, tmp_path: Path
) -> None:
    start, end = period(busy)
    for name in ("r.html", "r.json"):
        out = tmp_path / name
        publish(busy, AUDITOR, start, end, out)
        assert verify_file(out).ok
        runner = CliRunner()
        ok = runner.invoke(app, ["transparency", "verify", str(out)])
        assert ok.exit_code == 0 and "valid" in ok.output
        data = bytearray(out.read_bytes())
        i = len(data) // 2
        data[i] = ord("7") if data[i] != ord("7") else ord("8")
        out.write_bytes(bytes(data))
        check = verify_file(out)
        assert not check.ok and "changed after signing" in check.message
        bad = runner.invoke(app, ["transparency", "verify", str(out), "--json"])
        assert bad.exit_code == 1 and json.loads(bad.output)[0]["ok"] is False
    # Another key does not vouch for it.
    other = tmp_path / "other"
    other.mkdir()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from fieldid.audit.export import public_pem

    key = Ed25519PrivateKey.generate()
    (other / "k.pub.pem").write_bytes(public_pem(key.public_key()))
    out = tmp_path / "r2.json"
    publish(busy, AUDITOR, start, end, out)
    res = CliRunner().invoke(
        app, ["transparency", "verify", str(out), "--public-key", str(other / "k.pub.pem")]
    )
    assert res.exit_code == 1 and "does not verify with this public key" in res.output


def test_publishing_is_audited_and_needs_a_reporting_role(busy: Workspace, tmp_path: Path) -> None:
    start, end = period(busy)
    with pytest.raises(AuthorisationError):
        publish(busy, OFFICER, start, end, tmp_path / "r.json")
    _, sig = publish(busy, AUDITOR, start, end, tmp_path / "r.json")
    last = list(busy.store.audit_entries("export"))[-1]
    assert last.payload["kind"] == "transparency" and last.payload["sha256"] == sig["sha256"]
    assert last.operator == AUDITOR.name


def test_cli_writes_html_and_refuses_a_bad_request(busy: Workspace, tmp_path: Path) -> None:
    root = str(busy.root)
    busy.close()
    start = datetime(T0.year, T0.month, 1).date().isoformat()
    end = (MONTH_B + timedelta(days=1)).date().isoformat()
    out = tmp_path / "public.html"

    auditor = tokens(Path(root))[Role.AUDITOR]

    def run(first: str, last: str, to: Path, *more: str):  # type: ignore[no-untyped-def]
        args = ["transparency", "-w", root, "--from", first, "--to", last, "--out", str(to)]
        return cli([*args, *more], auditor)

    res = run(start, end, out)
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "<table>" in html and "&lt; 10" in html and "Measured error rates" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert CliRunner().invoke(app, ["transparency", "verify", str(out)]).exit_code == 0
    res = run(end, start, out)
    assert res.exit_code == 2 and "transparency.bad_period" in res.output
    res = run(start, end, tmp_path / "r.pdf")
    assert res.exit_code == 2 and "transparency.bad_output" in res.output
    res = CliRunner().invoke(app, ["transparency", "-w", root, "--from", start])
    assert res.exit_code == 2 and "transparency.no_output" in res.output


def test_overlapping_periods_are_warned_about(busy: Workspace, tmp_path: Path) -> None:
    start, end = period(busy)
    first, _ = publish(busy, AUDITOR, start, end, tmp_path / "a.json")
    again, _ = publish(busy, AUDITOR, start, end, tmp_path / "b.json")
    assert "warning" not in first and "warning" not in again  # the same period: same figures
    later, _ = publish(busy, AUDITOR, start + timedelta(days=3), end, tmp_path / "c.html")
    assert "overlapping periods" in later["warning"]
    assert first["period"]["from"] in later["warning"]
    assert "overlapping periods" in (tmp_path / "c.html").read_text()
