"""MRZ layouts, check digits and corrections (no images): against ICAO's own specimen and an
independent implementation (the ``mrz`` package)."""

from __future__ import annotations

import random
from datetime import date

import pytest

from fieldid.documents.mrz import (
    FORMATS,
    MrzData,
    MrzFormatError,
    check_digit,
    compose_mrz,
    parse_mrz,
)
from fieldid.documents.specimen import random_identity, with_wrong_check_digit

# ICAO Doc 9303 part 4's specimen passport (TD3)
ICAO_TD3 = [
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]
# ICAO Doc 9303 part 5's specimen ID card (TD1)
ICAO_TD1 = [
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
]


def test_check_digit_icao_examples() -> None:
    assert check_digit("L898902C3") == "6"
    assert check_digit("740812") == "2"
    assert check_digit("120415") == "9"
    assert check_digit("ZE184226B<<<<<") == "1"
    assert check_digit("<<<<<<<<<") == "0"


def test_icao_specimens_parse_with_every_check_valid() -> None:
    r = parse_mrz(ICAO_TD3, today=date(2010, 1, 1))
    assert r.format == "TD3" and r.checks_valid and not r.corrections
    assert r.fields["surname"] == "ERIKSSON" and r.fields["given_names"] == "ANNA MARIA"
    assert r.fields["document_number"] == "L898902C3"
    assert r.fields["date_of_birth_iso"] == "1974-08-12"
    assert r.fields["expiry_date_iso"] == "2012-04-15"
    assert [c.name for c in r.checks] == [
        "document_number",
        "date_of_birth",
        "expiry_date",
        "optional_data",
        "composite",
    ]
    t = parse_mrz(ICAO_TD1, today=date(2010, 1, 1))
    assert t.format == "TD1" and t.checks_valid
    assert t.fields["document_number"] == "D23145890"


@pytest.mark.parametrize("fmt", FORMATS)
def test_composed_specimens_agree_with_the_mrz_package(fmt: str) -> None:
    """Our composer and parser against an independent checker, 40 random holders a format."""
    checker = pytest.importorskip("mrz.checker.td1")
    from mrz.checker.mrva import MRVACodeChecker
    from mrz.checker.mrvb import MRVBCodeChecker
    from mrz.checker.td2 import TD2CodeChecker
    from mrz.checker.td3 import TD3CodeChecker

    other = {
        "TD1": checker.TD1CodeChecker,
        "TD2": TD2CodeChecker,
        "TD3": TD3CodeChecker,
        "MRV-A": MRVACodeChecker,
        "MRV-B": MRVBCodeChecker,
    }[fmt]

    def hashes_hold(lines: list[str]) -> bool:
        c = other("\n".join(lines), check_expiry=False, compute_warnings=False)
        bool(c)  # runs the checks; the report then lists each (the package also judges codes)
        hashes = [ok for name, ok in c.report.fields if "hash" in name]
        return len(hashes) >= 3 and all(hashes)

    rng = random.Random(fmt)
    for _ in range(40):
        lines = compose_mrz(random_identity(fmt, rng))
        assert hashes_hold(lines), lines
        r = parse_mrz(lines)
        assert r.format == fmt and r.checks_valid and not r.corrections
        broken, which = with_wrong_check_digit(lines, rng)
        b = parse_mrz(broken)
        assert not b.checks_valid and b.check(which).state == "invalid"
        assert not hashes_hold(broken)


def test_character_class_corrections_are_listed() -> None:
    lines = list(ICAO_TD3)
    # O for 0 in a date, 1 for I in the name, S for 5 in a check digit
    lines[1] = lines[1][:13] + "74O812" + lines[1][19:]
    lines[0] = lines[0][:10] + "1" + lines[0][11:]  # ERIKS[S]ON -> ERIKS1ON
    r = parse_mrz(lines, today=date(2010, 1, 1))
    assert r.checks_valid
    assert r.fields["date_of_birth"] == "740812"
    assert r.fields["surname"] == "ERIKSION"  # a letter was wanted: 1 -> I, not a guess at S
    got = {(c.line, c.column, c.read, c.corrected, c.reason) for c in r.corrections}
    assert (1, 15, "O", "0", "character_class") in got
    assert (0, 10, "1", "I", "character_class") in got


