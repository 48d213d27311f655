"""Reading a document photo: find the MRZ, OCR it, parse it, check it, and say how sure we are.

Contract, in order:

1. The photo goes through the same intake as a face probe (:func:`fieldid.probe.decode_probe`:
   JPEG, PNG or WebP, size limits, EXIF orientation, no metadata kept).
2. :func:`fieldid.documents.locate.find_bands` proposes MRZ bands, best first.
3. For each band, which way up? The data page lies above its MRZ, so where clearly more print
   lies on one side of the band (:attr:`Band.page_above`), the lines are read that way up, and
   read the other way too only when that reading does not hold (checks, confidence). Where
   the print does not say, the start of every line (about six characters) is read both ways
   and the surer orientation is read in full.
4. Line lengths are repaired only where OCR dropped or doubled filler: a line a few characters
   short or long of the format's length gets ``<`` added to or removed from one of its ``<`` runs;
   every such variant is parsed and the one whose check digits hold (then with fewest
   corrections) is kept. Anything else that does not fit a format is not an MRZ.
5. :func:`fieldid.documents.mrz.parse_mrz` applies the character classes and check digits.
   Where a check fails, the band's lines are cut again with a wider margin and read once more;
   the reading that holds better is kept, and every character the first look doubted, or the two
   looks read differently where the check digits cannot arbitrate, stays uncertain.
6. The first band whose reading parses is the answer. Where the plain cut gives none, the hard
   ways of finding the band are tried in turn (:func:`_hard_reading`) until one gives a reading
   whose checks hold, else the reading with the fewest failures; if none parses,
   ``document.no_mrz``.

``valid`` (in :class:`DocumentReading`) holds only when every check digit holds, every character
fits its position's class, and nothing is uncertain (:func:`_uncertain`): no character outside
the check digits' cover (names, codes of state, sex, document code) was read below
:data:`MIN_CHAR_CONFIDENCE`, and no character has a plausible rival the check digits could not
tell from it, and the issuing state and nationality are codes ICAO gives
(:mod:`fieldid.documents.states`). A name the OCR was unsure of is shown, but not called valid.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.clock import Clock, SystemClock
from fieldid.documents.glyphs import (
    BLIND,
    PAIRS,
    PARTNERS,
    GlyphJudge,
    cut_characters,
    default_judge,
)
from fieldid.documents.locate import Band, find_bands, flip_lines, hard_band_sets, split_lines
from fieldid.documents.mrz import (
    CheckState,
    Correction,
    Layout,
    MrzFormatError,
    MrzReading,
    checks_hold,
    class_map,
    fits,
    parse_mrz,
)
from fieldid.documents.ocr import ALTERNATIVE_MIN_PROB, LineReader, LineText, PaddleLineReader
from fieldid.documents.states import is_state_code
from fieldid.errors import FieldidError
from fieldid.probe import IntakeLimits, decode_probe

#: Below this, a character outside the check digits' cover makes the reading not valid.
MIN_CHAR_CONFIDENCE = 0.5
#: A rival character with this share of the probability, which the check digits could not tell
#: from the one read, makes the reading not valid.
MIN_RIVAL_SHARE = 0.1
#: A twin the check digits may choose (:func:`fieldid.documents.mrz.parse_mrz`) must have had
#: this share of the probability the OCR gave it and the character read.
CHOOSE_MIN_SHARE = 0.1
#: A twin chosen by fewer check digits than this (each is one chance in ten of holding by
#: accident) leaves its character uncertain (``one_check_digit_chose_X``), unless the
#: character's shape says the same (:mod:`fieldid.documents.glyphs`).
MIN_VOUCHING_CHECKS = 2
#: Fields that hold a state's code (:mod:`fieldid.documents.states`).
STATE_FIELDS = ("issuing_country", "nationality")
#: How many characters a line may be short or long before it is not taken for an MRZ line.
MAX_LENGTH_REPAIR = 3
MAX_BANDS = 3
#: A line read with fewer characters is not an MRZ line (30 is the shortest).
MIN_LINE_CHARS = 30 - MAX_LENGTH_REPAIR
#: How far from even the print around the band must lean to one side to be trusted as "the
#: page is above" (else both orientations are tried on the lines' first characters).
SURE_PAGE_SIDE = 0.3
#: A reading whose checks hold with this mean confidence is not read the other way up.
SURE_READING = 0.8
#: Horizontal scale of the first look (1.0 keeps the line's aspect at the model's height):
#: MRZ characters are spaced wider than the print the model learned on, and a narrower line
#: reads as well, in less time (docs/benchmarks.md).
PRIMARY_X_SCALE = 0.8
#: A character a look did not name gets this probability when looks are pooled (the OCR names
#: every character it gives 2 % or more).
POOL_FLOOR = 0.01


@dataclass(frozen=True)
class Look:
    """How a second look cuts and scales a line: ``margin`` character heights either side of
    the line's centre, ``x_scale`` as :data:`PRIMARY_X_SCALE`."""

    name: str
    margin: float
    x_scale: float


