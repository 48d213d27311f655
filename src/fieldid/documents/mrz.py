"""The machine-readable zone (ICAO Doc 9303): layouts, check digits, parsing and correction.

Contract, in order:

1. :func:`detect_format` names the format from the line count, the line length and the document
   code: TD1 (3 x 30), TD2 (2 x 36, code I/A/C), TD3 (2 x 44, code P), MRV-A (2 x 44, code V),
   MRV-B (2 x 36, code V).
2. Every position has a character class (:data:`LAYOUTS`): ``A`` letters and ``<``, ``N`` digits
   (and ``<`` where a field may be empty), ``X`` letters, digits and ``<``, ``S`` sex
   (``M``, ``F``, ``X``, ``<``), ``D`` a check digit.
3. :func:`parse_mrz` reads the lines as OCR gave them. A character outside its position's class
   that is one of the look-alike pairs (0/O, 1/I, 5/S, 8/B, 2/Z, and a few more) is replaced by
   its twin of the right class. In a field of class ``X`` (document number, optional data) both
   twins are legal, so the check digits choose: the reading is kept when its check digits hold;
   otherwise, among the characters the OCR itself found plausible at each position
   (``alternatives``), the fewest swaps that make every check digit hold are taken, and only
   when exactly one such choice exists (a check digit is one chance in ten: trying every twin
   would "repair" a wrong one). Every replacement is listed in
   :attr:`MrzReading.corrections` with its line, column, what was read and what it became, and
   a check digit's choice with the checks that vouch for it (``vouched_by``).
4. A name field with letters after a run of three or more ``<`` is not a name (a name is
   written from the left and filled to the end); those letters are class errors.
5. Each check digit is reported ``valid``, ``invalid`` or ``absent`` (a field left empty with a
   ``<`` check digit, allowed for optional data). ``checks_valid`` holds only when every check
   digit the format defines holds and every character fits its class.

Field names follow :data:`FIELD_NAMES`; dates are ``YYMMDD`` as printed plus a resolved
:class:`datetime.date` (birth dates in the past century when otherwise in the future; expiry dates
in 20YY unless that is more than 50 years ahead).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

ALPHA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ<")
DIGITS = frozenset("0123456789")
ALNUM = ALPHA | DIGITS
MRZ_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<"

#: Look-alikes read in a digit position → the digit.
TO_DIGIT = {
    "O": "0",
    "Q": "0",
    "D": "0",
    "U": "0",
    "I": "1",
    "L": "1",
    "T": "1",
    "Z": "2",
    "S": "5",
    "B": "8",
    "G": "6",
    "A": "4",
}
#: Look-alikes read in a letter position → the letter.
TO_ALPHA = {"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G", "4": "A", "7": "T"}
#: How many swaps a field may need before the reading is refused as too uncertain.
MAX_SWAPS = 3


def char_value(c: str) -> int:
    if c.isdigit():
        return int(c)
    if c == "<":
        return 0
    if "A" <= c <= "Z":
        return ord(c) - ord("A") + 10
    raise ValueError(f"not an MRZ character: {c!r}")


def check_digit(data: str) -> str:
    """ICAO 9303 check digit: weights 7, 3, 1 repeated, sum modulo 10."""
    weights = (7, 3, 1)
    return str(sum(char_value(c) * weights[i % 3] for i, c in enumerate(data)) % 10)


@dataclass(frozen=True)
class Span:
    """A field: ``line``, ``start``, ``end`` (end exclusive), character class."""

    line: int
    start: int
    end: int
    cls: str


@dataclass(frozen=True)
class Check:
    """A check digit at ``digit`` over the concatenation of ``over`` (field names or spans)."""

    name: str
    digit: Span
    over: tuple[Span, ...]
    #: The field may be empty (all ``<``) with a ``<`` check digit.
    may_be_empty: bool = False


@dataclass(frozen=True)
class Layout:
    name: str
    lines: int
    length: int
    fields: dict[str, Span]
    checks: tuple[Check, ...]


def _s(line: int, start: int, end: int, cls: str) -> Span:
    return Span(line, start, end, cls)


def _layout_two_line(
    name: str, length: int, optional_end: int, *, composite: bool, doc_code: str
) -> Layout:
    """TD2, TD3, MRV-A and MRV-B share the second line's layout up to the optional data."""
    f = {
        "document_code": _s(0, 0, 2, "A"),
        "issuing_country": _s(0, 2, 5, "A"),
        "name": _s(0, 5, length, "A"),
        "document_number": _s(1, 0, 9, "X"),
        "nationality": _s(1, 10, 13, "A"),
        "date_of_birth": _s(1, 13, 19, "N"),
        "sex": _s(1, 20, 21, "S"),
        "expiry_date": _s(1, 21, 27, "N"),
        "optional_data": _s(1, 28, optional_end, "X"),
    }
    checks = [
        Check("document_number", _s(1, 9, 10, "D"), (f["document_number"],)),
        Check("date_of_birth", _s(1, 19, 20, "D"), (f["date_of_birth"],)),
        Check("expiry_date", _s(1, 27, 28, "D"), (f["expiry_date"],)),
    ]
    if name == "TD3":
        checks.append(
            Check(
                "optional_data",
                _s(1, 42, 43, "D"),
                (f["optional_data"],),
                may_be_empty=True,
            )
        )
    if composite:
        end = length - 1
        checks.append(
            Check(
                "composite",
                _s(1, end, end + 1, "D"),
                (_s(1, 0, 10, "X"), _s(1, 13, 20, "X"), _s(1, 21, end, "X")),
            )
        )
    del doc_code
    return Layout(name, 2, length, f, tuple(checks))


