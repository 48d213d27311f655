"""Fitting a calibration from labelled faces: score distributions per probe-quality band.

1. People are split into a *fit* share and a *report* share by a salted hash of their identity
   label (:func:`in_fit_split`), so the split is the same on every run and every machine, needs
   no list of names, and the evaluation harness can later measure the calibration on people it
   never saw.
2. From the fit share's usable templates: every different-person pair (sampled above
   ``max_impostor_pairs``) is an impostor comparison, every same-person pair (sampled above
   ``max_genuine_pairs``) a genuine one. A pair belongs to the quality band of its *worse* image,
   since in a search the probe is usually the worse photo and its quality is what is known.
   Pairs are *identity-balanced*: an impostor pair of people with ``n_a`` and ``n_b`` images
   weighs ``1 / (n_a * n_b)`` and a genuine pair ``1 / (pairs of that person)``, so every pair of
   people (every person) counts once. Unweighted, the few people photographed a hundred times
   decide the rates: one look-alike pair of them contributes thousands of high impostor scores
   (on LFW this made the FMR of one half of the people 3-5 times that of the other half at
   1e-4; balanced, under 2.5 times), and a gallery holds each person about once.
3. Per band: the empirical impostor survival function and genuine distribution function on a grid
   of scores, and a generalised Pareto tail fitted (probability-weighted moments) to the ``k``
   highest impostor scores. A band with too few comparisons is not fitted; it falls back to
   "all", and the artefact says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.calibration.model import BANDS, BandCurve, Calibration, CalibrationError, Tail
from fieldid.quality import band_of

SPLIT_SALT = "fieldid-calibration-v1"
PAIR_BAND_RULE = (
    "a pair belongs to the quality band of its worse image; pairs are identity-balanced "
    "(impostor pair weight 1/(n_a*n_b), genuine 1/(pairs of the person))"
)
#: A band is fitted on its own only with at least this many comparisons of each kind.
MIN_BAND_IMPOSTOR = 20_000
MIN_BAND_GENUINE = 100
#: The "all" curve needs at least this many impostor comparisons to be fitted at all.
MIN_IMPOSTOR = 500


def in_fit_split(identity: str, fraction: float, salt: str = SPLIT_SALT) -> bool:
    """Whether ``identity`` belongs to the fit share (deterministic, salted hash of the label)."""
    if fraction >= 1.0:
        return True
    h = int.from_bytes(hashlib.sha256(f"{salt}:{identity}".encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def labels_sha256(paths: Sequence[str], identities: Sequence[str]) -> str:
    """Digest of the label list (file name and identity per image), to name the data used."""
    h = hashlib.sha256()
    for p, i in sorted(zip([p.rsplit("/", 1)[-1] for p in paths], identities, strict=True)):
        h.update(f"{p}\t{i}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class PairScores:
    """Genuine and impostor comparison scores with the band of each pair."""

    genuine: NDArray[np.float64]
    genuine_band: NDArray[np.str_]
    impostor: NDArray[np.float64]
    impostor_band: NDArray[np.str_]
    images: int
    identities: int
    images_by_band: dict[str, int]
    #: Identity-balancing weights (see the module docstring).
    genuine_weight: NDArray[np.float64]
    impostor_weight: NDArray[np.float64]

    def of(self, band: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if band == "all":
            return self.genuine, self.impostor
        return self.genuine[self.genuine_band == band], self.impostor[self.impostor_band == band]

    def weights(self, band: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if band == "all":
            return self.genuine_weight, self.impostor_weight
        return (
            self.genuine_weight[self.genuine_band == band],
            self.impostor_weight[self.impostor_band == band],
        )

    def effective_impostor(self, band: str = "all") -> int:
        """Kish effective number of impostor pairs ((sum w)^2 / sum w^2) under the weighting."""
        w = self.weights(band)[1]
        return int((w.sum() ** 2) / (w**2).sum()) if len(w) else 0

    def fmr_at(self, threshold: float, band: str = "all") -> float:
        """Identity-balanced FMR of these impostor pairs at ``threshold``."""
        imp, (_, w) = self.of(band)[1], self.weights(band)
        return float(w[imp >= threshold].sum() / w.sum()) if len(imp) else float("nan")

    def fnmr_at(self, threshold: float, band: str = "all") -> float:
        gen, (w, _) = self.of(band)[0], self.weights(band)
        return float(w[gen < threshold].sum() / w.sum()) if len(gen) else float("nan")


def pair_scores(
    vectors: NDArray[np.floating],
    identities: Sequence[str],
    quality: NDArray[np.integer],
    *,
    max_impostor_pairs: int = 4_000_000,
    max_genuine_pairs: int = 200_000,
    seed: int = 0,
) -> PairScores:
    """All (or a seeded sample of) genuine and impostor scores among usable templates.

    ``vectors`` rows that are NaN (failed acquisition) or whose ``quality`` is negative are left
    out: a template that could not be made is not a comparison.
    """
    x = np.asarray(vectors, dtype=np.float32)
    q = np.asarray(quality)
    ok = np.isfinite(x).all(axis=1) & (q >= 0)
    idx = np.flatnonzero(ok)
    x, q = x[idx], q[idx]
    labels = np.unique(np.asarray(identities)[idx], return_inverse=True)[1]
    bands = np.array([band_of(int(v)) for v in q])
    rng = np.random.default_rng(seed)
    n = len(idx)
    total = n * (n - 1) // 2
    if total <= max_impostor_pairs + max_genuine_pairs:
        a, b = np.triu_indices(n, 1)
    else:
        # Sample index pairs; genuine pairs are few, so take them all from the label groups.
        a = rng.integers(0, n, max_impostor_pairs * 2)
        b = rng.integers(0, n, max_impostor_pairs * 2)
        keep = a != b
        a, b = a[keep], b[keep]
        order = np.argsort(labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
        ga, gb = [], []
        for s, e in zip(starts, [*starts[1:], n], strict=True):
            members = order[s:e]
            if len(members) > 1:
                i, j = np.triu_indices(len(members), 1)
                ga.append(members[i])
                gb.append(members[j])
        if ga:
            a = np.concatenate([a, *ga])
            b = np.concatenate([b, *gb])
    same = labels[a] == labels[b]
    per_person = np.bincount(labels)
    weight = 1.0 / (per_person[labels[a]] * per_person[labels[b]]).astype(np.float64)
    pairs_of = per_person * (per_person - 1) / 2
    weight[same] = 1.0 / pairs_of[labels[a[same]]]
    scores = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), 1_000_000):
        sl = slice(start, start + 1_000_000)
        scores[sl] = np.einsum("ij,ij->i", x[a[sl]], x[b[sl]])
    worse = np.minimum(q[a], q[b])
    pair_band = np.array(["good", "fair", "poor"])[
        np.where(worse >= 70, 0, np.where(worse >= 40, 1, 2))
    ]
    gen, gen_band, gen_w = scores[same], pair_band[same], weight[same]
    imp, imp_band, imp_w = scores[~same], pair_band[~same], weight[~same]
    if len(gen) > max_genuine_pairs:
        pick = rng.choice(len(gen), max_genuine_pairs, replace=False)
        gen, gen_band, gen_w = gen[pick], gen_band[pick], gen_w[pick]
    if len(imp) > max_impostor_pairs:
        pick = rng.choice(len(imp), max_impostor_pairs, replace=False)
        imp, imp_band, imp_w = imp[pick], imp_band[pick], imp_w[pick]
    return PairScores(
        gen,
        gen_band,
        imp,
        imp_band,
        images=n,
        identities=int(labels.max() + 1) if n else 0,
        images_by_band={b: int((bands == b).sum()) for b in BANDS[1:]},
        genuine_weight=gen_w,
        impostor_weight=imp_w,
    )


def _weights(n: int, w: NDArray[np.float64] | None) -> NDArray[np.float64]:
    return np.ones(n) if w is None else np.asarray(w, dtype=np.float64)


def fit_tail(
    impostor: NDArray[np.float64], weights: NDArray[np.float64] | None = None, k: int | None = None
) -> Tail:
    """Generalised Pareto tail over the ``k`` highest impostor scores (weighted PWM estimates).

    ``k`` defaults to 0.1 % of the comparisons, at least 100 and at most 2,000 (and at most half
    of them): far enough into the tail for the GPD to hold, with enough points to fit it.
    Probability-weighted moments (Hosking and Wallis 1987) are closed-form and robust for the
    bounded tails cosine scores have (shape ``xi < 0``); here each exceedance carries its pair's
    identity-balancing weight.
    """
    raw = np.asarray(impostor, dtype=np.float64)
    order = np.argsort(raw, kind="stable")
    s, w = raw[order], _weights(len(raw), weights)[order]
    n = len(s)
    if n < MIN_IMPOSTOR:
        raise CalibrationError(
            f"{n} impostor comparisons are too few to fit a calibration (at least "
            f"{MIN_IMPOSTOR} needed: more people or more images)",
            code="calibration.too_few_pairs",
            impostor=n,
        )
    if k is None:
        k = int(np.clip(n // 1000, 100, 2000))
    k = min(k, n // 2)
    u = float(s[n - k - 1])
    above = s > u
    y, wy = s[above] - u, w[above]
    k = len(y)
    if k < 10 or float(y.mean()) <= 0:
        raise CalibrationError(
            "the highest impostor scores are all tied; no tail can be fitted",
            code="calibration.degenerate",
        )
    total = float(wy.sum())
    cdf = (np.cumsum(wy) - wy / 2) / total  # weighted plotting positions (y is ascending)
    b0 = float((wy * y).sum() / total)
    b1 = float((wy * cdf * y).sum() / total)
    a0, a1 = b0, b0 - b1
    d = a0 - 2 * a1
    if d <= 0:  # extremely heavy tail: fall back to an exponential
        xi, sigma = 0.0, b0
    else:
        xi = 2.0 - a0 / d
        sigma = 2.0 * a0 * a1 / d
    if xi < 0 and u - sigma / xi <= float(y[-1] + u):
        # A bounded tail must reach past every observed score, or it would call an observed
        # score impossible.
        xi = -sigma / (float(y[-1]) * 1.0001)
    fmr_u = total / float(w.sum())
    return Tail(u=u, fmr_u=fmr_u, xi=float(xi), sigma=float(sigma), k=k, max_impostor=float(s[-1]))


def _survival(
    sorted_scores: NDArray[np.float64], sorted_w: NDArray[np.float64], grid: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Weighted share of scores >= each grid point."""
    tail_mass = np.concatenate([np.cumsum(sorted_w[::-1])[::-1], [0.0]])
    out: NDArray[np.float64] = (
        tail_mass[np.searchsorted(sorted_scores, grid, side="left")] / sorted_w.sum()
    )
    return out