#: Second looks at lines the first look had trouble with (:func:`_second_looks`).
SECOND_LOOKS = (
    Look("tight", 0.7, 0.8),
    Look("wide", 1.2, 1.0),
    Look("stretched", 0.9, 1.0),
    Look("tight_narrow", 0.7, 0.65),
)
#: A first look with a rival this strong, which the check digits could not tell from the
#: character read, or a character no check covers read below this confidence, is looked at
#: again (:func:`_suspects`); whether it is then uncertain is judged on the pooled looks.
SUSPECT_RIVAL_SHARE = 0.02
SUSPECT_CONFIDENCE = 0.8


class DocumentError(FieldidError):
    """A document could not be read or verified. Codes start with ``document.``."""

    code = "document.unreadable"


@dataclass
class DocumentReading:
    """What was read from a document photo and how far it can be trusted."""

    mrz: MrzReading
    confidence: float
    char_confidences: list[list[float]]
    uncertain: list[dict[str, Any]]
    expiry_state: str  # valid / expired / unknown
    today: date
    engine: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: The MRZ band's corners in the photo (top-left, top-right, bottom-right, bottom-left of
    #: the upright text), and the decoded photo (for cropping the portrait; never serialised).
    band_corners: NDArray[np.float32] | None = None
    rgb: NDArray[np.uint8] | None = field(default=None, repr=False)
    length_repairs: list[dict[str, Any]] = field(default_factory=list)
    #: The lines exactly as the OCR gave them (before length repair and correction); where
    #: second looks were pooled, the pooled characters.
    ocr_lines: list[str] = field(default_factory=list)
    #: The looks the reading rests on: ``first``, then any second looks pooled with it.
    looks: list[str] = field(default_factory=lambda: ["first"])
    #: Doubts between look-alikes judged by the characters' OCR-B shapes: line, column, the
    #: character read, each glyph's correlation and the winner (``None``: no clear winner).
    shape_verdicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.mrz.checks_valid and not self.uncertain

    @property
    def format(self) -> str:
        return self.mrz.format

    @property
    def corrections(self) -> list[Correction]:
        return self.mrz.corrections

    @property
    def checks(self) -> list[CheckState]:
        return self.mrz.checks

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.mrz.format,
            "mrz_lines": list(self.ocr_lines),
            "mrz_lines_parsed": list(self.mrz.lines_read),
            "mrz_lines_corrected": list(self.mrz.lines),
            "fields": dict(self.mrz.fields),
            "checks": {c.name: c.to_dict() for c in self.mrz.checks},
            "valid": self.valid,
            "check_digits_valid": self.mrz.checks_valid,
            "corrections": [c.to_dict() for c in self.mrz.corrections],
            "length_repairs": list(self.length_repairs),
            "class_errors": [
                {"line": li + 1, "column": ci + 1, "read": c} for li, ci, c in self.mrz.class_errors
            ],
            "uncertain": list(self.uncertain),
            "confidence": round(self.confidence, 4),
            "expiry_state": self.expiry_state,
            "checked_on": self.today.isoformat(),
            "engine": self.engine,
            "looks": list(self.looks),
            "shape_verdicts": list(self.shape_verdicts),
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


_default_reader: LineReader | None = None


def default_reader() -> LineReader:
    """One shared PP-OCR reader per process (the model loads once, lazily)."""
    global _default_reader
    if _default_reader is None:
        _default_reader = PaddleLineReader()
    return _default_reader


def _orient(band: Band, reader: LineReader) -> tuple[list[Any], bool]:
    """The band's lines upright (and whether that meant turning them): read the first few
    characters of each line both ways, keep the surer."""
    up = band.lines
    down = flip_lines(up)

    def heads(lines: list[Any]) -> list[Any]:
        return [x[:, : x.shape[0] * 3] for x in lines]

    res = reader.read_lines(heads(up) + heads(down), x_scale=PRIMARY_X_SCALE)
    n = len(up)
    c_up = float(np.mean([r.mean_confidence for r in res[:n]]))
    c_down = float(np.mean([r.mean_confidence for r in res[n:]]))
    return (up, False) if c_up >= c_down else (down, True)


@dataclass
class Parsed:
    """One parse of a band's lines: the MRZ, the OCR's characters aligned to the parsed lines
    (after length repair), the repairs, and doubts the parse itself raised."""

    reading: MrzReading
    aligned: list[LineText]
    repairs: list[dict[str, Any]]
    #: The lines as read (before length repair), one per parsed line.
    raw: list[LineText]
    #: Positions where equally good length repairs disagree (``length_repair_ambiguous``).
    doubts: list[dict[str, Any]] = field(default_factory=list)
    #: The first look's characters aligned to the parsed lines, with the line images and where
    #: in them each character was seen (for judging a character by its shape).
    seen: list[LineText] = field(default_factory=list)

    @cached_property
    def uncertain(self) -> list[dict[str, Any]]:
        out = _uncertain(self.reading, self.aligned)
        seen = {(u["line"], u["column"]) for u in out}
        return out + [d for d in self.doubts if (d["line"], d["column"]) not in seen]

    @property
    def bad(self) -> int:
        """Check digits that fail and characters that fit no class."""
        r = self.reading
        return sum(c.state == "invalid" for c in r.checks) + len(r.class_errors)

    @property
    def valid(self) -> bool:
        return self.reading.checks_valid and not self.uncertain

    def key(self) -> tuple[int, int]:
        """Lower is better: failed checks and class errors, then uncertain characters."""
        return (self.bad, len(self.uncertain))

    def mean_confidence(self) -> float:
        conf = [c for t in self.aligned for c in t.confidences]
        return float(np.mean(conf)) if conf else 0.0


