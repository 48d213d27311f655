"""Synthetic-but-realistic face templates for search benchmarks.

Real face templates are not isotropic noise on the sphere: they sit in a narrow cone around a
common mean direction and their variance lies in a few dozen directions. Measured here on
shared/faces/lfw-dev with dlib's 128-d ResNet (HOG detector, 5-point alignment, templates
L2-normalised): |mean| = 0.91, different people average cosine 0.84 (p99 0.91), the same person
0.95 (Euclidean 0.31), 90 % of the variance in 48 of 128 directions, none past ~90. An index
tuned on isotropic random vectors (nearly orthogonal, well separated) looks far better than it is
on a real gallery.

Construction (also printed by the benchmark):

* **Distractors.** Given real templates ``T`` (n×d), fit a Gaussian ``N(μ, Σ)`` in the embedding
  space (sample mean and covariance, shrunk 1 % towards ``tr(Σ)/d · I`` so few templates or large
  d still work), draw samples and L2-normalise them. Without real templates, a random low-rank
  anisotropic Gaussian calibrated to the dlib/LFW figures above (|mean| 0.91, power-law spectrum
  over 64 directions, small isotropic floor) stands in.
* **Mates and queries.** Pick base templates (real ones, or draws from the model when there are
  none). Each *mate* enrolled in the gallery is ``normalise(b + s·e₁)`` and each *query*
  ``normalise(b + s·e₂)``, with independent draws ``e ~ N(0, C)``; ``s`` is set so the mean
  query–mate Euclidean distance is ``mate_distance`` (default 0.31, the dlib same-person average
  above). ``C`` is, by preference, the real *within-identity* covariance fitted from labelled
  templates (:func:`within_noise`); without labels, isotropic noise in the template subspace
  (:func:`subspace_noise`); :func:`shaped_noise` (``C = Σ``) is a pessimistic stress test. On
  dlib/LFW within-identity variance is roughly flat over the leading ~50 principal directions
  while the between-identity variance is concentrated in the first few, so ``C = Σ`` overstates
  how far a second photo moves a template along the directions an IVF partition cuts.
  When there are more queries than bases, several queries share a base and its mate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.template.types import l2_normalise

F32 = NDArray[np.float32]

#: Mean same-person Euclidean distance of L2-normalised dlib 128-d templates on lfw-dev.
DLIB_SAME_PERSON_DISTANCE = 0.31


@dataclass(frozen=True)
class TemplateModel:
    """A Gaussian in embedding space; samples are L2-normalised."""

    mean: NDArray[np.float64]
    #: Cholesky-like factor: ``x = mean + z @ factor.T`` with ``z ~ N(0, I)``.
    factor: NDArray[np.float64]
    source: str

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def raw(self, n: int, rng: np.random.Generator, scale: float = 1.0) -> NDArray[np.float64]:
        """Unnormalised zero-mean draws with covariance ``scale² Σ``."""
        z = rng.standard_normal((n, self.factor.shape[1]))
        return scale * (z @ self.factor.T)

    def sample(self, n: int, rng: np.random.Generator, chunk: int = 200_000) -> F32:
        out = np.empty((n, self.dim), dtype=np.float32)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            out[start : start + m] = l2_normalise(self.mean + self.raw(m, rng))
        return out


def fit_model(templates: NDArray[np.floating], shrinkage: float = 0.01) -> TemplateModel:
    """Fit ``N(μ, Σ)`` to real templates (rows are normalised first)."""
    t = l2_normalise(np.asarray(templates, dtype=np.float32)).astype(np.float64)
    if t.ndim != 2 or t.shape[0] < 2:
        raise ValueError("need an n×dim array of at least two templates")
    mu = t.mean(axis=0)
    cov = np.cov(t, rowvar=False)
    d = cov.shape[0]
    cov = (1 - shrinkage) * cov + shrinkage * (np.trace(cov) / d) * np.eye(d)
    w, v = np.linalg.eigh(cov)
    factor = v * np.sqrt(np.clip(w, 0, None))
    return TemplateModel(
        mean=mu, factor=factor, source=f"gaussian fitted to {t.shape[0]} real templates"
    )


def synthetic_model(
    dim: int,
    rng: np.random.Generator,
    rank: int = 64,
    mean_norm: float = 0.91,
    decay: float = 0.7,
    floor: float = 0.1,
) -> TemplateModel:
    """Random low-rank anisotropic Gaussian, used when no real templates are given.

    The defaults give roughly the dlib/LFW picture: |mean| ≈ 0.91, variance concentrated in
    ``rank`` directions with power-law decay plus a small isotropic floor, and different-template
    cosines averaging ≈ 0.83 (p99 ≈ 0.90).
    """
    mean = rng.standard_normal(dim)
    mean *= mean_norm / np.linalg.norm(mean)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    var = np.full(dim, floor / dim)
    r = min(rank, dim)
    spectrum = 1.0 / np.arange(1, r + 1) ** decay
    var[:r] += (1 - floor) * spectrum / spectrum.sum()
    # total variance so that |x|² ≈ 1 on average: |mean|² + tr(Σ) = 1
    var *= (1 - mean_norm**2) / var.sum()
    factor = q * np.sqrt(var)
    return TemplateModel(
        mean=mean,
        factor=factor,
        source=(
            f"SYNTHETIC low-rank anisotropic gaussian (rank {r}, |mean| {mean_norm}); "
            "no real templates given (--templates)"
        ),
    )


@dataclass(frozen=True)
class NoiseModel:
    """Zero-mean Gaussian ``N(0, s² C)`` added to a base template to make a mate or a query."""

    #: ``e = s · z @ factor.T`` with ``z ~ N(0, I)``; ``C = factor @ factor.T``.
    factor: NDArray[np.float64]
    kind: str

    def raw(self, n: int, rng: np.random.Generator, scale: float) -> NDArray[np.float64]:
        return scale * (rng.standard_normal((n, self.factor.shape[1])) @ self.factor.T)


def within_noise(templates: NDArray[np.floating], labels: NDArray[Any]) -> NoiseModel:
    """Within-identity covariance of labelled real templates (what a second photo changes)."""
    t = l2_normalise(np.asarray(templates, dtype=np.float32)).astype(np.float64)
    lab = np.asarray(labels)
    if len(lab) != len(t):
        raise ValueError(f"{len(lab)} labels for {len(t)} templates")
    _, inv, cnt = np.unique(lab, return_inverse=True, return_counts=True)
    means = np.zeros((len(cnt), t.shape[1]))
    np.add.at(means, inv, t)
    means /= cnt[:, None]
    multi = cnt[inv] >= 2
    dof = int(multi.sum() - (cnt >= 2).sum())
    if dof < t.shape[1]:
        raise ValueError("too few identities with two or more templates to fit within-class noise")
    r = (t - means[inv])[multi]
    cov = r.T @ r / dof
    w, v = np.linalg.eigh(cov)
    return NoiseModel(v * np.sqrt(np.clip(w, 0, None)), "within-identity covariance (labels)")


def subspace_noise(model: TemplateModel, energy: float = 0.999) -> NoiseModel:
    """Isotropic noise inside the principal subspace holding ``energy`` of the template variance.

    The stand-in when there are no labels. On dlib/LFW the within-identity variance is roughly
    flat across the leading principal directions (≈0.001 each for the first ~50, fading past
    ~80), unlike the between-identity variance, which is concentrated in the first few.
    """
    u, sv, _ = np.linalg.svd(model.factor, full_matrices=False)
    var = sv**2
    r = int(np.searchsorted(np.cumsum(var) / var.sum(), energy)) + 1
    return NoiseModel(u[:, :r].copy(), f"isotropic in the {r}-dim template subspace")


def shaped_noise(model: TemplateModel) -> NoiseModel:
    """Noise shaped like the whole template covariance: a pessimistic stress test (measured
    on dlib/LFW, real within-identity variation is far flatter than this)."""
    return NoiseModel(model.factor, "shaped like the template covariance (stress test)")


def noise_scale(
    model: TemplateModel, noise: NoiseModel, mate_distance: float, rng: np.random.Generator
) -> float:
    """Find ``s`` so that mean ‖normalise(b+e₁) − normalise(b+e₂)‖ ≈ ``mate_distance``."""
    base = model.sample(2000, rng).astype(np.float64)
    e1 = noise.raw(len(base), rng, 1.0)
    e2 = noise.raw(len(base), rng, 1.0)

    def dist(s: float) -> float:
        a = l2_normalise(base + s * e1)
        b = l2_normalise(base + s * e2)
        return float(np.linalg.norm(a - b, axis=1).mean())

    lo, hi = 0.0, 1.0
    while dist(hi) < mate_distance and hi < 1e3:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        if dist(mid) < mate_distance:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class MatedSet:
    mates: F32  # (m, dim) enrolled next to the distractors
    queries: F32  # (q, dim)
    query_mate: NDArray[np.int64]  # (q,) row of each query's mate in ``mates``
    noise_scale: float
    mean_query_mate_distance: float


def mated_set(
    model: TemplateModel,
    noise: NoiseModel,
    bases: NDArray[np.floating] | None,
    n_mates: int,
    n_queries: int,
    mate_distance: float,
    rng: np.random.Generator,
) -> MatedSet:
    """Mates and queries around base templates (real ones when given)."""
    if bases is None or len(bases) == 0:
        base = model.sample(n_mates, rng)
    else:
        b = l2_normalise(np.asarray(bases, dtype=np.float32))
        take = rng.choice(len(b), size=min(n_mates, len(b)), replace=False)
        base = b[take]
    m = len(base)
    s = noise_scale(model, noise, mate_distance, rng)
    mates = l2_normalise(base + noise.raw(m, rng, s))
    query_mate = np.arange(n_queries, dtype=np.int64) % m
    queries = l2_normalise(base[query_mate] + noise.raw(n_queries, rng, s))
    d = float(np.linalg.norm(queries - mates[query_mate], axis=1).mean())
    return MatedSet(mates, queries, query_mate, s, d)


def cosine_profile(x: F32, rng: np.random.Generator, pairs: int = 200_000) -> dict[str, float]:
    """Distribution of cosine between random distinct pairs (to compare real vs synthetic)."""
    i = rng.integers(0, len(x), pairs)
    j = rng.integers(0, len(x), pairs)
    keep = i != j
    c = np.einsum("ij,ij->i", x[i[keep]], x[j[keep]])
    p = np.percentile(c, [50, 99, 99.9])
    return {
        "mean": float(c.mean()),
        "p50": float(p[0]),
        "p99": float(p[1]),
        "p99.9": float(p[2]),
        "mean_norm_of_mean": float(np.linalg.norm(x.mean(axis=0))),
    }
