"""The quality gate: refuse a probe that would search badly, and say what to change.

Accuracy improves with resolution and a frontal, sharp, well-lit face; the gate is how the system
says so before a search is run instead of returning weak candidates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fieldid.errors import QualityRefused
from fieldid.quality.measures import QualityReport


@dataclass(frozen=True)
class Guidance:
    code: str
    message: str


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a probe must meet before a search. Each is configurable per workspace."""

    min_inter_eye_px: float = 60.0
    max_abs_yaw_deg: float = 30.0
    max_abs_pitch_deg: float = 25.0
    max_abs_roll_deg: float = 30.0
    min_sharpness_score: int = 20
    min_luminance: float = 50.0
    max_luminance: float = 215.0
    max_clipped_fraction: float = 0.15
    max_faces: int = 1
    min_unified: int = 30

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityGate:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown quality gate settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self, q: QualityReport) -> list[Guidance]:
        """Every reason the probe fails, each with what to do about it (empty: it passes)."""
        out: list[Guidance] = []
        ied = q.value("inter_eye_distance")
        if ied < self.min_inter_eye_px:
            out.append(
                Guidance(
                    "quality.too_far",
                    f"move closer: eyes {ied:.0f} px apart, {self.min_inter_eye_px:.0f} needed",
                )
            )
        yaw, pitch, roll = q.value("yaw"), q.value("pitch"), q.value("roll")
        if abs(yaw) > self.max_abs_yaw_deg:
            out.append(
                Guidance(
                    "quality.pose_yaw",
                    f"face the camera: head turned {abs(yaw):.0f}° to the side, "
                    f"at most {self.max_abs_yaw_deg:.0f}°",
                )
            )
        if abs(pitch) > self.max_abs_pitch_deg:
            way = "down" if pitch > 0 else "up"
            out.append(
                Guidance(
                    "quality.pose_pitch",
                    f"face the camera: head tilted {way} {abs(pitch):.0f}°, "
                    f"at most {self.max_abs_pitch_deg:.0f}°",
                )
            )
        if abs(roll) > self.max_abs_roll_deg:
            out.append(
                Guidance(
                    "quality.pose_roll",
                    f"hold the camera level: head tilted {abs(roll):.0f}° sideways, "
                    f"at most {self.max_abs_roll_deg:.0f}°",
                )
            )
        if q.measures["sharpness"].score < self.min_sharpness_score:
            out.append(Guidance("quality.blurred", "hold still: the face is blurred"))
        lum = q.value("luminance")
        if lum < self.min_luminance:
            out.append(
                Guidance("quality.too_dark", f"more light: the face is too dark ({lum:.0f}/255)")
            )
        elif lum > self.max_luminance:
            out.append(
                Guidance(
                    "quality.too_bright",
                    f"less light or no flash: the face is overexposed ({lum:.0f}/255)",
                )
            )
        clipped = q.value("exposure")
        if clipped > self.max_clipped_fraction and self.min_luminance <= lum <= self.max_luminance:
            out.append(
                Guidance(
                    "quality.exposure",
                    f"even the light: {clipped:.0%} of the face is pure black or white",
                )
            )
        faces = int(q.value("face_count"))
        if faces > self.max_faces:
            out.append(
                Guidance(
                    "quality.several_faces",
                    f"one person only: {faces} faces in the frame",
                )
            )
        if not out and q.unified < self.min_unified:
            out.append(
                Guidance(
                    "quality.low",
                    f"retake the photo: overall quality {q.unified}/100, {self.min_unified} needed",
                )
            )
        return out

    def enforce(self, q: QualityReport) -> None:
        """Raise ``QualityRefused`` (code of the first reason) when the probe fails the gate."""
        reasons = self.check(q)
        if reasons:
            raise QualityRefused(
                "; ".join(g.message for g in reasons),
                code=reasons[0].code,
                guidance=[asdict(g) for g in reasons],
                quality=q.to_dict(),
            )
