"""Training mode: a gallery kept apart from the real ones.

The training gallery is its own workspace in ``W/training/`` (its own database, index and record
tables), filled only with synthetic people by ``fieldid synth --training``. A training search runs
the probe through the main workspace's pipeline and searches *only* the training gallery; it is
audited in the main audit log with ``{"training": true}`` so statistics leave it out. No code path
reads the real gallery in a training search, and a real search never opens the training one.
"""

from __future__ import annotations

import shutil

from fieldid.config import CONFIG_NAME
from fieldid.errors import WorkspaceError
from fieldid.workspace import Workspace

TRAINING_DIR = "training"


def training_root_of(ws: Workspace) -> str:
    return str(ws.root / TRAINING_DIR)


def open_training(ws: Workspace, *, create: bool = False) -> Workspace:
    """The training workspace beside ``ws`` (same configuration and pipeline object).

    Raises ``training.absent`` when it does not exist and ``create`` is false."""
    root = ws.root / TRAINING_DIR
    if not (root / CONFIG_NAME).is_file():
        if not create:
            raise WorkspaceError(
                f"this workspace has no training gallery ({root}): make one with "
                f"`fieldid synth --workspace {ws.root} --training`",
                code="training.absent",
            )
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ws.root / CONFIG_NAME, root / CONFIG_NAME)
        (root / "index").mkdir(exist_ok=True)
        (root / "TRAINING-ONLY.txt").write_text(
            "Training gallery: synthetic people and records only. Never enrol real data here.\n",
            encoding="utf-8",
        )
    tws = Workspace(root, ws.config, ws.clock)
    # Share the main pipeline (same model, loaded once); the gallery, database and index are the
    # training workspace's own.
    tws.__dict__["pipeline"] = ws.pipeline
    tws.__dict__["is_training"] = True
    return tws


def is_training(ws: Workspace) -> bool:
    return bool(ws.__dict__.get("is_training", False)) or (
        ws.root.name == TRAINING_DIR and (ws.root / "TRAINING-ONLY.txt").is_file()
    )
