"""Honest scores in a real workspace: the threshold in force, rates per candidate, investigation
lists, uncalibrated models, `fieldid calibrate` and `fieldid eval --workspace`."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import DEFAULT_MODEL, FACES, TEST_THRESHOLD, make_workspace, subject_images
from fieldid.access import Actor, Role
from fieldid.audit import Attribution
from fieldid.audit.verify import verify_log
from fieldid.calibration.store import bundled
from fieldid.cli.app import app
from fieldid.dataset import read_labelled
from fieldid.errors import AuthorisationError, WorkspaceError
from fieldid.gallery.distractors import bundled as bundled_distractors
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens
from helpers_onnx import configure_onnx, linear_embedder, projection
from helpers_storage import add_template_people, delete_person

ATTR = Attribution("officer-7", "field-identification", "CASE-2026-006")
runner = CliRunner()


def use_target_fpir(ws: Workspace) -> None:
    """Drop the fixed test threshold so the workspace chooses one from [search] target_fpir."""
    object.__setattr__(ws.config, "threshold", None)


def add_distractors(ws: Workspace, n: int, start: int = 0) -> None:
    model = bundled_distractors(DEFAULT_MODEL)
    assert model is not None
    people = [
        (f"synthetic-{start + i:07d}", f"Subject {start + i:07d} (synthetic)") for i in range(n)
    ]
    add_template_people(ws, people, model.sample(n, seed=start + 1))


def test_threshold_recomputes_when_people_are_enrolled_or_deleted(enrolled: Workspace):
    use_target_fpir(enrolled)
    service = enrolled.searches
    t20 = service.threshold()
    assert t20.how == "target_fpir" and t20.gallery_size == 20 and t20.target_fpir == 0.01
    assert t20.calibration == bundled(DEFAULT_MODEL).id  # type: ignore[union-attr]
    # Enrolling more images of a person adds templates: more chances for a stranger.
    more = [i for i in read_labelled(FACES) if i.identity == "subject-0001"]
    assert enrolled.enrollment.enroll_images(more, operator="t", source_name="more").enrolled == 2
    t22 = service.threshold()
    assert t22.gallery_size == 22 and t22.value > t20.value
    add_distractors(enrolled, 5000)
    t5k = service.threshold()
    assert t5k.gallery_size == 5022 and t5k.value > t22.value + 0.005
    assert t5k.fpir == pytest.approx(0.01, rel=1e-3)
    # Deleting (purging) people lowers it again.
    for ext in ("subject-0003", "subject-0004", "subject-0005"):
        pid = enrolled.gallery.find_person(ext)
        assert pid is not None
        delete_person(enrolled, pid)
    t_after = service.threshold()
    assert t_after.gallery_size == 5019 and t_after.value < t5k.value


def test_the_threshold_in_force_is_in_the_search_audit_entry(enrolled: Workspace):
    use_target_fpir(enrolled)
    add_distractors(enrolled, 2000)
    result = enrolled.searches.search(subject_images("subject-0002")[1], ATTR, top_k=5)
    entry = list(enrolled.store.audit_entries("search"))[-1]
    assert entry.seq == result.audit_seq
    p = entry.payload
    tif = p["threshold_in_force"]
    assert p["threshold"] == result.threshold == tif["value"]
    assert tif["how"] == "target_fpir" and tif["target_fpir"] == 0.01
    assert tif["gallery_size"] == 2020 and tif["band"] == result.quality["band"]
    assert tif["calibration"] == result.calibration == bundled(DEFAULT_MODEL).id  # type: ignore[union-attr]
    assert tif["fpir_estimate"] == pytest.approx(0.01, rel=1e-2)
    assert p["list_kind"] == "candidates"
    for c, a in zip(result.candidates, p["candidates"], strict=True):
        assert c.score >= result.threshold and a["above_threshold"] is True
        assert a["fmr"] == pytest.approx(c.fmr, rel=1e-3)
    assert verify_log(enrolled.store).ok


def test_each_candidate_says_what_its_score_means(enrolled: Workspace):
    result = enrolled.searches.search(subject_images("subject-0004")[1], ATTR)
    assert result.candidates
    top = result.candidates[0]
    assert top.external_id == "subject-0004"
    assert top.meaning is not None and top.quality_band == result.quality["band"]
    assert top.meaning.expected_false == pytest.approx(20 * top.meaning.fmr)
    d = result.to_dict()
    c = d["candidates"][0]
    assert c["quality_band"] == result.quality["band"] and c["fmr"] > 0
    assert c["meaning"].startswith("in a gallery of 20 templates, a stranger scores this high")
    assert d["list_kind"] == "candidates" and d["notice"].endswith("not an identification")
    assert d["threshold_in_force"]["how"] == "configured"  # conftest sets TEST_THRESHOLD


def test_investigation_list_needs_a_role_that_permits_it(enrolled: Workspace):
    use_target_fpir(enrolled)
    service = enrolled.searches
    probe = subject_images("subject-0007")[1]
    with pytest.raises(AuthorisationError) as e:
        service.search(probe, ATTR, investigation=True, actor=Actor("officer-7", Role.OFFICER))
    assert e.value.code == "access.forbidden"
    refused = list(enrolled.store.audit_entries("search"))[-1].payload
    assert refused["outcome"] == "refused" and refused["list_kind"] == "investigation"
    with pytest.raises(AuthorisationError) as e:
        service.search(probe, ATTR, investigation=True)
    assert e.value.code == "access.no_actor"
    with pytest.raises(AuthorisationError):
        service.search(probe, ATTR, actor=Actor("aud", Role.AUDITOR))

    result = service.search(
        probe, ATTR, top_k=8, investigation=True, actor=Actor("sup-1", Role.SUPERVISOR)
    )
    assert result.list_kind == "investigation" and len(result.candidates) == 8
    assert result.list_label.startswith("INVESTIGATION LIST")
    assert [c.above_threshold for c in result.candidates] == [
        c.score >= result.threshold for c in result.candidates
    ]
    assert not all(c.above_threshold for c in result.candidates)
    assert all(c.meaning is not None for c in result.candidates)
    p = list(enrolled.store.audit_entries("search"))[-1].payload
    assert p["outcome"] == "investigation_list" and p["list_kind"] == "investigation"
    assert p["actor"] == {"name": "sup-1", "role": "supervisor"}
    assert len(p["candidates"]) == 8
    assert any(not c["above_threshold"] for c in p["candidates"])


def test_verification_reports_the_fmr_at_its_score(enrolled: Workspace):
    use_target_fpir(enrolled)
    a1, a2, _ = subject_images("subject-0007")
    v = enrolled.searches.verify(a1, a2, ATTR)
    assert v.threshold_set_by == "verify_target_fmr"
    cal = bundled(DEFAULT_MODEL)
    assert cal is not None
    assert v.meaning is not None and v.fmr is not None
    # Below the calibration's floor the rate is stated as a bound: the floor itself.
    curve = cal.curve(v.meaning.band)
    assert v.fmr == pytest.approx(max(cal.fmr_at(v.score, v.meaning.band), curve.fmr_floor))
    assert v.meaning.beyond_floor == (cal.fmr_at(v.score, v.meaning.band) < curve.fmr_floor)
    d = v.to_dict()
    assert re.match(
        r"a stranger's photo scores this high in (about|fewer than) 1 comparison in [\d,]+",
        d["meaning"],
    )
    entry = list(enrolled.store.audit_entries("verify"))[-1].payload
    assert entry["fmr"] == pytest.approx(v.fmr, rel=1e-3) and entry["calibration"] == cal.id


def onnx_workspace(root: Path, threshold: float | None) -> Workspace:
    model = linear_embedder(root.parent / "tiny.onnx", projection(dim=16))
    return configure_onnx(root, model, threshold)


def test_uncalibrated_model_refuses_to_present_scores_as_rates(backend, tmp_path):
    ws = onnx_workspace(tmp_path / "ws", threshold=0.0)
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")][:5]
    ws.enrollment.enroll_images(items, operator="t", source_name="t", synthetic=True)
    result = ws.searches.search(items[0].path, ATTR)
    assert result.candidates and result.calibration is None
    assert result.rates_unavailable is not None
    assert "has no calibration" in result.rates_unavailable
    assert "fieldid calibrate --workspace" in result.rates_unavailable
    for c in result.to_dict()["candidates"]:
        assert c["fmr"] is None and c["fpir_at_score"] is None
        assert c["meaning"].startswith("rates unavailable: model onnx:tiny")
    p = list(ws.store.audit_entries("search"))[-1].payload
    assert p["rates_unavailable"] == result.rates_unavailable
    assert all(c["fmr"] is None for c in p["candidates"])
    assert p["threshold_in_force"]["how"] == "configured"
    ws.close()

    ws = onnx_workspace(tmp_path / "ws2", threshold=None)
    with pytest.raises(WorkspaceError) as e:
        ws.searches.search(subject_images("subject-0001")[0], ATTR)
    assert e.value.code == "config.threshold"
    assert "no calibration" in e.value.message and "fieldid calibrate" in e.value.message
    ws.close()


def test_calibrate_gives_an_onnx_model_rates(backend, tmp_path):
    root = tmp_path / "ws"
    onnx_workspace(root, threshold=None).close()
    r = runner.invoke(
        app,
        [
            "calibrate",
            "--workspace",
            str(root),
            "--dataset",
            str(FACES),
            "--fit-fraction",
            "1.0",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    path = Path(out["path"])
    assert path.parent == root / "calibration" and path.is_file()
    assert out["model"].startswith("onnx:tiny@") and out["origin"] == "workspace"
    assert out["counts"]["all"]["images"] == 40 and out["bands"]["all"]["n_genuine"] == 30
    ws = Workspace.open(root)
    cal_entry = list(ws.store.audit_entries("calibrate"))[-1].payload
    assert cal_entry["calibration"] == out["calibration"]
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
    ws.enrollment.enroll_images(items, operator="t", source_name="t", synthetic=True)
    result = ws.searches.search(items[0].path, ATTR, top_k=3)
    assert result.calibration == out["calibration"] and result.rates_unavailable is None
    assert result.threshold_in_force is not None
    assert result.threshold_in_force["how"] == "target_fpir"
    # The same image again is its own best match with a score of 1: above any threshold.
    assert result.candidates[0].external_id == items[0].identity
    assert result.candidates[0].meaning is not None
    ws.close()


def test_eval_writes_latest_with_group_differentials_and_calibration_check(backend, tmp_path):
    root = tmp_path / "ws"
    ws = make_workspace(root)
    # A real gallery: subjects 1-10 enrolled; the others are non-mated probes against it.
    first = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")][:10]
    ws.enrollment.enroll_images(first, operator="t", source_name="t", synthetic=True)
    ws.close()
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "identity", "group"])
        for item in read_labelled(FACES):
            n = int(item.identity.rsplit("-", 1)[1])
            w.writerow([item.path, item.identity, "group-a" if n % 2 else "group-b"])
    args = [
        "eval",
        "--dataset",
        str(labels),
        "--workspace",
        str(root),
        "--json",
        "--max-impostor-pairs",
        "2000",
        "--cache",
        str(tmp_path / "t.npz"),
    ]
    r = cli(args)
    assert r.exit_code == 2 and "access.unauthenticated" in r.output  # it reads the gallery
    tok = tokens(root)
    r = cli(args, tok[Role.AUDITOR])
    assert r.exit_code == 0, r.output
    with Workspace.open(root) as ws:
        assert ws.store.audit_entries("evaluate")[-1].operator == "cli-auditor"
    doc = json.loads((root / "evaluation" / "latest.json").read_text())
    assert doc["model"] == DEFAULT_MODEL and doc["n_images"] == 40 and doc["n_identities"] == 20
    assert doc["fta"] == 0.0
    assert len(doc["det"]["fmr"]) == len(doc["det"]["fnmr"]) > 10
    assert np.all(np.diff(doc["det"]["fmr"]) >= 0)
    op = doc["operating_point"]
    assert op["threshold"] == TEST_THRESHOLD and 0 <= op["fmr"] <= 1 and 0 <= op["fnmr"] <= 1
    assert op["set_by"]["how"] == "configured"
    assert [g["group"] for g in doc["groups"]] == ["group-a", "group-b"]
    for g in doc["groups"]:
        assert g["n_images"] > 0 and g["genuine_pairs"] > 0 and g["impostor_pairs"] > 0
        assert 0 <= g["fmr"] <= 1 and 0 <= g["fnmr"] <= 1
    ratios = doc["group_ratios"]
    assert ratios is not None and ratios["fmr_worst_to_best"] >= 1
    assert ratios["fnmr_worst_to_best"] >= 1
    check = doc["calibration_check"]
    assert check["calibration"] == bundled(DEFAULT_MODEL).id  # type: ignore[union-attr]
    assert check["rows"] and {r["kind"] for r in check["rows"]} >= {"fmr"}
    for row in check["rows"]:
        assert {
            "kind",
            "target",
            "gallery_size",
            "predicted",
            "measured",
            "ratio",
            "enough_data",
        } <= set(row)
    # Non-mated searches against the workspace's own gallery (report-share people 11 and 19).
    live = [r for r in check["rows"] if r.get("gallery") == "workspace"]
    assert len(live) == 1 and live[0]["gallery_size"] == 10 and live[0]["trials"] == 2
    assert live[0]["template_only"] == 0 and live[0]["enough_data"] is False
    # 20 people give far too few comparisons to judge FMR at 1e-2..1e-4.
    assert not any(r["enough_data"] for r in check["rows"] if r["kind"] == "fmr")
    assert check["drifted"] is False


def test_search_cli_investigation_and_meaning(backend, tmp_path):
    root = tmp_path / "ws"
    ws = make_workspace(root)
    first = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
    ws.enrollment.enroll_images(first, operator="t", source_name="t", synthetic=True)
    ws.close()
    tok = tokens(root)
    probe = str(subject_images("subject-0002")[1])
    use = ["--purpose", "field-identification", "--case", "C-6"]
    r = cli(["search", "--workspace", str(root), probe, *use], tok[Role.OFFICER])
    assert r.exit_code == 0, r.output
    assert "what each score means" in r.output and "in a gallery of 20 templates" in r.output
    args = ["search", "--workspace", str(root), probe, *use, "--investigation"]
    r = cli(args, tok[Role.OFFICER])
    assert r.exit_code == 2 and "access.forbidden" in r.output
    r = cli([*args, "--top", "4", "--json"], tok[Role.SUPERVISOR])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["list_kind"] == "investigation" and len(out["candidates"]) == 4
    assert out["list_label"].startswith("INVESTIGATION LIST")
    r = cli([*args, "--top", "4"], tok[Role.SUPERVISOR])
    assert "INVESTIGATION LIST" in r.output and "below" in r.output
    # The role comes from the account: the command line has no --role to claim one.
    r = cli([*args, "--role", "supervisor"], tok[Role.OFFICER])
    assert r.exit_code == 2 and "No such option" in r.output