def _layout_td1() -> Layout:
    f = {
        "document_code": _s(0, 0, 2, "A"),
        "issuing_country": _s(0, 2, 5, "A"),
        "document_number": _s(0, 5, 14, "X"),
        "optional_data_1": _s(0, 15, 30, "X"),
        "date_of_birth": _s(1, 0, 6, "N"),
        "sex": _s(1, 7, 8, "S"),
        "expiry_date": _s(1, 8, 14, "N"),
        "nationality": _s(1, 15, 18, "A"),
        "optional_data_2": _s(1, 18, 29, "X"),
        "name": _s(2, 0, 30, "A"),
    }
    checks = (
        Check("document_number", _s(0, 14, 15, "D"), (f["document_number"],)),
        Check("date_of_birth", _s(1, 6, 7, "D"), (f["date_of_birth"],)),
        Check("expiry_date", _s(1, 14, 15, "D"), (f["expiry_date"],)),
        Check(
            "composite",
            _s(1, 29, 30, "D"),
            (_s(0, 5, 30, "X"), _s(1, 0, 7, "X"), _s(1, 8, 15, "X"), _s(1, 18, 29, "X")),
        ),
    )
    return Layout("TD1", 3, 30, f, checks)


LAYOUTS: dict[str, Layout] = {
    "TD1": _layout_td1(),
    "TD2": _layout_two_line("TD2", 36, 35, composite=True, doc_code="IAC"),
    "TD3": _layout_two_line("TD3", 44, 42, composite=True, doc_code="P"),
    "MRV-A": _layout_two_line("MRV-A", 44, 44, composite=False, doc_code="V"),
    "MRV-B": _layout_two_line("MRV-B", 36, 36, composite=False, doc_code="V"),
}
FORMATS = tuple(LAYOUTS)

FIELD_NAMES = (
    "document_code",
    "issuing_country",
    "document_number",
    "nationality",
    "date_of_birth",
    "sex",
    "expiry_date",
    "surname",
    "given_names",
    "optional_data",
    "optional_data_1",
    "optional_data_2",
)


class MrzFormatError(ValueError):
    """The lines fit no MRZ format."""


#: Formats whose document number may run on into the optional data (ICAO 9303 part 5 for TD1,
#: part 6 for TD2): the line, where the number's check digit stands, and where the optional
#: data field starts and ends.
OVERFLOW: dict[str, tuple[int, int, int, int]] = {
    "TD1": (0, 14, 15, 30),
    "TD2": (1, 9, 28, 35),
}