def _good(parsed: Parsed | None) -> bool:
    return (
        parsed is not None
        and parsed.reading.checks_valid
        and parsed.mean_confidence() >= SURE_READING
        and not parsed.uncertain
    )


def _read_band(band: Band, reader: LineReader, today: date) -> list[tuple[bool, Parsed | None]]:
    """Readings of the band, the likelier orientation first (see the module's contract)."""
    sure = abs(band.page_above - 0.5) >= SURE_PAGE_SIDE
    if not sure:
        lines, turned = _orient(band, reader)
        texts = reader.read_lines(lines, x_scale=PRIMARY_X_SCALE)
        return [(turned, _parse_best(texts, today))]
    turned = band.page_above < 0.5
    first = flip_lines(band.lines) if turned else band.lines
    parsed = _parse_best(reader.read_lines(first, x_scale=PRIMARY_X_SCALE), today)
    if _good(parsed):
        return [(turned, parsed)]
    other = band.lines if turned else flip_lines(band.lines)
    parsed2 = _parse_best(reader.read_lines(other, x_scale=PRIMARY_X_SCALE), today)
    tries = [(turned, parsed), (not turned, parsed2)]

    def rank(x: tuple[bool, Parsed | None]) -> tuple[int, float]:
        p = x[1]
        return (10**6, 0.0) if p is None else (p.bad, -p.mean_confidence())

    return sorted(tries, key=rank)


def _runs(text: str) -> list[tuple[int, int]]:
    """The ``<`` runs of ``text`` as (start, end) pairs."""
    runs = []
    i = 0
    while i < len(text):
        if text[i] == "<":
            j = i
            while j < len(text) and text[j] == "<":
                j += 1
            runs.append((i, j))
            i = j
        else:
            i += 1
    return runs


def _variants(text: str, want: int) -> list[tuple[str, str]]:
    """``text`` brought to ``want`` characters by adding or removing ``<`` in one ``<`` run.

    OCR drops or doubles a ``<`` where ``<`` repeat (a CTC reader must see a gap between two
    equal characters): a run gets ``<`` added only when it has at least two, and loses them
    only when at least two remain. A single ``<`` between two names is never touched, so the
    repair cannot move where one name ends and the next begins."""
    d = want - len(text)
    if d == 0:
        return [(text, "")]
    if abs(d) > MAX_LENGTH_REPAIR:
        return []
    out = []
    for a, b in _runs(text):
        if d > 0 and b - a >= 2:
            out.append((text[:b] + "<" * d + text[b:], f"added {d} '<' at column {b + 1}"))
        elif d < 0 and b - a + d >= 2:
            out.append((text[: b + d] + text[b:], f"removed {-d} '<' at column {b + d + 1}"))
    if d > 0 and not text.endswith("<"):
        out.append((text + "<" * d, f"added {d} '<' at the end"))
    return out


def _expected_length(lines: list[LineText]) -> int | None:
    n = len(lines)
    lengths = [len(x.text) for x in lines]
    if n == 3:
        return 30
    if n == 2:
        best = min((36, 44), key=lambda L: sum(abs(x - L) for x in lengths))
        return best
    return None


def _parse_best(texts: list[LineText], today: date) -> Parsed | None:
    """The best parse of the lines, or of two or three consecutive ones among them (a line of
    other print cut with the band)."""
    texts = [t for t in texts if len(t.text) >= MIN_LINE_CHARS]
    windows = [texts] if 2 <= len(texts) <= 3 else []
    for n in (3, 2):
        windows += [texts[i : i + n] for i in range(len(texts) - n + 1) if len(texts) > n]
    for w in windows:
        parsed = _parse_window(w, today)
        if parsed is not None:
            return parsed
    return None


def _align(t: LineText, line: str) -> LineText:
    """The OCR's characters of ``t`` aligned to ``line`` (``t`` after a length repair): kept
    where the text is unchanged before or after the repair; inserted filler gets confidence 0
    (not read) and no position."""
    if t.text == line:
        return t
    conf: list[float] = []
    char_alts: list[dict[str, float]] = []
    where: list[float] = []
    has_pos = len(t.positions) == len(t.text)
    for i, c in enumerate(line):
        if i < len(t.text) and t.text[i] == c and line[:i] == t.text[:i]:
            j: int | None = i
        else:
            k = i - (len(line) - len(t.text))
            j = k if 0 <= k < len(t.text) and line[i:] == t.text[k:] else None
        conf.append(t.confidences[j] if j is not None else 0.0)
        char_alts.append(t.alternatives[j] if j is not None and j < len(t.alternatives) else {})
        where.append(t.positions[j] if j is not None and has_pos else -1.0)
    return LineText(line, tuple(conf), tuple(char_alts), tuple(where) if has_pos else (), t.image)


