"""Where calibration artefacts live.

``W/calibration/<slug of model id>.json`` (written by ``fieldid calibrate``) is used first; else the
artefact bundled with fieldid for the model (``fieldid/calibration/bundled/``, fitted on a fit
share of LFW identities); else the model is uncalibrated and rates are not shown.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path

from fieldid.calibration.model import Calibration, CalibrationError

CALIBRATION_DIR = "calibration"


def slug(model: str) -> str:
    """A file name for a model id (``dlib-resnet-v1@frm-0.3.0+flip`` → same, unsafe chars _)."""
    return re.sub(r"[^A-Za-z0-9.+@_-]+", "_", model)


def workspace_path(root: Path, model: str) -> Path:
    return root / CALIBRATION_DIR / f"{slug(model)}.json"


def read(path: Path, *, origin: str | None = None) -> Calibration:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CalibrationError(
            f"{path} is not a readable calibration: {e}", code="calibration.unreadable"
        ) from e
    return Calibration.from_dict(data, origin=origin)


def write(cal: Calibration, path: Path) -> None:
    """Write atomically (a search never reads half an artefact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cal.to_dict(), indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def bundled(model: str) -> Calibration | None:
    ref = resources.files("fieldid.calibration").joinpath("bundled", f"{slug(model)}.json")
    if not ref.is_file():
        return None
    with resources.as_file(ref) as p:
        return read(Path(p), origin="bundled")


def _check_model(cal: Calibration, model: str, where: Path | str) -> Calibration:
    if cal.model != model:
        raise CalibrationError(
            f"{where} calibrates {cal.model}, not {model}: recalibrate with `fieldid calibrate`",
            code="calibration.model_mismatch",
            calibration_model=cal.model,
            model=model,
        )
    return cal


def load_for(root: Path | None, model: str) -> Calibration | None:
    """The calibration in force for ``model`` in the workspace at ``root`` (None: uncalibrated)."""
    if root is not None:
        path = workspace_path(root, model)
        if path.is_file():
            return _check_model(read(path, origin="workspace"), model, path)
    cal = bundled(model)
    return None if cal is None else _check_model(cal, model, "the bundled calibration")


class CalibrationSource:
    """The calibration in force for one model in one workspace, read again when a file in
    ``root/calibration`` changes (``fieldid calibrate`` while a server runs)."""

    def __init__(self, root: Path | None, model: str) -> None:
        self.root = root
        self.model = model
        self._cal: Calibration | None = None
        self._key: int | None = None

    def current(self) -> Calibration | None:
        key = (
            0
            if self.root is None
            else max(
                (p.stat().st_mtime_ns for p in (self.root / CALIBRATION_DIR).glob("*.json")),
                default=0,
            )
        )
        if self._key != key:
            self._cal, self._key = load_for(self.root, self.model), key
        return self._cal
