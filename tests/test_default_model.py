"""The default model: new workspaces get MobileFace v2 and its calibration from the package;
existing workspaces keep the model they were made with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import DEFAULT_MODEL, FACES, make_workspace, set_setting, subject_images
from fieldid.audit import Attribution
from fieldid.calibration.store import bundled as bundled_calibration
from fieldid.config import CONFIG_NAME, DEFAULT_TOML, WorkspaceConfig
from fieldid.dataset import read_labelled
from fieldid.errors import ModelMismatch
from fieldid.pipeline import DEFAULT_EMBEDDER, LEGACY_EMBEDDER
from fieldid.workspace import Workspace

ATTR = Attribution("officer-7", "field-identification", "CASE-2026-016")
DLIB = "dlib-resnet-v1@frm-0.3.0"


def test_a_new_workspace_names_mobileface_in_its_configuration(tmp_path: Path):
    assert DEFAULT_EMBEDDER == "mobileface-v2" and LEGACY_EMBEDDER == "dlib-resnet"
    ws = Workspace.init(tmp_path / "ws")
    text = (ws.root / CONFIG_NAME).read_text()
    assert re.search(r'^embedder = "mobileface-v2"$', text, re.M)
    assert ws.config.pipeline.embedder == "mobileface-v2"
    assert str(ws.pipeline.model) == DEFAULT_MODEL
    assert DEFAULT_MODEL.startswith("mobileface-v2@onnx-16dcdbe89c85")
    ws.close()


def test_a_configuration_that_names_no_model_keeps_dlib():
    """Every workspace made before MobileFace became the default used dlib; one whose
    fieldid.toml names no embedder (hand-written, or trimmed) keeps it."""
    no_model = re.sub(r"^embedder = .*$", "", DEFAULT_TOML, flags=re.M)
    assert WorkspaceConfig.from_toml(no_model).pipeline.embedder == "dlib-resnet"
    assert WorkspaceConfig.from_toml("").pipeline.embedder == "dlib-resnet"
    named = DEFAULT_TOML.replace('embedder = "mobileface-v2"', 'embedder = "dlib-resnet"')
    assert WorkspaceConfig.from_toml(named).pipeline.embedder == "dlib-resnet"


def test_a_new_workspace_searches_with_the_bundled_model_and_calibration(
    backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """No file outside the package: no model directory, no workspace calibration."""
    monkeypatch.setenv("FIELDID_MODELS", str(tmp_path / "no-models-here"))
    ws = make_workspace(tmp_path / "ws")  # fieldid init, with a gate that admits LFW photos
    object.__setattr__(ws.config, "threshold", None)  # the threshold from target_fpir
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
    assert ws.enrollment.enroll_images(
        items, operator="t", source_name="t", synthetic=True
    ).enrolled
    assert not (ws.root / "calibration").exists()
    result = ws.searches.search(subject_images("subject-0006")[0], ATTR)
    cal = bundled_calibration(DEFAULT_MODEL)
    assert cal is not None and cal.origin == "bundled"
    assert result.model == DEFAULT_MODEL and result.calibration == cal.id
    tif = result.threshold_in_force
    assert tif is not None and tif["how"] == "target_fpir" and tif["calibration"] == cal.id
    assert result.candidates and result.candidates[0].external_id == "subject-0006"
    entry = list(ws.store.audit_entries("search"))[-1].payload
    assert entry["model"] == DEFAULT_MODEL
    assert entry["threshold_in_force"]["calibration"] == cal.id
    assert not (tmp_path / "no-models-here").exists()
    ws.close()


def test_an_existing_dlib_workspace_keeps_dlib_and_refuses_a_silent_switch(backend, tmp_path: Path):
    root = tmp_path / "old"
    make_workspace(root).close()
    cfg = root / CONFIG_NAME
    # As written by fieldid init before this change: embedder = "dlib-resnet" (and the test
    # threshold, a MobileFace operating point, taken out: the threshold comes from dlib's
    # calibration).
    text = set_setting(cfg.read_text(), "embedder", "dlib-resnet")
    cfg.write_text(set_setting(text, "threshold", None))
    ws = Workspace.open(root)
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")][:3]
    assert (
        ws.enrollment.enroll_images(items, operator="t", source_name="t", synthetic=True).enrolled
        == 3
    )
    assert str(ws.gallery.model) == DLIB
    result = ws.searches.search(subject_images("subject-0002")[1], ATTR)
    assert result.model == DLIB and result.calibration == bundled_calibration(DLIB).id  # type: ignore[union-attr]
    ws.close()
    # Removing the line (naming no model) still means dlib: nothing changes.
    cfg.write_text(re.sub(r"^embedder = .*$", "", cfg.read_text(), flags=re.M))
    ws = Workspace.open(root)
    assert str(ws.gallery.model) == DLIB
    ws.close()
    # Naming MobileFace for a dlib gallery is refused, never a silent mix of models.
    cfg.write_text(cfg.read_text().replace("[pipeline]", '[pipeline]\nembedder = "mobileface-v2"'))
    ws = Workspace.open(root)
    with pytest.raises(ModelMismatch) as e:
        _ = ws.gallery
    assert e.value.code == "gallery.model_mismatch"
    ws.close()
