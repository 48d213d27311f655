"""Telling look-alikes apart by their shape in OCR-B.

ICAO check digits weigh a character's value modulo 10, so ``G`` (16) and ``6``, ``U`` (30) and
``0``, ``S`` (28) and ``8``, ``L`` (21) and ``1``, ``Q`` (26) and ``G`` have the same check: no
check digit can tell a swap between them. Where the OCR hesitates between two such characters
(or one check digit alone chose between twins such as ``1``/``I``), this module looks at the
character itself and compares it with both glyphs of OCR-B, the typeface ICAO 9303 prescribes
for every MRZ (ISO 1073-2).

Contract, in order:

1. The characters are cut from the line image around the x the OCR gave for each, after
   measuring how far the OCR's positions run behind the print; a character is the one
   character-sized ink blob there, or nothing (:func:`cut_characters`).
2. Each candidate's glyph is rendered from the OCR-B font (Debian ``fonts-ocr-b``) once, scaled
   to a few heights near the cut's (a blurred character's blob is taller than its ink),
   blurred a few ways, and slid over the cut; its score is the best normalised correlation
   (:meth:`GlyphJudge.scores`).
3. A candidate wins only by :data:`MARGIN` or more of correlation over the other
   (:meth:`GlyphJudge.verdict`); else the verdict is ``None`` and the character stays
   uncertain. Only the pairs in :data:`PAIRS` are judged: those where the wrong glyph never led
   by more than a small fraction of the margin on the development photos.

Without the font, no judge is made (:func:`default_judge` returns ``None``) and such characters
stay uncertain. The typeface a state prints its MRZ in is OCR-B, but printers and engraving
differ from the font file; a verdict is one more piece of evidence, asked for only where the
OCR itself found both characters plausible.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

Gray = NDArray[np.uint8]

OCRB_PATHS = (
    Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf"),
    Path("/usr/share/fonts/truetype/ocr-b/OCRB.ttf"),
)
#: Look-alike pairs the judge is asked about: those the check digits cannot tell apart (values
#: equal modulo 10: G/6, S/8, L/1, U/0, O/4, Q/G) and the twins a check digit may choose between
#: (1/I, 5/S, 8/B, 2/Z, D/0). Not 0/O: on development photos the judge preferred the wrong one
#: of the two by up to 0.085, more than :data:`MARGIN` (in OCR-B they differ only in width,
#: which blur and perspective change as much).
PAIRS = frozenset(
    frozenset(p)
    for p in (
        ("G", "6"),
        ("S", "8"),
        ("L", "1"),
        ("U", "0"),
        ("O", "4"),
        ("Q", "G"),
        ("1", "I"),
        ("5", "S"),
        ("8", "B"),
        ("2", "Z"),
        ("D", "0"),
    )
)
#: Each character's look-alikes among :data:`PAIRS`.
PARTNERS: dict[str, tuple[str, ...]] = {
    c: tuple(sorted(o for p in PAIRS if c in p for o in p if o != c))
    for c in sorted({c for p in PAIRS for c in p})
}
#: Look-alikes the check digits cannot tell apart (values equal modulo 10), by character.
BLIND: dict[str, tuple[str, ...]] = {
    "G": ("6", "Q"),
    "6": ("G",),
    "Q": ("G",),
    "S": ("8",),
    "8": ("S",),
    "L": ("1",),
    "1": ("L",),
    "U": ("0",),
    "0": ("U",),
    "O": ("4",),
    "4": ("O",),
}
#: Correlation a glyph must lead the other by to win. On development photos (``--seed 1``, the
#: first 250 documents: every character the OCR read right, cut and judged against its pair,
#: 13,077 judgements), the wrong glyph of these pairs never led by more than 0.008 (0 against
#: D; G against 6 it never led at all, the right one leading by 0.055 or more): a wrong
#: verdict would need seven times that. (That measurement's script is not in the
#: repository; the benchmark's seeds 7, 11 and 13 since showed no wrong reading called valid.)
MARGIN = 0.06
#: Height the glyphs are rendered at before being scaled to a cut character's.
GLYPH_HEIGHT = 120
#: Blurs (Gaussian sigma, px) a glyph is tried at, to meet the photo's own.
BLURS = (0.0, 0.8, 1.6)
#: Border around a cut character, so that a glyph can slide over it.
PAD = 3
#: A cut character's blob lies within this share of the pitch of where the OCR saw it.
MAX_SHIFT = 0.3


def ocrb_font_path() -> Path | None:
    """The OCR-B font file, or ``None`` where it is not installed."""
    return next((p for p in OCRB_PATHS if p.is_file()), None)


@dataclass(frozen=True)
class Verdict:
    """Correlation of the cut with each candidate's glyph, and the winner (``None`` when no
    candidate leads by :data:`MARGIN`)."""

    scores: dict[str, float]
    winner: str | None

    def to_dict(self) -> dict[str, object]:
        return {"scores": {k: round(v, 3) for k, v in self.scores.items()}, "winner": self.winner}


def _ncc(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else 0.0


def _ink(line: Gray) -> Gray:
    """The line's ink as bright on dark (its faintest 5 % taken as paper)."""
    ink = 255 - line.astype(np.int16)
    return np.clip(ink - np.percentile(ink, 5), 0, 255).astype(np.uint8)