def overflow_length(lines: list[str] | list[list[str]], fmt: str) -> int:
    """How many characters of the optional data continue the document number, its check digit
    included (0 when the number fits in nine).

    ICAO 9303 (part 5, TD1; part 6, TD2): a document number longer than nine characters puts
    its first nine in the document number field, ``<`` where its check digit would stand, and
    the rest, then the check digit computed over the whole number, then ``<``, at the start of
    the optional data."""
    spec = OVERFLOW.get(fmt)
    if spec is None:
        return 0
    line, digit, start, end = spec
    row = lines[line]
    if len(row) < end or row[digit] != "<" or row[start] == "<":
        return 0
    k = start
    while k < end and row[k] != "<":
        k += 1
    # at least one character of the number and its check digit, then a filler
    return k - start if k - start >= 2 and k < end else 0


def effective_layout(lines: list[str] | list[list[str]], fmt: str) -> Layout:
    """The layout of ``fmt`` as these lines use it: where a long document number runs on into
    the optional data (:func:`overflow_length`), its check digit stands at the end of the
    run-on, the check covers the whole number, and the optional data starts after the filler."""
    lay = LAYOUTS[fmt]
    n = overflow_length(lines, fmt)
    if n == 0:
        return lay
    line, _digit, start, end = OVERFLOW[fmt]
    number = lay.fields["document_number"]
    rest = _s(line, start, start + n - 1, "X")
    opt_name = "optional_data_1" if fmt == "TD1" else "optional_data"
    fields = dict(lay.fields)
    fields["document_number_overflow"] = rest
    fields[opt_name] = _s(line, start + n + 1, end, "X")
    checks = tuple(
        Check("document_number", _s(line, start + n - 1, start + n, "D"), (number, rest))
        if ch.name == "document_number"
        else ch
        for ch in lay.checks
    )
    return Layout(lay.name, lay.lines, lay.length, fields, checks)


def detect_format(lines: list[str]) -> str:
    n = len(lines)
    lengths = {len(x) for x in lines}
    if n == 3 and lengths == {30}:
        return "TD1"
    if n == 2 and lengths == {44}:
        return "MRV-A" if lines[0][:1] == "V" else "TD3"
    if n == 2 and lengths == {36}:
        return "MRV-B" if lines[0][:1] == "V" else "TD2"
    raise MrzFormatError(
        f"{n} line(s) of length {sorted(lengths)}: an MRZ has 3 lines of 30 (TD1) or 2 of 36 "
        "(TD2, MRV-B) or 2 of 44 (TD3, MRV-A)"
    )


def layout_for(length: int, lines: int, first: str) -> Layout:
    """The layout for ``lines`` lines of ``length`` whose first character is ``first``."""
    if lines == 3 and length == 30:
        return LAYOUTS["TD1"]
    if lines == 2 and length == 44:
        return LAYOUTS["MRV-A" if first == "V" else "TD3"]
    if lines == 2 and length == 36:
        return LAYOUTS["MRV-B" if first == "V" else "TD2"]
    raise MrzFormatError(f"no MRZ format has {lines} lines of {length}")


def class_map(layout: Layout) -> list[list[str]]:
    """The character class of every position (``D`` check digits, ``X`` where unassigned)."""
    grid = [["X"] * layout.length for _ in range(layout.lines)]
    for sp in layout.fields.values():
        for i in range(sp.start, sp.end):
            grid[sp.line][i] = sp.cls
    for ch in layout.checks:
        grid[ch.digit.line][ch.digit.start] = "D"
    if "document_number_overflow" in layout.fields:
        line, digit, _start, _end = OVERFLOW[layout.name]
        grid[line][digit] = "F"  # the filler where a short number's check digit stands
        ov = layout.fields["document_number_overflow"]
        grid[line][ov.end + 1] = "F"  # the filler after the run-on's check digit
    return grid


def fits(c: str, cls: str) -> bool:
    if cls == "A":
        return c in ALPHA
    if cls in ("N", "D"):
        return c in DIGITS or c == "<"
    if cls == "S":
        return c in "MFX<"
    if cls == "F":
        return c == "<"
    return c in ALNUM