def _trimmed(t: LineText, end: int) -> LineText:
    """``t`` without its first (``end`` 0) or last (``end`` -1) character."""
    keep = slice(1, None) if end == 0 else slice(None, -1)
    return LineText(
        t.text[keep],
        t.confidences[keep],
        t.alternatives[keep] if len(t.alternatives) == len(t.text) else (),
        t.positions[keep] if len(t.positions) == len(t.text) else (),
        t.image,
    )


def _parse_window(texts: list[LineText], today: date) -> Parsed | None:
    """Parse lines as one MRZ (:func:`_parse_lines`). Where that leaves a check failing, each
    line that holds a check digit is parsed again without its first, then its last character
    (a mark at the edge of the band read as a character: the page's edge, a shadow; then the
    length repair takes the ``<`` the OCR dropped elsewhere); such a reading is kept only when
    every check digit then holds, and where two of them do and read differently, the positions
    where they differ are doubts (``length_repair_ambiguous``). A name line, which no check
    digit covers, is never trimmed."""
    first = _parse_lines(texts, today)
    if first is not None and first.bad == 0:
        return first
    checked = {3: (0, 1), 2: (1,)}.get(len(texts), ())
    found: list[Parsed] = []
    for li in checked:
        if len(texts[li].text) <= MIN_LINE_CHARS:
            continue
        for end in (0, -1):
            dropped = texts[li].text[end]
            trial = list(texts)
            trial[li] = _trimmed(texts[li], end)
            p = _parse_lines(trial, today)
            if p is None or p.bad != 0:
                continue
            where = "start" if end == 0 else "end"
            note = {"line": li + 1, "repair": f"dropped {dropped!r} at the {where}"}
            found.append(replace(p, repairs=[note, *p.repairs], raw=list(texts)))
    if not found:
        return first
    best = found[0]
    for other in found[1:]:
        if other.reading.lines == best.reading.lines:
            continue
        for li, (a, b) in enumerate(zip(best.reading.lines, other.reading.lines, strict=True)):
            for ci, (x, y) in enumerate(zip(a, b, strict=True)):
                if x != y:
                    best.doubts.append(
                        {
                            "line": li + 1,
                            "column": ci + 1,
                            "read": x,
                            "confidence": 0.0,
                            "why": "length_repair_ambiguous",
                        }
                    )
    return best


def _parse_lines(texts: list[LineText], today: date) -> Parsed | None:
    """Parse lines as one MRZ, trying every length repair (:func:`_variants`); the parse with
    the fewest failed checks and class errors, then repairs, then corrections, is kept. Where
    another repair parses as well but reads differently, the positions where they differ are
    doubts (``length_repair_ambiguous``): the check digits could not choose."""
    want = _expected_length(texts)
    if want is None:
        return None
    per_line = [_variants(t.text, want) for t in texts]
    if any(not v for v in per_line):
        return None
    tried: list[tuple[tuple[int, int, int], MrzReading, list[dict[str, Any]]]] = []
    combos = [[]]  # type: list[list[tuple[int, str, str]]]
    for li, vs in enumerate(per_line):
        combos = [[*c, (li, v, note)] for c in combos for v, note in vs[:6]]
    for combo in combos[:64]:
        lines = [v for _, v, _ in combo]
        alts = {
            (li, ci): "".join(sorted(c for c, p in a.items() if p >= CHOOSE_MIN_SHARE * (p + q)))
            for li, (t, (_, v, _)) in enumerate(zip(texts, combo, strict=True))
            if v == t.text
            for ci, (a, q) in enumerate(zip(t.alternatives, t.confidences, strict=False))
            if a
        }
        try:
            r = parse_mrz(lines, today=today, alternatives=alts)
        except MrzFormatError:
            continue
        bad = sum(c.state == "invalid" for c in r.checks) + len(r.class_errors)
        repairs = [{"line": li + 1, "repair": note} for li, _, note in combo if note]
        tried.append(((bad, len(repairs), len(r.corrections)), r, repairs))
    if not tried:
        return None
    best_key, reading, repairs = min(tried, key=lambda x: x[0])
    doubts = []
    for key, other, _ in tried:
        if key[:2] != best_key[:2] or other.lines == reading.lines:
            continue
        for li, (a, b) in enumerate(zip(reading.lines, other.lines, strict=True)):
            for ci, (x, y) in enumerate(zip(a, b, strict=True)):
                if x != y:
                    doubts.append(
                        {
                            "line": li + 1,
                            "column": ci + 1,
                            "read": x,
                            "confidence": 0.0,
                            "why": "length_repair_ambiguous",
                        }
                    )
    aligned = [_align(t, line) for t, line in zip(texts, reading.lines_read, strict=True)]
    return Parsed(reading, aligned, repairs, list(texts), doubts, aligned)


def _problem_lines(p: Parsed) -> list[int]:
    """Lines (from 0) holding an uncertain character, a class error, or a failed check's digit
    or data: the lines a second look reads again."""
    lines = {u["line"] - 1 for u in p.uncertain}
    lines |= {li for li, _, _ in p.reading.class_errors}
    layout = p.reading.layout
    for ch, state in zip(layout.checks, p.reading.checks, strict=True):
        if state.state == "invalid":
            lines.add(ch.digit.line)
            lines |= {sp.line for sp in ch.over}
    return sorted(lines)


