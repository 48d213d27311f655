"""Passive authentication on synthetic chips: the valid one passes, each tampered one is refused
with its reason."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fieldid.cli.app import app
from fieldid.clock import ManualClock
from fieldid.documents.chip import (
    ChipError,
    ChipFiles,
    chip_from_base64,
    dg1_mrz_lines,
    load_chip_dir,
    verify_chip,
)
from fieldid.documents.chip_specimen import make_chip, make_dg1, make_pki, make_sod, pem
from fieldid.documents.mrz import MrzData, compose_mrz

CLOCK = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))
LINES = compose_mrz(
    MrzData("TD3", "P", "UTO", "SPEC01234", "SPECIMEN", "CHIP TEST", "UTO", "850412", "F", "310101")
)


def _face(fmt: str) -> bytes:
    arr = np.random.default_rng(1).integers(0, 255, (80, 60, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module", params=["ec", "rsa"])
def pki(request: pytest.FixtureRequest) -> object:
    return make_pki(CLOCK.now(), kind=request.param)


@pytest.fixture
def csca_dir(tmp_path: Path, pki: object) -> Path:
    d = tmp_path / "csca"
    d.mkdir()
    (d / "utopia.pem").write_bytes(pem(pki.csca))  # type: ignore[attr-defined]
    (d / "README.txt").write_text("not a certificate: ignored")
    return d


def test_valid_chip_is_verified_and_read(pki: object, csca_dir: Path) -> None:
    chip = make_chip(LINES, _face("JPEG"), pki)  # type: ignore[arg-type]
    v = verify_chip(chip, csca_dir, clock=CLOCK)
    assert v.verified, v.reasons
    assert v.data_group_hashes == {1: "valid", 2: "valid"}
    assert v.mrz is not None and v.mrz.lines == LINES and v.mrz.checks_valid
    assert v.mrz.fields["surname"] == "SPECIMEN"
    assert v.face_format == "jpeg" and v.face_rgb is not None and v.face_rgb.shape == (80, 60, 3)
    assert v.csca_subject and "CSCA UTOPIA SPECIMEN" in v.csca_subject
    d = v.to_dict()
    assert d["verified"] is True and d["data_groups"] == {"DG1": "valid", "DG2": "valid"}


def test_jpeg2000_portrait_is_decoded(pki: object, csca_dir: Path) -> None:
    chip = make_chip(LINES, _face("JPEG2000"), pki, jp2=True)  # type: ignore[arg-type]
    v = verify_chip(chip, csca_dir, clock=CLOCK)
    assert v.verified and v.face_format == "jpeg2000"
    assert v.face_rgb is not None and v.face_rgb.shape == (80, 60, 3)


def test_wrong_signature_is_refused(pki: object, csca_dir: Path) -> None:
    chip = make_chip(LINES, _face("JPEG"), pki)  # type: ignore[arg-type]
    other = make_pki(CLOCK.now())
    # signed by another key, but naming the real document signer's certificate
    sod = make_sod(chip.data_groups, other.ds_key, pki.ds)  # type: ignore[attr-defined]
    v = verify_chip(ChipFiles(sod, chip.data_groups), csca_dir, clock=CLOCK)
    assert not v.verified
    assert v.codes == ["chip.signature_invalid"]


def test_altered_data_group_is_refused(pki: object, csca_dir: Path) -> None:
    chip = make_chip(LINES, _face("JPEG"), pki)  # type: ignore[arg-type]
    altered = [LINES[0].replace("CHIP<TEST", "CHIP<TESS"), LINES[1]]
    v = verify_chip(
        ChipFiles(chip.sod, {**chip.data_groups, 1: make_dg1(altered)}), csca_dir, clock=CLOCK
    )
    assert v.codes == ["chip.dg_hash_mismatch"]
    assert v.data_group_hashes == {1: "invalid", 2: "valid"}
    # the altered MRZ is still shown, for the officer to see what the chip claimed
    assert v.mrz is not None and "TESS" in v.mrz.fields["given_names"]


def test_unknown_csca_is_refused(pki: object, csca_dir: Path) -> None:
    stranger = make_pki(CLOCK.now(), csca_cn="CSCA UTOPIA SPECIMEN")  # same name, other key
    v = verify_chip(make_chip(LINES, None, stranger), csca_dir, clock=CLOCK)
    assert v.codes == ["chip.csca_unknown"]


def test_expired_signer_is_refused(pki: object, csca_dir: Path) -> None:
    old = make_pki(
        CLOCK.now(),
        csca_key=pki.csca_key,
        csca=pki.csca,  # type: ignore[attr-defined]
        ds_valid_days=(-4000, -10),
    )
    v = verify_chip(make_chip(LINES, None, old), csca_dir, clock=CLOCK)
    assert v.codes == ["chip.signer_expired"]
    # the same chip checked at a time inside the signer's validity passes
    then = ManualClock(CLOCK.now() - timedelta(days=100))
    assert verify_chip(make_chip(LINES, None, old), csca_dir, clock=then).verified


def test_missing_pieces_are_named(pki: object, csca_dir: Path, tmp_path: Path) -> None:
    chip = make_chip(LINES, _face("JPEG"), pki)  # type: ignore[arg-type]
    v = verify_chip(
        ChipFiles(chip.sod, {**chip.data_groups, 14: b"\x6e\x00"}), csca_dir, clock=CLOCK
    )
    assert v.codes == ["chip.dg_not_in_sod"]
    v = verify_chip(ChipFiles(chip.sod, {2: chip.data_groups[2]}), csca_dir, clock=CLOCK)
    assert v.codes == ["chip.dg1_missing"]
    v = verify_chip(chip, tmp_path / "nowhere", clock=CLOCK)
    assert v.codes == ["chip.no_csca_folder"]
    v = verify_chip(ChipFiles(b"\x77\x03\x02\x01\x00", chip.data_groups), csca_dir, clock=CLOCK)
    assert v.codes == ["chip.sod_unreadable"]


def test_files_from_a_folder_and_from_base64(pki: object, csca_dir: Path, tmp_path: Path) -> None:
    chip = make_chip(LINES, _face("JPEG"), pki)  # type: ignore[arg-type]
    d = tmp_path / "export"
    d.mkdir()
    (d / "EF_SOD.bin").write_bytes(chip.sod)
    (d / "DG1.bin").write_bytes(chip.data_groups[1])
    (d / "EF_DG2.bin").write_bytes(chip.data_groups[2])
    loaded = load_chip_dir(d)
    assert loaded == chip
    b64 = chip_from_base64(
        base64.b64encode(chip.sod).decode(),
        {k: base64.b64encode(v).decode() for k, v in chip.data_groups.items()},
    )
    assert b64 == chip
    with pytest.raises(ChipError) as e:
        chip_from_base64("not base64!", {})
    assert e.value.code == "chip.bad_base64"
    assert dg1_mrz_lines(chip.data_groups[1]) == LINES
    res = CliRunner().invoke(app, ["document", "chip", str(d), "--csca", str(csca_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["verified"] is True and out["mrz_lines"] == LINES