def fit_curve(
    genuine: NDArray[np.float64],
    impostor: NDArray[np.float64],
    genuine_weight: NDArray[np.float64] | None = None,
    impostor_weight: NDArray[np.float64] | None = None,
) -> BandCurve:
    gi = np.argsort(genuine, kind="stable")
    ii = np.argsort(impostor, kind="stable")
    gen = np.asarray(genuine, dtype=np.float64)[gi]
    imp = np.asarray(impostor, dtype=np.float64)[ii]
    gw = _weights(len(gen), genuine_weight)[gi]
    iw = _weights(len(imp), impostor_weight)[ii]
    if len(gen) == 0:
        raise CalibrationError(
            "no genuine comparison: the data need people with two or more usable images",
            code="calibration.too_few_pairs",
        )
    tail = fit_tail(imp, iw)
    lo = float(min(imp[0], gen[0]))
    hi = float(max(imp[-1], gen[-1]))
    # Dense where the rates change fastest: quantiles of both distributions plus an even grid.
    qs = np.linspace(0, 1, 257)
    grid = np.unique(
        np.round(
            np.concatenate(
                [np.linspace(lo, hi, 256), np.quantile(imp, qs), np.quantile(gen, qs), [tail.u]]
            ),
            6,
        )
    )
    fmr = _survival(imp, iw, grid)
    fnmr = 1.0 - _survival(gen, gw, grid)
    return BandCurve(
        n_impostor=len(imp),
        n_genuine=len(gen),
        grid=tuple(float(g) for g in grid),
        fmr=tuple(float(f) for f in fmr),
        fnmr=tuple(max(0.0, float(f)) for f in fnmr),
        tail=tail,
    )


