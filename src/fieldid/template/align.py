"""Five-point face alignment to the ArcFace crop.

The transform is the least-squares *similarity* (rotation, uniform scale, translation; no shear,
no reflection) taking the five detected points onto ``ARCFACE_112``, computed in closed form by
Umeyama's method (IEEE TPAMI 13(4), 1991), so the same points always give the same matrix: no
random sampling, no iteration.

Pixels the transform pulls from outside the image are filled with black (``BORDER_CONSTANT``, 0).
That is what the reference ArcFace/insightface alignment does, so it is what ArcFace-style models
saw in training; replicating the edge would paint streaks the models never learned to ignore.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldid.detect.types import ARCFACE_112
from fieldid.errors import AcquisitionFailed, ProbeRejected

__all__ = ["align_face", "arcface_template", "arcface_transform", "similarity_transform"]


def arcface_template(size: int = 112) -> NDArray[np.float64]:
    """The five ArcFace target points for a ``size``×``size`` crop (``ARCFACE_112`` scaled)."""
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    return ARCFACE_112.astype(np.float64) * (size / 112.0)


def similarity_transform(src: ArrayLike, dst: ArrayLike) -> NDArray[np.float64]:
    """Least-squares similarity mapping ``src`` points (N×2) onto ``dst`` (N×2) as a 2×3 matrix.

    Umeyama's closed form. Raises ``AcquisitionFailed`` (``acquire.degenerate_landmarks``) when
    the source points are not finite or all coincide.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape != d.shape or s.shape[0] < 2:
        raise ValueError(f"need matching N×2 point sets (N ≥ 2), got {s.shape} and {d.shape}")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise AcquisitionFailed(
            "face landmarks are not finite numbers; the landmarker failed on this face",
            code="acquire.degenerate_landmarks",
        )
    n = s.shape[0]
    mu_s = s.mean(axis=0)
    mu_d = d.mean(axis=0)
    sc = s - mu_s
    dc = d - mu_d
    var_s = float((sc**2).sum() / n)
    if var_s < 1e-12:
        raise AcquisitionFailed(
            "face landmarks all fall on one point; the face cannot be aligned",
            code="acquire.degenerate_landmarks",
        )
    cov = dc.T @ sc / n
    u, sv, vt = np.linalg.svd(cov)
    signs = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        signs[-1] = -1.0  # forbid a reflection: the best proper rotation instead
    rot = u @ np.diag(signs) @ vt
    scale = float((sv * signs).sum() / var_s)
    shift = mu_d - scale * (rot @ mu_s)
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = scale * rot
    out[:, 2] = shift
    return out


def arcface_transform(points5: ArrayLike, size: int = 112) -> NDArray[np.float64]:
    """2×3 similarity matrix taking five ArcFace-order points onto the ``size`` ArcFace template.

    ``points5`` order: image-left eye, image-right eye, nose tip, image-left and image-right
    mouth corner (see ``fieldid.detect.types.ARCFACE_112``). Sizes other than 112 scale the
    template uniformly.
    """
    pts = np.asarray(points5, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"need five (x, y) points, got an array of shape {pts.shape}")
    return similarity_transform(pts, arcface_template(size))


def align_face(rgb: NDArray[np.uint8], points5: ArrayLike, size: int = 112) -> NDArray[np.uint8]:
    """The ``size``×``size``×3 uint8 ArcFace crop of the face whose five points are ``points5``.

    Bilinear sampling; the area outside the image is black (see the module note).
    """
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
        raise ProbeRejected(
            f"expected an H×W×3 uint8 RGB image, got shape {img.shape} dtype {img.dtype}",
            code="probe.not_rgb",
        )
    matrix = arcface_transform(points5, size)
    crop = cv2.warpAffine(
        np.ascontiguousarray(img),
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    return np.asarray(crop, dtype=np.uint8)
