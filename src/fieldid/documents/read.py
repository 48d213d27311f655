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
6. The first band whose reading parses is the answer; if none parses, ``document.no_mrz``.

``valid`` (in :class:`DocumentReading`) holds only when every check digit holds, every character
fits its position's class, and nothing is uncertain (:func:`_uncertain`): no character outside
the check digits' cover (names, codes of state, sex, document code) was read below
:data:`MIN_CHAR_CONFIDENCE`, and no character has a plausible rival the check digits could not
tell from it. A name the OCR was unsure of is shown, but not called valid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.clock import Clock, SystemClock
from fieldid.documents.locate import Band, find_bands, flip_lines, split_lines
from fieldid.documents.mrz import (
    LAYOUTS,
    CheckState,
    Correction,
    MrzFormatError,
    MrzReading,
    checks_hold,
    class_map,
    fits,
    parse_mrz,
)
from fieldid.documents.ocr import LineReader, LineText, PaddleLineReader
from fieldid.errors import FieldidError
from fieldid.probe import IntakeLimits, decode_probe

#: Below this, a character outside the check digits' cover makes the reading not valid.
MIN_CHAR_CONFIDENCE = 0.5
#: A rival character with this share of the probability, which the check digits could not tell
#: from the one read, makes the reading not valid.
MIN_RIVAL_SHARE = 0.1
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
#: Margin (character heights either side of the line's centre) of the second look.
SECOND_MARGIN = 1.2


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
    #: The lines exactly as the OCR gave them (before length repair and correction).
    ocr_lines: list[str] = field(default_factory=list)

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

    res = reader.read_lines(heads(up) + heads(down))
    n = len(up)
    c_up = float(np.mean([r.mean_confidence for r in res[:n]]))
    c_down = float(np.mean([r.mean_confidence for r in res[n:]]))
    return (up, False) if c_up >= c_down else (down, True)


def _disagreements(kept: MrzReading, other: MrzReading) -> list[dict[str, Any]]:
    """Where two looks at one band read different characters that the check digits cannot
    arbitrate (the other look's character would hold too): those stay uncertain, whichever look
    is kept."""
    if len(kept.lines) != len(other.lines):
        return []
    out = []
    for li, (a, b) in enumerate(zip(kept.lines, other.lines, strict=True)):
        if len(a) != len(b):
            continue
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


def _better(
    a: tuple[MrzReading, list[LineText], list[dict[str, Any]]],
    b: tuple[MrzReading, list[LineText], list[dict[str, Any]]],
) -> bool:
    """Whether reading ``a`` holds better than ``b``: fewer failed checks and class errors,
    then fewer uncertain characters."""

    def key(x: tuple[MrzReading, list[LineText], list[dict[str, Any]]]) -> tuple[int, int]:
        r = x[0]
        bad = sum(c.state == "invalid" for c in r.checks) + len(r.class_errors)
        return (bad, len(_uncertain(r, x[1])))

    return key(a) < key(b)


def _good(parsed: tuple[MrzReading, list[LineText], list[dict[str, Any]]] | None) -> bool:
    if parsed is None:
        return False
    reading, aligned, _ = parsed
    conf = [c for t in aligned for c in t.confidences]
    return (
        reading.checks_valid
        and bool(conf)
        and float(np.mean(conf)) >= SURE_READING
        and not _uncertain(reading, aligned)
    )


def _read_band(
    band: Band, reader: LineReader, today: date
) -> list[tuple[bool, list[LineText], Any]]:
    """Readings of the band, the likelier orientation first (see the module's contract)."""
    sure = abs(band.page_above - 0.5) >= SURE_PAGE_SIDE
    if not sure:
        lines, turned = _orient(band, reader)
        texts = reader.read_lines(lines)
        return [(turned, texts, _parse_best(texts, today))]
    turned = band.page_above < 0.5
    first = flip_lines(band.lines) if turned else band.lines
    texts = reader.read_lines(first)
    parsed = _parse_best(texts, today)
    if _good(parsed):
        return [(turned, texts, parsed)]
    other = band.lines if turned else flip_lines(band.lines)
    texts2 = reader.read_lines(other)
    parsed2 = _parse_best(texts2, today)
    tries = [(turned, texts, parsed), (not turned, texts2, parsed2)]

    def rank(x: tuple[bool, list[LineText], Any]) -> tuple[int, float]:
        p = x[2]
        if p is None:
            return (10**6, 0.0)
        bad = sum(c.state == "invalid" for c in p[0].checks) + len(p[0].class_errors)
        return (bad, -float(np.mean([c for t in p[1] for c in t.confidences] or [0.0])))

    return sorted(tries, key=rank)


