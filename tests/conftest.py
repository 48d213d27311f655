from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fieldid.dataset import read_labelled
from fieldid.gallery.enroll import enroll_images
from fieldid.workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures"
FACES = FIXTURES / "faces"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def subject_images(subject: str) -> list[Path]:
    return sorted((FACES / subject).glob("*.jpg"))


def make_workspace(root: Path, **gate: float) -> Workspace:
    """A workspace whose quality gate admits LFW news photographs: ~42 px between the eyes,
    turned heads, bystanders in the frame. Tests of the gate itself use its defaults."""
    ws = Workspace.init(root)
    ws.close()
    cfg = (root / "fieldid.toml").read_text()
    gate = {
        "min_inter_eye_px": 30.0,
        "max_abs_yaw_deg": 60.0,
        "max_abs_pitch_deg": 45.0,
        "max_faces": 3,
        **gate,
    }
    for k, v in gate.items():
        cfg = "\n".join(
            f"{k} = {v}" if line.split("=")[0].strip() == k else line for line in cfg.splitlines()
        )
    # The bundled default (0.955) keeps FPIR near 1 % for a gallery of ~1,200 at the cost of
    # missing about half of LFW's mates (docs/benchmarks.md); these galleries hold 20 people, so
    # they use the FMR 1e-3 operating point, as an operator of a small gallery would.
    cfg = cfg.replace("# threshold = 0.955", "threshold = 0.925")
    (root / "fieldid.toml").write_text(cfg + "\n")
    return Workspace.open(root)


@pytest.fixture(scope="session")
def enrolled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with every fixture person enrolled with their first image only."""
    root = tmp_path_factory.mktemp("enrolled") / "ws"
    ws = make_workspace(root)
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
    summary = enroll_images(ws, items, operator="test", source_name="fixtures", synthetic=True)
    assert summary.enrolled == 20 and not summary.refused
    ws.close()
    return root


@pytest.fixture()
def enrolled(enrolled_template: Path, tmp_path: Path) -> Iterator[Workspace]:
    """A private copy of the enrolled workspace, so tests may change it."""
    root = tmp_path / "ws"
    shutil.copytree(enrolled_template, root)
    ws = Workspace.open(root)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from fieldid.demo import astronaut_path

    return np.asarray(Image.open(astronaut_path()).convert("RGB"))
