"""The bundled embedder: dlib's ResNet face descriptor (128-d).

Weights come from the face-recognition-models package."""

from __future__ import annotations

from functools import cache
from typing import Any

import dlib
import face_recognition_models as frm
import numpy as np
from numpy.typing import NDArray

from fieldid.detect.dlib_adapters import to_dlib_rect
from fieldid.detect.types import Face, LandmarkScheme
from fieldid.errors import ModelError
from fieldid.template.types import ModelId, l2_normalise

MODEL_ID = "dlib-resnet-v1"
MODEL_VERSION = (
    "frm-0.3.0"  # face-recognition-models 0.3.0: dlib_face_recognition_resnet_model_v1.dat
)


@cache
def _net() -> Any:
    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


class DlibResnetEmbedder:
    """dlib's 29-layer ResNet on a 150×150 chip aligned from dlib's 5-point landmarks.

    Templates are L2-normalised so that they are compared by inner product (cosine); on unit
    vectors the Euclidean distance dlib documents is ``sqrt(2 - 2 cos)``.

    ``flip=True`` fuses the descriptor of the chip and of its mirror image (twice the cost).
    Flip fusion changes the model's output, so it has its own model version.
    """

    dim = 128
    landmark_scheme: LandmarkScheme = "dlib5"

    def __init__(self, *, flip: bool = False) -> None:
        self._net = _net()
        self.flip = flip
        version = MODEL_VERSION + ("+flip" if flip else "")
        self.model = ModelId(MODEL_ID, version)

    def chip(self, rgb: NDArray[np.uint8], face: Face) -> NDArray[np.uint8]:
        if face.scheme not in ("dlib5", "dlib68"):
            raise ModelError(
                f"dlib's ResNet aligns with dlib landmarks, got {face.scheme}",
                code="model.landmarks_unsupported",
            )
        parts = [dlib.point(round(float(x)), round(float(y))) for x, y in face.points]
        shape = dlib.full_object_detection(to_dlib_rect(face.box), parts)
        chip: NDArray[np.uint8] = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        return chip

    def embed(self, rgb: NDArray[np.uint8], face: Face) -> NDArray[np.float32]:
        chip = self.chip(rgb, face)
        v = np.asarray(self._net.compute_face_descriptor(chip), dtype=np.float32)
        if self.flip:
            mirrored = np.ascontiguousarray(chip[:, ::-1])
            v = v + np.asarray(self._net.compute_face_descriptor(mirrored), dtype=np.float32)
        return l2_normalise(v)
