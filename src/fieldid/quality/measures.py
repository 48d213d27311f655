"""Per-probe quality measures in the spirit of ISO/IEC 29794-5 (face image quality).

Each measure has a native value (pixels, degrees, a ratio) and a score from 0 (unusable) to 100
(ideal). The unified score is the weighted geometric mean of the component scores, so one bad
component pulls it down: a sharp, well-lit face that is 20 px between the eyes is still poor.

Head pose comes from the landmarks by a simple geometric model (no 3-D fit): roll is the angle of
the eye line; yaw is the nose's horizontal offset from the eye midpoint, ``atan(offset / depth)``
with the nose depth a fixed fraction of the inter-eye distance; pitch is the nose's vertical offset
from its frontal position, the same way. The constants were set from the median of frontal
news photographs (LFW): yaw and roll are good to roughly ±5° in the range that matters (0–40°);
pitch only to about ±10°, because noses differ in length from person to person. Positive
yaw: the subject turns toward the image's right; positive pitch: the subject looks down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from fieldid.detect.acquire import Acquisition
from fieldid.detect.types import Face

# Per landmark scheme: (nose depth / inter-eye distance for yaw, the same for pitch, frontal
# vertical nose offset / IED). Faces differ in nose length far more than in nose depth, so the
# pitch constant is set wider: the 5th-95th percentile of frontal LFW faces maps to about ±15°.
_POSE_MODEL = {
    "dlib5": (0.45, 0.62, 0.76),
    "dlib68": (0.5, 0.8, 0.556),
    "arcface5": (0.5, 0.8, 0.556),
}

#: Weights of each component in the unified score.
WEIGHTS = {
    "inter_eye_distance": 2.0,
    "yaw": 1.0,
    "pitch": 1.0,
    "roll": 0.5,
    "sharpness": 1.0,
    "luminance": 1.0,
    "exposure": 1.0,
    "face_count": 1.0,
    "face_size": 0.5,
}


@dataclass(frozen=True)
class Measure:
    name: str
    value: float
    unit: str
    score: int


@dataclass(frozen=True)
class QualityReport:
    """All measures of one probe, their 0–100 scores, the unified score and its band."""

    measures: dict[str, Measure] = field(default_factory=dict)
    unified: int = 0

    @property
    def band(self) -> str:
        """``good`` (≥ 70), ``fair`` (40–69) or ``poor`` (< 40)."""
        return band_of(self.unified)

    def value(self, name: str) -> float:
        return self.measures[name].value

    def to_dict(self) -> dict[str, object]:
        return {
            "unified": self.unified,
            "band": self.band,
            "measures": {
                m.name: {"value": round(m.value, 3), "unit": m.unit, "score": m.score}
                for m in self.measures.values()
            },
        }


def band_of(unified: int) -> str:
    return "good" if unified >= 70 else "fair" if unified >= 40 else "poor"


def _ramp(x: float, zero: float, full: float) -> int:
    """0 at ``zero``, 100 at ``full``, linear between (either direction)."""
    t = (x - zero) / (full - zero)
    return round(100 * min(1.0, max(0.0, t)))


def _window(x: float, lo0: float, lo1: float, hi1: float, hi0: float) -> int:
    """100 inside [lo1, hi1], falling to 0 at lo0 and hi0."""
    if x < lo1:
        return _ramp(x, lo0, lo1)
    if x > hi1:
        return _ramp(x, hi0, hi1)
    return 100


def head_pose(face: Face) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the face's landmarks (see the module docstring)."""
    left, right = face.eye_centres()
    d = right - left
    ied = float(np.hypot(d[0], d[1]))
    if ied < 1e-6:
        return 0.0, 0.0, 0.0
    axis = d / ied
    normal = np.array([-axis[1], axis[0]])
    offset = face.nose_tip() - (left + right) / 2
    depth, pitch_depth, frontal = _POSE_MODEL[face.scheme]
    roll = math.degrees(math.atan2(d[1], d[0]))
    yaw = math.degrees(math.atan(float(offset @ axis) / ied / depth))
    pitch = math.degrees(math.atan((float(offset @ normal) / ied - frontal) / pitch_depth))
    return yaw, pitch, roll


