"""OnnxEmbedder and ArcFace alignment, on tiny models built here (and real weights when present)."""

from __future__ import annotations

import csv
import hashlib
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from fieldid.detect.types import ARCFACE_112, Face, FaceBox
from fieldid.errors import FieldidError, ModelError
from fieldid.template.align import align_face, arcface_transform, similarity_transform
from fieldid.template.onnx import OnnxEmbedder
from fieldid.template.types import Embedder
from helpers_onnx import linear_embedder, pooled_4d_output, projection

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MOBILEFACE = SHARED / "models" / "mobileface-v2.onnx"
LFW = SHARED / "faces" / "lfw-dev"


# --- synthetic images -----------------------------------------------------------------------------


def smooth_crop(size: int = 112, seed: int = 3) -> NDArray[np.uint8]:
    """A smooth, asymmetric colour texture: interpolation barely changes it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.asarray(cv2.GaussianBlur(big, (0, 0), 3.0), dtype=np.uint8)


def similarity(scale: float, degrees: float, tx: float, ty: float) -> NDArray[np.float64]:
    a = np.deg2rad(degrees)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]], dtype=np.float64)


def apply(m: NDArray[np.float64], pts: NDArray[np.floating]) -> NDArray[np.float32]:
    p = np.asarray(pts, dtype=np.float64)
    return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)


def scene_with_face(
    m: NDArray[np.float64], shape: tuple[int, int] = (360, 420)
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.float32]]:
    """(crop, image with the crop warped in by ``m``, the crop's ArcFace points in the image)."""
    crop = smooth_crop()
    rgb = cv2.warpAffine(crop, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR)
    return crop, np.asarray(rgb, dtype=np.uint8), apply(m, ARCFACE_112)


def arcface_face(points: NDArray[np.float32]) -> Face:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return Face(FaceBox(float(x0), float(y0), float(x1), float(y1)), points, "arcface5")


@pytest.fixture()
def weights() -> NDArray[np.float32]:
    return projection(112, 16, seed=0)


@pytest.fixture()
def model_path(tmp_path: Path, weights: NDArray[np.float32]) -> Path:
    return linear_embedder(tmp_path / "tiny.onnx", weights)


def reference(crop: NDArray[np.uint8], w: NDArray[np.float32]) -> NDArray[np.float32]:
    x = crop.astype(np.float32).transpose(2, 0, 1).reshape(-1)
    v = x @ w
    return (v / np.linalg.norm(v)).astype(np.float32)


# --- alignment ------------------------------------------------------------------------------------


def test_transform_inverts_a_known_similarity() -> None:
    m = similarity(1.7, 23.0, 140.0, 60.0)
    pts = apply(m, ARCFACE_112)
    t = arcface_transform(pts)
    composed = np.vstack([t, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]])
    np.testing.assert_allclose(composed, np.eye(3), atol=1e-4)


def test_transform_for_other_sizes_scales_the_template() -> None:
    t = arcface_transform(ARCFACE_112 * 2, size=224)
    np.testing.assert_allclose(t, [[1, 0, 0], [0, 1, 0]], atol=1e-5)


def test_transform_never_reflects() -> None:
    mirrored = ARCFACE_112.copy()
    mirrored[:, 0] = 112 - mirrored[:, 0]
    t = similarity_transform(mirrored, ARCFACE_112)
    assert np.linalg.det(t[:, :2]) > 0


def test_degenerate_points_are_a_typed_error() -> None:
    with pytest.raises(FieldidError) as err:
        arcface_transform(np.ones((5, 2), dtype=np.float32))
    assert err.value.code == "acquire.degenerate_landmarks"


def test_align_face_recovers_the_crop() -> None:
    m = similarity(1.9, -17.0, 150.0, 80.0)
    crop, rgb, pts = scene_with_face(m)
    got = align_face(rgb, pts)
    assert got.shape == (112, 112, 3) and got.dtype == np.uint8
    inner = np.s_[4:-4, 4:-4]
    err = np.abs(got[inner].astype(np.float32) - crop[inner].astype(np.float32))
    assert err.mean() < 1.0 and err.max() < 8.0


