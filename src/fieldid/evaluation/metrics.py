"""Biometric evaluation metrics, in the field's words (ISO/IEC 19795-1, NIST FRVT).

Pure functions over arrays of comparison scores; numpy only, no state, no I/O.

Conventions used throughout:

* Scores are **similarities**: higher means more alike.
* A comparison (or a candidate) is **accepted at threshold t when score >= t**. So
  ``FMR(t) = #{impostor >= t} / #impostor`` and ``FNMR(t) = #{genuine < t} / #genuine``.
* Thresholds are float64. A threshold returned by ``threshold_at_*`` may be the next float64
  above an observed score (the smallest threshold that rejects it); compare scores against it in
  float64, never after casting the threshold to float32.
* A target rate is **resolvable** only when the data contain enough trials to observe it:
  ``target >= 1 / n`` (at least one false accept allowed). With fewer trials the threshold that
  admits none of them is returned, its observed rate is 0, and ``resolvable`` is ``False``: the
  true rate at that threshold is unknown, not zero.
* Empty inputs, NaN where NaN has no meaning, and targets outside [0, 1] raise
  :class:`MetricInputError` (a ``ValueError``).

Identification (1:N) inputs:

* Mated searches are summarised per probe by ``mate_rank`` and ``mate_score``. The rank is
  ``1 + number of non-mate gallery entries scoring strictly higher than the mate``
  (see :func:`mate_rank`). A mate not on the candidate list has rank ``inf`` (or NaN); a probe
  that failed to acquire (no template) has NaN score and rank, or is counted in ``fta``. Both are
  misses.
* Non-mated searches are summarised per probe by the top candidate score. NaN means the search
  returned no candidate at all (failed to acquire, or an empty list): it can never be a false
  positive but still counts as a search, as in NIST FRVT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldid.errors import DatasetError

__all__ = [
    "DetCurve",
    "EqualErrorRate",
    "IdentificationPoint",
    "KFoldAccuracy",
    "MetricInputError",
    "OperatingPoint",
    "TarAtFar",
    "VerificationRates",
    "cmc",
    "det_curve",
    "eer",
    "fmr_fnmr_at",
    "fnir_at",
    "fnir_at_fpir",
    "fpir_at",
    "kfold_accuracy",
    "mate_rank",
    "rank_k_rate",
    "tar_at_far",
    "threshold_at_fmr",
    "threshold_at_fpir",
]

FloatArray = NDArray[np.float64]


class MetricInputError(DatasetError, ValueError):
    """Scores or parameters given to a metric are unusable (empty, NaN, out of range)."""

    code = "dataset.metric_input"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold and the error rate observed at it.

    ``rate`` is the rate actually achieved on the data (at most the target; lower when ties
    force it), not the target itself. ``resolvable`` is ``False`` when the data hold too few
    trials to observe the target rate (``target < 1/n``).
    """

    threshold: float
    rate: float
    resolvable: bool


@dataclass(frozen=True)
class VerificationRates:
    """FMR and FNMR at one threshold (accept when ``score >= threshold``)."""

    threshold: float
    fmr: float
    fnmr: float


@dataclass(frozen=True)
class TarAtFar:
    """True accept rate at the threshold chosen for a false accept rate target.

    ``far`` is the FAR achieved at ``threshold`` (<= the target); ``tar = 1 - FNMR`` there.
    """

    tar: float
    far: float
    threshold: float
    resolvable: bool


@dataclass(frozen=True)
class EqualErrorRate:
    """Equal error rate and the (interpolated) threshold where FMR and FNMR meet."""

    rate: float
    threshold: float


@dataclass(frozen=True)
class DetCurve:
    """FMR and FNMR evaluated on an increasing grid of thresholds (for DET/ROC plots)."""

    thresholds: FloatArray
    fmr: FloatArray
    fnmr: FloatArray


@dataclass(frozen=True)
class KFoldAccuracy:
    """Result of the LFW-style k-fold verification accuracy protocol.

    ``std`` is the population standard deviation of the per-fold accuracies (ddof=0, as most
    published LFW tooling reports); :attr:`standard_error` is the LFW README's S_E.
    """

    mean: float
    std: float
    fold_accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]

    @property
    def standard_error(self) -> float:
        """Standard error of the mean: sample std (ddof=1) / sqrt(k)."""
        k = len(self.fold_accuracies)
        return float(np.std(self.fold_accuracies, ddof=1) / math.sqrt(k))


