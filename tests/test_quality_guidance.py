"""The quality gate's guidance in an officer's words: the most useful instruction first (light
before blur when the face is dark), plain words first with the numbers apart, worded for a live
camera or for a supplied file, and no contradiction from rounding."""

from __future__ import annotations

import numpy as np
import pytest

from fieldid.detect.acquire import FaceFinder
from fieldid.detect.dlib_adapters import DlibHogDetector, DlibLandmarker
from fieldid.errors import QualityRefused
from fieldid.quality import QualityGate, assess
from fieldid.quality.measures import Measure, QualityReport

GOOD = {
    "inter_eye_distance": 90.0,
    "yaw": 2.0,
    "pitch": -2.0,
    "roll": 1.0,
    "sharpness": 200.0,
    "luminance": 140.0,
    "exposure": 0.01,
    "face_count": 1.0,
    "face_size": 0.1,
}


def report(unified: int = 90, sharpness_score: int = 90, **values: float) -> QualityReport:
    """A report with good values except those given (scores: 90, sharpness as given)."""
    v = {**GOOD, **values}
    ms = {k: Measure(k, x, "", sharpness_score if k == "sharpness" else 90) for k, x in v.items()}
    return QualityReport(ms, unified)


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder(DlibHogDetector(), DlibLandmarker("dlib5"))


def test_a_dark_frame_gets_more_light_first_and_blur_after(finder, astronaut_rgb):
    dark = (astronaut_rgb * 0.22).astype(np.uint8)
    q = assess(dark, finder.find(dark))
    gate = QualityGate(min_inter_eye_px=30)
    found = gate.check(q)
    codes = [g.code for g in found]
    assert codes[0] == "quality.too_dark"
    assert found[0].message == "more light"
    # Darkness reads as blur too (less contrast); if blur is reported, it comes after the light.
    if "quality.blurred" in codes:
        assert codes.index("quality.blurred") > codes.index("quality.too_dark")


def test_order_is_people_light_distance_pose_blur():
    q = report(
        face_count=2,
        luminance=30.0,
        inter_eye_distance=40.0,
        yaw=40.0,
        roll=40.0,
        sharpness_score=5,
    )
    codes = [g.code for g in QualityGate().check(q)]
    assert codes == [
        "quality.several_faces",
        "quality.too_dark",
        "quality.too_far",
        "quality.pose_yaw",
        "quality.pose_roll",
        "quality.blurred",
    ]


def test_plain_words_first_numbers_in_the_detail():
    (g,) = QualityGate().check(report(inter_eye_distance=43.07))
    assert g.message == "move closer"
    assert g.detail == "eyes 43 px apart, 60 needed"
    assert g.text == "move closer (eyes 43 px apart, 60 needed)"
    (g,) = QualityGate().check(report(yaw=-41.2))
    assert (g.message, g.detail) == ("face the camera", "turned 42° to the side, at most 30°")
    (g,) = QualityGate().check(report(sharpness_score=3))
    assert (g.message, g.detail) == ("hold still", "the face is blurred")


@pytest.mark.parametrize(
    ("values", "must_not"),
    [
        ({"inter_eye_distance": 59.7}, "60 px apart, 60 needed"),
        ({"yaw": 30.2}, "turned 30° to the side, at most 30°"),
        ({"roll": -30.4}, "tilted 30° sideways, at most 30°"),
        ({"luminance": 49.6}, "brightness 50/255, at least 50"),
        ({"luminance": 215.3}, "brightness 215/255, at most 215"),
        ({"exposure": 0.151}, "15% of the face is pure black or white, at most 15%"),
    ],
)
def test_no_contradiction_from_rounding(values, must_not):
    found = QualityGate().check(report(**values))
    assert len(found) == 1
    assert must_not not in found[0].text
    import re

    numbers = [int(n) for n in re.findall(r"\d+", found[0].detail) if n != "255"]
    shown, limit = numbers[0], numbers[-1]
    if "needed" in found[0].detail or "at least" in found[0].detail:
        assert shown < limit
    else:
        assert shown > limit


def test_a_file_is_told_what_is_wrong_with_the_photo():
    gate = QualityGate()
    (g,) = gate.check(report(inter_eye_distance=43.07), "file")
    assert g.code == "quality.too_far"
    assert g.message == (
        "the face is too small in this photo: about 60 px between the eyes are needed; "
        "take a closer photo"
    )
    assert g.detail == "this photo has 43 px"
    texts = " ".join(
        g.text
        for g in gate.check(
            report(face_count=2, luminance=30.0, yaw=40.0, pitch=35.0, sharpness_score=2),
            "file",
        )
    )
    assert "in this photo" in texts
    for live_word in ("move closer", "hold still", "more light", "face the camera"):
        assert live_word not in texts


def test_enforce_says_where_the_photo_came_from():
    with pytest.raises(QualityRefused) as e:
        QualityGate().enforce(report(inter_eye_distance=43.0), "file")
    assert e.value.details["capture"] == "file"
    assert e.value.details["guidance"][0]["detail"] == "this photo has 43 px"
    assert e.value.message.startswith("the face is too small in this photo")
    with pytest.raises(ValueError):
        QualityGate().check(report(), "webcam")  # type: ignore[arg-type]
