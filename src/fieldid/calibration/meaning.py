"""What a score means now: its rates at this gallery size and probe quality, in words.

Every candidate carries a :class:`ScoreMeaning` when the model is calibrated, or the reason rates
are unavailable when it is not (:func:`uncalibrated_reason`); never a made-up rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fieldid.calibration.model import Calibration, fpir_from_log_fmr


def _count(n: float) -> str:
    """People-friendly size: 950, 12,000, 1.2M."""
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    return f"{round(n):,}"


def one_in_words(x: float) -> str:
    """``x`` to two significant figures, with thousands separators."""
    if x >= 100:
        digits = math.floor(math.log10(x)) - 1
        return f"{round(x, -digits):,.0f}"
    return f"{x:.2g}" if x < 10 else f"{round(x):,}"


@dataclass(frozen=True)
class ScoreMeaning:
    """The rates a score stands for in a search of ``gallery_size`` templates.

    ``fmr``: chance one stranger's template scores this high or higher (per comparison).
    ``expected_false``: expected number of strangers at or above the score in one search
    (``gallery_size * fmr``). ``fpir_at_score``: chance a search of someone not enrolled returns
    at least one stranger this high (``1 - (1 - fmr)**gallery_size``). ``extrapolated``: no
    impostor comparison in the calibration data scored this high; the rate comes from the
    fitted tail, not from observation.
    """

    score: float
    band: str
    band_used: str
    gallery_size: int
    fmr: float
    expected_false: float
    fpir_at_score: float
    extrapolated: bool
    calibration: str
    #: The fitted tail gives an FMR more than EXTRAPOLATION_LIMIT times below anything observed:
    #: ``fmr`` and the other rates are then the floor's, stated as bounds ("fewer than").
    beyond_floor: bool = False

    @property
    def one_in(self) -> float:
        """A stranger scores this high in about 1 search in this many (inf when never)."""
        return math.inf if self.fpir_at_score <= 0 else 1.0 / self.fpir_at_score

    @property
    def text(self) -> str:
        n = _count(self.gallery_size)
        people = "template" if self.gallery_size == 1 else "templates"
        if self.fpir_at_score >= 0.5:
            core = (
                f"in a gallery of {n} {people}, a stranger scores this high in most searches "
                f"(about {self.expected_false:.3g} strangers per search)"
            )
        elif self.fpir_at_score <= 0:
            core = (
                f"in a gallery of {n} {people}, the calibration gives no measurable chance of "
                "a stranger scoring this high"
            )
        elif self.beyond_floor:
            core = (
                f"in a gallery of {n} {people}, a stranger scores this high in fewer than "
                f"1 search in {one_in_words(self.one_in)} (beyond what the calibration can resolve)"
            )
        else:
            core = (
                f"in a gallery of {n} {people}, a stranger scores this high in about "
                f"1 search in {one_in_words(self.one_in)}"
            )
        if self.extrapolated and not self.beyond_floor:
            core += " (extrapolated: beyond every impostor score in the calibration data)"
        if self.band_used != self.band:
            core += (
                f" (probe quality {self.band}: rates of all qualities, too few {self.band} data)"
            )
        return core

    def to_dict(self) -> dict[str, Any]:
        return {
            "fmr": float(f"{self.fmr:.4g}"),
            "expected_false_at_or_above": float(f"{self.expected_false:.4g}"),
            "fpir_at_score": float(f"{self.fpir_at_score:.4g}"),
            "one_search_in": None if math.isinf(self.one_in) else float(f"{self.one_in:.3g}"),
            "extrapolated": self.extrapolated,
            "rates_are_bounds": self.beyond_floor,
            "rates_band": self.band_used,
            "meaning": self.text,
        }


def comparison_text(m: ScoreMeaning) -> str:
    """What a 1:1 score means in words (a comparison of two photos, not a gallery search)."""
    about = "fewer than" if m.beyond_floor else "about"
    one_in = one_in_words(1 / m.fmr)
    text = f"a stranger's photo scores this high in {about} 1 comparison in {one_in}"
    if m.beyond_floor:
        text += " (beyond what the calibration can resolve)"
    elif m.extrapolated:
        text += " (extrapolated: beyond every impostor score in the calibration data)"
    return text


class OneToOneScore:
    """What a 1:1 result says about its score (mixed into the dataclasses of verification and
    of a document portrait's comparison, which carry these four fields)."""

    score: float
    threshold: float
    meaning: ScoreMeaning | None
    rates_unavailable: str | None

    @property
    def above_threshold(self) -> bool:
        return self.score >= self.threshold

    @property
    def fmr(self) -> float | None:
        return None if self.meaning is None else self.meaning.fmr

    @property
    def meaning_text(self) -> str:
        if self.meaning is None:
            return f"rates unavailable: {self.rates_unavailable}"
        return comparison_text(self.meaning)


def score_meaning(cal: Calibration, score: float, gallery_size: int, band: str) -> ScoreMeaning:
    curve = cal.curve(band)
    fmr = math.exp(curve.log_fmr(score))
    floor = curve.fmr_floor
    beyond = fmr < floor
    fmr = max(fmr, floor)
    n = max(1, int(gallery_size))
    return ScoreMeaning(
        score=float(score),
        band=band,
        band_used=cal.band_used(band),
        gallery_size=n,
        fmr=fmr,
        expected_false=n * fmr,
        fpir_at_score=fpir_from_log_fmr(n, math.log(fmr)),
        extrapolated=curve.extrapolated(score),
        calibration=cal.id,
        beyond_floor=beyond,
    )


def uncalibrated_reason(model: str, workspace: str = "W") -> str:
    """Why no rate is shown for a model without a calibration, and what to do about it."""
    return (
        f"model {model} has no calibration, so its scores cannot be stated as rates: run "
        f"`fieldid calibrate --workspace {workspace} --dataset LABELLED_FACES`"
    )