@dataclass(frozen=True)
class Correction:
    line: int
    column: int
    read: str
    corrected: str
    reason: str  # "character_class", "check_digit" or "glyph_shape"
    #: For a check digit's choice: the checks that failed before the swap, cover this position
    #: and hold after it (one check digit is one chance in ten of holding by accident).
    vouched_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "line": self.line + 1,
            "column": self.column + 1,
            "read": self.read,
            "corrected": self.corrected,
            "reason": self.reason,
        }
        if self.reason == "check_digit":
            d["vouched_by"] = list(self.vouched_by)
        return d


@dataclass(frozen=True)
class CheckState:
    name: str
    state: str  # valid / invalid / absent
    read: str
    computed: str

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "read": self.read, "computed": self.computed}


@dataclass
class MrzReading:
    """Parsed MRZ: the lines as read and as corrected, fields, check states, corrections."""

    format: str
    lines_read: list[str]
    lines: list[str]
    fields: dict[str, Any]
    checks: list[CheckState]
    corrections: list[Correction]
    #: Positions whose character fits no class even after look-alike replacement.
    class_errors: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def checks_valid(self) -> bool:
        return not self.class_errors and all(c.state in ("valid", "absent") for c in self.checks)

    def check(self, name: str) -> CheckState:
        return next(c for c in self.checks if c.name == name)

    @property
    def layout(self) -> Layout:
        """The format's layout as these lines use it (a long document number moves its check
        digit: :func:`effective_layout`)."""
        return effective_layout(self.lines, self.format)


def _apply_class(lines: list[list[str]], grid: list[list[str]], out: list[Correction]) -> None:
    for li, row in enumerate(lines):
        for ci, c in enumerate(row):
            cls = grid[li][ci]
            if fits(c, cls):
                continue
            repl = None
            if cls in ("N", "D"):
                repl = TO_DIGIT.get(c)
            elif cls in ("A", "S"):
                repl = TO_ALPHA.get(c)
                if cls == "S" and repl not in (None, "M", "F", "X"):
                    repl = None
            if repl is not None:
                row[ci] = repl
                out.append(Correction(li, ci, c, repl, "character_class"))


def _text(lines: list[list[str]], spans: tuple[Span, ...]) -> str:
    return "".join("".join(lines[s.line][s.start : s.end]) for s in spans)


def _check_state(lines: list[list[str]], ch: Check) -> CheckState:
    data = _text(lines, ch.over)
    read = lines[ch.digit.line][ch.digit.start]
    try:
        computed = check_digit(data)
    except ValueError:
        return CheckState(ch.name, "invalid", read, "?")
    if ch.may_be_empty and set(data) <= {"<"} and read == "<":
        return CheckState(ch.name, "absent", read, computed)
    if ch.may_be_empty and set(data) <= {"<"} and read == "0":
        return CheckState(ch.name, "valid", read, computed)
    return CheckState(ch.name, "valid" if read == computed else "invalid", read, computed)


def _choose_by_checks(
    lines: list[list[str]],
    layout: Layout,
    out: list[Correction],
    alternatives: dict[tuple[int, int], str] | None,
) -> None:
    """Swap characters in alphanumeric fields for others the OCR found plausible there where
    that alone makes the checks hold.

    Only characters the OCR itself found plausible at that position are tried
    (``alternatives``: the reader passes those it gave a tenth of the probability); without
    alternatives (text typed, or from a chip) nothing is tried."""
    if alternatives is None:
        return
    x_spans = [
        sp
        for name, sp in layout.fields.items()
        if sp.cls == "X" and name.startswith(("document_number", "optional_data"))
    ]
    if all(_check_state(lines, ch).state != "invalid" for ch in layout.checks):
        return
    options: dict[tuple[int, int], list[str]] = {}
    for sp in x_spans:
        for i in range(sp.start, sp.end):
            seen = alternatives.get((sp.line, i), "")
            twins = [t for t in seen if t in ALNUM and t != "<" and t != lines[sp.line][i]]
            if twins:
                options[(sp.line, i)] = twins
    if not options:
        return
    solutions: list[tuple[tuple[int, int, str], ...]] = []
    for k in range(1, min(MAX_SWAPS, len(options)) + 1):
        for where in itertools.combinations(sorted(options), k):
            for repl in itertools.product(*(options[w] for w in where)):
                trial = [row[:] for row in lines]
                for (li, ci), r in zip(where, repl, strict=True):
                    trial[li][ci] = r
                if all(_check_state(trial, ch).state != "invalid" for ch in layout.checks):
                    solutions.append(
                        tuple((li, ci, r) for (li, ci), r in zip(where, repl, strict=True))
                    )
        if solutions:
            break
    if len(solutions) != 1:
        return  # none, or ambiguous: keep what was read, the checks say it is wrong
    failing = [ch for ch in layout.checks if _check_state(lines, ch).state == "invalid"]
    for li, ci, r in solutions[0]:
        before = lines[li][ci]
        lines[li][ci] = r
        vouch = tuple(ch.name for ch in failing if _covers(ch, li, ci))
        out.append(Correction(li, ci, before, r, "check_digit", vouch))