def cut_characters(line: Gray, positions: tuple[float, ...]) -> list[NDArray[np.float32] | None]:
    """Each character's ink, cut from a line image (dark print on light) around the x the OCR
    gave for it (``positions``; a negative x is a character the OCR did not see), as
    ink-is-bright floats cropped to its blob; ``None`` where no single blob can be said to be
    that character.

    A recogniser's positions run a little behind the print (a CTC model names a character once
    it has seen most of it), so the offset is measured first: the median distance from each
    position to the nearest character-sized blob. A character then is the one blob of
    character size within :data:`MAX_SHIFT` of the character pitch of its shifted position;
    two or none there (touching or broken print, a neighbour) give ``None``."""
    out: list[NDArray[np.float32] | None] = [None] * len(positions)
    pos = np.array(positions, dtype=np.float64)
    seen = pos >= 0
    if seen.sum() < 3:
        return out
    pitch = float(np.median(np.diff(pos[seen])))
    if pitch <= 0:
        return out
    ink8 = _ink(line)
    _t, bw = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, _lab, st, ce = cv2.connectedComponentsWithStats(bw, connectivity=8)
    if n <= 1:
        return out
    heights = st[1:, cv2.CC_STAT_HEIGHT]
    tall = heights[heights >= 0.3 * line.shape[0]]
    if len(tall) == 0:
        return out
    ch = float(np.median(tall))
    blobs = [
        i
        for i in range(1, n)
        if 0.75 * ch <= st[i, cv2.CC_STAT_HEIGHT] <= 1.3 * ch
        and st[i, cv2.CC_STAT_WIDTH] <= 1.1 * pitch
    ]
    if not blobs:
        return out
    cx = np.array([ce[i][0] for i in blobs])
    near = [float(cx[np.argmin(np.abs(cx - x))] - x) for x in pos[seen]]
    near = [d for d in near if abs(d) < 0.6 * pitch]
    if len(near) < 3:
        return out
    offset = float(np.median(near))
    for k, x in enumerate(pos):
        if x < 0:
            continue
        hit = np.nonzero(np.abs(cx - (x + offset)) <= MAX_SHIFT * pitch)[0]
        if len(hit) != 1:
            continue
        b = blobs[int(hit[0])]
        left, top = st[b, cv2.CC_STAT_LEFT], st[b, cv2.CC_STAT_TOP]
        w, h = st[b, cv2.CC_STAT_WIDTH], st[b, cv2.CC_STAT_HEIGHT]
        y0, y1 = max(0, top - 1), min(line.shape[0], top + h + 1)
        x0, x1 = max(0, left - 1), min(line.shape[1], left + w + 1)
        out[k] = ink8[y0:y1, x0:x1].astype(np.float32)
    return out