@dataclass(frozen=True)
class IdentificationPoint:
    """An open-set identification operating point: threshold, FPIR and FNIR at it."""

    threshold: float
    fpir: float
    fnir: float
    resolvable: bool


# --------------------------------------------------------------------------- validation


def _scores(values: ArrayLike, name: str, *, allow_nan: bool = False) -> FloatArray:
    """Return ``values`` as a non-empty 1-D float64 array, rejecting NaN unless allowed."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise MetricInputError(f"{name} must be a 1-D array of scores, got shape {a.shape}")
    if a.size == 0:
        raise MetricInputError(f"{name} is empty: a rate over zero trials is undefined")
    if not allow_nan and np.isnan(a).any():
        raise MetricInputError(f"{name} contains NaN scores")
    return a


def _rate_target(target: float, name: str) -> float:
    t = float(target)
    if not 0.0 <= t <= 1.0:
        raise MetricInputError(f"{name} must lie in [0, 1], got {target}")
    return t


def _threshold(threshold: float) -> float:
    t = float(threshold)
    if math.isnan(t):
        raise MetricInputError("threshold is NaN")
    return t


def _fta(fta: int, name: str = "fta") -> int:
    if int(fta) != fta or fta < 0:
        raise MetricInputError(f"{name} must be a non-negative integer, got {fta}")
    return int(fta)


def _ranks(mate_ranks: ArrayLike) -> FloatArray:
    r = _scores(mate_ranks, "mate_ranks", allow_nan=True)
    finite = r[np.isfinite(r)]
    if (finite < 1).any() or (finite != np.floor(finite)).any():
        raise MetricInputError("mate_ranks must be integers >= 1 (inf or NaN for no mate)")
    if (r == -np.inf).any():
        raise MetricInputError("mate_ranks cannot be -inf")
    return r


def _allowed_count(target: float, n: int) -> int:
    """Largest count k with k / n <= target, tolerant of float error in ``target * n``."""
    x = target * n
    return math.floor(x + 1e-9 * max(1.0, x))


def _threshold_for_count(finite_scores: FloatArray, n_total: int, target: float) -> OperatingPoint:
    """Smallest threshold at which at most ``floor(target * n_total)`` scores are >= it."""
    k = _allowed_count(target, n_total)
    resolvable = k >= 1
    if k >= finite_scores.size:
        # Every score may be accepted: no threshold is too low.
        return OperatingPoint(-math.inf, finite_scores.size / n_total, resolvable)
    desc = np.sort(finite_scores)[::-1]
    rejected = float(desc[k])  # the (k+1)-th highest must be rejected, and so all ties of it
    threshold = float(np.nextafter(rejected, math.inf))
    achieved = int(np.count_nonzero(finite_scores >= threshold))
    return OperatingPoint(threshold, achieved / n_total, resolvable)


# --------------------------------------------------------------------------- verification (1:1)


def fmr_fnmr_at(genuine: ArrayLike, impostor: ArrayLike, threshold: float) -> VerificationRates:
    """False match and false non-match rates at ``threshold``.

    ``FMR = #{impostor >= threshold} / #impostor``; ``FNMR = #{genuine < threshold} / #genuine``.
    """
    g = _scores(genuine, "genuine")
    i = _scores(impostor, "impostor")
    t = _threshold(threshold)
    return VerificationRates(
        threshold=t,
        fmr=float(np.count_nonzero(i >= t) / i.size),
        fnmr=float(np.count_nonzero(g < t) / g.size),
    )


def threshold_at_fmr(impostor: ArrayLike, target_fmr: float) -> OperatingPoint:
    """Smallest threshold whose FMR on ``impostor`` is <= ``target_fmr``.

    With impostor scores sorted high to low and ``k = floor(target_fmr * n)`` false matches
    allowed, the (k+1)-th highest score must be rejected; the threshold is the next float64 above
    it. Ties with that score are rejected too, so the achieved ``rate`` may be below the target.
    If ``k >= n`` every score may be accepted and the threshold is ``-inf``.
    ``resolvable`` is ``False`` when ``target_fmr < 1/n`` (no false match can be allowed, so the
    target cannot be observed with this many impostor comparisons).
    """
    i = _scores(impostor, "impostor")
    return _threshold_for_count(i, i.size, _rate_target(target_fmr, "target_fmr"))


def tar_at_far(genuine: ArrayLike, impostor: ArrayLike, far: float) -> TarAtFar:
    """TAR (``1 - FNMR``) at the threshold :func:`threshold_at_fmr` picks for ``far``."""
    g = _scores(genuine, "genuine")
    op = threshold_at_fmr(impostor, far)
    tar = float(np.count_nonzero(g >= op.threshold) / g.size)
    return TarAtFar(tar=tar, far=op.rate, threshold=op.threshold, resolvable=op.resolvable)


def eer(genuine: ArrayLike, impostor: ArrayLike) -> EqualErrorRate:
    """Equal error rate: where FMR and FNMR meet.

    The candidate thresholds are every distinct observed score plus the next float above the
    highest; these are all the distinct operating points. Going up through them, FNMR - FMR
    rises from -1 to +1. If it is 0 at some threshold, that threshold and its rate are returned.
    Otherwise the two adjacent operating points straddling the crossing are joined by a straight
    line in (FMR, FNMR) space (the ROC convex hull segment, i.e. randomising between the two
    thresholds) and the EER is where that line meets FMR = FNMR; the threshold is interpolated
    linearly with the same weight.
    """
    g = np.sort(_scores(genuine, "genuine"))
    i = np.sort(_scores(impostor, "impostor"))
    u = np.unique(np.concatenate([g, i]))
    t = np.append(u, np.nextafter(u[-1], np.inf))
    fmr = (i.size - np.searchsorted(i, t, side="left")) / i.size
    fnmr = np.searchsorted(g, t, side="left") / g.size
    d = fnmr - fmr
    j = int(np.argmax(d >= 0))  # first index where FNMR >= FMR; d[-1] == 1 so one exists
    if d[j] == 0 or j == 0:
        return EqualErrorRate(rate=float(fmr[j]), threshold=float(t[j]))
    w = float(d[j - 1] / (d[j - 1] - d[j]))  # in (0, 1)
    rate = (1 - w) * fmr[j - 1] + w * fmr[j]
    threshold = (1 - w) * t[j - 1] + w * t[j]
    return EqualErrorRate(rate=float(rate), threshold=float(threshold))


def det_curve(genuine: ArrayLike, impostor: ArrayLike, n_points: int = 200) -> DetCurve:
    """FMR and FNMR on ``n_points`` evenly spaced thresholds from the lowest to highest score.

    At each threshold ``t``: ``FMR = #{impostor >= t}/#impostor``,
    ``FNMR = #{genuine < t}/#genuine``. FMR is non-increasing and FNMR non-decreasing along the
    grid.
    """
    if n_points < 2:
        raise MetricInputError(f"n_points must be >= 2, got {n_points}")
    g = np.sort(_scores(genuine, "genuine"))
    i = np.sort(_scores(impostor, "impostor"))
    lo = float(min(g[0], i[0]))
    hi = float(max(g[-1], i[-1]))
    t = np.linspace(lo, hi, int(n_points))
    fmr = (i.size - np.searchsorted(i, t, side="left")) / i.size
    fnmr = np.searchsorted(g, t, side="left") / g.size
    return DetCurve(
        thresholds=t.astype(np.float64),
        fmr=fmr.astype(np.float64),
        fnmr=fnmr.astype(np.float64),
    )


def _best_accuracy_threshold(g: FloatArray, i: FloatArray) -> float:
    """Threshold maximising ``(#{g >= t} + #{i < t}) / (#g + #i)``; lowest such on ties.

    Accuracy is constant on each interval ``(u[j-1], u[j]]`` between consecutive distinct scores;
    the midpoint of the best interval is returned (``u[0]`` for the lowest, the next float above
    the highest score for the reject-all interval).
    """
    gs, isrt = np.sort(g), np.sort(i)
    u = np.unique(np.concatenate([gs, isrt]))
    t = np.append(u, np.nextafter(u[-1], np.inf))
    correct = (gs.size - np.searchsorted(gs, t, side="left")) + np.searchsorted(isrt, t, "left")
    j = int(np.argmax(correct))
    if j == 0 or j == t.size - 1:
        return float(t[j])
    mid = float((t[j - 1] + t[j]) / 2)
    return mid if mid > t[j - 1] else float(t[j])


def kfold_accuracy(
    genuine: ArrayLike, impostor: ArrayLike, folds: int = 10, seed: int | None = 0
) -> KFoldAccuracy:
    """LFW-style k-fold verification accuracy.

    Genuine and impostor pairs (equal numbers: the protocol is balanced) are each split into
    ``folds`` near-equal parts; fold ``f`` holds genuine part ``f`` and impostor part ``f``. For
    each fold the threshold maximising accuracy (see below) on the other ``folds - 1`` folds is
    chosen, and accuracy ``(#{genuine >= t} + #{impostor < t}) / #pairs`` is measured on the
    held-out fold. Returns the mean and standard deviation of the per-fold accuracies.

    With ``seed`` an int, pairs are shuffled (independently per class) by
    ``numpy.random.default_rng(seed)`` first; with ``seed=None`` the given order is kept and
    folds are contiguous blocks, which reproduces the official LFW folds when pairs are passed in
    ``pairs.txt`` order.
    """
    g = _scores(genuine, "genuine")
    i = _scores(impostor, "impostor")
    if g.size != i.size:
        raise MetricInputError(
            f"k-fold accuracy needs balanced pairs; got {g.size} genuine, {i.size} impostor"
        )
    if int(folds) != folds or folds < 2:
        raise MetricInputError(f"folds must be an integer >= 2, got {folds}")
    k = int(folds)
    if g.size < k:
        raise MetricInputError(f"{g.size} pairs per class cannot fill {k} folds")
    if seed is not None:
        rng = np.random.default_rng(seed)
        g = g[rng.permutation(g.size)]
        i = i[rng.permutation(i.size)]
    g_parts = np.array_split(g, k)
    i_parts = np.array_split(i, k)
    accuracies: list[float] = []
    thresholds: list[float] = []
    for f in range(k):
        g_train = np.concatenate([p for n, p in enumerate(g_parts) if n != f])
        i_train = np.concatenate([p for n, p in enumerate(i_parts) if n != f])
        t = _best_accuracy_threshold(g_train, i_train)
        g_test, i_test = g_parts[f], i_parts[f]
        correct = np.count_nonzero(g_test >= t) + np.count_nonzero(i_test < t)
        accuracies.append(float(correct / (g_test.size + i_test.size)))
        thresholds.append(t)
    acc = np.asarray(accuracies)
    return KFoldAccuracy(
        mean=float(acc.mean()),
        std=float(acc.std()),
        fold_accuracies=tuple(accuracies),
        thresholds=tuple(thresholds),
    )


# --------------------------------------------------------------------------- identification (1:N)


def mate_rank(mate_score: float, nonmate_scores: ArrayLike) -> int:
    """Rank of the mate in a search: ``1 + #{non-mate gallery scores > mate_score}``.

    Ties with non-mates do not push the mate down (strictly higher only). ``nonmate_scores`` may
    be empty (a gallery holding only the mate).
    """
    m = float(mate_score)
    if math.isnan(m):
        raise MetricInputError("mate_score is NaN; a failed acquisition has no rank")
    nm = np.asarray(nonmate_scores, dtype=np.float64).reshape(-1)
    if np.isnan(nm).any():
        raise MetricInputError("nonmate_scores contains NaN")
    return 1 + int(np.count_nonzero(nm > m))


def cmc(mate_ranks: ArrayLike, max_rank: int, *, fta: int = 0) -> FloatArray:
    """Cumulative match characteristic: element ``k-1`` is the rank-k identification rate.

    ``CMC(k) = #{mated searches with mate_rank <= k} / (#mated searches + fta)``, for
    ``k = 1..max_rank``. Ranks of ``inf``/NaN (mate not returned, failed acquisition) and the
    ``fta`` extra failed-to-acquire probes count as misses at every rank. Non-decreasing in k.
    """
    if int(max_rank) != max_rank or max_rank < 1:
        raise MetricInputError(f"max_rank must be an integer >= 1, got {max_rank}")
    r = _ranks(mate_ranks)
    n = r.size + _fta(fta)
    finite = np.sort(r[np.isfinite(r)])
    ks = np.arange(1, int(max_rank) + 1, dtype=np.float64)
    hits = np.searchsorted(finite, ks, side="right")
    return (hits / n).astype(np.float64)


def rank_k_rate(mate_ranks: ArrayLike, k: int, *, fta: int = 0) -> float:
    """Rank-k identification rate: ``#{mate_rank <= k} / (#mated searches + fta)``."""
    return float(cmc(mate_ranks, k, fta=fta)[-1])


def fpir_at(nonmated_top_scores: ArrayLike, threshold: float, *, fta: int = 0) -> float:
    """False positive identification rate at ``threshold``.

    ``FPIR = #{non-mated searches whose top candidate score >= threshold} /
    (#non-mated searches + fta)``. NaN top scores and the ``fta`` extra searches returned no
    candidate, so are never false positives but count as searches. Non-increasing in threshold.
    """
    s = _scores(nonmated_top_scores, "nonmated_top_scores", allow_nan=True)
    t = _threshold(threshold)
    n = s.size + _fta(fta)
    return float(np.count_nonzero(s >= t) / n)


def threshold_at_fpir(
    nonmated_top_scores: ArrayLike, target_fpir: float, *, fta: int = 0
) -> OperatingPoint:
    """Smallest threshold whose FPIR is <= ``target_fpir``; ``rate`` is the FPIR achieved.

    Same rule as :func:`threshold_at_fmr` over the non-mated top scores, with
    ``n = #non-mated searches + fta`` and NaN (no candidate) scores never accepted.
    ``resolvable`` is ``False`` when ``target_fpir < 1/n``.
    """
    s = _scores(nonmated_top_scores, "nonmated_top_scores", allow_nan=True)
    n = s.size + _fta(fta)
    return _threshold_for_count(s[~np.isnan(s)], n, _rate_target(target_fpir, "target_fpir"))


def fnir_at(
    mate_ranks: ArrayLike,
    mate_scores: ArrayLike,
    threshold: float,
    max_rank: int = 1,
    *,
    fta: int = 0,
) -> float:
    """False negative identification rate at ``threshold`` and ``max_rank`` (NIST FNIR(N, R, T)).

    A mated search is a miss unless its mate is returned at ``rank <= max_rank`` **and** with
    ``score >= threshold``. NaN score or rank (failed acquisition), ``inf`` rank (mate not on the
    list) and the ``fta`` extra failed-to-acquire probes are misses.
    ``FNIR = #misses / (#mated searches + fta)``. Non-decreasing in threshold.
    """
    r = _ranks(mate_ranks)
    m = _scores(mate_scores, "mate_scores", allow_nan=True)
    if r.size != m.size:
        raise MetricInputError(f"{r.size} mate_ranks but {m.size} mate_scores; give one per probe")
    if int(max_rank) != max_rank or max_rank < 1:
        raise MetricInputError(f"max_rank must be an integer >= 1, got {max_rank}")
    t = _threshold(threshold)
    n = r.size + _fta(fta)
    hits = int(np.count_nonzero((r <= max_rank) & (m >= t)))
    return float((n - hits) / n)


def fnir_at_fpir(
    mate_ranks: ArrayLike,
    mate_scores: ArrayLike,
    nonmated_top_scores: ArrayLike,
    target_fpir: float,
    max_rank: int = 1,
    *,
    mated_fta: int = 0,
    nonmated_fta: int = 0,
) -> IdentificationPoint:
    """FNIR at the threshold :func:`threshold_at_fpir` picks for ``target_fpir``.

    ``fpir`` is the FPIR achieved there (<= target); ``resolvable`` as in
    :func:`threshold_at_fpir`.
    """
    op = threshold_at_fpir(nonmated_top_scores, target_fpir, fta=nonmated_fta)
    fnir = fnir_at(mate_ranks, mate_scores, op.threshold, max_rank, fta=mated_fta)
    return IdentificationPoint(
        threshold=op.threshold, fpir=op.rate, fnir=fnir, resolvable=op.resolvable
    )
