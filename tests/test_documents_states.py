"""No check digit covers an issuing state or a nationality: a code that names no state makes a
reading uncertain."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

import pytest

from fieldid.documents.mrz import compose_mrz, parse_mrz
from fieldid.documents.ocr import LineText
from fieldid.documents.read import _uncertain
from fieldid.documents.specimen import _NATIONALITIES, random_identity
from fieldid.documents.states import STATE_CODES, is_state_code

TODAY = date(2026, 6, 1)


def _sure(lines: list[str]) -> list[LineText]:
    return [LineText(x, tuple([0.99] * len(x)), tuple({} for _ in x)) for x in lines]


@pytest.mark.parametrize("fmt", ["TD1", "TD3", "MRV-B"])
def test_a_misread_nationality_is_uncertain_though_every_check_holds(fmt: str) -> None:
    d = replace(random_identity(fmt, random.Random(11)), nationality="D<<")
    lines = compose_mrz(d)
    r = parse_mrz(lines, today=TODAY)
    assert r.checks_valid and _uncertain(r, _sure(lines)) == []
    sp = r.layout.fields["nationality"]
    read = list(lines)
    read[sp.line] = read[sp.line][: sp.start] + "O" + read[sp.line][sp.start + 1 :]
    r2 = parse_mrz(read, today=TODAY)
    assert r2.checks_valid  # no check digit notices
    u = _uncertain(r2, _sure(read))
    assert {x["why"] for x in u} == {"not_a_state_code"}
    assert [(x["line"], x["column"]) for x in u] == [
        (sp.line + 1, c + 1) for c in range(sp.start, sp.end)
    ]


def test_an_issuing_state_that_names_nothing_is_uncertain() -> None:
    lines = compose_mrz(random_identity("TD2", random.Random(2)))
    read = [lines[0][:2] + "UT0" + lines[0][5:], lines[1]]  # 0 read for O: class-corrected
    r = parse_mrz(read, today=TODAY)
    assert r.fields["issuing_country"] == "UTO"
    assert _uncertain(r, _sure(read)) == []
    read = [lines[0][:2] + "UTQ" + lines[0][5:], lines[1]]
    r = parse_mrz(read, today=TODAY)
    assert {x["why"] for x in _uncertain(r, _sure(read))} == {"not_a_state_code"}


def test_the_codes_icao_gives() -> None:
    for code in ("UTO", "D<<", "XXA", "XXB", "XXC", "XXX", "UNO", "EUE", "GBD", "FRA", "NLD"):
        assert is_state_code(code), code
    for code in ("O<<", "D", "UT0", "<<<", "ABC", "DEU<"):
        assert not is_state_code(code), code
    assert all(len(c) == 3 for c in STATE_CODES)
    assert set(_NATIONALITIES) <= STATE_CODES


def test_every_iso_code_the_mrz_package_knows_is_a_state_code() -> None:
    countries = pytest.importorskip("mrz.base.countries")
    theirs = {c if len(c) == 3 else c.ljust(3, "<") for c in countries.english.values()}
    # the package's "GB" is no ICAO code (the United Kingdom is GBR), nor is its "INP"
    assert theirs - STATE_CODES == {"GB<", "INP"}
