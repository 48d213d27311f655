"""An enrolled image kept as the face pipeline saw it, so a template can be computed again.

Enrollment keeps the decoded, upright RGB pixels of each enrolled image (what
:func:`fieldid.probe.decode_probe` made of the file) as a lossless PNG in
``enrollment_pixels.data``: not the file as uploaded (no EXIF, no GPS, no other metadata), and
not a lossy copy, so that a template computed from it for any model is the one enrolling the
original file would give (re-templating, ``gallery/retemplate.py``). PNG at compression level 3:
on LFW's 250×250 photos about 78 KB an image (their JPEGs are about 9 KB) and ~20 ms to write;
WebP lossless was a quarter smaller but twice as slow to write.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from fieldid.errors import FieldidError
from fieldid.pipeline import PNG_COMPRESSION, encode_pixels

FORMAT = "png"
__all__ = ["FORMAT", "PNG_COMPRESSION", "decode_pixels", "encode_pixels"]


def decode_pixels(data: bytes, fmt: str = FORMAT) -> NDArray[np.uint8]:
    """The RGB image kept by :func:`encode_pixels` (read-only, C-contiguous)."""
    if fmt != FORMAT:
        raise FieldidError(f"unknown stored image format {fmt!r}", code="enroll.pixels")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FieldidError("the stored enrolled image is damaged", code="enroll.pixels")
    rgb: NDArray[np.uint8] = np.ascontiguousarray(
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8
    )
    rgb.flags.writeable = False
    return rgb