def _pool(looks: list[list[LineText]]) -> list[LineText]:
    """Several looks at the same lines (each aligned to the format's length) pooled into one,
    position by position: each character's pooled probability is the normalised geometric mean
    of the probabilities the looks gave it (a character a look did not name gets
    :data:`POOL_FLOOR`; a position a look did not read, filler a repair inserted, is left to
    the others). Looks that agree make the pooled reading surer than any one of them; a look
    that disagrees keeps the pooled rival strong, so the character stays uncertain."""
    out = []
    for li in range(len(looks[0])):
        n = len(looks[0][li].text)
        text: list[str] = []
        conf: list[float] = []
        alts: list[dict[str, float]] = []
        for ci in range(n):
            dists = []
            for look in looks:
                t = look[li]
                if len(t.text) != n or t.confidences[ci] <= 0.0:
                    continue
                d = dict(t.alternatives[ci]) if ci < len(t.alternatives) else {}
                d[t.text[ci]] = t.confidences[ci]
                dists.append(d)
            if not dists:
                text.append(looks[0][li].text[ci])
                conf.append(0.0)
                alts.append({})
                continue
            chars = {c for d in dists for c in d}
            score = {
                c: math.exp(
                    sum(math.log(max(d.get(c, 0.0), POOL_FLOOR)) for d in dists) / len(dists)
                )
                for c in chars
            }
            total = sum(score.values())
            best = max(score, key=lambda c: score[c])
            text.append(best)
            conf.append(score[best] / total)
            alts.append(
                {
                    c: v / total
                    for c, v in score.items()
                    if c != best and v / total >= ALTERNATIVE_MIN_PROB
                }
            )
        out.append(LineText("".join(text), tuple(conf), tuple(alts)))
    return out


def _suspects(p: Parsed) -> list[dict[str, Any]]:
    """Characters a first look holds too loosely to be taken on its word, though not loosely
    enough to be uncertain: a rival the check digits could not tell from it at
    :data:`SUSPECT_RIVAL_SHARE`, or a character no check covers below
    :data:`SUSPECT_CONFIDENCE`. A confident G read for 6 is the failure no check digit can
    catch; a second look at the line, pooled, is what can."""
    return _uncertain(
        p.reading, p.aligned, rival_share=SUSPECT_RIVAL_SHARE, min_confidence=SUSPECT_CONFIDENCE
    )


def _second_looks(
    band: Band, turned: bool, first: Parsed, reader: LineReader, today: date
) -> tuple[Parsed, list[str]]:
    """Read the lines the first look had trouble with or holds loosely again, cut and scaled
    otherwise (:data:`SECOND_LOOKS`), and pool every look (:func:`_pool`). Returns the reading
    kept and the names of the looks taken:

    - the pooled reading, unless pooling leaves more checks failing than the first look;
    - else the first look, with every character the pooled reading reads otherwise, where the
      check digits would hold either way, uncertain (``two_looks_disagree_X``);
    - where no second look could be cut, the first look, its suspects uncertain."""
    n = len(first.aligned)
    suspects = _suspects(first)
    todo = sorted(set(_problem_lines(first)) | {u["line"] - 1 for u in suspects})
    if not todo:
        return first, []
    looks: list[list[LineText]] = [first.aligned]
    taken = []
    if band.strip is not None and len(band.lines) == n:
        for look in SECOND_LOOKS:
            cut = split_lines(band.strip, look.margin)
            if len(cut) != n:
                continue
            cut = flip_lines(cut) if turned else cut
            texts = reader.read_lines([cut[i] for i in todo], x_scale=look.x_scale)
            lines = list(first.raw)
            for i, t in zip(todo, texts, strict=True):
                lines[i] = t
            parsed = _parse_window(lines, today)
            if parsed is None or parsed.reading.format != first.reading.format:
                continue
            looks.append(parsed.aligned)
            taken.append(look.name)
    pooled = _parse_window(_pool(looks), today) if len(looks) > 1 else None
    if pooled is None or pooled.reading.format != first.reading.format:
        doubts = [{**u, "why": "second_look_failed"} for u in suspects]
        return replace(first, doubts=first.doubts + doubts), taken
    if pooled.bad <= first.bad:
        return replace(pooled, seen=first.aligned), taken
    return replace(
        first, doubts=first.doubts + _disagreements(first.reading, pooled.reading)
    ), taken


def _disagreements(kept: MrzReading, other: MrzReading) -> list[dict[str, Any]]:
    """Where another reading of the same band reads characters that the check digits cannot
    arbitrate (the other reading's character would hold too)."""
    out = []
    for li, (a, b) in enumerate(zip(kept.lines, other.lines, strict=True)):
        for ci, (x, y) in enumerate(zip(a, b, strict=True)):
            if x == y:
                continue
            trial = list(kept.lines)
            trial[li] = a[:ci] + y + a[ci + 1 :]
            if checks_hold(trial, kept.format):
                out.append(
                    {
                        "line": li + 1,
                        "column": ci + 1,
                        "read": x,
                        "confidence": 0.0,
                        "why": f"two_looks_disagree_{y}",
                    }
                )
    return out


#: Doubts a character's shape may settle: a rival the check digits cannot tell from it, two
#: looks that disagree where the check digits cannot arbitrate, a twin one check digit chose.
SHAPE_DOUBTS = ("check_digits_cannot_tell_from_", "two_looks_disagree_", "one_check_digit_chose_")