def test_check_digits_choose_between_twins_only_where_ocr_hesitated() -> None:
    lines = list(ICAO_TD3)
    lines[1] = "L8989O2C3" + lines[1][9:]  # document number: O read for 0, both legal there
    # text not from OCR (typed, chip): no twin is swapped, the check says it is wrong
    r = parse_mrz(lines, today=date(2010, 1, 1))
    assert not r.checks_valid and not r.corrections
    # with alternatives that do not include 0 at that position: nothing is changed
    r = parse_mrz(lines, today=date(2010, 1, 1), alternatives={(1, 2): "B"})
    assert not r.checks_valid and r.check("document_number").state == "invalid"
    assert not r.corrections
    # with the OCR's own doubt at that position: corrected
    r = parse_mrz(lines, today=date(2010, 1, 1), alternatives={(1, 5): "0"})
    assert r.checks_valid and r.fields["document_number"] == "L898902C3"
    assert [(c.column, c.read, c.corrected, c.reason) for c in r.corrections] == [
        (5, "O", "0", "check_digit")
    ]


def test_a_wrong_check_digit_is_never_repaired_by_swapping_twins() -> None:
    """A printed check digit that is wrong stays invalid even when a twin swap elsewhere would
    make it hold: the OCR had no doubt about those characters."""
    rng = random.Random(7)
    for _ in range(200):
        lines, which = with_wrong_check_digit(compose_mrz(random_identity("TD3", rng)), rng)
        r = parse_mrz(lines, alternatives={})
        assert not r.checks_valid and r.check(which).state == "invalid"


def test_expiry_and_birth_century() -> None:
    d = MrzData("TD3", "P", "UTO", "X1234567", "SPECIMEN", "TEST", "UTO", "991231", "<", "310101")
    r = parse_mrz(compose_mrz(d), today=date(2026, 1, 1))
    assert r.fields["date_of_birth_iso"] == "1999-12-31"
    assert r.fields["expiry_date_iso"] == "2031-01-01"
    assert r.fields["sex"] == "unspecified"


def test_lines_of_no_format_are_refused() -> None:
    with pytest.raises(MrzFormatError):
        parse_mrz(["P<UTO", "123"])


# ICAO Doc 9303 part 5's example of a document number longer than nine characters (TD1)
ICAO_TD1_LONG = [
    "I<UTOD23145890<7349<<<<<<<<<<<",
    "3407127M9507122UTO<<<<<<<<<<<2",
    "STEVENSON<<PETER<JOHN<<<<<<<<<",
]


def test_a_long_document_number_runs_on_into_the_optional_data() -> None:
    """TD1 (part 5) and TD2 (part 6): the first nine characters, ``<`` for the check digit,
    the rest and the check digit (over the whole number) at the start of the optional data."""
    r = parse_mrz(ICAO_TD1_LONG, today=date(2010, 1, 1))
    assert r.checks_valid and not r.corrections
    assert r.fields["document_number"] == "D23145890734"
    assert r.fields["optional_data_1"] == ""
    assert r.check("document_number").read == "9" and r.check("document_number").state == "valid"
    # a wrong run-on check digit is caught
    bad = ["I<UTOD23145890<7348<<<<<<<<<<<", *ICAO_TD1_LONG[1:]]
    assert parse_mrz(bad).check("document_number").state == "invalid"
    # composed, both formats, with optional data after the run-on
    for fmt in ("TD1", "TD2"):
        d = MrzData(
            fmt,
            "I",
            "UTO",
            "AB123456789",
            "SPECIMEN",
            "LONG",
            "UTO",
            "800101",
            "F",
            "300101",
            optional_data="X1",
        )
        lines = compose_mrz(d)
        r = parse_mrz(lines)
        assert r.checks_valid, (fmt, lines)
        assert r.fields["document_number"] == "AB123456789"
        assert r.fields["optional_data_1" if fmt == "TD1" else "optional_data"] == "X1"
    with pytest.raises(ValueError):
        compose_mrz(
            MrzData("TD3", "P", "UTO", "AB1234567890", "S", "L", "UTO", "800101", "F", "300101")
        )


def test_a_short_number_with_a_filler_check_digit_is_not_taken_for_a_long_one() -> None:
    """``<`` where the check digit stands, but nothing in the optional data: the number is
    nine characters with a missing check digit (invalid), not a long number."""
    lines = list(ICAO_TD1)
    lines[0] = lines[0][:14] + "<" + lines[0][15:]
    r = parse_mrz(lines)
    assert r.fields["document_number"] == "D23145890"
    assert r.check("document_number").state == "invalid"
