"""The privacy impact assessment: facts from the live demo workspace, what changed between
versions, the agency's sections carried forward, signatures and their checks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import FACES
from fieldid.access import Actor, Role
from fieldid.cli.app import app
from fieldid.demo import run_demo
from fieldid.errors import AuthorisationError
from fieldid.report.data import load_evaluation
from fieldid.retention.policy import RetentionPolicy
from fieldid.transparency.pia import (
    AGENCY_FILE,
    PiaError,
    generate,
    pia_dir,
    verify_versions,
    version_path,
)
from fieldid.transparency.signing import verify_file
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens
from helpers_storage import Backend, active

AUDITOR = Actor("privacy-office", Role.AUDITOR)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory, backend_kind: Backend) -> Path:
    """The demo workspace, evaluated on the fixture faces with group labels (on each backend)."""
    base = tmp_path_factory.mktemp(f"pia-demo-{backend_kind.name}")
    root = base / "demo"
    run_demo(
        root,
        distractors=200,
        console=Console(file=io.StringIO()),
        database_url=backend_kind.database_url(keep=True),
    )
    rows = ["path,identity,group"]
    for d in sorted(p for p in FACES.iterdir() if p.is_dir()):
        group = "group-a" if int(d.name[-4:]) % 2 else "group-b"
        rows += [f"{img},{d.name},{group}" for img in sorted(d.glob("*.jpg"))]
    (base / "faces.csv").write_text("\n".join(rows) + "\n")
    res = cli(
        ["eval", "--workspace", str(root), "--dataset", str(base / "faces.csv")],
        tokens(root, prefix="pia")[Role.AUDITOR],
    )
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture()
def demo(demo_template: Path, tmp_path: Path) -> Iterator[Workspace]:
    root = active().copy(demo_template, tmp_path / "demo")
    ws = Workspace.open(root)
    yield ws
    ws.close()


def section(doc: dict, sid: str) -> dict:
    return next(s for s in doc["sections"] if s["id"] == sid)


def test_the_assessment_of_the_demo_states_its_configuration_and_latest_evaluation(
    demo: Workspace, tmp_path: Path
) -> None:
    res = generate(demo, AUDITOR, out=tmp_path / "pia.md")
    doc = res.doc
    assert res.version == 1 and res.path == version_path(demo.root, 1)
    assert section(doc, "purposes")["data"]["permitted"] == list(demo.config.purposes)
    assert (
        section(doc, "data_classes")["data"]["retention"]
        == RetentionPolicy.load(demo.root).to_dict()
    )
    pres = section(doc, "presentation")["data"]
    assert pres["target_fpir"] == demo.config.target_fpir and pres["fixed_threshold"] is None
    assert pres["two_person_purposes"] == [] and pres["document_rules"] == {}
    assert section(doc, "face_model")["data"]["model"] == str(demo.pipeline.model)
    ev = load_evaluation(demo.root)
    acc = section(doc, "accuracy")["data"]
    assert acc["evaluated"] and acc["at"] == ev["at"] and acc["model"] == ev["model"]
    assert acc["operating_point"] == {
        k: ev["operating_point"][k] for k in ("threshold", "fmr", "fnmr", "fpir", "fnir")
    }
    assert acc["groups_measured"] and len(ev["groups"]) == 2
    assert acc["calibration_drifted"] == ev["calibration_check"]["drifted"]
    assert section(doc, "presentation_attack")["data"]["trusted_detection"] is False
    sec = section(doc, "security")["data"]
    assert sec["encryption_at_rest"] is True and "enrollment_pixels.data" in sec["sealed"]
    assert sec["key_encryption_key"] == demo.keys.kek_id and sec["signing_key_id"]
    assert doc["changes"]["previous_version"] is None
    md = (tmp_path / "pia.md").read_text()
    fnmr = f"{ev['operating_point']['fnmr']:.4g}"
    assert f"| false non-match rate (FNMR) | {fnmr} |" in md
    assert "| group-a |" in md and "| group-b |" in md
    assert "There is no presentation-attack detection that can be trusted" in md
    assert "87 %" in md and "The officer must see the live person" in md
    assert "Encryption at rest: biometric data is sealed (AES-256-GCM" in md
    assert "enrolled face images (pixels kept for re-templating)" in md
    assert md.count("(for the agency to write)") == 3 and "Not yet written by the agency" in md
    assert "| probe_images | the photo taken in the field" in md
    # Signed, checked, audited; the agency's standing file is created.
    assert [c.ok for c in verify_versions(demo.root)] == [True]
    assert verify_file(tmp_path / "pia.md").ok
    entry = list(demo.store.audit_entries("pia"))[-1]
    assert entry.operator == AUDITOR.name and entry.payload["version"] == 1
    assert entry.payload["sha256"] == res.signature["sha256"]
    assert (pia_dir(demo.root) / AGENCY_FILE).is_file()


def test_no_evaluation_is_stated_plainly(demo: Workspace) -> None:
    (demo.root / "evaluation" / "latest.json").unlink()
    acc = section(generate(demo, AUDITOR).doc, "accuracy")
    assert acc["data"] == {"evaluated": False}
    assert acc["statements"][0].startswith("None was measured")


def test_the_next_version_shows_a_changed_retention_period_and_purpose(
    demo: Workspace, tmp_path: Path
) -> None:
    generate(demo, AUDITOR)
    root = demo.root
    demo.close()
    cfg = (root / "fieldid.toml").read_text()
    cfg = cfg.replace('probe_images = "24h"', 'probe_images = "12h"')
    cfg = cfg.replace(
        'purposes = ["field-identification", "evaluation"]',
        'purposes = ["field-identification", "evaluation", "border-check"]',
    )
    (root / "fieldid.toml").write_text(cfg)
    ws = Workspace.open(root)  # the change is audited as the workspace opens
    try:
        v2 = generate(ws, AUDITOR, out=tmp_path / "pia2.md").doc
        ch = v2["changes"]
        assert ch["previous_version"] == 1
        [event] = ch["configuration_history"]
        settings = {c["setting"]: (c["before"], c["after"]) for c in event["changes"]}
        assert settings == {
            "[retention] probe_images": ('"24h"', '"12h"'),
            "[use] purposes": (
                '["field-identification", "evaluation"]',
                '["field-identification", "evaluation", "border-check"]',
            ),
        }
        assert {c["setting"] for c in ch["configuration_net"]} == set(settings)
        facts = {f["fact"]: (f["before"], f["after"]) for f in ch["facts"]}
        assert facts["retention.probe_images"] == ('"24h"', '"12h"')
        assert facts["permitted"][1] == '["field-identification", "evaluation", "border-check"]'
        md = (tmp_path / "pia2.md").read_text()
        changed = md.split("What changed since the previous assessment")[1].split("## 11.")[0]
        assert "[retention] probe_images" in changed and '"12h"' in changed
        assert "[use] purposes" in changed and "border-check" in changed
        assert "| border-check |" in md.split("## 2.")[0]  # and the facts themselves say so
        v3 = generate(ws, AUDITOR).doc["changes"]
        assert v3["configuration_history"] == [] and v3["configuration_net"] == []
        assert v3["facts"] == []
        assert [c.ok for c in verify_versions(root)] == [True, True, True]
    finally:
        ws.close()


def test_the_agency_sections_are_carried_forward_and_edited_in_markdown_or_json(
    demo: Workspace, tmp_path: Path
) -> None:
    generate(demo, AUDITOR)
    agency = pia_dir(demo.root) / AGENCY_FILE
    text = agency.read_text()
    necessity = "Officers at ports of entry meet people without documents daily."
    agency.write_text(
        text.replace(
            "<!-- fieldid:agency necessity -->\n",
            f"<!-- fieldid:agency necessity -->\n{necessity}\n",
        )
    )
    a2 = generate(demo, AUDITOR).doc["agency"]
    assert a2["necessity"]["text"] == necessity and a2["necessity"]["written_in_version"] == 2
    assert a2["proportionality"]["text"] is None
    agency.unlink()  # nothing given: carried forward, and the file is written again
    res3 = generate(demo, AUDITOR, out=tmp_path / "pia3.md")
    assert res3.doc["agency"]["necessity"] == {**a2["necessity"]}
    assert necessity in agency.read_text()
    # The rendered markdown, edited in place, is handed back.
    md = (tmp_path / "pia3.md").read_text()
    proportionality = "Searches only on a stated purpose, with a case, one subject at a time."
    edited = tmp_path / "edited.md"
    edited.write_text(
        md.replace(
            "<!-- fieldid:agency proportionality -->\n",
            f"<!-- fieldid:agency proportionality -->\n{proportionality}\n",
        )
    )
    a4 = generate(demo, AUDITOR, agency=edited).doc["agency"]
    assert a4["proportionality"]["text"] == proportionality
    assert a4["proportionality"]["written_in_version"] == 4
    assert a4["necessity"]["written_in_version"] == 2
    # Or a JSON file (a stored version, edited; or just the texts).
    j = tmp_path / "agency.json"
    j.write_text(json.dumps({"agency": {"alternatives": "Document checks alone were tried."}}))
    a5 = generate(demo, AUDITOR, agency=j).doc["agency"]
    assert a5["alternatives"]["written_in_version"] == 5
    assert a5["proportionality"]["text"] == proportionality
    rendered = generate(demo, AUDITOR, out=tmp_path / "pia6.html").doc
    html = (tmp_path / "pia6.html").read_text()
    assert "For the agency to write" in html and "Document checks alone were tried." in html
    assert rendered["agency"]["alternatives"]["written_in_version"] == 5
    bad = tmp_path / "nothing.md"
    bad.write_text("no markers here")
    with pytest.raises(PiaError) as e:
        generate(demo, AUDITOR, agency=bad)
    assert e.value.code == "pia.agency_unreadable"


def test_a_changed_byte_or_a_missing_version_fails_verification(
    demo: Workspace, tmp_path: Path
) -> None:
    generate(demo, AUDITOR)
    generate(demo, AUDITOR, out=tmp_path / "pia.html")
    root = demo.root
    runner = CliRunner()
    assert runner.invoke(app, ["pia", "verify", "-w", str(root)]).exit_code == 0
    assert runner.invoke(app, ["pia", "verify", str(tmp_path / "pia.html")]).exit_code == 0
    v1 = version_path(root, 1)
    original = v1.read_bytes()
    data = bytearray(original)
    i = data.index(b'"generated_at"') + 20
    data[i] = ord("9") if data[i] != ord("9") else ord("8")
    v1.write_bytes(bytes(data))
    checks = verify_versions(root)
    assert [c.ok for c in checks] == [False, False]
    assert "changed after signing" in checks[0].message
    assert "version 1 is not the one version 2 was written after" in checks[1].message
    res = runner.invoke(app, ["pia", "verify", "-w", str(root), "--version", "1", "--json"])
    assert res.exit_code == 1 and json.loads(res.output)[0]["ok"] is False
    v1.write_bytes(original)
    assert all(c.ok for c in verify_versions(root))
    # The latest version tampered with: nothing is carried forward from it.
    v2 = version_path(root, 2)
    v2.write_text(v2.read_text().replace('"version": 2', '"version": 2 '))
    with pytest.raises(PiaError) as e:
        generate(demo, AUDITOR)
    assert e.value.code == "pia.previous_invalid"
    v2.unlink()
    assert [c.ok for c in verify_versions(root)] == [True]
    html = tmp_path / "pia.html"
    html.write_text(html.read_text().replace("Purposes permitted", "Purposes permitted!"))
    assert not verify_file(html).ok


def test_only_auditors_and_admins_write_it_and_the_cli_does(
    demo: Workspace, tmp_path: Path
) -> None:
    with pytest.raises(AuthorisationError):
        generate(demo, Actor("officer-1", Role.OFFICER))
    root = str(demo.root)
    demo.close()
    tok = tokens(Path(root))
    res = cli(["pia", "-w", root, "--out", str(tmp_path / "pia.html")], tok[Role.AUDITOR])
    assert res.exit_code == 0, res.output
    assert "assessment version 1 written" in res.output and "for the agency to write" in res.output
    res = cli(["pia", "-w", root, "--json"], tok[Role.ADMIN])
    assert res.exit_code == 0 and json.loads(res.output)["version"] == 2
    res = cli(["pia", "-w", root, "--out", str(tmp_path / "pia.pdf")], tok[Role.AUDITOR])
    assert res.exit_code == 2 and "pia.bad_output" in res.output
    res = cli(["pia", "-w", root], tok[Role.OFFICER])
    assert res.exit_code == 2 and "access.forbidden" in res.output
    res = cli(["pia", "-w", root])
    assert res.exit_code == 2 and "access.unauthenticated" in res.output
