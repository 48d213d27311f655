"""Finding the MRZ band in a photo and cutting it into upright, rectified text lines.

Contract, in order (all on a grayscale copy at most :data:`WORK_SIDE` px on its longest side):

1. Dark strokes on a lighter ground are brought out with a black-hat filter (this also flattens
   glare and uneven light), binarised with Otsu's threshold, and closed with round kernels of a
   few sizes: the characters of an MRZ line merge into a bar and its lines into a block. A
   square kernel (fast, and near enough to round) makes this work at any rotation.
2. Each closed blob's minimum-area rectangle is a candidate when it is long and thin (long side at
   least :data:`MIN_ASPECT` times the short side, at least :data:`MIN_LENGTH_SHARE` of the image's
   shorter side) and its rectangle is mostly filled. Candidates are ranked by length times fill;
   near-duplicates (same centre and angle at another kernel size) are merged.
3. A candidate's rectangle (with a margin, and tall enough for a whole MRZ when the candidate
   is one of its lines) is warped to a horizontal strip at full resolution
   and flattened (each pixel over the brightest near it: glare and shadow across the band level
   out).
   Its rows are split into text lines by the horizontal projection of the binarised strip;
   lines much shorter than the longest, or in smaller print, are not MRZ and are dropped.
4. Each line is straightened on its own: a line through its character centroids gives its slant
   (this absorbs perspective, where the lines of one band are not parallel), and it is cropped to
   its characters' extent with a margin proportional to the character height.
5. Whether the band is upright or upside down (a photo may be turned any way) is left to the
   reader, which tries both (:func:`flip_lines`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Gray = NDArray[np.uint8]

WORK_SIDE = 800
MIN_ASPECT = 4.0
MIN_LENGTH_SHARE = 0.2
MAX_CANDIDATES = 4
#: A text line in a band shorter than this share of its longest line is not MRZ.
MIN_LINE_SHARE = 0.8
#: A candidate thinner than this share of its length is one MRZ line (two lines: 0.06 and more).
ONE_LINE = 0.045
#: Pieces of one band (:func:`merge_collinear`): angle within this many degrees, centres within
#: this share of the thicker piece's width across the band, a gap shorter than this share of
#: their summed lengths.
MERGE_ANGLE = 4.0
MERGE_ACROSS = 0.6
MERGE_GAP = 0.5


@dataclass(frozen=True)
class Band:
    """A candidate MRZ band: its corners in the photo (full-resolution pixels), its score, and
    the rectified lines cut from it (upright or upside down, not yet known)."""

    corners: NDArray[np.float32]
    score: float
    lines: list[Gray]
    angle: float
    #: Share of the print around the band that lies on its top side as cut (the data page is
    #: above its MRZ): above 0.5, the lines are probably upright as cut.
    page_above: float = 0.5
    #: The flattened strip the lines were cut from (to cut them again with another margin).
    strip: Gray | None = None


def _u8(x: object) -> Gray:
    return np.asarray(x, dtype=np.uint8)


def _to_gray(rgb: NDArray[np.uint8]) -> Gray:
    return _u8(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)) if rgb.ndim == 3 else rgb


def flatten(gray: Gray) -> Gray:
    """Each pixel over its neighbourhood's brightest (the paper there): inside a band, glare,
    shadow and low light become the same white paper and the text keeps its contrast."""
    k = max(15, (gray.shape[0] // 3) | 1)
    paper = cv2.dilate(gray, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    paper = cv2.blur(paper, (k, k))
    return _u8(cv2.divide(gray, np.maximum(paper, 1), scale=255))


def _row_sharpness(d: NDArray[np.float64], step: float) -> float:
    """How sharply positions ``d`` stack into rows of ``step``, beyond chance."""
    counts = np.bincount(((d - d.min()) / step).astype(np.int64)).astype(np.float64)
    n, rows = counts.sum(), len(counts)
    return float((counts**2).sum() - n * n / rows - n)


def text_angle(bw: Gray) -> float:
    """The direction of the print's lines, in degrees (0 to 180, clockwise from the x axis as
    images are drawn): the angle at which the centres of character-sized blobs stack into the
    sharpest rows (the largest sum of squared counts per row, beyond chance)."""
    _n, _labels, stats, cents = cv2.connectedComponentsWithStats(bw, connectivity=8)
    keep = (
        (stats[1:, cv2.CC_STAT_HEIGHT] >= 2)
        & (stats[1:, cv2.CC_STAT_HEIGHT] <= 40)
        & (stats[1:, cv2.CC_STAT_WIDTH] <= 40)
        & (stats[1:, cv2.CC_STAT_AREA] >= 8)
    )
    pts = cents[1:][keep]
    if len(pts) < 10:
        return 0.0

    def sharpness(deg: float) -> float:
        # in excess of what as many blobs strewn evenly over as many rows would give (noise
        # spread over a longer projection scores less, and must not win for that)
        r = math.radians(deg)
        return _row_sharpness(pts @ np.array([-math.sin(r), math.cos(r)]), 3.0)

    coarse = max(np.arange(0.0, 180.0, 2.0), key=sharpness)
    fine = max(np.arange(coarse - 2.0, coarse + 2.01, 0.5), key=sharpness)
    return float(fine % 180.0)


#: Ways of bringing out print when the plain black-hat finds no band (:func:`find_bands` with
#: ``hard=True``): the plain way, only pieces of a band joined (glare across it), smoothing the
#: noise of low light first, and local contrast (CLAHE) for glare and shadow, then both.
HARD_PREPS = ("joined", "denoise", "clahe", "clahe_denoise")


def _prepare(small: Gray, prep: str) -> Gray:
    if "clahe" in prep:
        small = _u8(cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(small))
    if "denoise" in prep:
        small = _u8(cv2.GaussianBlur(small, (0, 0), 1.2))
    return small


def _axis(rect: cv2.typing.RotatedRect) -> tuple[NDArray[np.float64], float, float, float]:
    """A rectangle's centre, long side, short side and long axis angle (degrees, 0 to 180)."""
    (cx, cy), (rw, rh), ang = rect
    if rw < rh:
        rw, rh, ang = rh, rw, ang + 90.0
    return np.array([cx, cy], dtype=np.float64), float(rw), float(rh), float(ang % 180.0)