def _shape_targets(
    parsed: Parsed, uncertain: list[dict[str, Any]]
) -> list[tuple[int, int, str, str, str]]:
    """What the shape judge is asked about: (line, column, character read, its look-alike, why):

    - ``doubt``: the doubts between two look-alikes (:data:`SHAPE_DOUBTS`);
    - ``blind``: every character of a document number or optional data that has a look-alike
      the check digits cannot tell from it (:data:`fieldid.documents.glyphs.BLIND`): the OCR
      may misread those with confidence, and no check digit would notice;
    - ``repair``: where a check fails, every character of a document number or optional data
      under it that has a look-alike (:data:`fieldid.documents.glyphs.PARTNERS`)."""
    out: list[tuple[int, int, str, str, str]] = []
    doubted: set[tuple[int, int]] = set()
    for u in uncertain:
        li, ci = int(u["line"]) - 1, int(u["column"]) - 1
        doubted.add((li, ci))
        why = str(u["why"])
        if why.startswith(SHAPE_DOUBTS):
            out.append((li, ci, str(u["read"]), why[-1], "doubt"))
    reading = parsed.reading
    layout = reading.layout
    grid = class_map(layout)
    for li, row in enumerate(reading.lines):
        for ci, c in enumerate(row):
            if grid[li][ci] == "X" and c in BLIND and (li, ci) not in doubted:
                out.extend((li, ci, c, other, "blind") for other in BLIND[c])
    failing = [
        ch for ch, st in zip(layout.checks, reading.checks, strict=True) if st.state == "invalid"
    ]
    asked = {(li, ci, o) for li, ci, _c, o, _k in out}
    for ch in failing:
        for sp in ch.over:
            for ci in range(sp.start, sp.end):
                c = reading.lines[sp.line][ci]
                if grid[sp.line][ci] != "X":
                    continue
                for other in PARTNERS.get(c, ()):
                    if (sp.line, ci, other) not in asked:
                        asked.add((sp.line, ci, other))
                        out.append((sp.line, ci, c, other, "repair"))
    return out


def _settle_by_shape(
    parsed: Parsed, judge: GlyphJudge | None, today: date
) -> tuple[MrzReading, list[dict[str, Any]], list[dict[str, Any]]]:
    """Look-alikes judged by the character's shape in the first look's line image
    (:func:`_shape_targets`; pairs in :data:`fieldid.documents.glyphs.PAIRS`). Where one glyph
    leads the other by the judge's margin:

    - a doubt is settled; where the winner is the look-alike, the character becomes it (a
      ``glyph_shape`` correction), as does an undoubted character whose shape is clearly its
      check-blind look-alike; each such change must leave every check holding, else it is not
      made and the character is uncertain (``shape_says_X``);
    - where a check fails, the characters under it whose shape is clearly their look-alike
      become it together, if every check then holds (the shapes and the check digits agree);
      else nothing changes.

    Where the judge cannot tell, a doubt stays and an undoubted character stays as read.
    Returns the reading, the doubts left, and every verdict asked for (``shape_verdicts``)."""
    uncertain = parsed.uncertain
    reading = parsed.reading
    if judge is None:
        return reading, uncertain, []
    cuts: dict[int, list[Any]] = {}
    verdicts: list[dict[str, Any]] = []
    settled: set[tuple[int, int]] = set()
    swaps: list[tuple[int, int, str, str]] = []
    repairs: list[tuple[int, int, str, str]] = []
    for li, ci, read, other, kind in _shape_targets(parsed, uncertain):
        if frozenset((read, other)) not in PAIRS or li >= len(parsed.seen):
            continue
        seen = parsed.seen[li]
        if (
            seen.image is None
            or len(seen.positions) != len(seen.text)
            or ci >= len(seen.text)
            or seen.text[ci] not in (read, other)
        ):
            continue  # the first look saw something else there: no cut to judge
        if li not in cuts:
            cuts[li] = cut_characters(seen.image, seen.positions)
        cut = cuts[li][ci]
        if cut is None:
            continue
        v = judge.verdict(cut, (read, other))
        verdicts.append(
            {
                "line": li + 1,
                "column": ci + 1,
                "read": read,
                "doubted": kind == "doubt",
                "asked_for": kind,
                **v.to_dict(),
            }
        )
        if v.winner is None:
            continue
        if kind == "repair":
            if v.winner != read:
                repairs.append((li, ci, read, v.winner))
            continue
        settled.add((li, ci))
        if v.winner != read:
            swaps.append((li, ci, read, v.winner))
    # one winner per position (G is judged against 6 and against Q)
    where = [(li, ci) for li, ci, _r, _n in swaps + repairs]
    torn = {w for w in where if where.count(w) > 1}
    settled -= torn
    late: list[dict[str, Any]] = []
    lines = list(reading.lines)
    applied: list[tuple[int, int, str, str]] = []
    for li, ci, read, new in swaps:
        if (li, ci) in torn:
            continue
        trial = list(lines)
        trial[li] = trial[li][:ci] + new + trial[li][ci + 1 :]
        if checks_hold(trial, reading.format):
            lines = trial
            applied.append((li, ci, read, new))
            continue
        settled.discard((li, ci))
        late.append(
            {
                "line": li + 1,
                "column": ci + 1,
                "read": read,
                "confidence": 0.0,
                "why": f"shape_says_{new}",
            }
        )
    repaired = False
    fix = [r for r in repairs if (r[0], r[1]) not in torn]
    if fix and not checks_hold(lines, reading.format):
        trial = list(lines)
        for li, ci, _read, new in fix:
            trial[li] = trial[li][:ci] + new + trial[li][ci + 1 :]
        if checks_hold(trial, reading.format):
            lines = trial
            applied += fix
            settled |= {(li, ci) for li, ci, _r, _n in fix}
            repaired = True
    if applied:
        again = parse_mrz(lines, today=today)
        changed = {(li, ci) for li, ci, _r, _n in applied}
        kept = [c for c in reading.corrections if (c.line, c.column) not in changed]
        shape = [Correction(li, ci, r, n, "glyph_shape") for li, ci, r, n in applied]
        reading = replace(again, lines_read=reading.lines_read, corrections=kept + shape)
    # a twin one check digit chose, which its shape confirms, is vouched for by both
    fixed = [
        replace(c, vouched_by=(*c.vouched_by, "glyph_shape"))
        if c.reason == "check_digit" and (c.line, c.column) in settled
        else c
        for c in reading.corrections
    ]
    reading = replace(reading, corrections=fixed)
    if repaired:
        # the checks hold now: what the OCR doubted is weighed again against them
        uncertain = _uncertain(reading, parsed.aligned) + parsed.doubts
    left = [u for u in uncertain if (int(u["line"]) - 1, int(u["column"]) - 1) not in settled]
    doubted = {(u["line"], u["column"]) for u in left}
    left += [u for u in late if (u["line"], u["column"]) not in doubted]
    return reading, left, verdicts