def _covers(ch: Check, line: int, column: int) -> bool:
    return any(sp.line == line and sp.start <= column < sp.end for sp in ch.over)


def _name_structure(lines: list[list[str]], sp: Span) -> list[tuple[int, int, str]]:
    """Letters after a run of three or more ``<`` in the name field: a name is written from the
    left and filled with ``<`` to the end, so these are not a name (chevrons misread)."""
    row = lines[sp.line]
    out = []
    run = 0
    for ci in range(sp.start, sp.end):
        if row[ci] == "<":
            run += 1
        elif run >= 3:
            out.append((sp.line, ci, row[ci]))
        else:
            run = 0
    return out


def checks_hold(lines: list[str], fmt: str) -> bool:
    """Whether every check digit of ``fmt`` holds on ``lines`` as they are."""
    grid = [list(x) for x in lines]
    return all(
        _check_state(grid, ch).state != "invalid" for ch in effective_layout(lines, fmt).checks
    )


def _yymmdd(s: str, *, kind: str, today: date) -> date | None:
    if not (len(s) == 6 and s.isdigit()):
        return None
    yy, mm, dd = int(s[:2]), int(s[2:4]), int(s[4:])
    if kind == "birth":
        year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    else:
        year = 2000 + yy if 2000 + yy <= today.year + 50 else 1900 + yy
    try:
        return date(year, mm, dd)
    except ValueError:
        return None


def _clean(s: str) -> str:
    return s.replace("<", " ").strip()


def _names(raw: str) -> tuple[str, str]:
    surname, _, given = raw.partition("<<")
    return (
        " ".join(p for p in surname.split("<") if p),
        " ".join(p for p in given.split("<") if p),
    )


def parse_mrz(
    lines_read: list[str],
    *,
    today: date | None = None,
    alternatives: dict[tuple[int, int], str] | None = None,
) -> MrzReading:
    """Parse and check an MRZ read by OCR (see the module's contract). ``alternatives`` maps
    (line, column), from 0, to the other characters the OCR found plausible there."""
    today = today or date.today()
    lines_read = [x.strip().upper() for x in lines_read]
    fmt = detect_format(lines_read)
    layout = effective_layout(lines_read, fmt)
    grid = class_map(layout)
    lines = [list(x) for x in lines_read]
    corrections: list[Correction] = []
    _apply_class(lines, grid, corrections)
    _choose_by_checks(lines, layout, corrections, alternatives)
    class_errors = [
        (li, ci, c)
        for li, row in enumerate(lines)
        for ci, c in enumerate(row)
        if not fits(c, grid[li][ci])
    ]
    class_errors += _name_structure(lines, layout.fields["name"])
    checks = [_check_state(lines, ch) for ch in layout.checks]
    fields: dict[str, Any] = {"format": fmt}
    for name, sp in layout.fields.items():
        raw = "".join(lines[sp.line][sp.start : sp.end])
        if name == "document_number_overflow":
            continue
        if name == "document_number" and "document_number_overflow" in layout.fields:
            ov = layout.fields["document_number_overflow"]
            raw += "".join(lines[ov.line][ov.start : ov.end])
        if name == "name":
            fields["surname"], fields["given_names"] = _names(raw)
        elif name in ("date_of_birth", "expiry_date"):
            d = _yymmdd(raw, kind="birth" if name == "date_of_birth" else "expiry", today=today)
            fields[name] = raw
            fields[name + "_iso"] = None if d is None else d.isoformat()
        elif name == "sex":
            fields[name] = {"M": "M", "F": "F", "X": "X", "<": "unspecified"}.get(raw, raw)
        else:
            fields[name] = _clean(raw)
    return MrzReading(
        format=fmt,
        lines_read=lines_read,
        lines=["".join(r) for r in lines],
        fields=fields,
        checks=checks,
        corrections=corrections,
        class_errors=class_errors,
    )


