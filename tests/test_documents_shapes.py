"""Look-alikes judged by their OCR-B shapes, band pieces joined under glare, and a twin that one
check digit chose: cases the benchmark's photos showed, made again from their seeds."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from fieldid.clock import ManualClock
from fieldid.documents.glyphs import MARGIN, cut_characters, default_judge, ocrb_font_path
from fieldid.documents.mrz import compose_mrz, parse_mrz
from fieldid.documents.read import read_document
from fieldid.documents.specimen import numbered_photo, random_identity

CLOCK = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))


def bench_photo(seed: int, i: int, n: int = 500) -> tuple[bytes, list[str], str | None]:
    """Photo ``i`` of ``benchmarks/bench_documents.py --documents n --seed seed`` (the same
    draws: photos from ``n`` on have a wrong check digit)."""
    d = numbered_photo(seed, i, n)
    return d.photo.jpeg, d.lines, d.broken


def _line(text: str, px: int = 26, blur: float = 0.0) -> tuple[np.ndarray, tuple[float, ...]]:
    """``text`` printed in OCR-B at MRZ pitch, dark on light, with each character's centre x."""
    font_file = ocrb_font_path()
    assert font_file is not None
    font = ImageFont.truetype(str(font_file), px)
    pitch = round(px * 0.7)
    im = Image.new("L", (pitch * (len(text) + 2), px * 2), 235)
    d = ImageDraw.Draw(im)
    xs = []
    for k, c in enumerate(text):
        x = pitch * (k + 1.5)
        d.text((x, px * 1.4), c, fill=20, font=font, anchor="ms")
        xs.append(x - 2.0)  # an OCR's positions run a little behind the print
    a = np.asarray(im, dtype=np.float32)
    if blur:
        import cv2

        a = cv2.GaussianBlur(a, (0, 0), blur)
    return a.astype(np.uint8), tuple(xs)


@pytest.mark.parametrize("blur", [0.0, 1.0])
def test_the_judge_tells_check_blind_look_alikes_apart_by_shape(blur: float) -> None:
    judge = default_judge()
    assert judge is not None
    text = "G6S8L1U0O4"
    img, xs = _line(text, blur=blur)
    cuts = cut_characters(img, xs)
    assert all(c is not None for c in cuts)
    for k, c in enumerate(text):
        other = {"G": "6", "6": "G", "S": "8", "8": "S", "L": "1", "1": "L"}.get(c)
        other = other or {"U": "0", "0": "U", "O": "4", "4": "O"}[c]
        cut = cuts[k]
        assert cut is not None
        v = judge.verdict(cut, (c, other))
        assert v.winner == c, (c, v)
        assert v.scores[c] - v.scores[other] >= MARGIN
        # and the other way round: the question's order does not matter
        assert judge.verdict(cut, (other, c)).winner == c


def test_no_cut_where_no_single_blob_is_the_character() -> None:
    img, xs = _line("AG6B8")
    pitch = xs[1] - xs[0]
    # the OCR placing G halfway to the 6: neither blob is it
    moved = (xs[0], xs[1] + 0.5 * pitch, *xs[2:])
    cuts = cut_characters(img, moved)
    assert cuts[1] is None
    assert all(c is not None for k, c in enumerate(cuts) if k != 1)


def test_a_g_read_as_6_with_confidence_is_corrected_by_its_shape() -> None:
    """Benchmark photo 273 of --seed 1 (MRV-A, glare 105, low light, noise 13.5): the OCR read
    the second G of ``C15FJGGFL8`` as 6 without doubt, and doubted the first. G and 6 have the
    same check value, so the checks held; before the shape judge the reading was not valid
    only because of the doubt on the other G."""
    jpeg, printed, _ = bench_photo(1, 273)
    r = read_document(jpeg, clock=CLOCK)
    assert r.mrz.lines == printed and r.valid
    fixes = [c for c in r.corrections if c.reason == "glyph_shape"]
    assert [(c.line, c.column, c.read, c.corrected) for c in fixes] == [(1, 6, "6", "G")]
    d = r.to_dict()
    assert any(v["winner"] == "G" and not v["doubted"] for v in d["shape_verdicts"])
    assert {"line": 2, "column": 7, "read": "6", "corrected": "G", "reason": "glyph_shape"} in d[
        "corrections"
    ]
    # without the judge the same photo is read wrong (and, here, only flagged by luck)
    r0 = read_document(jpeg, clock=CLOCK, shapes=False)
    assert r0.mrz.lines != printed and not r0.valid


