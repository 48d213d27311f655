"""A mark at the edge of the MRZ band read as a character, with a ``<`` dropped elsewhere: the
line has the right length but every check after the mark fails."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime

from fieldid.clock import ManualClock
from fieldid.documents.mrz import compose_mrz
from fieldid.documents.ocr import LineText
from fieldid.documents.read import _parse_window, read_document
from fieldid.documents.specimen import numbered_photo, random_identity

CLOCK = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))
TODAY = date(2026, 6, 1)


def bench_photo(seed: int, i: int) -> tuple[bytes, list[str]]:
    """Photo ``i`` (below 500: a right check digit) of ``benchmarks/bench_documents.py --seed
    seed`` (the same draws)."""
    d = numbered_photo(seed, i, 500)
    return d.photo.jpeg, d.lines


def _text(s: str) -> LineText:
    return LineText(s, tuple([0.99] * len(s)), tuple({} for _ in s))


def _td3() -> list[str]:
    d = random_identity("TD3", random.Random(5))
    return compose_mrz(replace(d, document_number="Y6H6P2MN6", optional_data="85214"))


def _marked(line: str) -> str:
    """``line`` with a ``2`` before it and one ``<`` of its last filler run dropped."""
    k = line.rindex("<<")
    return "2" + line[:k] + line[k + 1 :]


def test_a_mark_before_a_checked_line_is_dropped_when_every_check_then_holds() -> None:
    lines = _td3()
    read = [lines[0], _marked(lines[1])]
    assert len(read[1]) == len(lines[1])
    p = _parse_window([_text(x) for x in read], TODAY)
    assert p is not None
    assert p.reading.lines == lines and p.reading.checks_valid
    assert p.repairs[0] == {"line": 2, "repair": "dropped '2' at the start"}
    # what the OCR gave is kept as it gave it
    assert [t.text for t in p.raw] == read


def test_no_trim_makes_a_wrong_check_digit_hold() -> None:
    lines = _td3()
    wrong = "0" if lines[1][19] != "0" else "1"
    broken = lines[1][:19] + wrong + lines[1][20:]  # the date of birth's check digit
    p = _parse_window([_text(lines[0]), _text(_marked(broken))], TODAY)
    assert p is not None
    assert not p.reading.checks_valid
    assert not any("dropped" in r["repair"] for r in p.repairs)


def test_a_name_line_is_never_trimmed() -> None:
    lines = _td3()
    k = lines[0].rindex("<<")
    read = ["K" + lines[0][:k] + lines[0][k + 1 :], lines[1]]
    p = _parse_window([_text(x) for x in read], TODAY)
    assert p is not None
    assert p.reading.lines[0] == read[0]
    assert not any("dropped" in r["repair"] for r in p.repairs)


def test_photo_with_a_shadow_read_as_a_character_is_read_right() -> None:
    """Photo 152 of --seed 7 (TD3, turned 90°): the page's edge beside the second line was
    read as ``2`` and one ``<`` of the filler dropped; every check failed."""
    jpeg, printed = bench_photo(7, 152)
    r = read_document(jpeg, clock=CLOCK)
    assert r.mrz.lines == printed and r.valid
    assert any("dropped '2' at the start" in x["repair"] for x in r.length_repairs)