def _variants(text: str, want: int) -> list[tuple[str, str]]:
    """``text`` brought to ``want`` characters by adding or removing ``<`` in one ``<`` run."""
    d = want - len(text)
    if d == 0:
        return [(text, "")]
    if abs(d) > MAX_LENGTH_REPAIR:
        return []
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
    out = []
    for a, b in runs:
        if d > 0:
            out.append((text[:b] + "<" * d + text[b:], f"added {d} '<' at column {b + 1}"))
        elif b - a >= -d:
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


def _parse_best(
    texts: list[LineText], today: date
) -> tuple[MrzReading, list[LineText], list[dict[str, Any]]] | None:
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


def _parse_window(
    texts: list[LineText], today: date
) -> tuple[MrzReading, list[LineText], list[dict[str, Any]]] | None:
    want = _expected_length(texts)
    if want is None:
        return None
    per_line = [_variants(t.text, want) for t in texts]
    if any(not v for v in per_line):
        return None
    best: tuple[tuple[int, int, int], MrzReading, list[dict[str, Any]]] | None = None
    combos = [[]]  # type: list[list[tuple[int, str, str]]]
    for li, vs in enumerate(per_line):
        combos = [[*c, (li, v, note)] for c in combos for v, note in vs[:6]]
    for combo in combos[:64]:
        lines = [v for _, v, _ in combo]
        alts = {
            (li, ci): "".join(sorted(a))
            for li, (t, (_, v, _)) in enumerate(zip(texts, combo, strict=True))
            if v == t.text
            for ci, a in enumerate(t.alternatives)
            if a
        }
        try:
            r = parse_mrz(lines, today=today, alternatives=alts)
        except MrzFormatError:
            continue
        bad = sum(c.state == "invalid" for c in r.checks) + len(r.class_errors)
        repairs = [{"line": li + 1, "repair": note} for li, _, note in combo if note]
        key = (bad, len(repairs), len(r.corrections))
        if best is None or key < best[0]:
            best = (key, r, repairs)
    if best is None:
        return None
    _, reading, repairs = best
    # confidences aligned to the repaired lines: inserted filler gets 0 (unknown)
    aligned = []
    for t, line in zip(texts, reading.lines_read, strict=True):
        if t.text == line:
            aligned.append(t)
            continue
        # a repaired line: characters kept where the text is unchanged up to the repair,
        # inserted filler gets 0 (not read)
        conf: list[float] = []
        char_alts: list[dict[str, float]] = []
        for i, c in enumerate(line):
            if i < len(t.text) and t.text[i] == c and line[:i] == t.text[:i]:
                conf.append(t.confidences[i])
                char_alts.append(t.alternatives[i] if i < len(t.alternatives) else {})
            else:
                j = i - (len(line) - len(t.text))
                same_tail = 0 <= j < len(t.text) and line[i:] == t.text[j:]
                conf.append(t.confidences[j] if same_tail else 0.0)
                char_alts.append(t.alternatives[j] if same_tail and j < len(t.alternatives) else {})
        aligned.append(LineText(line, tuple(conf), tuple(char_alts)))
    return reading, aligned, repairs


def _class_confidence(line: LineText, i: int, cls: str) -> float:
    """The character's probability among the characters its position allows (a sex field read
    ``X`` at 0.46 with ``K`` at 0.5 is sure: ``K`` is not a sex)."""
    p = line.confidences[i]
    if i >= len(line.alternatives):
        return p
    rivals = sum(v for c, v in line.alternatives[i].items() if fits(c, cls))
    return p / (p + rivals) if p + rivals > 0 else 0.0


