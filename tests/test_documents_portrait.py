"""1:1 against a document's portrait through the same face pipeline, with calibrated rates.

The faces are the fixture faces under neutral synthetic identities (tests/fixtures/faces); the
documents they are printed on are invented SPECIMEN pages, seen by tests only.
"""

from __future__ import annotations

import ast
import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import FACES
from fieldid.calibration import load_for
from fieldid.cli.app import app
from fieldid.clock import ManualClock
from fieldid.config import WorkspaceConfig
from fieldid.documents.chip_specimen import make_chip, make_pki, pem
from fieldid.documents.service import DocumentChecker
from fieldid.documents.specimen import Degradation, photograph, random_identity, render_page
from fieldid.pipeline import FacePipeline

CLOCK = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))
SAME_A = FACES / "subject-0003" / "subject-0003_0001.jpg"
SAME_B = FACES / "subject-0003" / "subject-0003_0002.jpg"
OTHER = FACES / "subject-0004" / "subject-0004_0001.jpg"


@pytest.fixture(scope="module")
def checker() -> DocumentChecker:
    cfg = WorkspaceConfig()
    pipeline = FacePipeline.from_spec(cfg.pipeline, limits=cfg.limits)
    return DocumentChecker(pipeline, load_for(None, str(pipeline.model)), clock=CLOCK)


def _doc(fmt: str, seed: int, angle: float) -> tuple[bytes, list[str]]:
    rng = random.Random(seed)
    face = np.asarray(Image.open(SAME_A).convert("RGB"))
    page = render_page(random_identity(fmt, rng), portrait=face, seed=seed)
    return photograph(page, rng, Degradation(), angle=angle).jpeg, page.mrz_lines


def test_data_page_portrait_against_the_same_and_another_person(checker: DocumentChecker) -> None:
    jpeg, printed = _doc("TD3", 4, angle=178.0)
    same = checker.check(jpeg, SAME_B)
    assert same.evidence == "mrz_read" and same.reading is not None
    assert same.reading.mrz.lines == printed
    m = same.match
    assert m is not None, same.match_error
    assert m.portrait_source == "data_page"
    assert m.threshold_set_by == "verify_target_fmr" and m.calibration is not None
    assert m.above_threshold and m.fmr is not None and m.fmr < 1e-3
    assert 0 <= m.portrait_quality["unified"] <= 100 and m.portrait_quality["band"]
    assert "inter_eye_distance" in m.portrait_quality["measures"]
    other = checker.check(jpeg, OTHER).match
    assert other is not None and not other.above_threshold
    assert other.fmr is not None and other.fmr > m.fmr
    d = same.to_dict()
    assert d["face"]["notice"].endswith("not an identification")
    assert d["evidence"] == "mrz_read" and d["mrz"]["valid"] is True


def test_chip_portrait_is_used_when_the_chip_is_verified(
    checker: DocumentChecker, tmp_path: Path
) -> None:
    jpeg, printed = _doc("TD1", 9, angle=-60.0)
    pki = make_pki(CLOCK.now())
    (tmp_path / "csca").mkdir()
    (tmp_path / "csca" / "ca.pem").write_bytes(pem(pki.csca))
    chip = make_chip(printed, SAME_A.read_bytes(), pki)
    checker.csca_folder = tmp_path / "csca"
    try:
        r = checker.check(jpeg, SAME_B, chip=chip)
        assert r.evidence == "chip_verified" and not r.conflicts
        assert r.match is not None and r.match.portrait_source == "chip"
        assert r.match.above_threshold
        # a chip whose MRZ differs from the page: not one document
        lines = list(printed)
        lines[2] = ("OTHER<<NAME" + "<" * 30)[:30]
        r2 = checker.check(jpeg, None, chip=make_chip(lines, None, pki))
        assert r2.evidence == "none"
        assert {c["field"] for c in r2.conflicts} >= {"surname", "given_names"}
    finally:
        checker.csca_folder = None


def test_no_face_on_the_page_is_said(checker: DocumentChecker) -> None:
    rng = random.Random(2)
    page = render_page(random_identity("TD2", rng), seed=2)  # drawn portrait: no real face
    jpeg = photograph(page, rng, Degradation().clean()).jpeg
    r = checker.check(jpeg, SAME_B)
    assert r.evidence == "mrz_read"
    assert r.match is None and r.match_error is not None
    assert r.match_error["code"] == "document.no_portrait"


def test_cli_document_verify(tmp_path: Path) -> None:
    jpeg, _ = _doc("MRV-B", 6, angle=40.0)
    doc = tmp_path / "doc.jpg"
    doc.write_bytes(jpeg)
    res = CliRunner().invoke(app, ["document", "verify", str(doc), str(SAME_B), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["evidence"] == "mrz_read"
    assert d["face"]["above_threshold"] is True and d["face"]["fmr"] is not None
    res = CliRunner().invoke(app, ["document", "verify", str(doc), str(OTHER)])
    assert res.exit_code == 0 and "below the threshold" in res.output
    assert "portrait quality" in res.output


def test_documents_package_stays_in_its_layer() -> None:
    """documents sits beside search: it imports nothing from search or above."""
    root = Path(__file__).resolve().parents[1] / "src" / "fieldid" / "documents"
    banned = (
        "fieldid.service",
        "fieldid.cli",
        "fieldid.demo",
        "fieldid.search",
        "fieldid.workspace",
        "fieldid.adjudication",
    )
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not n.startswith(banned), f"{path.name} imports {n}"


def test_portrait_crop_is_the_region_above_the_mrz(checker: DocumentChecker) -> None:
    from fieldid.documents.portrait import region_above_mrz

    jpeg, _ = _doc("TD3", 4, angle=90.0)
    reading = checker.read(jpeg)
    assert reading.rgb is not None and reading.band_corners is not None
    region = region_above_mrz(reading.rgb, reading.band_corners)
    h, w = region.shape[:2]
    assert w > h  # upright page region, wider than tall
    buf = io.BytesIO()
    Image.fromarray(region).save(buf, "PNG")
    processed = checker.pipeline.process(buf.getvalue())
    box = processed.acquisition.face.box
    # the portrait is on the left of the page
    assert (box.left + box.right) / 2 < w / 2