# --- composing (for specimens and tests) -------------------------------------------------------


def _pad(s: str, n: int) -> str:
    s = s.upper().replace(" ", "<")
    if len(s) > n:
        raise ValueError(f"{s!r} is longer than {n}")
    return s + "<" * (n - len(s))


def name_field(surname: str, given_names: str, n: int) -> str:
    text = surname.upper().replace(" ", "<").replace("-", "<")
    if given_names:
        text += "<<" + given_names.upper().replace(" ", "<").replace("-", "<")
    return _pad(text[:n], n)


@dataclass(frozen=True)
class MrzData:
    """What an MRZ states, for composing one (:func:`compose_mrz`)."""

    format: str
    document_code: str
    issuing_country: str
    document_number: str
    surname: str
    given_names: str
    nationality: str
    date_of_birth: str  # YYMMDD
    sex: str  # M, F, X or <
    expiry_date: str  # YYMMDD
    optional_data: str = ""
    optional_data_2: str = ""


def compose_mrz(d: MrzData) -> list[str]:
    """The MRZ lines for ``d`` with correct check digits."""
    lay = LAYOUTS[d.format]
    number = d.document_number.upper().replace(" ", "<")
    if len(number) > 9:
        return _compose_long_number(d, number)
    num = _pad(d.document_number, 9)
    ncd = check_digit(num)
    dob, dcd = d.date_of_birth, check_digit(d.date_of_birth)
    exp, ecd = d.expiry_date, check_digit(d.expiry_date)
    nat = _pad(d.nationality, 3)
    code = _pad(d.document_code, 2)
    iss = _pad(d.issuing_country, 3)
    if d.format == "TD1":
        l1 = code + iss + num + ncd + _pad(d.optional_data, 15)
        l2 = dob + dcd + d.sex + exp + ecd + nat + _pad(d.optional_data_2, 11)
        comp = check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
        return [l1, l2 + comp, name_field(d.surname, d.given_names, 30)]
    l1 = code + iss + name_field(d.surname, d.given_names, lay.length - 5)
    head = num + ncd + nat + dob + dcd + d.sex + exp + ecd
    if d.format == "TD3":
        opt = _pad(d.optional_data, 14)
        ocd = "<" if set(opt) == {"<"} else check_digit(opt)
        body = head + opt + ocd
        return [l1, body + check_digit(body[0:10] + body[13:20] + body[21:43])]
    if d.format == "TD2":
        body = head + _pad(d.optional_data, 7)
        return [l1, body + check_digit(body[0:10] + body[13:20] + body[21:35])]
    return [l1, head + _pad(d.optional_data, lay.length - 28)]


def _compose_long_number(d: MrzData, number: str) -> list[str]:
    """A document number longer than nine characters (TD1 and TD2 only): its first nine in the
    number field, ``<`` for its check digit, the rest, the check digit and ``<`` in the optional
    data (ICAO 9303 part 5 and part 6)."""
    if d.format not in OVERFLOW:
        raise ValueError(f"a {d.format} document number has at most 9 characters")
    cd = check_digit(number)
    run_on = number[9:] + cd + "<"
    short = replace(d, document_number=number[:9], optional_data=run_on + d.optional_data)
    lines = compose_mrz(short)
    line, digit, _start, _end = OVERFLOW[d.format]
    row = lines[line]
    lines[line] = row[:digit] + "<" + row[digit + 1 :]
    # the composite check digit covers the number field and the optional data: recompute it
    if d.format == "TD1":
        l1, l2 = lines[0], lines[1]
        comp = check_digit(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29])
        lines[1] = l2[:29] + comp
    else:
        body = lines[1][:35]
        lines[1] = body + check_digit(body[0:10] + body[13:20] + body[21:35])
    return lines
