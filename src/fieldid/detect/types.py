"""What detection and alignment produce: boxes, landmarks, and the face the pipeline keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

LandmarkScheme = Literal["dlib5", "dlib68", "arcface5"]

#: The canonical 5-point ArcFace template for a 112×112 aligned crop, in image coordinates:
#: image-left eye centre, image-right eye centre, nose tip, image-left and image-right mouth corner.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class FaceBox:
    """A detector's answer: a box in image pixels, a confidence, and landmarks if it gives them."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 1.0
    #: ArcFace-order 5 points (see ``ARCFACE_112``) when the detector provides them (YuNet does).
    points5: NDArray[np.float32] | None = field(default=None, compare=False)

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def scaled(self, factor: float) -> FaceBox:
        pts = None if self.points5 is None else (self.points5 * factor).astype(np.float32)
        return FaceBox(
            self.left * factor,
            self.top * factor,
            self.right * factor,
            self.bottom * factor,
            self.score,
            pts,
        )


@dataclass(frozen=True)
class Face:
    """The face the pipeline kept: its box and landmarks in the probe's pixel coordinates."""

    box: FaceBox
    points: NDArray[np.float32]
    scheme: LandmarkScheme

    def eye_centres(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Centres of the image-left and image-right eye."""
        p = self.points.astype(np.float32)
        if self.scheme == "dlib5":
            left, right = (p[2] + p[3]) / 2, (p[0] + p[1]) / 2
        elif self.scheme == "dlib68":
            left, right = p[36:42].mean(axis=0), p[42:48].mean(axis=0)
        else:
            left, right = p[0], p[1]
        return left.astype(np.float32), right.astype(np.float32)

    def nose_tip(self) -> NDArray[np.float32]:
        # dlib's 5-point model marks the base of the nose, the others the tip.
        index = {"dlib5": 4, "dlib68": 30, "arcface5": 2}[self.scheme]
        return np.asarray(self.points[index], dtype=np.float32)

    def arcface5(self) -> NDArray[np.float32] | None:
        """The five ArcFace alignment points, or None when the landmarks cannot give them."""
        p = self.points
        if self.scheme == "arcface5":
            return p
        if self.scheme == "dlib68":
            left, right = self.eye_centres()
            return np.stack([left, right, p[30], p[48], p[54]]).astype(np.float32)
        if self.box.points5 is not None:
            return self.box.points5
        return None

    @property
    def inter_eye_distance(self) -> float:
        left, right = self.eye_centres()
        return float(np.linalg.norm(right - left))


class FaceDetector(Protocol):
    """Finds face boxes in an RGB image (H×W×3 uint8)."""

    name: str

    def detect(self, rgb: NDArray[np.uint8], upsample: int = 0) -> list[FaceBox]: ...


@runtime_checkable
class Proposer(Protocol):
    """A detector that can also report near-misses: boxes scored below its own threshold (0),
    down to ``floor``. Acquisition lets its fallback detector look only there."""

    name: str

    def detect(self, rgb: NDArray[np.uint8], upsample: int = 0) -> list[FaceBox]: ...

    def propose(self, rgb: NDArray[np.uint8], upsample: int, floor: float) -> list[FaceBox]: ...


class Landmarker(Protocol):
    """Places landmarks on a face inside a box."""

    scheme: LandmarkScheme

    def locate(self, rgb: NDArray[np.uint8], box: FaceBox) -> NDArray[np.float32]: ...
