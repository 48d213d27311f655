"""Acquisition: find the subject's face in a probe and place its landmarks.

One subject, one capture: when several faces are present the largest is taken and the count is
reported (the quality stage penalises extra faces). Detection first runs on a copy scaled so its
longer side is at most ``detect_max_side``: fast, and a face too small to be found there is one
the quality gate would refuse anyway. When it finds nothing, it retries on copies twice as large up
to full resolution, then at full resolution with each further upsampling step, then with the
fallback detector (slower and stronger: dlib's MMOD by default) along its own, shorter ladder
(no upsampling by default). Landmarks are always placed at full resolution.

Faces are counted at the first step that finds any, so a bystander too small to be seen at that
scale is not counted; a second face about as large as the subject's always is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from fieldid.detect.types import Face, FaceBox, FaceDetector, Landmarker
from fieldid.errors import AcquisitionFailed


@dataclass(frozen=True)
class Acquisition:
    """The face kept, how many faces the image held, and how hard the detector had to look."""

    face: Face
    faces_found: int
    detector: str
    upsample: int
    detect_scale: float


class FaceFinder:
    """Composes a detector and a landmarker into the acquisition step."""

    def __init__(
        self,
        detector: FaceDetector,
        landmarker: Landmarker,
        *,
        upsample_schedule: Sequence[int] = (0, 1, 2),
        detect_max_side: int = 320,
        fallback: FaceDetector | None = None,
        fallback_upsample_schedule: Sequence[int] = (0,),
    ) -> None:
        if not upsample_schedule:
            raise ValueError("upsample_schedule needs at least one step")
        self.detector = detector
        self.landmarker = landmarker
        self.upsample_schedule = tuple(upsample_schedule)
        self.detect_max_side = detect_max_side
        self.fallback = fallback
        self.fallback_upsample_schedule = tuple(fallback_upsample_schedule) or (0,)

    def ladder(
        self, height: int, width: int, schedule: Sequence[int] | None = None
    ) -> list[tuple[float, int]]:
        """The (scale, upsample) steps tried in turn for an image of this size."""
        schedule = tuple(schedule or self.upsample_schedule)
        longest = max(height, width)
        scale = min(1.0, self.detect_max_side / longest) if self.detect_max_side else 1.0
        steps: list[tuple[float, int]] = []
        while scale < 1.0:
            steps.append((scale, schedule[0]))
            scale *= 2
        steps.append((1.0, schedule[0]))
        steps += [(1.0, up) for up in schedule[1:]]
        return steps

    def _boxes(self, rgb: NDArray[np.uint8]) -> tuple[list[FaceBox], str, int, float]:
        h, w = rgb.shape[:2]
        copies: dict[float, NDArray[np.uint8]] = {1.0: rgb}
        passes = [(self.detector, self.ladder(h, w))]
        if self.fallback is not None:
            passes.append((self.fallback, self.ladder(h, w, self.fallback_upsample_schedule)))
        for detector, steps in passes:
            for scale, up in steps:
                if scale not in copies:
                    size = (max(1, round(w * scale)), max(1, round(h * scale)))
                    copies[scale] = np.asarray(
                        cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8
                    )
                boxes = detector.detect(copies[scale], up)
                if boxes:
                    if scale < 1.0:
                        boxes = [b.scaled(1.0 / scale) for b in boxes]
                    return boxes, detector.name, up, scale
        return [], self.detector.name, self.upsample_schedule[-1], 1.0

    def find(self, rgb: NDArray[np.uint8]) -> Acquisition:
        """The largest face in ``rgb``; raises ``AcquisitionFailed`` (``acquire.no_face``)."""
        boxes, name, up, scale = self._boxes(rgb)
        if not boxes:
            h, w = rgb.shape[:2]
            raise AcquisitionFailed(
                f"no face found in the {w}×{h} photo: make sure one face fills a good part of the "
                "frame, facing the camera, evenly lit",
                code="acquire.no_face",
                width=w,
                height=h,
            )
        box = max(boxes, key=lambda b: b.area)
        points = self.landmarker.locate(rgb, box)
        face = Face(box=box, points=points, scheme=self.landmarker.scheme)
        return Acquisition(face, len(boxes), name, up, scale)
