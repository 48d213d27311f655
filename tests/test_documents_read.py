"""Reading synthetic SPECIMEN documents from degraded photos, end to end (OCR included)."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fieldid.cli.app import app
from fieldid.clock import ManualClock
from fieldid.documents.mrz import FORMATS, MrzData, compose_mrz
from fieldid.documents.read import DocumentError, read_document
from fieldid.documents.specimen import (
    Degradation,
    photograph,
    random_identity,
    render_page,
    with_wrong_check_digit,
)

CLOCK = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))
runner = CliRunner()


def _photo(
    fmt: str,
    seed: int,
    *,
    angle: float | None = None,
    lines: list[str] | None = None,
    data: MrzData | None = None,
    deg: Degradation | None = None,
) -> tuple[bytes, list[str]]:
    rng = random.Random(seed)
    d = data or random_identity(fmt, rng)
    page = render_page(d, mrz_lines=lines, seed=seed)
    return photograph(page, rng, deg or Degradation(), angle=angle).jpeg, page.mrz_lines


@pytest.mark.parametrize(
    ("fmt", "angle"),
    [("TD1", 180.0), ("TD2", -95.0), ("TD3", 33.0), ("MRV-A", 150.0), ("MRV-B", -20.0)],
)
def test_each_format_is_read_from_a_turned_degraded_photo(fmt: str, angle: float) -> None:
    jpeg, printed = _photo(fmt, 11 + FORMATS.index(fmt), angle=angle)
    r = read_document(jpeg, clock=CLOCK)
    assert r.format == fmt
    assert r.mrz.lines == printed
    assert r.valid and r.mrz.checks_valid
    assert all(c.state in ("valid", "absent") for c in r.checks)
    assert 0.5 < r.confidence <= 1.0
    d = r.to_dict()
    assert isinstance(d["mrz_lines"], list) and all(isinstance(x, str) for x in d["mrz_lines"])
    assert d["valid"] is True and d["expiry_state"] == "valid"
    assert set(d["checks"]) == {c.name for c in r.checks}


def test_a_wrong_check_digit_is_read_but_never_valid() -> None:
    rng = random.Random(5)
    data = random_identity("TD3", rng)
    broken, which = with_wrong_check_digit(compose_mrz(data), rng)
    jpeg, printed = _photo("TD3", 5, lines=broken, data=data, angle=-170.0)
    r = read_document(jpeg, clock=CLOCK)
    assert r.mrz.lines == printed
    assert not r.valid
    assert r.mrz.check(which).state == "invalid"
    assert r.to_dict()["valid"] is False


def test_expiry_is_judged_against_the_injected_clock() -> None:
    data = MrzData(
        "TD3", "P", "UTO", "SPEC12345", "SPECIMEN", "EXPIRED", "UTO", "800101", "F", "260301"
    )
    jpeg, _ = _photo("TD3", 3, data=data, deg=Degradation().clean())
    assert read_document(jpeg, clock=CLOCK).expiry_state == "expired"
    before = ManualClock(datetime(2026, 2, 1, tzinfo=UTC))
    assert read_document(jpeg, clock=before).expiry_state == "valid"


def test_a_photo_without_an_mrz_is_refused_with_its_reason() -> None:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(90, 140, (600, 800, 3), dtype=np.uint8)).save(buf, "JPEG")
    with pytest.raises(DocumentError) as e:
        read_document(buf.getvalue(), clock=CLOCK)
    assert e.value.code == "document.no_mrz"


def test_cli_document_read_json(tmp_path: Path) -> None:
    jpeg, printed = _photo("TD2", 21, angle=90.0)
    p = tmp_path / "doc.jpg"
    p.write_bytes(jpeg)
    res = runner.invoke(app, ["document", "read", str(p), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["format"] == "TD2" and d["valid"] is True
    assert d["mrz_lines_corrected"] == printed
    assert len(d["mrz_lines"]) == 2
    assert d["fields"]["document_number"] == printed[1][:9].rstrip("<")
    assert all(c["state"] == "valid" for c in d["checks"].values())
    res = runner.invoke(app, ["document", "read", str(p)])
    assert res.exit_code == 0 and "TD2 MRZ" in res.output and "composite" in res.output
    bad = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), (200, 200, 200)).save(bad)
    res = runner.invoke(app, ["document", "read", str(bad), "--json"])
    assert res.exit_code == 2
    assert json.loads(res.output)["error"]["code"] == "document.no_mrz"
