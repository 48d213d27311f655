"""The threshold in force for one search: from a target FPIR at the current gallery size.

A fixed threshold that keeps false candidates rare in a gallery of 10,000 returns them routinely
in one of 10 million, because every template is one more chance for a stranger to score high.
So the threshold is recomputed for every search from ``[search] target_fpir``, the number of
templates in the gallery at that moment and the probe's quality band. An explicit
``[search] threshold`` overrides it (the estimated FPIR at it is still reported when the model is
calibrated); a model with no calibration needs one, and its rates are not shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fieldid.calibration.meaning import uncalibrated_reason
from fieldid.calibration.model import Calibration
from fieldid.errors import WorkspaceError


@dataclass(frozen=True)
class ThresholdInForce:
    """The threshold a search used and how it was set (recorded in the search's audit entry)."""

    value: float
    how: str  # "target_fpir" | "configured"
    target_fpir: float | None
    gallery_size: int
    band: str
    calibration: str | None
    #: Estimated FPIR and per-comparison FMR at ``value`` (None when uncalibrated).
    fpir: float | None
    fmr: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "how": self.how,
            "target_fpir": self.target_fpir,
            "gallery_size": self.gallery_size,
            "band": self.band,
            "calibration": self.calibration,
            "fpir_estimate": None if self.fpir is None else float(f"{self.fpir:.4g}"),
            "fmr": None if self.fmr is None else float(f"{self.fmr:.4g}"),
            "text": self.text,
        }

    @property
    def text(self) -> str:
        if self.how == "configured":
            core = f"threshold {self.value:.4f} (configured)"
        else:
            core = (
                f"threshold {self.value:.4f} (set for FPIR {self.target_fpir:g} at "
                f"{self.gallery_size:,} templates, probe quality {self.band})"
            )
        if self.fpir is not None:
            core += f"; estimated FPIR {self.fpir:.2g} at this gallery size"
        return core


def threshold_in_force(
    *,
    configured: float | None,
    target_fpir: float,
    calibration: Calibration | None,
    model: str,
    gallery_size: int,
    band: str = "all",
    workspace: str = "W",
) -> ThresholdInForce:
    """The threshold for a search of ``gallery_size`` templates with a probe of ``band``.

    Raises ``config.threshold`` when the model is uncalibrated and no threshold is configured.
    """
    n = max(1, int(gallery_size))
    cal_id = None if calibration is None else calibration.id
    if configured is not None:
        fpir = fmr = None
        if calibration is not None:
            fpir = calibration.fpir(n, configured, band)
            fmr = calibration.fmr_at(configured, band)
        return ThresholdInForce(
            float(configured), "configured", None, int(gallery_size), band, cal_id, fpir, fmr
        )
    if calibration is None:
        raise WorkspaceError(
            f"{uncalibrated_reason(model, workspace)}, or set [search] threshold in fieldid.toml "
            "(the threshold cannot be chosen from a target FPIR without a calibration)",
            code="config.threshold",
            model=model,
        )
    value = calibration.threshold_for_fpir(target_fpir, n, band)
    return ThresholdInForce(
        value,
        "target_fpir",
        target_fpir,
        int(gallery_size),
        band,
        cal_id,
        calibration.fpir(n, value, band),
        calibration.fmr_at(value, band),
    )