def test_align_face_outside_the_image_is_black() -> None:
    rgb = np.full((100, 100, 3), 200, dtype=np.uint8)
    pts = (ARCFACE_112 - 60.0).astype(np.float32)  # face half off the top-left corner
    crop = align_face(rgb, pts)
    assert (crop[:5, :5] == 0).all() and (crop[-5:, -5:] == 200).all()


# --- the embedder ---------------------------------------------------------------------------------


def test_loads_and_names_the_model_by_its_hash(model_path: Path) -> None:
    emb = OnnxEmbedder(model_path)
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert emb.dim == 16
    assert emb.landmark_scheme == "arcface5"
    assert emb.model.id == "onnx:tiny"
    assert emb.model.version == sha[:12]
    assert isinstance(emb, OnnxEmbedder)
    checked: Embedder = emb  # satisfies the protocol (mypy checks this line)
    assert checked.dim == 16


def test_different_weights_never_share_a_model_id(tmp_path: Path) -> None:
    a = OnnxEmbedder(linear_embedder(tmp_path / "m.onnx", projection(seed=1)))
    other = tmp_path / "other"
    other.mkdir()
    b = OnnxEmbedder(linear_embedder(other / "m.onnx", projection(seed=2)))
    assert a.model != b.model
    named = OnnxEmbedder(tmp_path / "m.onnx", model_id="tiny", version="v1")
    assert str(named.model) == "tiny@v1"


def test_embed_matches_the_numpy_reference(model_path: Path, weights: NDArray[np.float32]) -> None:
    m = similarity(1.5, 12.0, 120.0, 70.0)
    _, rgb, pts = scene_with_face(m)
    emb = OnnxEmbedder(model_path)
    v = emb.embed(rgb, arcface_face(pts))
    assert v.shape == (16,) and v.dtype == np.float32
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    np.testing.assert_allclose(v, reference(align_face(rgb, pts), weights), atol=1e-5)


def test_embed_with_68_point_landmarks(model_path: Path, weights: NDArray[np.float32]) -> None:
    m = similarity(1.5, 12.0, 120.0, 70.0)
    _, rgb, pts = scene_with_face(m)
    p68 = np.zeros((68, 2), dtype=np.float32)
    p68[36:42], p68[42:48] = pts[0], pts[1]  # eye contours collapse onto the eye centres
    p68[30], p68[48], p68[54] = pts[2], pts[3], pts[4]
    face = Face(FaceBox(0, 0, 10, 10), p68, "dlib68")
    v = OnnxEmbedder(model_path).embed(rgb, face)
    five = face.arcface5()
    assert five is not None
    np.testing.assert_allclose(five, pts, atol=1e-3)
    np.testing.assert_allclose(v, reference(align_face(rgb, five), weights), atol=1e-5)


def test_preprocessing_mean_std_bgr(model_path: Path, weights: NDArray[np.float32]) -> None:
    crop = smooth_crop()
    emb = OnnxEmbedder(model_path, channel_order="BGR", mean=127.5, std=128.0)
    x = (crop[..., ::-1].astype(np.float32) - 127.5) / 128.0
    v = x.transpose(2, 0, 1).reshape(-1) @ weights
    np.testing.assert_allclose(emb.embed_batch(crop[None])[0], v / np.linalg.norm(v), atol=1e-5)


def test_embed_batch_and_fixed_batch_models(tmp_path: Path, weights: NDArray[np.float32]) -> None:
    fixed = linear_embedder(tmp_path / "fixed.onnx", weights, input_shape=[1, 3, 112, 112])
    crops = np.stack([smooth_crop(seed=s) for s in range(3)])
    out = OnnxEmbedder(fixed).embed_batch(crops)
    assert out.shape == (3, 16)
    for crop, row in zip(crops, out, strict=True):
        np.testing.assert_allclose(row, reference(crop, weights), atol=1e-5)
    assert OnnxEmbedder(fixed).embed_batch([]).shape == (0, 16)


def test_flip_fusion_is_symmetric(model_path: Path) -> None:
    crop = smooth_crop()
    mirror = np.ascontiguousarray(crop[:, ::-1])
    fused = OnnxEmbedder(model_path, flip=True)
    a, b = fused.embed_batch(np.stack([crop, mirror]))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    plain = OnnxEmbedder(model_path)
    p, q = plain.embed_batch(np.stack([crop, mirror]))
    assert not np.allclose(p, q, atol=1e-3)
    assert fused.model.version.endswith("+flip") and fused.model != plain.model


