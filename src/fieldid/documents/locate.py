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
3. A candidate's rectangle (with a margin) is warped to a horizontal strip at full resolution
   and flattened (each pixel over the brightest near it: glare and shadow across the band level
   out).
   Its rows are split into text lines by the horizontal projection of the binarised strip.
4. Each line is straightened on its own: a line through its character centroids gives its slant
   (this absorbs perspective, where the lines of one band are not parallel), and it is cropped to
   its characters' extent with a margin proportional to the character height.
5. Whether the band is upright or upside down (a photo may be turned any way) is left to the
   reader, which tries both (:func:`flip_lines`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Gray = NDArray[np.uint8]

WORK_SIDE = 800
MIN_ASPECT = 4.0
MIN_LENGTH_SHARE = 0.2
MAX_CANDIDATES = 4


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


def candidates(gray: Gray) -> list[tuple[cv2.typing.RotatedRect, float]]:
    """Candidate band rectangles at :data:`WORK_SIDE` scale, best first, with the scale used."""
    h, w = gray.shape
    s = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else gray
    bh = cv2.morphologyEx(
        small, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (25, 25))
    )
    bh = cv2.GaussianBlur(bh, (3, 3), 0)
    t, _ = cv2.threshold(bh, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    strong = float(np.percentile(bh, 99.5))
    _, bw = cv2.threshold(bh, max(t, 12.0, 0.35 * strong), 255, cv2.THRESH_BINARY)
    short = min(small.shape)
    found: list[tuple[cv2.typing.RotatedRect, float]] = []
    for k in (5, 9, 13, 19):
        closed = cv2.morphologyEx(
            bw, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        )
        closed = cv2.morphologyEx(
            closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        )
        contours, _ = cv2.findContours(closed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for c in contours:
            if len(c) < 5:
                continue
            rect = cv2.minAreaRect(c)
            (cx, cy), (rw, rh), ang = rect
            long_, short_ = max(rw, rh), min(rw, rh)
            if short_ < 4 or long_ < MIN_LENGTH_SHARE * short or long_ / short_ < MIN_ASPECT:
                continue
            fill = cv2.contourArea(c) / (rw * rh)
            if fill < 0.55:
                continue
            found.append((((cx / s, cy / s), (rw / s, rh / s), ang), long_ * fill))
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


def _strip(gray: Gray, rect: cv2.typing.RotatedRect) -> tuple[Gray, NDArray[np.float32], float]:
    """Warp the rectangle (plus a margin) to a horizontal strip; return it, its corners in the
    photo, and the angle of its long axis."""
    (cx, cy), (rw, rh), ang = rect
    if rw < rh:
        rw, rh, ang = rh, rw, ang + 90.0
    mw, mh = rw + 1.0 * rh / 3 + 10, rh * 1.5 + 12
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


def split_lines(strip: Gray) -> list[Gray]:
    """The strip's text lines, each straightened and cropped (see the module's contract)."""
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
    prof = np.zeros(H, np.float32)
    for i in ok:
        y, hh = stats[i, cv2.CC_STAT_TOP], stats[i, cv2.CC_STAT_HEIGHT]
        prof[y : y + hh] += stats[i, cv2.CC_STAT_WIDTH]
    rows = _runs(prof > 0.08 * W)
    rows = [(a, b) for a, b in rows if b - a >= 0.5 * ch]
    lines: list[Gray] = []
    for a, b in rows:
        members = [i for i in ok if a <= cents[i][1] < b]
        if len(members) < 8:
            continue
        xs = np.array([cents[i][0] for i in members])
        bottoms = np.array(
            [stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in members]
        )
        tops = np.array([stats[i, cv2.CC_STAT_TOP] for i in members])
        mid = (tops + bottoms) / 2.0
        slope, icpt = np.polyfit(xs, mid, 1) if np.ptp(xs) > 0 else (0.0, float(mid.mean()))
        lh = float(np.median(bottoms - tops))
        x0 = max(0, int(xs.min() - 1.2 * lh))
        x1 = min(W, int(xs.max() + 1.2 * lh))
        # straighten: shear rows so the centre line is horizontal, then crop
        half = 1.2 * lh
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
        lines.append(
            _u8(
                cv2.warpAffine(
                    strip,
                    A,
                    (out_w, out_h),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                )
            )
        )
    return lines


def flip_lines(lines: list[Gray]) -> list[Gray]:
    """The same band turned 180°: the lines in reverse order, each rotated."""
    return [_u8(cv2.rotate(x, cv2.ROTATE_180)) for x in reversed(lines)]


def find_bands(rgb: NDArray[np.uint8]) -> list[Band]:
    """Candidate MRZ bands in the photo, best first, each cut into lines."""
    gray = _to_gray(rgb)
    out = []
    for rect, score in candidates(gray):
        strip, corners, ang = _strip(gray, rect)
        lines = split_lines(flatten(strip))
        if 2 <= len(lines) <= 3:
            out.append(Band(corners, score, lines, ang, page_above(gray, corners)))
    return out