class GlyphJudge:
    """OCR-B glyphs, rendered lazily once per character, compared with cut characters."""

    def __init__(self, font: Path) -> None:
        self._font = font
        self._lock = threading.Lock()
        self._glyphs: dict[str, NDArray[np.float32]] = {}
        self._scaled: dict[tuple[str, int], list[NDArray[np.float32]]] = {}

    def _glyph(self, c: str) -> NDArray[np.float32]:
        """The character's glyph, ink bright on dark, cropped to its ink, 120 px tall."""
        with self._lock:
            if c not in self._glyphs:
                from PIL import Image, ImageDraw, ImageFont

                font = ImageFont.truetype(str(self._font), 160)
                im = Image.new("L", (300, 300), 0)
                ImageDraw.Draw(im).text((50, 30), c, font=font, fill=255)
                a = np.asarray(im, dtype=np.float32)
                ys, xs = np.nonzero(a > 127)
                g = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
                w = max(1, round(g.shape[1] * GLYPH_HEIGHT / g.shape[0]))
                self._glyphs[c] = np.asarray(
                    cv2.resize(g, (w, GLYPH_HEIGHT), interpolation=cv2.INTER_AREA), np.float32
                )
            return self._glyphs[c]

    def scores(self, cut: NDArray[np.float32], chars: tuple[str, ...]) -> dict[str, float]:
        """Each character's best normalised correlation with the cut: its glyph at a few heights
        (a blurred character's blob is taller than its ink) and blurs, slid over the cut."""
        h = cut.shape[0]
        img = cv2.copyMakeBorder(
            np.asarray(cut, np.float32), PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=0.0
        )
        out = {}
        for c in chars:
            best = -1.0
            for th in range(max(6, h - 7), h - 1):
                for t in self._templates(c, th):
                    if t.shape[0] > img.shape[0] or t.shape[1] > img.shape[1]:
                        break
                    r = cv2.matchTemplate(img, t, cv2.TM_CCOEFF_NORMED)
                    best = max(best, float(r.max()))
            out[c] = best
        return out

    def _templates(self, c: str, height: int) -> list[NDArray[np.float32]]:
        """The glyph at ``height`` px of ink, with a 2 px border, at each of :data:`BLURS`
        (kept: a document's characters share a few heights)."""
        key = (c, height)
        got = self._scaled.get(key)
        if got is None:
            g = self._glyph(c)
            tw = max(2, round(g.shape[1] * height / g.shape[0]))
            t = cv2.resize(g, (tw, height), interpolation=cv2.INTER_AREA)
            t = cv2.copyMakeBorder(t, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0.0)
            got = [
                np.asarray(cv2.GaussianBlur(t, (0, 0), s) if s > 0 else t, np.float32)
                for s in BLURS
            ]
            with self._lock:
                self._scaled[key] = got
        return got

    def verdict(self, cut: NDArray[np.float32], chars: tuple[str, str]) -> Verdict:
        """Which of two look-alikes the cut character is (``winner`` ``None``: neither leads
        by :data:`MARGIN`)."""
        s = self.scores(cut, chars)
        a, b = chars
        winner = a if s[a] - s[b] >= MARGIN else (b if s[b] - s[a] >= MARGIN else None)
        return Verdict(s, winner)


_default: GlyphJudge | None = None
_default_lock = threading.Lock()


def default_judge() -> GlyphJudge | None:
    """One judge per process, or ``None`` where the OCR-B font is not installed."""
    global _default
    with _default_lock:
        if _default is None:
            font = ocrb_font_path()
            if font is None:
                return None
            _default = GlyphJudge(font)
        return _default