def fit_calibration(
    pairs: PairScores,
    *,
    model: str,
    dataset: dict[str, Any],
    split: dict[str, Any],
    origin: str = "workspace",
    created: datetime | None = None,
) -> Calibration:
    """Fit the "all" curve and each band with enough comparisons; record the fallbacks."""
    gen, imp = pairs.of("all")
    bands = {"all": fit_curve(gen, imp, *pairs.weights("all"))}
    fallbacks: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {
        "all": {"images": pairs.images, "impostor": len(imp), "genuine": len(gen)}
    }
    for band in BANDS[1:]:
        g, i = pairs.of(band)
        counts[band] = {
            "images": pairs.images_by_band.get(band, 0),
            "impostor": len(i),
            "genuine": len(g),
        }
        if len(i) >= MIN_BAND_IMPOSTOR and len(g) >= MIN_BAND_GENUINE:
            bands[band] = fit_curve(g, i, *pairs.weights(band))
        else:
            fallbacks[band] = (
                f"only {len(i):,} impostor and {len(g):,} genuine comparisons in band {band} "
                f"(at least {MIN_BAND_IMPOSTOR:,} and {MIN_BAND_GENUINE:,} needed): the 'all' "
                "curve stands in"
            )
    when = (created or datetime.now(UTC)).isoformat(timespec="seconds")
    return Calibration(
        model=model,
        created=when,
        origin=origin,
        dataset=dataset,
        split=split,
        pair_band_rule=PAIR_BAND_RULE,
        bands=bands,
        fallbacks=fallbacks,
        counts=counts,
    )
