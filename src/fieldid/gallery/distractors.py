"""Synthetic distractor templates: template-only identities that make a gallery realistically large.

Real face templates are not spread evenly over the sphere: they share a strong mean direction and
a few dominant axes, which is why two strangers' dlib templates have a cosine similarity of about
0.83 rather than 0. A distractor model is the mean and covariance of real templates of one model;
samples are drawn from that Gaussian and L2-normalised, so their impostor scores against real
probes follow (approximately) the model's measured impostor distribution. The model file holds
only those statistics, no face or template of any person.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fieldid.template.types import l2_normalise


@dataclass(frozen=True)
class DistractorModel:
    model: str
    mean: NDArray[np.float64]
    cov: NDArray[np.float64]
    fitted_on: int

    @classmethod
    def fit(cls, model: str, templates: NDArray[np.floating]) -> DistractorModel:
        x = np.asarray(templates, dtype=np.float64)
        x = x[np.isfinite(x).all(axis=1)]
        if len(x) < x.shape[1] + 1:
            raise ValueError(f"need more than {x.shape[1]} templates to fit, got {len(x)}")
        return cls(model, x.mean(axis=0), np.cov(x, rowvar=False), len(x))

    def sample(self, n: int, seed: int = 0) -> NDArray[np.float32]:
        rng = np.random.default_rng(seed)
        out = np.empty((n, len(self.mean)), dtype=np.float32)
        # Cholesky of the (regularised) covariance; sampled in chunks to bound memory.
        chol = np.linalg.cholesky(self.cov + 1e-9 * np.eye(len(self.mean)))
        for start in range(0, n, 100_000):
            k = min(100_000, n - start)
            z = rng.standard_normal((k, len(self.mean)))
            out[start : start + k] = l2_normalise(self.mean + z @ chol.T)
        return out

    def sample_for(self, keys: list[int], seed: int) -> NDArray[np.float32]:
        """One sample per key, each drawn from its own generator seeded with ``(seed, key)``: the
        same key and seed give the same template however the keys are batched (a re-templating
        that resumes after a crash re-draws nothing differently)."""
        d = len(self.mean)
        chol = np.linalg.cholesky(self.cov + 1e-9 * np.eye(d))
        z = np.empty((len(keys), d), dtype=np.float64)
        for i, key in enumerate(keys):
            z[i] = np.random.default_rng((seed, key)).standard_normal(d)
        return l2_normalise(self.mean + z @ chol.T).astype(np.float32)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, model=self.model, mean=self.mean, cov=self.cov, fitted_on=self.fitted_on
        )

    @classmethod
    def load(cls, path: Path) -> DistractorModel:
        with np.load(path, allow_pickle=False) as z:
            return cls(str(z["model"]), z["mean"], z["cov"], int(z["fitted_on"]))


def bundled(model: str) -> DistractorModel | None:
    """The distractor model shipped for a bundled embedder (``dlib-resnet-v1@...``), if any."""
    name = model.split("@")[0] + ".npz"
    ref = resources.files("fieldid.gallery").joinpath("distractor_models", name)
    if not ref.is_file():
        return None
    with resources.as_file(ref) as p:
        return DistractorModel.load(p)