def _face_region(rgb: NDArray[np.uint8], face: Face) -> NDArray[np.uint8]:
    h, w = rgb.shape[:2]
    b = face.box
    x0, y0 = max(0, int(b.left)), max(0, int(b.top))
    x1, y1 = min(w, math.ceil(b.right)), min(h, math.ceil(b.bottom))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return np.zeros((4, 4), dtype=np.uint8)
    gray = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    return np.asarray(gray, dtype=np.uint8)


def assess(rgb: NDArray[np.uint8], acq: Acquisition) -> QualityReport:
    """Measure the probe's quality from its pixels and the acquired face."""
    face = acq.face
    ms: list[Measure] = []

    ied = face.inter_eye_distance
    ms.append(Measure("inter_eye_distance", ied, "px", _ramp(ied, 20.0, 90.0)))  # see at_scale

    yaw, pitch, roll = head_pose(face)
    ms.append(Measure("yaw", yaw, "deg", _ramp(abs(yaw), 45.0, 8.0)))
    ms.append(Measure("pitch", pitch, "deg", _ramp(abs(pitch), 40.0, 10.0)))
    ms.append(Measure("roll", roll, "deg", _ramp(abs(roll), 45.0, 10.0)))

    region = _face_region(rgb, face)
    # Sharpness on the face normalised to 128 px wide, so it does not depend on distance.
    norm: NDArray[np.uint8] = cv2.resize(  # type: ignore[assignment]
        region, (128, max(4, round(128 * region.shape[0] / region.shape[1])))
    )
    lap = float(cv2.Laplacian(norm, cv2.CV_64F).var())
    ms.append(Measure("sharpness", lap, "laplacian variance", _ramp(math.log10(lap + 1), 1.0, 2.3)))

    mean = float(region.mean())
    ms.append(Measure("luminance", mean, "mean grey 0-255", _window(mean, 25, 80, 180, 240)))
    clipped = float(((region <= 5) | (region >= 250)).mean())
    ms.append(Measure("exposure", clipped, "clipped fraction", _ramp(clipped, 0.25, 0.02)))

    n = acq.faces_found
    ms.append(Measure("face_count", float(n), "faces", 100 if n == 1 else 50))

    h, w = rgb.shape[:2]
    frac = face.box.area / float(h * w)
    ms.append(Measure("face_size", frac, "face area / frame", _ramp(frac, 0.005, 0.08)))

    measures = {m.name: m for m in ms}
    total = sum(WEIGHTS.values())
    log_sum = sum(WEIGHTS[m.name] * math.log(max(1, m.score)) for m in ms)
    unified = round(math.exp(log_sum / total))
    return QualityReport(measures, unified)


def at_scale(report: QualityReport, factor: float) -> QualityReport:
    """The report as it would read on the same frame ``factor`` times larger.

    Live guidance measures frames the browser downscaled (to save bandwidth and time); the
    distance between the eyes is the one measure in pixels, and the gate's minimum is set for the
    full-size capture, so it is scaled back before the gate looks at it. The other measures do
    not depend on resolution (sharpness is measured on the face normalised to 128 px)."""
    if factor == 1.0:
        return report
    measures = dict(report.measures)
    m = measures["inter_eye_distance"]
    ied = m.value * factor
    measures[m.name] = Measure(m.name, ied, m.unit, _ramp(ied, 20.0, 90.0))
    total = sum(WEIGHTS.values())
    log_sum = sum(WEIGHTS[x.name] * math.log(max(1, x.score)) for x in measures.values())
    return QualityReport(measures, round(math.exp(log_sum / total)))
