"""``fieldid calibrate``: fit a calibration for the workspace's model from a labelled set (here,
beside the harness that computes the templates; the artefact and its rates are ``calibration``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fieldid.calibration.fit import (
    SPLIT_SALT,
    fit_calibration,
    in_fit_split,
    labels_sha256,
    pair_scores,
)
from fieldid.calibration.model import Calibration, CalibrationError
from fieldid.calibration.store import workspace_path, write
from fieldid.dataset import LabelledImage
from fieldid.evaluation.harness import TemplateSet, compute_templates

#: Share of the people the calibration is fitted on; the rest are left for `fieldid eval` to
#: measure the calibration on people it never saw.
DEFAULT_FIT_FRACTION = 0.5


def calibrate_templates(
    ts: TemplateSet,
    identities: Sequence[str],
    *,
    description: str,
    fit_fraction: float = DEFAULT_FIT_FRACTION,
    seed: int = 0,
    origin: str = "workspace",
    salt: str = SPLIT_SALT,
) -> Calibration:
    """Fit on the fit share of the people in ``ts`` (split by :func:`in_fit_split`)."""
    if not 0.0 < fit_fraction <= 1.0:
        raise CalibrationError(
            f"the fit fraction must be in (0, 1], got {fit_fraction}", code="calibration.bad_split"
        )
    if ts.quality is None:
        raise CalibrationError(
            "templates without quality scores cannot be calibrated per band",
            code="calibration.no_quality",
        )
    fit = np.array([in_fit_split(i, fit_fraction, salt) for i in identities], dtype=bool)
    ids = np.asarray(identities)
    pairs = pair_scores(ts.vectors[fit], list(ids[fit]), ts.quality[fit], seed=seed)
    fta = sum(1 for c, f in zip(ts.fta_codes, fit, strict=True) if f and c is not None)
    dataset: dict[str, Any] = {
        "description": description,
        "labels_sha256": labels_sha256(ts.paths, list(identities)),
        "images": len(identities),
        "identities": len(set(identities)),
        "fit_images_used": pairs.images,
        "fit_images_failed_to_acquire": fta,
        "fit_identities": pairs.identities,
    }
    split = {
        "rule": "sha256(salt:identity) < fit_fraction; the report share is left for evaluation",
        "salt": salt,
        "fit_fraction": fit_fraction,
        "pipeline": ts.model,
    }
    return fit_calibration(pairs, model=ts.model, dataset=dataset, split=split, origin=origin)


def calibrate_workspace(
    root: Path,
    pipeline: Any,
    items: Sequence[LabelledImage],
    *,
    description: str,
    fit_fraction: float = DEFAULT_FIT_FRACTION,
    cache: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Calibration, Path]:
    """Compute templates with the workspace's pipeline, fit, and store the artefact in ``root``."""
    ts = compute_templates(pipeline, items, cache=cache, progress=progress)
    cal = calibrate_templates(
        ts, [i.identity for i in items], description=description, fit_fraction=fit_fraction
    )
    path = workspace_path(root, cal.model)
    write(cal, path)
    return cal, path