def merge_collinear(
    found: list[tuple[cv2.typing.RotatedRect, float]],
) -> list[tuple[cv2.typing.RotatedRect, float]]:
    """Blocks that are pieces of one band (glare across an MRZ washes out its middle, and the
    closing then finds the two ends apart), joined: two blocks at the same angle (within
    :data:`MERGE_ANGLE` degrees), on one line (their centres no further apart across it than
    :data:`MERGE_ACROSS` of the thicker one's width) and with a gap between them shorter than
    :data:`MERGE_GAP` of their summed lengths. The joined rectangle scores the sum of the two."""
    out: list[tuple[cv2.typing.RotatedRect, float]] = []
    axes = [_axis(r) for r, _ in found]
    for a in range(len(found)):
        ca, la, wa, ta = axes[a]
        for b in range(a + 1, len(found)):
            cb, lb, wb, tb = axes[b]
            dt = abs(ta - tb) % 180.0
            if min(dt, 180.0 - dt) > MERGE_ANGLE or not 0.4 <= wa / max(wb, 1e-6) <= 2.5:
                continue
            r = math.radians(ta)
            u = np.array([math.cos(r), math.sin(r)])
            d = cb - ca
            across = abs(float(d @ np.array([-u[1], u[0]])))
            gap = abs(float(d @ u)) - (la + lb) / 2
            if across > MERGE_ACROSS * max(wa, wb) or not 0 < gap < MERGE_GAP * (la + lb):
                continue
            pts = np.concatenate([cv2.boxPoints(found[a][0]), cv2.boxPoints(found[b][0])])
            out.append((cv2.minAreaRect(pts.astype(np.float32)), found[a][1] + found[b][1]))
    return out


