"""A calibration artefact: what a score of one model means, measured on labelled faces.

For each probe-quality band the artefact holds the impostor survival function (score → FMR per
comparison) and the genuine distribution function (score → FNMR), both empirical on a grid of
scores, plus a parametric upper tail fitted to the highest impostor scores so that FMRs far below
one in the number of impostor pairs measured (what million-size galleries need) can be estimated.
Where an FMR comes from the fitted tail beyond the highest impostor score actually observed it is
*extrapolated*, and everything that shows it says so.

Conventions are those of :mod:`fieldid.evaluation.metrics`: scores are similarities, a comparison
is accepted when ``score >= threshold``, FMR(t) = P(impostor >= t), FNMR(t) = P(genuine < t).

From FMR the rates of a 1:N search follow under the usual independence model: a non-mated search
against ``n`` templates returns a false candidate at threshold ``t`` with probability
``FPIR(n, t) = 1 - (1 - FMR(t))**n``; computed as ``-expm1(n * log1p(-FMR))`` so that it stays
exact for FMR of 1e-12 and n of 10**9. The evaluation harness checks this prediction against
measured non-mated searches (``calibration_check``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from fieldid.errors import FieldidError

FORMAT = "fieldid-calibration/1"
#: The fitted tail is trusted at most this many times below the smallest FMR observed
#: (1 / impostor comparisons); beyond that a rate is stated as a bound ("fewer than").
EXTRAPOLATION_LIMIT = 1000.0
BANDS = ("all", "good", "fair", "poor")


class CalibrationError(FieldidError):
    """A calibration artefact is missing, unreadable, or for another model."""

    code = "calibration.invalid"


@dataclass(frozen=True)
class Tail:
    """Generalised Pareto tail over the ``k`` highest impostor scores.

    For ``t > u``: ``FMR(t) = fmr_u * (1 + xi * (t - u) / sigma) ** (-1 / xi)`` (``xi = 0``: the
    exponential ``fmr_u * exp(-(t - u) / sigma)``). ``max_impostor`` is the highest impostor
    score observed: beyond it the FMR is an extrapolation.
    """

    u: float
    fmr_u: float
    xi: float
    sigma: float
    k: int
    max_impostor: float

    def log_fmr(self, t: float) -> float:
        """Natural log of the tail FMR at ``t >= u`` (``-inf`` past a bounded tail's end)."""
        y = max(0.0, t - self.u)
        if abs(self.xi) < 1e-9:
            return math.log(self.fmr_u) - y / self.sigma
        z = 1.0 + self.xi * y / self.sigma
        if z <= 0.0:
            return -math.inf
        return math.log(self.fmr_u) - math.log(z) / self.xi

    def to_dict(self) -> dict[str, Any]:
        return {
            "u": self.u,
            "fmr_u": self.fmr_u,
            "xi": self.xi,
            "sigma": self.sigma,
            "k": self.k,
            "max_impostor": self.max_impostor,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tail:
        return cls(
            float(d["u"]),
            float(d["fmr_u"]),
            float(d["xi"]),
            float(d["sigma"]),
            int(d["k"]),
            float(d["max_impostor"]),
        )


@dataclass(frozen=True)
class BandCurve:
    """Score → FMR and FNMR for one quality band.

    ``grid`` is ascending; ``fmr`` and ``fnmr`` are the empirical rates at each grid score (FMR
    non-increasing, FNMR non-decreasing). Between grid points FMR is interpolated linearly in
    log FMR, FNMR linearly. Above ``tail.u`` FMR comes from the tail.
    """

    n_impostor: int
    n_genuine: int
    grid: tuple[float, ...]
    fmr: tuple[float, ...]
    fnmr: tuple[float, ...]
    tail: Tail

    # -- rates -------------------------------------------------------------------------------

    def log_fmr(self, score: float) -> float:
        """Natural log of FMR at ``score``."""
        s = float(score)
        if s > self.tail.u:
            return self.tail.log_fmr(s)
        g = np.asarray(self.grid)
        if s <= g[0]:
            return math.log(self.fmr[0]) if self.fmr[0] > 0 else -math.inf
        lf = np.log(np.maximum(np.asarray(self.fmr), 1e-300))
        return float(np.interp(s, g, lf))

    def fmr_at(self, score: float) -> float:
        return math.exp(self.log_fmr(score))

    def fnmr_at(self, score: float) -> float:
        g = np.asarray(self.grid)
        s = float(score)
        if s > g[-1]:
            return 1.0
        return float(np.interp(s, g, np.asarray(self.fnmr), left=0.0))

    @property
    def fmr_floor(self) -> float:
        """Smallest FMR stated as a value; below it only "fewer than" is said."""
        return 1.0 / (self.n_impostor * EXTRAPOLATION_LIMIT)

    def extrapolated(self, score: float) -> bool:
        """True when no impostor comparison in the calibration data scored this high."""
        return float(score) > self.tail.max_impostor

    def score_for_log_fmr(self, log_target: float) -> float:
        """Smallest score whose FMR is at most ``exp(log_target)`` (bisection; FMR monotone).

        The FMR is non-increasing in the score, so the answer is unique up to the tolerance;
        it is returned rounded *up* so that the FMR at it never exceeds the target.
        """
        lo = float(self.grid[0])
        if self.log_fmr(lo) <= log_target:
            return lo
        hi = max(1.0, self.tail.max_impostor) + 1e-6
        # Scores are cosine similarities (<= 1); an unbounded tail may still want more: widen.
        while self.log_fmr(hi) > log_target and hi < 1e6:
            hi = hi * 2 if hi > 0 else 1.0
        for _ in range(200):
            mid = (lo + hi) / 2
            if mid in (lo, hi):
                break
            if self.log_fmr(mid) <= log_target:
                hi = mid
            else:
                lo = mid
        return hi

    # -- (de)serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_impostor": self.n_impostor,
            "n_genuine": self.n_genuine,
            "grid": [round(x, 6) for x in self.grid],
            "fmr": [float(f"{x:.6g}") for x in self.fmr],
            "fnmr": [float(f"{x:.6g}") for x in self.fnmr],
            "tail": self.tail.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandCurve:
        return cls(
            int(d["n_impostor"]),
            int(d["n_genuine"]),
            tuple(float(x) for x in d["grid"]),
            tuple(float(x) for x in d["fmr"]),
            tuple(float(x) for x in d["fnmr"]),
            Tail.from_dict(d["tail"]),
        )


def fpir_from_log_fmr(n: int, log_fmr: float) -> float:
    """``1 - (1 - FMR)**n`` without losing tiny FMRs or huge ``n`` to rounding."""
    if n <= 0:
        return 0.0
    fmr = math.exp(log_fmr)
    if fmr >= 1.0:
        return 1.0
    return -math.expm1(n * math.log1p(-fmr))


def log_fmr_for_fpir(target: float, n: int) -> float:
    """log of the per-comparison FMR that gives FPIR ``target`` over ``n`` comparisons."""
    if not 0.0 < target < 1.0:
        raise CalibrationError(
            f"a target FPIR must lie strictly between 0 and 1, got {target}",
            code="calibration.bad_target",
        )
    n = max(1, int(n))
    # 1 - (1 - f)^n = target  =>  f = -expm1(log1p(-target) / n)
    f = -math.expm1(math.log1p(-target) / n)
    return math.log(f)


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration for one model (``model`` = ``str(pipeline.model)``)."""

    model: str
    created: str
    origin: str  # "bundled" (ships with fieldid) or "workspace" (made by `fieldid calibrate`)
    dataset: dict[str, Any]
    split: dict[str, Any]
    pair_band_rule: str
    bands: dict[str, BandCurve]
    #: band -> why it is not fitted on its own and which curve stands in ("all").
    fallbacks: dict[str, str] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @cached_property
    def id(self) -> str:
        """Stable identifier: the model and a digest of the fitted content (computed once: the
        digest serialises every curve, which would otherwise cost milliseconds per search)."""
        body = json.dumps(self._content(), sort_keys=True).encode()
        return f"{self.model}/cal-{hashlib.sha256(body).hexdigest()[:12]}"

    def describe(self) -> str:
        d = self.dataset
        where = "bundled with fieldid" if self.origin == "bundled" else "this workspace's"
        return (
            f"{where} calibration {self.id}, fitted on {d.get('description', '?')} "
            f"({self.bands['all'].n_impostor:,} impostor and {self.bands['all'].n_genuine:,} "
            "genuine comparisons)"
        )

    def curve(self, band: str) -> BandCurve:
        """The curve for ``band``; a band too thin to fit on its own uses ``all``."""
        if band in self.bands:
            return self.bands[band]
        return self.bands["all"]

    def band_used(self, band: str) -> str:
        return band if band in self.bands else "all"

    # -- rates -------------------------------------------------------------------------------

    def fmr_at(self, score: float, band: str = "all") -> float:
        """False match rate per comparison at ``score`` for a probe of ``band``."""
        return self.curve(band).fmr_at(score)

    def fnmr_at(self, score: float, band: str = "all") -> float:
        return self.curve(band).fnmr_at(score)

    def fpir(self, n: int, threshold: float, band: str = "all") -> float:
        """Estimated FPIR of a non-mated search against ``n`` templates at ``threshold``."""
        return fpir_from_log_fmr(n, self.curve(band).log_fmr(threshold))

    def threshold_for_fmr(self, target: float, band: str = "all") -> float:
        if not 0.0 < target < 1.0:
            raise CalibrationError(
                f"a target FMR must lie strictly between 0 and 1, got {target}",
                code="calibration.bad_target",
            )
        return self.curve(band).score_for_log_fmr(math.log(target))

    def threshold_for_fpir(self, target: float, n: int, band: str = "all") -> float:
        """Smallest threshold at which the estimated FPIR over ``n`` templates is <= target."""
        return self.curve(band).score_for_log_fmr(log_fmr_for_fpir(target, n))

    # -- (de)serialisation -------------------------------------------------------------------

    def _content(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "created": self.created,
            "dataset": self.dataset,
            "split": self.split,
            "pair_band_rule": self.pair_band_rule,
            "counts": self.counts,
            "fallbacks": self.fallbacks,
            "bands": {b: c.to_dict() for b, c in self.bands.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "id": self.id, "origin": self.origin, **self._content()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, origin: str | None = None) -> Calibration:
        if d.get("format") != FORMAT:
            raise CalibrationError(
                f"not a fieldid calibration (format {d.get('format')!r}, expected {FORMAT})",
                code="calibration.format",
            )
        bands = {b: BandCurve.from_dict(c) for b, c in d["bands"].items()}
        if "all" not in bands:
            raise CalibrationError("a calibration needs the 'all' band", code="calibration.format")
        return cls(
            model=str(d["model"]),
            created=str(d["created"]),
            origin=origin or str(d.get("origin", "workspace")),
            dataset=dict(d.get("dataset", {})),
            split=dict(d.get("split", {})),
            pair_band_rule=str(d.get("pair_band_rule", "")),
            bands=bands,
            fallbacks={str(k): str(v) for k, v in d.get("fallbacks", {}).items()},
            counts={str(k): dict(v) for k, v in d.get("counts", {}).items()},
        )
