"""MobileFace v2 ships inside the package: checked at load, lazily loaded, named everywhere."""

from __future__ import annotations

import fnmatch
import shutil
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import subject_images
from fieldid.cli.app import app
from fieldid.errors import ModelError
from fieldid.pipeline import FacePipeline, PipelineSpec, make_embedder
from fieldid.template.bundled import (
    BundledOnnxEmbedder,
    bundled_model,
    bundled_models,
    model_card,
    model_info,
    models_path,
)
from fieldid.template.dlib_resnet import MODEL_ID as DLIB_ID
from fieldid.template.dlib_resnet import MODEL_VERSION as DLIB_VERSION
from fieldid.template.onnx import OnnxEmbedder, file_sha256

ROOT = Path(__file__).resolve().parents[1]
MF = "mobileface-v2"


def test_the_bundled_file_is_small_and_matches_its_manifest():
    entry = bundled_model(MF)
    path = entry.path()
    assert path.parent == models_path() and path.is_file()
    assert path.stat().st_size == entry.size < 4_000_000
    assert file_sha256(path) == entry.sha256
    assert entry.licence_spdx == "MIT"
    assert "Permission is hereby granted" in (path.parent / entry.licence_file).read_text()
    p = entry.provenance
    assert p["source"] == "https://github.com/becauseofAI/MobileFace"
    assert p["commit"] == "128cea33b928dc9bb6d1963202b57a97f5661ccf"
    assert "MXNet" in p["conversion"] and "2e-5" in p["verified"]


def test_a_fresh_install_carries_the_model_files():
    """Every file in fieldid/models is matched by the package-data globs (a wheel carries it)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["fieldid"]
    files = [p for p in models_path().iterdir() if p.is_file() and p.suffix != ".py"]
    assert {p.name for p in files} >= {"mobileface-v2.onnx", "LICENSE.mobileface-v2"}
    for f in files:
        rel = f"models/{f.name}"
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not package data"


def test_the_model_card_states_what_it_must():
    card = model_card(MF)
    for heading in ("Input", "Alignment", "Training data", "Measured accuracy", "Known limits"):
        assert f"## {heading}" in card, heading
    assert "not stated by the authors" in card.lower()
    assert "128cea33b928dc9bb6d1963202b57a97f5661ccf" in card
    assert bundled_model(MF).sha256 in card


def test_identity_is_declared_without_loading_the_weights():
    emb = BundledOnnxEmbedder(MF)
    assert str(emb.model) == "mobileface-v2@onnx-16dcdbe89c85"
    assert emb.dim == 256 and emb.landmark_scheme == "arcface5"
    assert not emb.loaded
    assert str(BundledOnnxEmbedder(MF, flip=True).model).endswith("+flip")


def test_first_use_loads_once_and_gives_the_same_templates_as_the_file(astronaut_rgb):
    pipeline = FacePipeline.from_spec(PipelineSpec(embedder=MF))
    face = pipeline.finder.find(astronaut_rgb).face
    emb = pipeline.embedder
    assert isinstance(emb, BundledOnnxEmbedder) and not emb.loaded
    loaded: list[OnnxEmbedder] = []
    threads = [threading.Thread(target=lambda: loaded.append(emb.load())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(x) for x in loaded}) == 1  # one load, whatever the threads
    v = emb.embed(astronaut_rgb, face)
    direct = OnnxEmbedder(bundled_model(MF).path()).embed(astronaut_rgb, face)
    assert v.shape == (256,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(v, direct, atol=1e-6)


def test_a_pipeline_loads_its_model_on_request():
    """The server calls this at start-up so that /readyz means the model is loaded."""
    pipeline = FacePipeline.from_spec(PipelineSpec(embedder=MF))
    assert not pipeline.embedder.loaded  # type: ignore[attr-defined]
    assert pipeline.load() is pipeline and pipeline.embedder.loaded  # type: ignore[attr-defined]


def test_a_damaged_or_missing_file_is_never_run(tmp_path, astronaut_rgb):
    src = bundled_model(MF).path()
    damaged = tmp_path / "mobileface-v2.onnx"
    shutil.copy(src, damaged)
    with damaged.open("r+b") as fh:
        fh.seek(2_000_000)
        byte = fh.read(1)
        fh.seek(2_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    emb = BundledOnnxEmbedder(MF, path=damaged)
    with pytest.raises(ModelError) as e:
        emb.load()
    assert e.value.code == "model.checksum_mismatch" and not emb.loaded
    with pytest.raises(ModelError) as e:
        BundledOnnxEmbedder(MF, path=tmp_path / "absent.onnx").load()
    assert e.value.code == "model.not_found"


def test_unknown_names_are_refused():
    with pytest.raises(ModelError) as e:
        bundled_model("arcface-r100")
    assert e.value.code == "model.unknown_bundled"
    from fieldid.errors import WorkspaceError

    with pytest.raises(WorkspaceError) as w:
        make_embedder(PipelineSpec(embedder="arcface-r100"))
    assert w.value.code == "config.embedder" and "mobileface-v2" in w.value.message


def test_model_info_names_licence_and_provenance_of_both_bundled_models():
    mf = model_info("mobileface-v2@onnx-16dcdbe89c85+flip")
    assert mf is not None and mf["flip"] and mf["licence"].startswith("MIT")
    assert mf["weights"] == "inside the fieldid package"
    dlib = model_info(f"{DLIB_ID}@{DLIB_VERSION}")
    assert dlib is not None and "public domain" in dlib["licence"]
    assert model_info("onnx:mine@0123456789ab") is None
    assert [e.name for e in bundled_models()] == [MF]


def test_same_person_scores_higher_than_strangers_with_the_bundled_model():
    pipeline = FacePipeline.from_spec(PipelineSpec(embedder=MF))
    a1, a2, _ = subject_images("subject-0004")
    b1 = subject_images("subject-0005")[0]
    va, va2, vb = (pipeline.process(p).template.vector for p in (a1, a2, b1))
    assert float(va @ va2) > float(va @ vb) + 0.2


def test_models_list_and_show_give_licence_and_provenance():
    runner = CliRunner()
    out = runner.invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    text = out.output
    assert "mobileface-v2" in text and "MIT" in text and "verified" in text
    assert "becauseofAI/MobileFace" in text and "128cea33b928dc9bb6d1963202b57a97f5661ccf" in text
    show = runner.invoke(app, ["models", "show", MF], env={"COLUMNS": "200"})
    assert show.exit_code == 0, show.output
    assert "## Known limits" in show.output and "Permission is hereby granted" in show.output
    bad = runner.invoke(app, ["models", "show", "nope"])
    assert bad.exit_code == 1 and "model.unknown_bundled" in bad.output
