"""An ONNX face detector from a path the user gives: OpenCV's YuNet (``cv2.FaceDetectorYN``).

YuNet's weights are not shipped; ``fieldid models install yunet-2023mar`` fetches and verifies
them where the machine has internet, or ``--from FILE`` verifies a copy fetched by hand. The
detector also returns five landmarks in ArcFace order (eye centres, nose tip, mouth corners).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from fieldid.detect.types import FaceBox
from fieldid.errors import ModelError


class YuNetDetector:
    name = "yunet"

    def __init__(self, path: str | Path, *, score_threshold: float = 0.7) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(
                f"YuNet model not found at {self.path}: install it with "
                "`fieldid models install yunet-2023mar` and set [pipeline] detector_model",
                code="model.not_found",
                path=str(self.path),
            )
        try:
            self._det = cv2.FaceDetectorYN.create(
                str(self.path), "", (320, 320), score_threshold, 0.3, 50
            )
        except cv2.error as e:
            raise ModelError(
                f"{self.path} is not a YuNet ONNX model OpenCV can load: {e.msg.strip()}",
                code="model.invalid",
                path=str(self.path),
            ) from e

    def detect(self, rgb: NDArray[np.uint8], upsample: int = 0) -> list[FaceBox]:
        scale = 2**upsample
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if scale > 1:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        self._det.setInputSize((w, h))
        _, faces = self._det.detect(img)
        out: list[FaceBox] = []
        for f in [] if faces is None else faces:
            x, y, bw, bh = (float(v) / scale for v in f[:4])
            points = (np.asarray(f[4:14], dtype=np.float32).reshape(5, 2) / scale).astype(
                np.float32
            )
            out.append(FaceBox(x, y, x + bw, y + bh, float(f[14]), points))
        return out
