"""Honest scores: what a comparison score means at this gallery size and probe quality.

- :mod:`.model`: the artefact (score → FMR and FNMR per quality band, fitted tail) and the rates:
  :meth:`Calibration.fmr_at`, :meth:`Calibration.fpir`, :meth:`Calibration.threshold_for_fpir`.
- :mod:`.fit`: fitting from labelled faces (``fieldid calibrate``), split by identity.
- :mod:`.meaning`: :class:`ScoreMeaning`, the words shown beside every candidate.
- :mod:`.threshold`: :func:`threshold_in_force`, recomputed for every search.
- :mod:`.store`: where artefacts live (workspace, then bundled).
"""

from fieldid.calibration.meaning import ScoreMeaning, score_meaning, uncalibrated_reason
from fieldid.calibration.model import BANDS, Calibration, CalibrationError
from fieldid.calibration.store import load_for
from fieldid.calibration.threshold import ThresholdInForce, threshold_in_force

__all__ = [
    "BANDS",
    "Calibration",
    "CalibrationError",
    "ScoreMeaning",
    "ThresholdInForce",
    "load_for",
    "score_meaning",
    "threshold_in_force",
    "uncalibrated_reason",
]