@pytest.mark.parametrize(
    "shape",
    [["N", 3, 64, 64], ["N", 1, 112, 112], ["N", 3, 112], [4, 3, 112, 112]],
    ids=["spatial", "channels", "rank", "batch"],
)
def test_wrong_input_shape_is_refused(tmp_path: Path, shape: list[int | str]) -> None:
    import math

    numel = math.prod(d if isinstance(d, int) else 1 for d in shape[1:])
    path = linear_embedder(tmp_path / "bad.onnx", projection(seed=0)[:numel], input_shape=shape)
    with pytest.raises(ModelError) as err:
        OnnxEmbedder(path)
    assert err.value.code == "model.bad_input"


def test_dynamic_spatial_input_is_accepted(tmp_path: Path, weights: NDArray[np.float32]) -> None:
    path = linear_embedder(tmp_path / "dyn.onnx", weights, input_shape=["N", 3, "H", "W"])
    assert OnnxEmbedder(path).dim == 16


def test_wrong_output_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        OnnxEmbedder(pooled_4d_output(tmp_path / "pool.onnx"))
    assert err.value.code == "model.bad_output"


def test_garbage_and_missing_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x89PNG this is not a model" * 50)
    with pytest.raises(ModelError) as err:
        OnnxEmbedder(junk)
    assert err.value.code == "model.not_onnx"
    with pytest.raises(ModelError) as err:
        OnnxEmbedder(tmp_path / "absent.onnx")
    assert err.value.code == "model.not_found"


def test_faces_without_arcface_points_are_refused(model_path: Path) -> None:
    face = Face(FaceBox(0, 0, 50, 50), np.zeros((5, 2), dtype=np.float32), "dlib5")
    with pytest.raises(ModelError) as err:
        OnnxEmbedder(model_path).embed(np.zeros((60, 60, 3), dtype=np.uint8), face)
    assert err.value.code == "model.landmarks_unavailable"


# --- real weights (../shared, skipped when absent) ------------------------------------------------


_DLIB: tuple[object, object] | None = None


def _dlib_face(path: Path) -> tuple[NDArray[np.uint8], Face] | None:
    import dlib
    import face_recognition_models

    global _DLIB
    if _DLIB is None:
        _DLIB = (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(face_recognition_models.pose_predictor_model_location()),
        )
    detector, predictor = _DLIB
    bgr = cv2.imread(str(path))
    if bgr is None:
        return None
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    rects = detector(rgb, 1)
    if not rects:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    shape = predictor(rgb, r)
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    box = FaceBox(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()))
    return rgb, Face(box, pts, "dlib68")


def _lfw_pairs(n: int) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    by_person: dict[str, list[Path]] = {}
    with (LFW / "labels.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_person.setdefault(row["identity"], []).append(LFW / row["path"])
    people = sorted(p for p, imgs in by_person.items() if len(imgs) >= 2)[: n + 1]
    genuine = [(by_person[p][0], by_person[p][1]) for p in people[:n]]
    impostor = [(by_person[a][0], by_person[b][1]) for a, b in itertools.pairwise(people)]
    return genuine, impostor[:n]


@pytest.mark.shared
def test_real_weights_separate_same_from_different_people() -> None:
    if not MOBILEFACE.is_file() or not (LFW / "labels.csv").is_file():
        pytest.skip("../shared/models/mobileface-v2.onnx or ../shared/faces/lfw-dev is absent")
    emb = OnnxEmbedder(MOBILEFACE, mean=0.0, std=1.0, channel_order="RGB")
    genuine, impostor = _lfw_pairs(12)

    def cosines(pairs: list[tuple[Path, Path]]) -> list[float]:
        out = []
        for a, b in pairs:
            fa, fb = _dlib_face(a), _dlib_face(b)
            if fa is None or fb is None:
                continue
            out.append(float(emb.embed(*fa) @ emb.embed(*fb)))
        return out

    gen, imp = cosines(genuine), cosines(impostor)
    print(f"genuine {np.round(gen, 2)} impostor {np.round(imp, 2)}")
    assert len(gen) >= 8 and len(imp) >= 8
    assert np.mean(gen) > 0.4, gen
    assert np.mean(imp) < 0.2, imp
    assert np.mean(gen) - np.mean(imp) > 0.3
