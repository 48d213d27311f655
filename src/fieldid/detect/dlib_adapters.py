"""dlib adapters: the HOG and MMOD face detectors and the 5- and 68-point landmark models.

Weights come from the ``face-recognition-models`` package (installed from PyPI); nothing is
downloaded at run time. Models are loaded once per process and shared.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import dlib
import face_recognition_models as frm
import numpy as np
from numpy.typing import NDArray

from fieldid.detect.types import FaceBox, LandmarkScheme

_lock = threading.Lock()


@cache
def _hog() -> Any:
    return dlib.get_frontal_face_detector()


@cache
def _mmod() -> Any:
    return dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())


@cache
def _shape_predictor(scheme: LandmarkScheme) -> Any:
    if scheme == "dlib5":
        return dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    if scheme == "dlib68":
        return dlib.shape_predictor(frm.pose_predictor_model_location())
    raise ValueError(f"dlib has no landmark model for scheme {scheme!r}")


def to_dlib_rect(box: FaceBox) -> Any:
    return dlib.rectangle(round(box.left), round(box.top), round(box.right), round(box.bottom))


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal face detector (fast on CPU; finds faces ≥ ~80 px)."""

    name = "dlib-hog"

    def __init__(self) -> None:
        self._det = _hog()

    def detect(self, rgb: NDArray[np.uint8], upsample: int = 0) -> list[FaceBox]:
        return self.propose(rgb, upsample, 0.0)

    def propose(self, rgb: NDArray[np.uint8], upsample: int, floor: float) -> list[FaceBox]:
        """Every window scoring at least ``floor`` (the detector's own threshold is 0)."""
        rects, scores, _ = self._det.run(rgb, upsample, floor)
        return [
            FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]


class DlibMmodDetector:
    """dlib's CNN (MMOD) face detector: more poses and smaller faces than HOG; slow on CPU."""

    name = "dlib-mmod"

    def __init__(self) -> None:
        self._det = _mmod()

    def detect(self, rgb: NDArray[np.uint8], upsample: int = 0) -> list[FaceBox]:
        found = self._det(rgb, upsample)
        out = []
        for d in found:
            r = d.rect
            out.append(FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(d.confidence)))
        return out


class DlibLandmarker:
    """dlib's regression-tree landmark models: 5 points (eye corners, nose base) or 68 points."""

    def __init__(self, scheme: LandmarkScheme = "dlib5") -> None:
        self.scheme: LandmarkScheme = scheme
        self._sp = _shape_predictor(scheme)

    def locate(self, rgb: NDArray[np.uint8], box: FaceBox) -> NDArray[np.float32]:
        shape = self._sp(rgb, to_dlib_rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