@pytest.mark.parametrize(("seed", "i"), [(7, 3), (7, 72)])
def test_a_doubt_between_g_and_6_is_settled_by_shape(seed: int, i: int) -> None:
    """Photos 3 (MRV-A, a G read as 6 and doubted) and 72 (TD3, a G doubted) of --seed 7:
    before the judge, both were not valid."""
    jpeg, printed, _ = bench_photo(seed, i)
    r0 = read_document(jpeg, clock=CLOCK, shapes=False)
    assert not r0.valid
    assert any("cannot_tell" in u["why"] for u in r0.uncertain)
    r = read_document(jpeg, clock=CLOCK)
    assert r.mrz.lines == printed and r.valid
    assert any(v["doubted"] and v["winner"] == "G" for v in r.shape_verdicts)


def test_a_band_split_by_glare_is_joined() -> None:
    """Photo 93 of --seed 7 (MRV-A, glare 108 across the middle of the MRZ): the band was found
    as two pieces, neither a whole MRZ, and nothing was read."""
    jpeg, printed, _ = bench_photo(7, 93)
    r = read_document(jpeg, clock=CLOCK)
    assert r.mrz.lines == printed and r.valid
    assert "locate_hard" in r.timings_ms


def test_a_wrong_check_digit_is_not_repaired_by_one_check_digits_choice() -> None:
    """Photo 524 of --seed 1: an MRV-B whose document number check digit was printed wrong. The
    OCR gave ``O`` 2 % at a ``0`` of the number, and swapping it made the wrong check digit
    hold: the first reader called it valid. A twin is now chosen only where the OCR gave it a
    tenth of the probability, and one check digit alone (an MRV has no composite) does not make
    the choice valid."""
    jpeg, printed, broken = bench_photo(1, 524)
    assert broken == "document_number"
    r = read_document(jpeg, clock=CLOCK)
    assert not r.valid
    assert r.mrz.lines == printed
    assert r.mrz.check("document_number").state == "invalid"


def test_one_check_digit_choosing_a_twin_is_not_enough() -> None:
    # MRV-B: only the document number's own check digit covers it
    d = random_identity("MRV-B", random.Random(3))
    lines = compose_mrz(d.__class__(**{**d.__dict__, "document_number": "AB10C2X7"}))
    read = list(lines)
    read[1] = "AB1OC2X7" + read[1][8:]  # O read for 0
    r = parse_mrz(read, today=date(2026, 6, 1), alternatives={(1, 3): "0"})
    assert r.checks_valid and r.lines == lines
    (c,) = r.corrections
    assert c.reason == "check_digit" and c.vouched_by == ("document_number",)
    # TD3: the composite covers the number too: two checks vouch
    d3 = random_identity("TD3", random.Random(3))
    lines3 = compose_mrz(d3.__class__(**{**d3.__dict__, "document_number": "AB10C2X7"}))
    read3 = list(lines3)
    read3[1] = "AB1OC2X7" + read3[1][8:]
    r3 = parse_mrz(read3, today=date(2026, 6, 1), alternatives={(1, 3): "0"})
    assert r3.checks_valid
    assert set(r3.corrections[-1].vouched_by) == {"document_number", "composite"}


def test_a_twin_one_check_digit_chose_stays_uncertain() -> None:
    from fieldid.documents.ocr import LineText
    from fieldid.documents.read import _uncertain

    d = random_identity("MRV-B", random.Random(3))
    lines = compose_mrz(d.__class__(**{**d.__dict__, "document_number": "AB10C2X7"}))
    read = list(lines)
    read[1] = "AB1OC2X7" + read[1][8:]
    r = parse_mrz(read, today=date(2026, 6, 1), alternatives={(1, 3): "0"})
    aligned = [LineText(x, tuple([0.99] * len(x)), tuple({} for _ in x)) for x in r.lines_read]
    (u,) = _uncertain(r, aligned)
    assert (u["line"], u["column"], u["read"]) == (2, 4, "0")
    assert u["why"] == "one_check_digit_chose_over_O"