def _uncertain(reading: MrzReading, aligned: list[LineText]) -> list[dict[str, Any]]:
    """Characters the check digits cannot vouch for and the OCR was not sure of:

    - outside every check digit's cover, read with a probability below
      :data:`MIN_CHAR_CONFIDENCE` among the characters the position allows;
    - anywhere, where a character the OCR found plausible (at least :data:`MIN_RIVAL_SHARE` of
      the probability the position's allowed characters got) would leave every check digit
      holding: some look-alikes have the same check value (G and 6, S and 8, O and 4 differ by
      10), so the check digits cannot tell them apart."""
    fmt = reading.format
    grid = class_map(LAYOUTS[fmt])
    uncovered = _uncovered(reading)
    corrected = {(c.line, c.column) for c in reading.corrections}
    holds = checks_hold(reading.lines, fmt)
    out = []
    for li, line in enumerate(aligned):
        for ci in range(len(reading.lines[li])):
            cls = grid[li][ci]
            conf = _class_confidence(line, ci, cls)
            why = None
            if (li, ci) in uncovered and conf < MIN_CHAR_CONFIDENCE:
                why = "low_confidence"
            elif holds and (li, ci) not in corrected and ci < len(line.alternatives):
                p = line.confidences[ci]
                fitting = {c: v for c, v in line.alternatives[ci].items() if fits(c, cls)}
                total = p + sum(fitting.values())
                for alt, v in fitting.items():
                    if total <= 0 or v / total < MIN_RIVAL_SHARE:
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
    return out


def _uncovered(reading: MrzReading) -> set[tuple[int, int]]:
    """Positions no check digit covers."""
    lay = LAYOUTS[reading.format]
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
) -> DocumentReading:
    """Read the MRZ of a document photo (see the module's contract). Raises
    :class:`DocumentError` (``document.no_mrz``) when no MRZ can be read, and the intake's
    ``probe.*`` errors for a file that is not a usable image."""
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
    found = None
    found_texts: list[LineText] = []
    disagree: list[dict[str, Any]] = []
    for band in bands:
        for turned, texts, parsed in _read_band(band, reader, today):
            if parsed is not None:
                found = (band, turned, parsed)
                found_texts = texts
                break
        if found is not None:
            if not found[2][0].checks_valid and band.strip is not None:
                # a second look, the lines cut with a wider margin, where the first did not hold
                again = split_lines(band.strip, SECOND_MARGIN)
                if len(again) == len(band.lines):
                    lines = flip_lines(again) if found[1] else again
                    texts = reader.read_lines(lines)
                    parsed = _parse_best(texts, today)
                    if parsed is not None and _better(parsed, found[2]):
                        # doubts of the first look stay doubts
                        disagree = _disagreements(parsed[0], found[2][0]) + _uncertain(
                            *found[2][:2]
                        )
                        found, found_texts = (band, found[1], parsed), texts
            break
    timings["ocr"] = (time.perf_counter() - t) * 1000
    if found is None:
        raise DocumentError(
            "no machine-readable zone could be read: photograph the whole data page, flat, "
            "in even light, with the two or three lines of <<< characters sharp",
            code="document.no_mrz",
            bands_found=len(bands),
        )
    band, turned, (reading, aligned, repairs) = found
    # corners in reading order: top-left, top-right, bottom-right, bottom-left of upright text
    corners = np.roll(band.corners, -2, axis=0) if turned else band.corners
    conf = [list(x.confidences) for x in aligned]
    flat = [c for row in conf for c in row]
    uncertain = _uncertain(reading, aligned)
    seen = {(u["line"], u["column"]) for u in uncertain}
    uncertain += [d for d in disagree if (d["line"], d["column"]) not in seen]
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
        length_repairs=repairs,
        ocr_lines=[t.text for t in found_texts],
    )
