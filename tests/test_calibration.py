"""Calibration maths on synthetic score distributions (fast; no faces)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fieldid.calibration import Calibration, CalibrationError, score_meaning
from fieldid.calibration.fit import (
    MIN_BAND_IMPOSTOR,
    PairScores,
    _survival,
    fit_calibration,
    fit_curve,
    fit_tail,
    in_fit_split,
)
from fieldid.calibration.model import fpir_from_log_fmr, log_fmr_for_fpir
from fieldid.calibration.store import bundled, read, write
from fieldid.calibration.threshold import threshold_in_force
from fieldid.errors import WorkspaceError


def normal_sf(x: float, mu: float, sd: float) -> float:
    return 0.5 * math.erfc((x - mu) / (sd * math.sqrt(2)))


def synthetic_pairs(
    n_imp: int = 300_000, n_gen: int = 5_000, seed: int = 0, poor_imp: int = 0
) -> PairScores:
    rng = np.random.default_rng(seed)
    imp = rng.normal(0.5, 0.05, n_imp)
    gen = rng.normal(0.8, 0.05, n_gen)
    imp_band = np.where(np.arange(n_imp) < poor_imp, "poor", "good")
    gen_band = np.array(["good"] * n_gen)
    return PairScores(
        gen,
        gen_band,
        imp,
        imp_band,
        images=1000,
        identities=500,
        images_by_band={"good": 990, "fair": 0, "poor": 10},
        genuine_weight=np.ones(n_gen),
        impostor_weight=np.ones(n_imp),
    )


@pytest.fixture(scope="module")
def cal() -> Calibration:
    return fit_calibration(
        synthetic_pairs(poor_imp=1000),
        model="test-model@1",
        dataset={"description": "synthetic"},
        split={"fit_fraction": 1.0},
        origin="workspace",
    )


def test_empirical_fmr_matches_the_true_distribution(cal: Calibration):
    for x in (0.55, 0.6, 0.65):
        truth = normal_sf(x, 0.5, 0.05)
        assert cal.fmr_at(x) == pytest.approx(truth, rel=0.1)
    assert cal.fnmr_at(0.8) == pytest.approx(0.5, abs=0.03)
    assert not cal.curve("all").extrapolated(0.6)


def test_tail_extrapolates_beyond_the_data_within_a_factor_of_three(cal: Calibration):
    # 300k impostor pairs observe down to ~3e-6; the fitted tail goes further.
    x = 0.5 + 5.2 * 0.05  # true FMR ~1e-7
    truth = normal_sf(x, 0.5, 0.05)
    assert cal.curve("all").extrapolated(x)
    assert truth / 3 < cal.fmr_at(x) < truth * 3


def test_fmr_is_non_increasing_and_threshold_inverts_it(cal: Calibration):
    xs = np.linspace(0.3, 1.0, 300)
    f = [cal.fmr_at(x) for x in xs]
    assert all(a >= b for a, b in itertools.pairwise(f))
    for target in (1e-2, 1e-4, 1e-7, 1e-9):
        t = cal.threshold_for_fmr(target)
        assert cal.fmr_at(t) <= target * (1 + 1e-9)
        assert cal.fmr_at(t - 1e-4) > target


def test_fpir_estimate_grows_with_gallery_size(cal: Calibration):
    t = 0.76
    sizes = [1, 10, 1_000, 100_000, 10_000_000]
    fpirs = [cal.fpir(n, t) for n in sizes]
    assert all(a < b for a, b in itertools.pairwise(fpirs))
    assert fpirs[0] == pytest.approx(cal.fmr_at(t))
    assert fpirs[-1] < cal.fpir(10**10, t) <= 1.0
    # Small n*FMR: FPIR ~ n*FMR.
    assert cal.fpir(1000, t) == pytest.approx(1000 * cal.fmr_at(t), rel=0.01)


def test_threshold_for_target_fpir_rises_with_gallery_size(cal: Calibration):
    thresholds = [cal.threshold_for_fpir(0.01, n) for n in (1_000, 10_000, 1_000_000, 10**8)]
    assert all(a < b for a, b in itertools.pairwise(thresholds))
    for n, t in zip((1_000, 10_000, 1_000_000, 10**8), thresholds, strict=True):
        assert cal.fpir(n, t) == pytest.approx(0.01, rel=1e-3)


def test_rates_are_stable_for_tiny_fmr_and_huge_galleries():
    assert fpir_from_log_fmr(10**9, math.log(1e-12)) == pytest.approx(-math.expm1(-1e-3))
    assert fpir_from_log_fmr(1, math.log(1e-15)) == pytest.approx(1e-15)
    f = math.exp(log_fmr_for_fpir(0.01, 10**9))
    assert f == pytest.approx(0.01 / 10**9, rel=0.01) and f > 0
    assert fpir_from_log_fmr(0, 0.0) == 0.0
    with pytest.raises(CalibrationError):
        log_fmr_for_fpir(0.0, 10)


def test_thin_band_falls_back_to_all_and_says_so(cal: Calibration):
    assert "poor" not in cal.bands and "good" in cal.bands
    assert "poor" in cal.fallbacks and "'all' curve stands in" in cal.fallbacks["poor"]
    assert cal.counts["poor"]["impostor"] == 1000 < MIN_BAND_IMPOSTOR
    assert cal.fmr_at(0.7, "poor") == cal.fmr_at(0.7, "all")
    m = score_meaning(cal, 0.7, 1000, "poor")
    assert m.band_used == "all" and "too few poor data" in m.text


def test_score_meaning_words(cal: Calibration):
    t = cal.threshold_for_fpir(1 / 300, 120_000, "good")
    m = score_meaning(cal, t, 120_000, "good")
    assert m.expected_false == pytest.approx(120_000 * m.fmr)
    assert m.one_in == pytest.approx(300, rel=0.01)
    assert (
        "in a gallery of 120,000 templates, a stranger scores this high in about 1 search in 300"
        in m.text
    )
    assert "a gallery of 1.2M templates" in score_meaning(cal, 0.99, 1_200_000, "good").text
    assert m.extrapolated and "extrapolated" in m.text
    low = score_meaning(cal, 0.55, 10_000, "good")
    assert "most searches" in low.text and not low.extrapolated
    d = m.to_dict()
    assert set(d) >= {"fmr", "expected_false_at_or_above", "fpir_at_score", "meaning"}


def test_artefact_round_trips_with_a_stable_id(cal: Calibration, tmp_path):
    path = tmp_path / "c.json"
    write(cal, path)
    again = read(path)
    assert again.id == cal.id and again.model == "test-model@1"
    for x in (0.5, 0.62, 0.75, 0.9):
        assert again.fmr_at(x) == pytest.approx(cal.fmr_at(x), rel=1e-4)
    path.write_text('{"format": "something else"}')
    with pytest.raises(CalibrationError) as e:
        read(path)
    assert e.value.code == "calibration.format"


def test_too_few_impostor_pairs_refuse_to_fit():
    with pytest.raises(CalibrationError) as e:
        fit_tail(np.linspace(0, 1, 50))
    assert e.value.code == "calibration.too_few_pairs"


def test_weighting_counts_each_pair_of_people_once():
    rng = np.random.default_rng(1)
    imp = rng.normal(0.5, 0.05, 20_000)
    gen = rng.normal(0.8, 0.05, 1000)
    # Duplicating the top scores 10 times with weight 1/10 each leaves the curve unchanged.
    top = imp > 0.6
    imp2 = np.concatenate([imp[~top], np.repeat(imp[top], 10)])
    w2 = np.concatenate([np.ones((~top).sum()), np.full(top.sum() * 10, 0.1)])
    grid = np.linspace(0.4, 0.7, 61)
    o1, o2 = np.argsort(imp), np.argsort(imp2)
    exact = _survival(imp[o1], np.ones(len(imp)), grid)
    assert np.allclose(_survival(imp2[o2], w2[o2], grid), exact, rtol=1e-9)
    a, b = fit_curve(gen, imp), fit_curve(gen, imp2, None, w2)
    for x in (0.55, 0.6, 0.62):
        # (the score grids differ, so interpolation between grid points differs a little)
        assert b.fmr_at(x) == pytest.approx(a.fmr_at(x), rel=0.02)


def test_split_by_identity_is_deterministic_and_about_the_fraction():
    ids = [f"person-{i}" for i in range(4000)]
    share = np.mean([in_fit_split(i, 0.5) for i in ids])
    assert 0.46 < share < 0.54
    assert [in_fit_split(i, 0.5) for i in ids[:50]] == [in_fit_split(i, 0.5) for i in ids[:50]]
    assert all(in_fit_split(i, 1.0) for i in ids[:10])


def test_threshold_in_force_from_target_or_configured(cal: Calibration):
    small = threshold_in_force(
        configured=None, target_fpir=0.01, calibration=cal, model="m", gallery_size=1_000
    )
    big = threshold_in_force(
        configured=None, target_fpir=0.01, calibration=cal, model="m", gallery_size=1_000_000
    )
    assert small.how == big.how == "target_fpir" and small.value < big.value
    assert big.fpir == pytest.approx(0.01, rel=1e-3) and big.calibration == cal.id
    fixed = threshold_in_force(
        configured=0.7, target_fpir=0.01, calibration=cal, model="m", gallery_size=1_000
    )
    assert fixed.how == "configured" and fixed.value == 0.7
    assert fixed.fpir == pytest.approx(cal.fpir(1000, 0.7))
    with pytest.raises(WorkspaceError) as e:
        threshold_in_force(
            configured=None,
            target_fpir=0.01,
            calibration=None,
            model="onnx:x@1",
            gallery_size=10,
            workspace="ws",
        )
    assert e.value.code == "config.threshold"
    assert "fieldid calibrate --workspace ws" in e.value.message


def test_bundled_dlib_calibration_is_labelled_and_sensible():
    cal = bundled("dlib-resnet-v1@frm-0.3.0")
    assert cal is not None and cal.origin == "bundled"
    assert "LFW" in cal.dataset["description"] and cal.split["fit_fraction"] == 0.5
    assert bundled("onnx:nobody@0") is None
    # dlib strangers average ~0.84: FMR 1 % lies near 0.9, and a million-template gallery at
    # FPIR 1 % needs a threshold well above the 1,000-template one.
    assert 0.88 < cal.threshold_for_fmr(0.01) < 0.93
    assert cal.threshold_for_fpir(0.01, 1_000_000) > cal.threshold_for_fpir(0.01, 1_000) + 0.01


def test_far_extrapolation_is_stated_as_a_bound(cal: Calibration):
    curve = cal.curve("good")
    far = 0.99  # ~10 standard deviations above the impostor mean: no data anywhere near
    assert math.exp(curve.log_fmr(far)) < curve.fmr_floor
    m = score_meaning(cal, far, 1_000_000, "good")
    assert m.beyond_floor and m.fmr == curve.fmr_floor
    assert (
        "fewer than 1 search in" in m.text and "beyond what the calibration can resolve" in m.text
    )
    assert m.to_dict()["rates_are_bounds"] is True
