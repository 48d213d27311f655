"""Biometric evaluation metrics: hand-computed cases, edge cases and properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from fieldid.errors import DatasetError
from fieldid.evaluation.metrics import (
    MetricInputError,
    OperatingPoint,
    cmc,
    det_curve,
    eer,
    fmr_fnmr_at,
    fnir_at,
    fnir_at_fpir,
    fpir_at,
    kfold_accuracy,
    mate_rank,
    rank_k_rate,
    tar_at_far,
    threshold_at_fmr,
    threshold_at_fpir,
)

TEN = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def above(x: float) -> float:
    return float(np.nextafter(x, math.inf))


# --------------------------------------------------------------------------- verification


def test_fmr_fnmr_hand_computed_and_tie_is_accepted() -> None:
    r = fmr_fnmr_at([0.9, 0.8, 0.7], [0.1, 0.2, 0.3, 0.8], 0.8)
    assert r.fmr == pytest.approx(1 / 4)  # the 0.8 impostor ties the threshold: accepted
    assert r.fnmr == pytest.approx(1 / 3)  # 0.7 rejected
    r = fmr_fnmr_at([0.9, 0.8, 0.7], [0.1, 0.2, 0.3, 0.8], 0.7)
    assert (r.fmr, r.fnmr, r.threshold) == (0.25, 0.0, 0.7)


def test_threshold_at_fmr_hand_computed() -> None:
    op = threshold_at_fmr(TEN, 0.1)
    assert op == OperatingPoint(threshold=above(0.9), rate=0.1, resolvable=True)
    op = threshold_at_fmr(TEN, 0.25)  # 2 false matches allowed → reject 0.8
    assert op == OperatingPoint(threshold=above(0.8), rate=0.2, resolvable=True)


def test_threshold_at_fmr_float_error_in_target_times_n() -> None:
    # 0.57 * 100 == 56.99999999999999 in float64; 57 false matches are allowed.
    op = threshold_at_fmr(np.arange(100) / 100, 0.57)
    assert op.rate == pytest.approx(0.57)
    assert op.threshold == above(0.42)


def test_threshold_at_fmr_below_one_over_n_is_not_resolvable() -> None:
    for target in (0.0, 0.05, 0.0999):
        op = threshold_at_fmr(TEN, target)
        assert op.resolvable is False
        assert op.rate == 0.0
        assert op.threshold == above(1.0)
    assert threshold_at_fmr(TEN, 0.1).resolvable is True


def test_threshold_at_fmr_ties_reject_the_whole_tie() -> None:
    op = threshold_at_fmr([0.5, 0.5, 0.5, 0.1], 0.5)
    # At 0.5 itself FMR is 3/4 > 0.5, so the smallest admissible threshold is just above it.
    assert op.threshold == above(0.5)
    assert op.rate == 0.0
    assert op.resolvable is True


def test_threshold_at_fmr_target_one_accepts_everything() -> None:
    op = threshold_at_fmr(TEN, 1.0)
    assert op.threshold == -math.inf and op.rate == 1.0


def test_threshold_at_fmr_is_the_smallest_admissible_threshold() -> None:
    rng = np.random.default_rng(7)
    imp = rng.normal(size=1000)
    for target in (0.001, 0.01, 0.1, 0.5):
        op = threshold_at_fmr(imp, target)
        assert np.mean(imp >= op.threshold) <= target
        assert np.mean(imp >= np.nextafter(op.threshold, -math.inf)) > target
        assert op.rate == np.mean(imp >= op.threshold)


def test_tar_at_far_hand_computed() -> None:
    r = tar_at_far([0.9, 0.8, 0.7, 0.6], TEN, 0.3)  # reject impostor 0.7 and below
    assert r.threshold == above(0.7)
    assert (r.tar, r.far, r.resolvable) == (0.5, 0.3, True)
    r = tar_at_far([0.9, 0.8, 0.7, 0.6], TEN, 0.01)
    assert r.resolvable is False and r.far == 0.0 and r.tar == 0.0


def test_eer_perfect_separation_is_zero() -> None:
    e = eer([0.9, 0.8, 0.7], [0.1, 0.2, 0.3])
    assert e.rate == 0.0
    assert 0.3 < e.threshold <= 0.7
    assert fmr_fnmr_at([0.9, 0.8, 0.7], [0.1, 0.2, 0.3], e.threshold).fmr == 0.0


def test_eer_exact_crossing() -> None:
    e = eer([0.9, 0.8, 0.7], [0.75, 0.2, 0.1])
    assert e.rate == pytest.approx(1 / 3)
    assert e.threshold == 0.75


def test_eer_interpolated_between_operating_points() -> None:
    # t=0.6: FMR 1/2, FNMR 1/3; t=0.8: FMR 0, FNMR 1/3 → meet a third of the way along.
    e = eer([0.9, 0.8, 0.5], [0.6, 0.3])
    assert e.rate == pytest.approx(1 / 3)
    assert e.threshold == pytest.approx(0.6 + 0.2 / 3)


def test_eer_fully_inverted_is_one() -> None:
    assert eer([0.1, 0.2], [0.8, 0.9]).rate == 1.0


def test_eer_identical_distributions_is_half() -> None:
    rng = np.random.default_rng(0)
    e = eer(rng.normal(size=5000), rng.normal(size=5000))
    assert e.rate == pytest.approx(0.5, abs=0.03)


def test_eer_lies_between_fmr_and_fnmr_near_its_threshold() -> None:
    rng = np.random.default_rng(1)
    g, i = rng.normal(2.0, 1.0, 800), rng.normal(0.0, 1.0, 1200)
    e = eer(g, i)
    r = fmr_fnmr_at(g, i, e.threshold)
    assert min(r.fmr, r.fnmr) - 0.01 <= e.rate <= max(r.fmr, r.fnmr) + 0.01
    assert e.rate == pytest.approx(0.159, abs=0.03)  # Φ(-1) for d' = 2


def test_det_curve_grid_and_monotonicity() -> None:
    rng = np.random.default_rng(2)
    g, i = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    d = det_curve(g, i, 50)
    assert d.thresholds.shape == d.fmr.shape == d.fnmr.shape == (50,)
    assert np.all(np.diff(d.thresholds) > 0)
    assert np.all(np.diff(d.fmr) <= 0) and np.all(np.diff(d.fnmr) >= 0)
    assert d.fmr[0] == 1.0 and d.fnmr[0] == 0.0
    mid = fmr_fnmr_at(g, i, float(d.thresholds[20]))
    assert (mid.fmr, mid.fnmr) == (d.fmr[20], d.fnmr[20])
    with pytest.raises(MetricInputError):
        det_curve(g, i, 1)


def test_kfold_accuracy_hand_computed_with_given_order() -> None:
    # Fold 0 trains on g=[.8,.3], i=[.2,.7]: best interval (0.2, 0.3] → t=0.25 → test acc 3/4.
    # Fold 1 trains on g=[.9,.6], i=[.1,.5]: best interval (0.5, 0.6] → t=0.55 → test acc 2/4.
    r = kfold_accuracy([0.9, 0.6, 0.8, 0.3], [0.1, 0.5, 0.2, 0.7], folds=2, seed=None)
    assert r.fold_accuracies == (0.75, 0.5)
    assert r.thresholds == pytest.approx((0.25, 0.55))
    assert r.mean == 0.625 and r.std == 0.125
    assert r.standard_error == pytest.approx(0.125)


def test_kfold_accuracy_perfect_separation_is_one() -> None:
    rng = np.random.default_rng(3)
    r = kfold_accuracy(rng.uniform(0.6, 1.0, 600), rng.uniform(0.0, 0.4, 600), folds=10, seed=0)
    assert r.mean == 1.0 and r.std == 0.0
    assert len(r.fold_accuracies) == 10
    assert all(0.4 <= t <= 0.6 for t in r.thresholds)


def test_kfold_accuracy_identical_distributions_is_half() -> None:
    rng = np.random.default_rng(4)
    r = kfold_accuracy(rng.normal(size=3000), rng.normal(size=3000), seed=0)
    assert r.mean == pytest.approx(0.5, abs=0.04)


def test_kfold_accuracy_is_seeded() -> None:
    rng = np.random.default_rng(5)
    g, i = rng.normal(1.0, 1.0, 200), rng.normal(size=200)
    assert kfold_accuracy(g, i, seed=3) == kfold_accuracy(g, i, seed=3)


def test_kfold_accuracy_rejects_bad_protocol() -> None:
    with pytest.raises(MetricInputError, match="balanced"):
        kfold_accuracy([0.9, 0.8, 0.7], [0.1, 0.2])
    with pytest.raises(MetricInputError, match="folds"):
        kfold_accuracy([0.9, 0.8], [0.1, 0.2], folds=1)
    with pytest.raises(MetricInputError, match="cannot fill"):
        kfold_accuracy([0.9, 0.8], [0.1, 0.2], folds=10)


# --------------------------------------------------------------------------- identification


def test_mate_rank_counts_only_strictly_higher_nonmates() -> None:
    assert mate_rank(0.8, [0.9, 0.8, 0.5]) == 2
    assert mate_rank(0.95, []) == 1
    with pytest.raises(MetricInputError):
        mate_rank(math.nan, [0.1])


def test_cmc_and_rank_k_hand_computed() -> None:
    ranks = [1, 1, 2, 3, math.inf]
    np.testing.assert_allclose(cmc(ranks, 3), [0.4, 0.6, 0.8])
    np.testing.assert_allclose(cmc(ranks, 3, fta=5), [0.2, 0.3, 0.4])
    np.testing.assert_allclose(cmc([1, math.nan], 2), [0.5, 0.5])  # NaN: failed to acquire
    assert rank_k_rate(ranks, 1) == pytest.approx(0.4)
    assert rank_k_rate(ranks, 5) == pytest.approx(0.8)
    for bad in ([0, 1], [1.5], [-math.inf]):
        with pytest.raises(MetricInputError):
            cmc(bad, 3)
    with pytest.raises(MetricInputError):
        cmc([1], 0)


def test_fpir_hand_computed() -> None:
    top = [0.9, 0.5, 0.3, math.nan]  # NaN: the search returned no candidate
    assert fpir_at(top, 0.5) == 0.5
    assert fpir_at(top, 0.5, fta=1) == pytest.approx(2 / 5)
    assert fpir_at(top, -math.inf) == 0.75


def test_fpir_non_increasing_in_threshold() -> None:
    rng = np.random.default_rng(6)
    top = rng.normal(size=500)
    rates = [fpir_at(top, t) for t in np.linspace(-4, 4, 101)]
    assert np.all(np.diff(rates) <= 0)
    assert rates[0] == 1.0 and rates[-1] == 0.0


def test_threshold_at_fpir_hand_computed() -> None:
    top = [0.9, 0.5, 0.3, math.nan]
    assert threshold_at_fpir(top, 0.25) == OperatingPoint(above(0.5), 0.25, True)
    assert threshold_at_fpir(top, 0.5) == OperatingPoint(above(0.3), 0.5, True)
    assert threshold_at_fpir(top, 0.75) == OperatingPoint(-math.inf, 0.75, True)
    assert threshold_at_fpir(top, 0.2) == OperatingPoint(above(0.9), 0.0, False)
    assert threshold_at_fpir(top, 0.2, fta=1).resolvable is True  # n = 5


def test_fnir_hand_computed() -> None:
    ranks = [1, 1, 2, math.inf, math.nan]
    scores = [0.9, 0.4, 0.95, 0.8, math.nan]
    assert fnir_at(ranks, scores, 0.5) == pytest.approx(4 / 5)
    assert fnir_at(ranks, scores, 0.5, max_rank=2) == pytest.approx(3 / 5)
    assert fnir_at(ranks, scores, -math.inf) == pytest.approx(3 / 5)
    assert fnir_at(ranks, scores, 0.5, max_rank=2, fta=5) == pytest.approx(8 / 10)
    # Score exactly at the threshold is a hit.
    assert fnir_at([1], [0.5], 0.5) == 0.0
    with pytest.raises(MetricInputError, match="one per probe"):
        fnir_at([1, 1], [0.9], 0.5)


def test_fnir_at_fpir_hand_computed() -> None:
    ranks, scores = [1, 1, 1, 2], [0.9, 0.7, 0.4, 0.95]
    top = [0.8, 0.6, 0.3, 0.2]
    p = fnir_at_fpir(ranks, scores, top, 0.25)
    assert (p.threshold, p.fpir, p.fnir, p.resolvable) == (above(0.6), 0.25, 0.5, True)
    p = fnir_at_fpir(ranks, scores, top, 0.5)
    assert (p.threshold, p.fpir, p.fnir) == (above(0.3), 0.5, 0.25)
    p = fnir_at_fpir(ranks, scores, top, 0.5, max_rank=2)
    assert p.fnir == 0.0
    assert fnir_at_fpir(ranks, scores, top, 0.1).resolvable is False


def test_fnir_fpir_trade_off_is_consistent() -> None:
    rng = np.random.default_rng(8)
    n_mated = 400
    ranks = rng.choice([1, 1, 1, 2, 3], size=n_mated).astype(float)
    scores = rng.normal(1.5, 1.0, n_mated)
    top = rng.normal(0.0, 1.0, 1000)
    previous_fnir = 1.0
    for target in (0.001, 0.01, 0.05, 0.1, 0.3, 1.0):
        p = fnir_at_fpir(ranks, scores, top, target)
        assert p.fpir <= target
        assert p.fpir == fpir_at(top, p.threshold)
        assert p.fnir == fnir_at(ranks, scores, p.threshold)
        assert p.fnir <= previous_fnir  # more false positives allowed → fewer misses
        previous_fnir = p.fnir
    # At FPIR 1 everything is accepted; only rank limits remain.
    assert previous_fnir == pytest.approx(np.mean(ranks > 1))


# --------------------------------------------------------------------------- input errors


EMPTY_CALLS: list[Callable[[], Any]] = [
    lambda: fmr_fnmr_at([], [0.1], 0.5),
    lambda: fmr_fnmr_at([0.9], [], 0.5),
    lambda: threshold_at_fmr([], 0.1),
    lambda: tar_at_far([0.9], [], 0.1),
    lambda: eer([], [0.1]),
    lambda: det_curve([0.9], [], 10),
    lambda: kfold_accuracy([], []),
    lambda: cmc([], 5),
    lambda: rank_k_rate([], 1),
    lambda: fpir_at([], 0.5),
    lambda: threshold_at_fpir([], 0.1),
    lambda: fnir_at([], [], 0.5),
    lambda: fnir_at_fpir([1], [0.9], [], 0.1),
]


@pytest.mark.parametrize("call", EMPTY_CALLS)
def test_empty_inputs_raise_clear_value_error(call: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match="empty"):
        call()


def test_metric_input_error_is_a_dataset_error_with_a_code() -> None:
    with pytest.raises(DatasetError) as info:
        eer([], [0.1])
    assert info.value.code == "dataset.metric_input"


@pytest.mark.parametrize(
    "call",
    [
        lambda: eer([0.9, math.nan], [0.1]),
        lambda: fmr_fnmr_at([0.9], [0.1], math.nan),
        lambda: threshold_at_fmr([0.1], 1.5),
        lambda: threshold_at_fpir([0.1], -0.1),
        lambda: eer([[0.9]], [0.1]),
        lambda: fpir_at([0.1], 0.5, fta=-1),
    ],
)
def test_invalid_inputs_raise(call: Callable[[], Any]) -> None:
    with pytest.raises(MetricInputError):
        call()
