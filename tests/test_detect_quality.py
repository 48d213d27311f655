"""Detection, alignment and the quality gate on real faces."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import subject_images
from fieldid.detect.acquire import FaceFinder
from fieldid.detect.dlib_adapters import DlibHogDetector, DlibLandmarker, DlibMmodDetector
from fieldid.errors import AcquisitionFailed, QualityRefused
from fieldid.pipeline import FacePipeline, PipelineSpec
from fieldid.quality import QualityGate, assess


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder(DlibHogDetector(), DlibLandmarker("dlib5"))


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline.from_spec(PipelineSpec())


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_finds_one_face_with_eyes_inside_the_box(finder: FaceFinder, astronaut_rgb: np.ndarray):
    acq = finder.find(astronaut_rgb)
    assert acq.faces_found == 1
    left, right = acq.face.eye_centres()
    b = acq.face.box
    for eye in (left, right):
        assert b.left < eye[0] < b.right and b.top < eye[1] < b.bottom
    assert left[0] < right[0]
    assert 35 < acq.face.inter_eye_distance < 55


def test_no_face_is_a_failure_to_acquire(finder: FaceFinder):
    blank = np.full((300, 300, 3), 127, dtype=np.uint8)
    with pytest.raises(AcquisitionFailed) as e:
        finder.find(blank)
    assert e.value.code == "acquire.no_face"


def test_several_faces_keeps_the_largest_and_counts(finder: FaceFinder, astronaut_rgb):
    photo = np.asarray(Image.open(subject_images("subject-0001")[0]).convert("RGB"))
    big, small = cv2.resize(photo, (500, 500)), cv2.resize(photo, (400, 400))
    canvas = np.full((520, 1000, 3), 200, dtype=np.uint8)
    canvas[10:510, 0:500] = big
    canvas[60:460, 560:960] = small
    acq = finder.find(canvas)
    assert acq.faces_found == 2
    assert acq.face.box.right < 520  # the larger face, on the left


def test_detection_ladder_goes_from_a_small_copy_to_full_resolution_within_budget():
    finder = FaceFinder(DlibHogDetector(), DlibLandmarker("dlib5"), detect_max_side=320)
    # 1280×960 upsampled ×4 would examine 19.7 MP, beyond the 5 MP a step may examine
    assert finder.ladder(960, 1280) == [(0.25, 0), (0.5, 0), (1.0, 0), (1.0, 1)]
    assert finder.ladder(250, 250) == [(1.0, 0), (1.0, 1), (1.0, 2)]
    assert finder.ladder(480, 640) == [(0.5, 0), (1.0, 0), (1.0, 1), (1.0, 2)]
    assert finder.ladder(480, 640, (0,)) == [(0.5, 0), (1.0, 0)]
    # a 12 MP photo is searched on copies only, never at full resolution
    assert finder.ladder(3000, 4000) == [(0.08, 0), (0.16, 0), (0.32, 0), (0.64, 0)]


def test_fallback_detector_runs_only_where_the_first_saw_a_near_miss(astronaut_rgb):
    class Blind:
        name = "blind"
        calls = 0

        def detect(self, rgb, upsample=0):
            Blind.calls += 1
            return []

    # A detector that cannot report near-misses gets no fallback: it would have to scan blind.
    finder = FaceFinder(Blind(), DlibLandmarker("dlib5"), fallback=DlibHogDetector())
    with pytest.raises(AcquisitionFailed) as e:
        finder.find(astronaut_rgb)
    assert e.value.details["fallback_regions"] == 0 and Blind.calls == 4  # 0.625×, 1×, up 1, 2
    direct = FaceFinder(DlibHogDetector(), DlibLandmarker("dlib5"), fallback=Blind())
    assert direct.find(astronaut_rgb).detector == "dlib-hog" and Blind.calls == 4


def test_small_face_is_found_by_upsampling_and_gated_with_guidance(pipeline: FacePipeline):
    face = np.asarray(Image.open(subject_images("subject-0002")[0]).convert("RGB"))
    canvas = np.full((960, 1280, 3), 90, dtype=np.uint8)
    tiny = cv2.resize(face, (125, 125), interpolation=cv2.INTER_AREA)
    canvas[400:525, 600:725] = tiny
    processed = pipeline.process(jpeg(canvas))
    assert processed.acquisition.detect_scale == 1.0  # too small for the reduced copies
    ied = processed.quality.value("inter_eye_distance")
    assert ied < 30
    with pytest.raises(QualityRefused) as e:
        QualityGate().enforce(processed.quality)
    assert e.value.code == "quality.too_far"
    assert f"move closer (eyes {math.floor(ied)} px apart, 60 needed)" in e.value.message


@pytest.mark.parametrize("angle", [-5, 5])
def test_roll_is_measured_from_the_eye_line(finder: FaceFinder, astronaut_rgb, angle):
    h, w = astronaut_rgb.shape[:2]
    acq0 = finder.find(astronaut_rgb)
    c = acq0.face.box
    centre = ((c.left + c.right) / 2, (c.top + c.bottom) / 2)
    m = cv2.getRotationMatrix2D(centre, angle, 1.0)  # positive: anticlockwise on screen
    rotated = cv2.warpAffine(astronaut_rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    q0 = assess(astronaut_rgb, acq0)
    q1 = assess(rotated, finder.find(rotated))
    assert q1.value("roll") - q0.value("roll") == pytest.approx(-angle, abs=2)


def test_blur_darkness_and_light_each_refused_with_their_own_reason(
    finder: FaceFinder, astronaut_rgb
):
    gate = QualityGate(min_inter_eye_px=30)
    sharp = assess(astronaut_rgb, finder.find(astronaut_rgb))
    assert gate.check(sharp) == []
    blurred = cv2.GaussianBlur(astronaut_rgb, (0, 0), 3)
    qb = assess(blurred, finder.find(blurred))
    assert qb.measures["sharpness"].score < sharp.measures["sharpness"].score
    assert "quality.blurred" in {g.code for g in gate.check(qb)}
    dark = (astronaut_rgb * 0.22).astype(np.uint8)
    qd = assess(dark, finder.find(dark))
    codes = {g.code for g in gate.check(qd)}
    assert "quality.too_dark" in codes
    assert "more light" in " ".join(g.message for g in gate.check(qd))


def test_unified_score_orders_good_above_poor(finder: FaceFinder, astronaut_rgb):
    good = assess(astronaut_rgb, finder.find(astronaut_rgb))
    bad_img = cv2.GaussianBlur((astronaut_rgb * 0.3).astype(np.uint8), (0, 0), 2.5)
    bad = assess(bad_img, finder.find(bad_img))
    assert good.unified > bad.unified
    assert good.band in ("good", "fair")
    assert set(good.to_dict()["measures"]) >= {
        "inter_eye_distance",
        "yaw",
        "pitch",
        "roll",
        "sharpness",
        "luminance",
        "exposure",
        "face_count",
        "face_size",
    }


def test_mmod_detector_finds_the_face_too(astronaut_rgb):
    small = cv2.resize(astronaut_rgb, (256, 256))
    boxes = DlibMmodDetector().detect(small, 1)
    assert len(boxes) == 1


@pytest.mark.parametrize(
    ("embedder", "dim", "model_id"),
    [("mobileface-v2", 256, "mobileface-v2"), ("dlib-resnet", 128, "dlib-resnet-v1")],
)
def test_pipeline_template_is_unit_length_and_records_its_model(embedder, dim, model_id):
    pipeline = FacePipeline.from_spec(PipelineSpec(embedder=embedder))
    p = pipeline.process(subject_images("subject-0003")[0])
    assert p.template.vector.shape == (dim,)
    assert np.linalg.norm(p.template.vector) == pytest.approx(1.0, abs=1e-5)
    assert p.template.model.id == model_id and p.template.model == pipeline.model
    assert set(p.timings_ms) == {
        "decode",
        "detect_align",
        "detect",
        "landmarks",
        "quality",
        "embed",
    }


def test_the_default_pipeline_uses_mobileface(pipeline: FacePipeline):
    assert pipeline.model.id == "mobileface-v2"


def test_same_person_scores_higher_than_different_people(pipeline: FacePipeline):
    a1, a2, _ = subject_images("subject-0004")
    b1 = subject_images("subject-0005")[0]
    va, va2, vb = (pipeline.process(p).template.vector for p in (a1, a2, b1))
    assert float(va @ va2) > float(va @ vb)


def test_yunet_detector_loads_from_a_user_path_and_refuses_bad_files(tmp_path):
    from fieldid.detect.yunet import YuNetDetector
    from fieldid.errors import ModelError, WorkspaceError
    from fieldid.pipeline import make_detector

    with pytest.raises(ModelError) as e:
        YuNetDetector(tmp_path / "missing.onnx")
    assert e.value.code == "model.not_found"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError) as e:
        YuNetDetector(junk)
    assert e.value.code == "model.invalid"
    with pytest.raises(WorkspaceError):
        make_detector("yunet")
