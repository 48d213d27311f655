"""The document's portrait, and 1:1 against a live face through the same face pipeline.

Finding the portrait on a data page photo, in order:

1. Where the MRZ was read, the photo is turned upright by the MRZ band (its corners say which
   way the text runs) and the region above the band is cut out: from a tenth of the band's
   length left of it to a tenth right, up to :data:`REGION_ABOVE` band lengths above it. On
   every ICAO data page (TD1 front excepted) the portrait is in that region.
2. Otherwise (a TD1 card's front, which carries no MRZ), the whole photo is tried turned by 0°,
   90°, 180° and 270°, and the first turn with a face is taken.
3. The face pipeline (the same detector, quality measures and embedder as every search) takes
   the region: the face it acquires is the portrait; its quality is the portrait's quality.

Chip portraits (DG2) go through the pipeline as they are.

The score is the same as ``fieldid verify``'s: the cosine of the two templates; the pair's
quality band is the worse of the two; the threshold is the workspace's configured one or the one
the calibration gives for ``verify_target_fmr`` at that band; the FMR at the score comes from
:func:`fieldid.calibration.score_meaning` for a gallery of one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from fieldid.calibration import Calibration, ScoreMeaning, score_meaning
from fieldid.calibration.meaning import OneToOneScore
from fieldid.errors import AcquisitionFailed, FieldidError
from fieldid.pipeline import FacePipeline, Processed
from fieldid.probe import ProbeImage
from fieldid.quality import band_of

#: How far above the MRZ band the portrait region reaches, in band lengths.
REGION_ABOVE = 0.8
DEFAULT_VERIFY_TARGET_FMR = 0.001


def as_probe(rgb: NDArray[np.uint8]) -> ProbeImage:
    """An in-memory image (a crop, a chip portrait) as a probe the pipeline takes."""
    rgb = np.ascontiguousarray(rgb)
    return ProbeImage(
        rgb=rgb,
        format="PNG",
        original_size=(int(rgb.shape[1]), int(rgb.shape[0])),
        orientation_applied=1,
        sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
        byte_size=int(rgb.nbytes),
    )


def region_above_mrz(rgb: NDArray[np.uint8], corners: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The upright region above the MRZ band (corners: TL, TR, BR, BL of the upright text)."""
    tl, tr, _br, bl = (np.asarray(c, dtype=np.float64) for c in corners)
    length = float(np.linalg.norm(tr - tl))
    u = (tr - tl) / max(length, 1e-6)
    v = (bl - tl) / max(float(np.linalg.norm(bl - tl)), 1e-6)  # down the page
    w, h = round(1.2 * length), round(REGION_ABOVE * length)
    origin = tl - 0.1 * length * u - REGION_ABOVE * length * v
    src = np.array([origin, origin + w * u, origin + h * v], dtype=np.float32)
    dst = np.array([[0, 0], [w, 0], [0, h]], dtype=np.float32)
    A = cv2.getAffineTransform(src, dst)
    out = cv2.warpAffine(rgb, A, (w, h), flags=cv2.INTER_AREA, borderValue=(255, 255, 255))
    return np.ascontiguousarray(out)


def find_portrait(
    pipeline: FacePipeline,
    rgb: NDArray[np.uint8],
    band_corners: NDArray[np.float32] | None,
) -> tuple[Processed, NDArray[np.uint8]]:
    """The portrait taken through the pipeline, and the region it was found in (see the module's
    contract). Raises ``document.no_portrait`` when no face is found."""
    tries: list[NDArray[np.uint8]] = []
    if band_corners is not None:
        tries.append(region_above_mrz(rgb, band_corners))
    else:
        tries += [
            rgb,
            np.ascontiguousarray(cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)),
            np.ascontiguousarray(cv2.rotate(rgb, cv2.ROTATE_180)),
            np.ascontiguousarray(cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)),
        ]
    last: FieldidError | None = None
    for region in tries:
        try:
            return pipeline.process_image(as_probe(region)), region
        except AcquisitionFailed as e:
            last = e
    raise FieldidError(
        "no portrait found on the document photo: photograph the whole data page, with the "
        "portrait and the MRZ in the frame",
        code="document.no_portrait",
        cause=None if last is None else last.code,
    )


@dataclass(frozen=True)
class PortraitMatch(OneToOneScore):
    """1:1 of a live face against a document's portrait: a score to weigh, not a decision."""

    model: str
    score: float
    threshold: float
    threshold_set_by: str  # configured / verify_target_fmr
    portrait_source: str  # data_page / chip
    portrait_quality: dict[str, Any]
    live_quality: dict[str, Any]
    calibration: str | None = None
    meaning: ScoreMeaning | None = None
    rates_unavailable: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notice": "a similarity score for a person to weigh, not an identification",
            "model": self.model,
            "portrait_source": self.portrait_source,
            "score": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "threshold_set_by": self.threshold_set_by,
            "above_threshold": self.above_threshold,
            "fmr": None if self.fmr is None else float(f"{self.fmr:.4g}"),
            "extrapolated": None if self.meaning is None else self.meaning.extrapolated,
            "meaning": self.meaning_text,
            "calibration": self.calibration,
            "rates_unavailable": self.rates_unavailable,
            "portrait_quality": self.portrait_quality,
            "live_quality": self.live_quality,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


def compare(
    portrait: Processed,
    live: Processed,
    *,
    model: str,
    calibration: Calibration | None,
    portrait_source: str,
    threshold: float | None = None,
    verify_target_fmr: float = DEFAULT_VERIFY_TARGET_FMR,
) -> PortraitMatch:
    """Score the pair as ``verify`` does (see the module's contract)."""
    if portrait.template.model != live.template.model:
        raise FieldidError(
            "the two templates come from different models", code="template.model_mismatch"
        )
    score = float(portrait.template.vector @ live.template.vector)
    band = band_of(min(portrait.quality.unified, live.quality.unified))
    if threshold is not None:
        thr, set_by = float(threshold), "configured"
    elif calibration is not None:
        thr, set_by = calibration.threshold_for_fmr(verify_target_fmr, band), "verify_target_fmr"
    else:
        raise FieldidError(
            f"model {model} has no calibration and no threshold is configured: a 1:1 score "
            "cannot be given a meaning",
            code="config.threshold",
        )
    meaning = None if calibration is None else score_meaning(calibration, score, 1, band)
    if meaning is not None and not math.isfinite(meaning.fmr):
        meaning = None
    return PortraitMatch(
        model=model,
        score=score,
        threshold=thr,
        threshold_set_by=set_by,
        portrait_source=portrait_source,
        portrait_quality=portrait.quality.to_dict(),
        live_quality=live.quality.to_dict(),
        calibration=None if calibration is None else calibration.id,
        meaning=meaning,
        rates_unavailable=None if calibration is not None else f"model {model} is uncalibrated",
    )