def candidates(
    gray: Gray, prep: str = "plain", *, merge: bool = False
) -> list[tuple[cv2.typing.RotatedRect, float]]:
    """Candidate band rectangles at :data:`WORK_SIDE` scale, best first, with the scale used.
    ``prep`` names how the image is prepared first (``plain``, or one of :data:`HARD_PREPS`:
    ``joined`` is the plain way with only pieces of one band joined as candidates); ``merge``
    adds pieces of one band joined (:func:`merge_collinear`)."""
    h, w = gray.shape
    s = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
    small = _prepare(_u8(small), prep)
    bh = cv2.morphologyEx(
        small, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (25, 25))
    )
    bh = cv2.GaussianBlur(bh, (3, 3), 0)
    t, _ = cv2.threshold(bh, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    strong = float(np.percentile(bh, 99.5))
    bw = _u8(cv2.threshold(bh, max(t, 12.0, 0.35 * strong), 255, cv2.THRESH_BINARY)[1])
    short = min(small.shape)
    found: list[tuple[cv2.typing.RotatedRect, float]] = []
    # as photographed, and turned so that the print is level (square kernels merge characters
    # into lines cleanly when the lines run along an axis; a diagonal band merges with what is
    # next to it)
    theta = text_angle(bw)
    for turn in (0.0, theta) if min(theta % 90.0, 90.0 - theta % 90.0) > 4.0 else (0.0,):
        found += _blocks(bw, turn, short, s)
    if prep == "joined":
        found = merge_collinear(found)
    elif merge:
        found += merge_collinear(found)
    found.sort(key=lambda x: -x[1])
    kept: list[tuple[cv2.typing.RotatedRect, float]] = []
    for rect, score in found:
        (cx, cy), (rw, rh), _ = rect
        dup = False
        for (kx, ky), (kw, kh), _ in (k for k, _ in kept):
            if math.hypot(cx - kx, cy - ky) < 0.25 * max(kw, kh, rw, rh):
                dup = True
                break
        if not dup:
            kept.append((rect, score))
        if len(kept) >= MAX_CANDIDATES:
            break
    return kept


def _blocks(
    bw: Gray, turn: float, short: int, s: float
) -> list[tuple[cv2.typing.RotatedRect, float]]:
    """Long, thin, well-filled blocks of print in ``bw`` turned by ``turn`` degrees, as
    rectangles in the photo's full-resolution coordinates (``s``: the working scale)."""
    H0, W0 = bw.shape
    rad = math.radians(turn)
    c, sn = abs(math.cos(rad)), abs(math.sin(rad))
    nw, nh = round(W0 * c + H0 * sn), round(W0 * sn + H0 * c)
    M = cv2.getRotationMatrix2D((W0 / 2, H0 / 2), turn, 1.0)
    M[0, 2] += nw / 2 - W0 / 2
    M[1, 2] += nh / 2 - H0 / 2
    level = cv2.warpAffine(bw, M, (nw, nh), flags=cv2.INTER_NEAREST) if turn else bw
    back = cv2.invertAffineTransform(M)
    found: list[tuple[cv2.typing.RotatedRect, float]] = []
    for k in (5, 9, 13, 19):
        closed = cv2.morphologyEx(
            level, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        )
        closed = cv2.morphologyEx(
            closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        )
        contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for cont in contours:
            if len(cont) < 5:
                continue
            rect = cv2.minAreaRect(cont)
            (_cx, _cy), (rw, rh), _ang = rect
            long_, short_ = max(rw, rh), min(rw, rh)
            if short_ < 4 or long_ < MIN_LENGTH_SHARE * short or long_ / short_ < MIN_ASPECT:
                continue
            fill = cv2.contourArea(cont) / (rw * rh)
            if fill < 0.55:
                continue
            pts = cv2.transform(cv2.boxPoints(rect)[None, :, :], back)[0] / s
            found.append((cv2.minAreaRect(pts.astype(np.float32)), long_ * fill))
    return found


def _strip(gray: Gray, rect: cv2.typing.RotatedRect) -> tuple[Gray, NDArray[np.float32], float]:
    """Warp the rectangle (plus a margin) to a horizontal strip; return it, its corners in the
    photo, and the angle of its long axis."""
    (cx, cy), (rw, rh), ang = rect
    if rw < rh:
        rw, rh, ang = rh, rw, ang + 90.0
    # a candidate this thin is one line of an MRZ whose lines did not merge: make the strip tall
    # enough for the whole MRZ (TD1: 0.15 of its length), the lines above and below included
    mw, mh = rw + 1.0 * rh / 3 + 10, rh * 1.5 + 12
    if rh < ONE_LINE * rw:
        mh = max(mh, 0.3 * rw)
    rad = math.radians(ang)
    u = np.array([math.cos(rad), math.sin(rad)])
    v = np.array([-math.sin(rad), math.cos(rad)])
    c = np.array([cx, cy])
    corners = np.array(
        [
            c - u * mw / 2 - v * mh / 2,
            c + u * mw / 2 - v * mh / 2,
            c + u * mw / 2 + v * mh / 2,
            c - u * mw / 2 + v * mh / 2,
        ],
        dtype=np.float32,
    )
    W, H = round(mw), round(mh)
    dst = np.array([[0, 0], [W, 0], [W, H], [0, H]], dtype=np.float32)
    M = cv2.getPerspectiveTransform(corners, dst)
    strip = cv2.warpPerspective(
        gray, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return _u8(strip), corners, ang


def page_above(gray: Gray, corners: NDArray[np.float32]) -> float:
    """Share of the print within three band heights of the band that lies on its top side."""
    tl, tr, _br, bl = (np.asarray(c, dtype=np.float64) for c in corners)
    height = float(np.linalg.norm(bl - tl))
    v = (bl - tl) / max(height, 1e-6)
    s = 0.25
    w, h = max(8, round(float(np.linalg.norm(tr - tl)) * s)), max(8, round(7 * height * s))
    origin = tl - 3 * height * v
    src = np.array([origin, origin + (tr - tl), origin + 7 * height * v], dtype=np.float32)
    dst = np.array([[0, 0], [w, 0], [0, h]], dtype=np.float32)
    area = cv2.warpAffine(
        gray,
        cv2.getAffineTransform(src, dst),
        (w, h),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )
    bh = cv2.morphologyEx(
        area, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    )
    strong = float(np.percentile(bh, 99))
    ink = bh > max(12.0, 0.4 * strong)
    third = h * 3 // 7
    top, bottom = float(ink[:third].mean()), float(ink[h - third :].mean())
    return 0.5 if top + bottom == 0 else top / (top + bottom)


def _binary(strip: Gray) -> Gray:
    k = max(15, (strip.shape[0] // 4) | 1)
    bh = cv2.morphologyEx(
        strip, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    )
    _, bw = cv2.threshold(bh, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return _u8(bw)


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out


def split_lines(strip: Gray, margin: float = 0.9) -> list[Gray]:
    """The strip's text lines, each straightened and cropped to ``margin`` character heights
    either side of its centre line (see the module's contract)."""
    bw = _binary(strip)
    n, _labels, stats, cents = cv2.connectedComponentsWithStats(bw, connectivity=8)
    H, W = strip.shape
    # characters: not tiny, not taller than half the strip, not wider than a few characters
    ok = [
        i
        for i in range(1, n)
        if stats[i, cv2.CC_STAT_HEIGHT] >= 4
        and stats[i, cv2.CC_STAT_AREA] >= 6
        and stats[i, cv2.CC_STAT_HEIGHT] < 0.7 * H
        and stats[i, cv2.CC_STAT_WIDTH] < 0.2 * W
    ]
    if len(ok) < 10:
        return []
    heights = np.array([stats[i, cv2.CC_STAT_HEIGHT] for i in ok])
    ch = float(np.median(heights))
    # of about the characters' height (a chevron is a little lower than a letter)
    ok = [i for i in ok if 0.45 * ch <= stats[i, cv2.CC_STAT_HEIGHT] <= 1.6 * ch]
    if len(ok) < 10:
        return []
    # what slant is left (the band's rectangle is rarely exact): the one at which the
    # characters' centres stack into the sharpest rows; rows are found along it
    pts = np.array([cents[i] for i in ok], dtype=np.float64)
    slope = max(
        np.tan(np.radians(np.arange(-6.0, 6.01, 0.5))),
        key=lambda m: _row_sharpness(pts[:, 1] - m * (pts[:, 0] - W / 2), 2.0),
    )
    shift = {i: slope * (cents[i][0] - W / 2) for i in ok}
    pad = int(abs(slope) * W / 2) + 1
    prof = np.zeros(H + 2 * pad, np.float32)
    for i in ok:
        y = round(float(stats[i, cv2.CC_STAT_TOP] - shift[i])) + pad
        prof[max(0, y) : y + stats[i, cv2.CC_STAT_HEIGHT]] += stats[i, cv2.CC_STAT_WIDTH]
    rows = _runs(prof > max(0.08 * W, 0.25 * float(prof.max())))
    rows = [(a - pad, b - pad) for a, b in rows if b - a >= 0.5 * ch]
    found: list[tuple[float, float, Gray]] = []
    for a, b in rows:
        members = [i for i in ok if a <= cents[i][1] - shift[i] < b]
        if len(members) < 8:
            continue
        xs = np.array([cents[i][0] for i in members])
        bottoms = np.array(
            [stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in members]
        )
        tops = np.array([stats[i, cv2.CC_STAT_TOP] for i in members])
        q1, q2, q3 = np.percentile(bottoms - tops, (25, 50, 75))
        if q3 - q1 > 0.6 * q2:
            continue  # blobs of every size: texture or noise, not a line of print
        mid = (tops + bottoms) / 2.0
        slope, icpt = np.polyfit(xs, mid, 1) if np.ptp(xs) > 0 else (0.0, float(mid.mean()))
        lh = float(np.median(bottoms - tops))
        x0 = max(0, int(xs.min() - 1.2 * lh))
        x1 = min(W, int(xs.max() + 1.2 * lh))
        # straighten: shear rows so the centre line is horizontal, then crop
        half = margin * lh
        src = np.array(
            [
                [x0, icpt + slope * x0 - half],
                [x1, icpt + slope * x1 - half],
                [x1, icpt + slope * x1 + half],
            ],
            dtype=np.float32,
        )
        out_w, out_h = x1 - x0, round(2 * half)
        dst = np.array([[0, 0], [out_w, 0], [out_w, out_h]], dtype=np.float32)
        A = cv2.getAffineTransform(src, dst)
        found.append(
            (
                float(np.ptp(xs)),
                lh,
                _u8(
                    cv2.warpAffine(
                        strip,
                        A,
                        (out_w, out_h),
                        flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE,
                    )
                ),
            )
        )
    # print next to the MRZ (fields above it, a number below) is shorter or smaller: keep the
    # lines about as long as the longest, in characters of about its height
    if not found:
        return []
    longest, ref_h, _ = max(found, key=lambda f: f[0])
    return [
        x for e, lh, x in found if e >= MIN_LINE_SHARE * longest and abs(lh - ref_h) <= 0.3 * ref_h
    ]


def flip_lines(lines: list[Gray]) -> list[Gray]:
    """The same band turned 180°: the lines in reverse order, each rotated."""
    return [_u8(cv2.rotate(x, cv2.ROTATE_180)) for x in reversed(lines)]


def find_bands(rgb: NDArray[np.uint8], *, hard: bool = False) -> list[Band]:
    """Candidate MRZ bands in the photo, best first, each cut into lines. ``hard``: the ways
    of :data:`HARD_PREPS` in turn, until one finds a band (for a photo in which the plain way
    found none that could be read; :func:`hard_band_sets` gives each way's bands)."""
    if not hard:
        return _bands(_to_gray(rgb), "plain", merge=False)
    return next(hard_band_sets(rgb), [])


def hard_band_sets(rgb: NDArray[np.uint8]) -> Iterator[list[Band]]:
    """The bands each of :data:`HARD_PREPS` finds, in turn (ways that find none are skipped):
    a reader can stop at the first whose reading holds, rather than at the first that finds a
    band (one way may find only a piece of the band)."""
    gray = _to_gray(rgb)
    for prep in HARD_PREPS:
        out = _bands(gray, prep, merge=True)
        if out:
            yield out


def _bands(gray: Gray, prep: str, *, merge: bool) -> list[Band]:
    out = []
    for rect, score in candidates(gray, prep, merge=merge):
        strip, corners, ang = _strip(gray, rect)
        if "denoise" in prep:
            strip = _u8(cv2.GaussianBlur(strip, (0, 0), 0.7))
        flat = flatten(strip)
        lines = split_lines(flat)
        if 2 <= len(lines) <= 4:
            out.append(Band(corners, score, lines, ang, page_above(gray, corners), flat))
    return out