def _class_confidence(line: LineText, i: int, cls: str) -> float:
    """The character's probability among the characters its position allows (a sex field read
    ``X`` at 0.46 with ``K`` at 0.5 is sure: ``K`` is not a sex)."""
    p = line.confidences[i]
    if i >= len(line.alternatives):
        return p
    rivals = sum(v for c, v in line.alternatives[i].items() if fits(c, cls))
    return p / (p + rivals) if p + rivals > 0 else 0.0


def _uncertain(
    reading: MrzReading,
    aligned: list[LineText],
    *,
    rival_share: float = MIN_RIVAL_SHARE,
    min_confidence: float = MIN_CHAR_CONFIDENCE,
) -> list[dict[str, Any]]:
    """Characters the check digits cannot vouch for and the OCR was not sure of:

    - outside every check digit's cover, read with a probability below
      :data:`MIN_CHAR_CONFIDENCE` among the characters the position allows;
    - anywhere, where a character the OCR found plausible (at least :data:`MIN_RIVAL_SHARE` of
      the probability the position's allowed characters got) would leave every check digit
      holding: some look-alikes have the same check value (G and 6, S and 8, O and 4 differ by
      10), so the check digits cannot tell them apart;
    - every character of an issuing state or nationality that is no state's code
      (``not_a_state_code``, :mod:`fieldid.documents.states`): no check digit covers a code, and
      a misread letter there (``D<<`` read ``O<<``) is caught only by the code naming nothing."""
    fmt = reading.format
    layout = reading.layout
    grid = class_map(layout)
    uncovered = _uncovered(layout)
    corrected = {(c.line, c.column) for c in reading.corrections}
    holds = checks_hold(reading.lines, fmt)
    out = []
    thin = {
        (c.line, c.column): c
        for c in reading.corrections
        if c.reason == "check_digit" and len(c.vouched_by) < MIN_VOUCHING_CHECKS
    }
    for li, line in enumerate(aligned):
        for ci in range(len(reading.lines[li])):
            cls = grid[li][ci]
            conf = _class_confidence(line, ci, cls)
            why = None
            if (li, ci) in thin:
                why = f"one_check_digit_chose_over_{thin[(li, ci)].read}"
            elif (li, ci) in uncovered and conf < min_confidence:
                why = "low_confidence"
            elif holds and (li, ci) not in corrected and ci < len(line.alternatives):
                p = line.confidences[ci]
                fitting = {c: v for c, v in line.alternatives[ci].items() if fits(c, cls)}
                total = p + sum(fitting.values())
                for alt, v in fitting.items():
                    if total <= 0 or v / total < rival_share:
                        continue
                    trial = list(reading.lines)
                    trial[li] = trial[li][:ci] + alt + trial[li][ci + 1 :]
                    if checks_hold(trial, fmt):
                        why = f"check_digits_cannot_tell_from_{alt}"
                        break
            if why is not None:
                out.append(
                    {
                        "line": li + 1,
                        "column": ci + 1,
                        "read": reading.lines[li][ci],
                        "confidence": round(conf, 3),
                        "why": why,
                    }
                )
    # no check digit covers a state's code: one that names no state was misread
    named = {(u["line"], u["column"]) for u in out}
    for name in STATE_FIELDS:
        sp = layout.fields[name]
        if sp.line >= len(aligned) or is_state_code(reading.lines[sp.line][sp.start : sp.end]):
            continue
        for ci in range(sp.start, sp.end):
            if (sp.line + 1, ci + 1) in named:
                continue
            conf = _class_confidence(aligned[sp.line], ci, grid[sp.line][ci])
            out.append(
                {
                    "line": sp.line + 1,
                    "column": ci + 1,
                    "read": reading.lines[sp.line][ci],
                    "confidence": round(conf, 3),
                    "why": "not_a_state_code",
                }
            )
    return out


