"""The oversight report renders with its charts; the redress export is complete."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import DEFAULT_MODEL
from fieldid.access import Actor, Role
from fieldid.clock import ManualClock
from fieldid.errors import AuthorisationError, QualityRefused
from fieldid.report import build_report, render_html
from fieldid.workspace import Workspace
from helpers_account import open_copy, search
from helpers_cli import cli, tokens

OFFICER = Actor("officer-7", Role.OFFICER)
OFFICER_2 = Actor("officer-9", Role.OFFICER)
AUDITOR = Actor("aud-1", Role.AUDITOR)

EVALUATION = {
    "at": "2026-02-01T10:00:00+00:00",
    "model": "dlib-resnet-v1@frm-0.3.0",
    "dataset": "lfw-dev",
    "n_images": 3823,
    "n_identities": 1719,
    "fta": 0.004,
    "det": {
        "fmr": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        "fnmr": [0.40, 0.22, 0.09, 0.03, 0.01],
    },
    "operating_point": {
        "threshold": 0.925,
        "fmr": 1e-3,
        "fnmr": 0.09,
        "fpir": 0.02,
        "fnir": 0.12,
        "gallery_size": 1200,
    },
    "groups": [
        {"group": "group-a", "n_images": 900, "fmr": 0.0008, "fnmr": 0.07},
        {"group": "group-b", "n_images": 700, "fmr": 0.0021, "fnmr": 0.12},
    ],
    "group_ratios": {"fmr_worst_to_best": 2.6, "fnmr_worst_to_best": 1.7},
    "calibration_check": {
        "calibration": "dlib-resnet-v1.json",
        "rows": [],
        "max_ratio": 3.1,
        "drifted": True,
    },
}


@pytest.fixture()
def clock() -> ManualClock:
    from helpers_account import T0

    return ManualClock(T0)


@pytest.fixture()
def busy(enrolled_template: Path, tmp_path: Path, clock: ManualClock) -> Iterator[Workspace]:
    """Searches over three days by two officers, with every kind of outcome."""
    ws = open_copy(enrolled_template, tmp_path, clock)
    adj = ws.adjudicator()
    r = search(ws, "subject-0002")
    adj.adjudicate(
        r.search_id,
        OFFICER,
        "confirm",
        person_id=r.candidates[0].person_id,
        reason="face and ID card agree",
        documents=[{"type": "id-card", "number": "D-1"}],
    )
    clock.advance(hours=5)
    r = search(ws, "subject-0002", image=2, operator="officer-9")
    lead = r.candidates[0].person_id
    adj.adjudicate(r.search_id, OFFICER_2, "reject", person_id=lead, reason="another person")
    adj.close(r.search_id, OFFICER_2, "not_identified", reason="documents show another person")
    clock.advance(days=1)
    r = search(ws, "subject-0002", image=0)
    adj.adjudicate(r.search_id, OFFICER, "inconclusive", reason="person left before checks")
    search(ws, "subject-0005", purpose="evaluation")
    ws.store.append_audit(
        "search",
        operator="trainee-1",
        purpose="field-identification",
        case_ref="TRAINING",
        payload={"training": True, "outcome": "candidates", "candidates": []},
    )
    clock.advance(days=1)
    gate = ws.config.gate
    object.__setattr__(ws.config, "gate", gate.__class__(min_inter_eye_px=200))
    with pytest.raises(QualityRefused):
        search(ws, "subject-0003")
    object.__setattr__(ws.config, "gate", gate)
    yield ws
    ws.close()


def test_report_data_counts_outcomes_and_excludes_training(busy: Workspace) -> None:
    data = build_report(busy.store, busy.root, busy.clock)
    s = data["searches"]
    assert s["total"] == 5 and s["training_excluded"] == 1
    assert s["by_operator"] == {"officer-7": 4, "officer-9": 1}
    assert s["by_purpose"] == {"field-identification": 4, "evaluation": 1}
    from helpers_account import T0

    # Searches at T0, T0+5 h, T0+29 h (two) and T0+53 h (refused): three or four UTC dates,
    # depending on the hour the test runs.
    days = {(T0 + timedelta(hours=h)).date().isoformat() for h in (0, 5, 29, 53)}
    assert set(s["by_day"]) == days
    o = data["outcomes"]
    assert (o["identified"], o["not identified"], o["inconclusive"], o["refused"]) == (1, 1, 1, 1)
    assert o["open"] + o["no candidate above threshold"] == 1
    assert data["quality"]["refusals_by_code"] == {"quality.too_far": 1}
    assert len(data["quality"]["accepted_unified"]) == 4
    assert len(data["quality"]["refused_unified"]) == 1
    assert data["evaluation"]["available"] is False
    assert "no evaluation" in data["evaluation"]["message"]
    assert data["audit_chain"]["ok"]
    assert data["retention"]["oldest_retained"]["probe_images"]["oldest"] is not None


def test_report_period_filters_by_day(busy: Workspace, clock: ManualClock) -> None:
    from fieldid.report import parse_day

    day2 = (clock.now().date()).isoformat()
    data = build_report(
        busy.store, busy.root, busy.clock, parse_day(day2), parse_day(day2, end=True)
    )
    assert data["searches"]["total"] == 1 and data["outcomes"]["refused"] == 1


def test_report_renders_html_with_inline_png_charts(busy: Workspace, tmp_path: Path) -> None:
    (busy.root / "evaluation").mkdir()
    (busy.root / "evaluation" / "latest.json").write_text(json.dumps(EVALUATION))
    out = tmp_path / "report.html"
    tok = tokens(busy.root)
    res = cli(["report", "--workspace", str(busy.root), "--out", str(out)], tok[Role.AUDITOR])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pngs) == 6  # per day, outcomes, quality, uses per day, DET, groups
    for i, b64 in enumerate(pngs):
        raw = base64.b64decode(b64)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        (tmp_path / f"chart{i}.png").write_bytes(raw)  # kept for a person to look at
    assert "Calibration has drifted" in html and "group-b" in html
    assert "http" not in html.replace("http-equiv", "")  # self-contained
    assert "training searches" in html
    last = list(busy.store.audit_entries("export"))[-1]
    assert last.payload["kind"] == "report" and last.operator == "cli-auditor"
    officer = cli(["report", "--workspace", str(busy.root), "--json"], tok[Role.OFFICER])
    assert officer.exit_code == 2 and "access.forbidden" in officer.output


def test_report_names_the_model_and_what_is_not_checked(busy: Workspace) -> None:
    data = build_report(busy.store, busy.root, busy.clock, model=lambda: str(busy.pipeline.model))
    m = data["matcher"]
    assert m["in_force"] == str(busy.pipeline.model) == DEFAULT_MODEL
    assert m["about"]["licence"].startswith("MIT") and m["about"]["provenance"]["commit"]
    # Every search of the period (the refused one too) names the model in its audit entry.
    assert m["searches_by_model"] == {DEFAULT_MODEL: 5}
    assert [x["what"] for x in data["not_checked"]] == ["presentation attacks"]
    html = render_html(data)
    assert "What fieldid does not check" in html
    assert "A photo of a photo" in html and "must see the live person" in html
    assert "87 %" in html and "46 %" in html
    assert html.index("What fieldid does not check") < html.index("<h2>Searches</h2>")
    assert DEFAULT_MODEL in html and "github.com/becauseofAI/MobileFace at commit" in html


def test_report_without_evaluation_says_so(busy: Workspace) -> None:
    html = render_html(build_report(busy.store, busy.root, busy.clock))
    assert "no evaluation has been recorded" in html
    assert html.count("data:image/png;base64,") == 4


def test_redress_export_for_a_person_with_several_searches(
    busy: Workspace, clock: ManualClock
) -> None:
    from sqlalchemy import select

    from fieldid.store.schema import Person

    with busy.store.read() as s:
        person = s.scalars(select(Person).where(Person.external_id == "subject-0002")).one()
    with pytest.raises(AuthorisationError):
        busy.redress.export(OFFICER, person="subject-0002")
    out = busy.redress.export(AUDITOR, person="subject-0002")
    assert out["subject"]["person_id"] == person.id
    searches = out["searches"]
    assert len(searches) == 3
    assert all(x["as_candidate"]["score"] > 0 for x in searches)
    decisions = sorted(a["decision"] for x in searches for a in x["adjudications"])
    assert decisions == ["confirm", "inconclusive", "not_identified", "reject"]
    confirm = next(a for x in searches for a in x["adjudications"] if a["decision"] == "confirm")
    assert confirm["documents_presented"] == [{"type": "id-card", "number": "D-1"}]
    assert confirm["by"] == "officer-7" and confirm["state"] == "final"
    (rec,) = out["records"]
    assert rec["external_id"] == "subject-0002" and rec["synthetic"] is True
    assert rec["images"] and all(i["source"] for i in rec["images"])
    last = list(busy.store.audit_entries("redress_export"))[-1]
    assert last.payload["searches"] == 3 and last.operator == "aud-1"

    # After retention removes the search records, the audit log still answers.
    clock.advance(days=400)
    busy.store.append_audit(
        "search", operator="x", payload={"candidates": []}
    )  # keep log non-empty
    busy.retention.purge()
    later = busy.redress.export(AUDITOR, person="subject-0002")
    assert later["searches"] == []  # audit entries older than 183 days are gone too, by policy


def test_redress_export_survives_search_purge_through_the_audit_log(
    busy: Workspace, clock: ManualClock
) -> None:
    clock.advance(days=31)
    busy.retention.purge()  # unidentified search records go after 30 days; audit entries stay
    out = busy.redress.export(AUDITOR, person="subject-0002")
    assert len(out["searches"]) == 3
    kinds = sorted(x["source"] for x in out["searches"])
    assert kinds.count("search record") == 1  # the confirmed identification is still held
    purged = [x for x in out["searches"] if x["source"].startswith("audit log")]
    assert len(purged) == 2
    assert sorted(a["decision"] for x in purged for a in x["adjudications"]) == [
        "inconclusive",
        "not_identified",
        "reject",
    ]


def test_redress_by_receipt_withholds_other_candidates(busy: Workspace) -> None:
    r = search(busy, "subject-0007")
    out = busy.redress.export(AUDITOR, receipt=r.receipt_code)
    (item,) = out["searches"]
    assert item["receipt_code"] == r.receipt_code
    assert item["probe"]["image_held"] is True
    assert all(c["person"] == "withheld" for c in item["candidates"])
    res = cli(
        ["redress", "export", "--workspace", str(busy.root), "--receipt", str(r.receipt_code)],
        tokens(busy.root)[Role.AUDITOR],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["searches"][0]["receipt_code"] == r.receipt_code


def test_report_says_whether_the_calibration_was_judged():
    """Drifted, held, or not judged for lack of trials: never "holds" without evidence."""
    from fieldid.report.html import _evaluation_html as evaluation_html

    def row(ratio: float, enough: bool) -> dict:
        return {
            "kind": "fmr",
            "target": 1e-3,
            "gallery_size": None,
            "predicted": 1e-3,
            "measured": 1e-3 * ratio,
            "ratio": ratio,
            "enough_data": enough,
        }

    ev = {**EVALUATION, "available": True}
    few = {"calibration": "c1", "rows": [row(19.7, False)], "max_ratio": None, "drifted": False}
    held = {"calibration": "c1", "rows": [row(1.3, True)], "max_ratio": 1.3, "drifted": False}
    out_few = evaluation_html({**ev, "calibration_check": few})
    out_held = evaluation_html({**ev, "calibration_check": held})
    assert "Calibration not judged" in out_few and "holds" not in out_few
    assert "19.7" in out_few and "too few trials" in out_few
    assert "Calibration holds within a factor of two on 1 of 1" in out_held
