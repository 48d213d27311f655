"""The quality gate: refuse a probe that would search badly, and say what to change.

Accuracy improves with resolution and a frontal, sharp, well-lit face; the gate is how the system
says so before a search is run instead of returning weak candidates.

How the gate speaks:

- **Most useful first.** Reasons come in the order an officer should act on them: one person in
  the frame; then the light (in the dark the other measures are unreliable: a dark face also
  reads as blurred, so "more light" comes before "hold still"); then distance; then pose; then
  blur; the overall score only when nothing more specific is wrong.
- **Plain words first, numbers small.** Each :class:`Guidance` has ``message`` (what to do, in
  an officer's words: "move closer") and ``detail`` (the measurement behind it: "eyes 43 px apart,
  60 needed"), shown smaller. ``text`` joins them: "move closer (eyes 43 px apart, 60 needed)".
- **Live capture or a supplied file.** ``source="live"`` (the phone's camera, the person in
  front of the officer) says what to change now ("move closer"); ``source="file"`` (an upload,
  the CLI) says what is wrong with the photo ("the face is too small in this photo: about 60 px
  between the eyes are needed; take a closer photo").
- **No contradictions from rounding.** A value below a minimum is rounded down and the minimum
  up; a value above a maximum is rounded up and the maximum down ("eyes 59 px apart, 60 needed",
  never "60 px apart, 60 needed").

| order | code | live | file |
|---|---|---|---|
| 1 | quality.several_faces | one person only | there are N faces in this photo |
| 2 | quality.too_dark | more light | the face is too dark in this photo |
| 2 | quality.too_bright | less light or no flash | the face is overexposed in this photo |
| 3 | quality.exposure | even out the light | parts of the face are pure black or white |
| 4 | quality.too_far | move closer | the face is too small in this photo |
| 5 | quality.pose_yaw / pose_pitch | face the camera | the head is turned / tilted |
| 6 | quality.pose_roll | hold the camera level | the head is tilted sideways |
| 7 | quality.blurred | hold still | this photo is blurred |
| 8 | quality.low | retake the photo | this photo's overall quality is too low |
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fieldid.errors import QualityRefused
from fieldid.quality.measures import QualityReport

#: Where a probe came from: the live camera (the person is there) or a supplied file.
Source = Literal["live", "file"]
SOURCES: tuple[str, ...] = ("live", "file")


@dataclass(frozen=True)
class Guidance:
    """One reason a probe fails: ``message`` says what to do in plain words, ``detail`` the
    measurement behind it (may be empty)."""

    code: str
    message: str
    detail: str = ""

    @property
    def text(self) -> str:
        return f"{self.message} ({self.detail})" if self.detail else self.message

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "text": self.text}


def _low(value: float) -> int:
    """A value that is below a minimum, as shown (rounded down: never reads as enough)."""
    return math.floor(value)


def _high(value: float) -> int:
    """A value that is above a maximum, as shown (rounded up)."""
    return math.ceil(value)


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

    def check(self, q: QualityReport, source: Source = "live") -> list[Guidance]:
        """Every reason the probe fails, most useful first (empty: it passes)."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        file = source == "file"
        out = [
            g
            for g in (
                self._faces(q, file),
                self._light(q, file),
                self._exposure(q, file),
                self._distance(q, file),
                self._yaw(q, file),
                self._pitch(q, file),
                self._roll(q, file),
                self._blur(q, file),
            )
            if g is not None
        ]
        if not out and q.unified < self.min_unified:
            need = math.ceil(self.min_unified)
            detail = f"overall quality {q.unified}/100, {need} needed"
            if file:
                msg = "this photo's overall quality is too low: use a better one"
            else:
                msg = "retake the photo"
            out.append(Guidance("quality.low", msg, detail))
        return out

    def enforce(self, q: QualityReport, source: Source = "live") -> None:
        """Raise ``QualityRefused`` (code of the first reason) when the probe fails the gate."""
        reasons = self.check(q, source)
        if reasons:
            raise QualityRefused(
                "; ".join(g.text for g in reasons),
                code=reasons[0].code,
                guidance=[g.to_dict() for g in reasons],
                quality=q.to_dict(),
                capture=source,
            )

    # --- one check per measure, each in both voices ----------------------------------------

    def _faces(self, q: QualityReport, file: bool) -> Guidance | None:
        faces = int(q.value("face_count"))
        if faces <= self.max_faces:
            return None
        if file:
            return Guidance(
                "quality.several_faces",
                f"there are {faces} faces in this photo: use a photo of the one person alone",
            )
        return Guidance("quality.several_faces", "one person only", f"{faces} faces in view")

    def _light(self, q: QualityReport, file: bool) -> Guidance | None:
        lum = q.value("luminance")
        if lum < self.min_luminance:
            detail = f"brightness {_low(lum)}/255, at least {math.ceil(self.min_luminance)}"
            if file:
                msg = "the face is too dark in this photo: use a better-lit one"
            else:
                msg = "more light"
            return Guidance("quality.too_dark", msg, detail)
        if lum > self.max_luminance:
            detail = f"brightness {_high(lum)}/255, at most {math.floor(self.max_luminance)}"
            if file:
                msg = "the face is overexposed in this photo: use one without glare or flash"
            else:
                msg = "less light or no flash"
            return Guidance("quality.too_bright", msg, detail)
        return None

    def _exposure(self, q: QualityReport, file: bool) -> Guidance | None:
        clipped = q.value("exposure")
        lum = q.value("luminance")
        if clipped <= self.max_clipped_fraction or not (
            self.min_luminance <= lum <= self.max_luminance
        ):
            return None
        detail = (
            f"{_high(clipped * 100)}% of the face is pure black or white, "
            f"at most {math.floor(self.max_clipped_fraction * 100)}%"
        )
        if file:
            msg = "parts of the face are pure black or white in this photo: use one in even light"
        else:
            msg = "even out the light"
        return Guidance("quality.exposure", msg, detail)

    def _distance(self, q: QualityReport, file: bool) -> Guidance | None:
        ied = q.value("inter_eye_distance")
        if ied >= self.min_inter_eye_px:
            return None
        need = math.ceil(self.min_inter_eye_px)
        if file:
            return Guidance(
                "quality.too_far",
                f"the face is too small in this photo: about {need} px between the eyes are "
                "needed; take a closer photo",
                f"this photo has {_low(ied)} px",
            )
        detail = f"eyes {_low(ied)} px apart, {need} needed"
        return Guidance("quality.too_far", "move closer", detail)

    def _yaw(self, q: QualityReport, file: bool) -> Guidance | None:
        yaw = abs(q.value("yaw"))
        if yaw <= self.max_abs_yaw_deg:
            return None
        detail = f"turned {_high(yaw)}° to the side, at most {math.floor(self.max_abs_yaw_deg)}°"
        if file:
            msg = "the head is turned to the side in this photo: use one facing the camera"
        else:
            msg = "face the camera"
        return Guidance("quality.pose_yaw", msg, detail)

    def _pitch(self, q: QualityReport, file: bool) -> Guidance | None:
        pitch = q.value("pitch")
        if abs(pitch) <= self.max_abs_pitch_deg:
            return None
        way = "down" if pitch > 0 else "up"
        detail = f"tilted {way} {_high(abs(pitch))}°, at most {math.floor(self.max_abs_pitch_deg)}°"
        if file:
            msg = f"the head is tilted {way} in this photo: use one looking straight at the camera"
        else:
            msg = "face the camera, chin " + ("up a little" if way == "down" else "down a little")
        return Guidance("quality.pose_pitch", msg, detail)

    def _roll(self, q: QualityReport, file: bool) -> Guidance | None:
        roll = abs(q.value("roll"))
        if roll <= self.max_abs_roll_deg:
            return None
        most = math.floor(self.max_abs_roll_deg)
        detail = f"head tilted {_high(roll)}° sideways, at most {most}°"
        if file:
            msg = "the head is tilted sideways in this photo: straighten it or use another"
        else:
            msg = "hold the camera level"
        return Guidance("quality.pose_roll", msg, detail)

    def _blur(self, q: QualityReport, file: bool) -> Guidance | None:
        if q.measures["sharpness"].score >= self.min_sharpness_score:
            return None
        if file:
            return Guidance("quality.blurred", "this photo is blurred: use a sharper one")
        return Guidance("quality.blurred", "hold still", "the face is blurred")