def _uncovered(lay: Layout) -> set[tuple[int, int]]:
    """Positions no check digit covers."""
    covered: set[tuple[int, int]] = set()
    for ch in lay.checks:
        covered.add((ch.digit.line, ch.digit.start))
        for sp in ch.over:
            covered.update((sp.line, i) for i in range(sp.start, sp.end))
    return {
        (li, ci) for li in range(lay.lines) for ci in range(lay.length) if (li, ci) not in covered
    }


def read_document(
    source: bytes | str | Path | NDArray[np.uint8],
    *,
    reader: LineReader | None = None,
    clock: Clock | None = None,
    limits: IntakeLimits | None = None,
    shapes: bool = True,
) -> DocumentReading:
    """Read the MRZ of a document photo (see the module's contract). Raises
    :class:`DocumentError` (``document.no_mrz``) when no MRZ can be read, and the intake's
    ``probe.*`` errors for a file that is not a usable image. ``shapes``: judge doubts between
    look-alikes by their OCR-B shapes (where the font is installed)."""
    reader = reader or default_reader()
    today = (clock or SystemClock()).now().date()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    rgb = source if isinstance(source, np.ndarray) else decode_probe(source, limits).rgb
    timings["decode"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    bands = find_bands(rgb)[:MAX_BANDS]
    timings["locate"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    found = _first_reading(bands, reader, today)
    if found is None:
        # the usual cut found nothing readable: glare or low light may have hidden the band;
        # look again with local contrast and other thresholds, each way in turn, until one
        # gives a reading whose checks hold (one way may find only a piece of the band: its
        # reading parses, but fails); else the reading with the fewest failures
        found, more_bands, ms = _hard_reading(rgb, reader, today)
        timings["locate_hard"] = ms
        bands += more_bands
    looks: list[str] = []
    if found is not None:
        best, looks = _second_looks(*found, reader, today)
        found = (found[0], found[1], best)
    timings["ocr"] = (time.perf_counter() - t) * 1000 - timings.get("locate_hard", 0.0)
    if found is None:
        raise DocumentError(
            "no machine-readable zone could be read: photograph the whole data page, flat, "
            "in even light, with the two or three lines of <<< characters sharp",
            code="document.no_mrz",
            bands_found=len(bands),
        )
    band, turned, parsed = found
    t = time.perf_counter()
    reading, uncertain, verdicts = _settle_by_shape(
        parsed, default_judge() if shapes else None, today
    )
    if verdicts:
        timings["shapes"] = (time.perf_counter() - t) * 1000
    # corners in reading order: top-left, top-right, bottom-right, bottom-left of upright text
    corners = np.roll(band.corners, -2, axis=0) if turned else band.corners
    conf = [list(x.confidences) for x in parsed.aligned]
    flat = [c for row in conf for c in row]
    exp = reading.fields.get("expiry_date_iso")
    expiry_state = (
        "unknown" if exp is None else ("expired" if date.fromisoformat(exp) < today else "valid")
    )
    return DocumentReading(
        mrz=reading,
        confidence=float(np.mean(flat)) if flat else 0.0,
        char_confidences=conf,
        uncertain=uncertain,
        expiry_state=expiry_state,
        today=today,
        engine=reader.name,
        timings_ms=timings,
        band_corners=corners,
        rgb=rgb,
        length_repairs=parsed.repairs,
        ocr_lines=[t.text for t in parsed.raw],
        looks=["first", *looks],
        shape_verdicts=verdicts,
    )


def _hard_reading(
    rgb: NDArray[np.uint8], reader: LineReader, today: date
) -> tuple[tuple[Band, bool, Parsed] | None, list[Band], float]:
    """The first reading whose checks hold among the bands each hard way finds
    (:func:`fieldid.documents.locate.hard_band_sets`), else the one with the fewest failed
    checks and class errors (the earlier way on a tie); with every band tried and the time
    spent finding them (ms)."""
    best: tuple[Band, bool, Parsed] | None = None
    tried: list[Band] = []
    ms = 0.0
    sets = hard_band_sets(rgb)
    while True:
        t = time.perf_counter()
        more = next(sets, None)
        ms += (time.perf_counter() - t) * 1000
        if more is None:
            break
        more = more[:MAX_BANDS]
        tried += more
        got = _first_reading(more, reader, today)
        if got is None:
            continue
        if got[2].bad == 0:
            return got, tried, ms
        if best is None or got[2].bad < best[2].bad:
            best = got
    return best, tried, ms


def _first_reading(
    bands: list[Band], reader: LineReader, today: date
) -> tuple[Band, bool, Parsed] | None:
    """The first band whose reading parses (the likelier orientation first), with whether its
    lines were turned."""
    for band in bands:
        for turned, parsed in _read_band(band, reader, today):
            if parsed is not None:
                return band, turned, parsed
    return None
