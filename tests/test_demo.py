"""The README's main command: the demo runs end to end and attaches nothing to a real face."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from fieldid.cli.app import app
from fieldid.gallery.distractors import bundled
from fieldid.workspace import Workspace


def test_demo_runs_end_to_end_and_is_rerunnable(tmp_path):
    ws = tmp_path / "demo"
    runner = CliRunner()
    first = runner.invoke(
        app, ["demo", "--console", "--workspace", str(ws), "--distractors", "500"]
    )
    assert first.exit_code == 0, first.output
    out = first.output
    assert "refused [quality.too_far]: the face is too small in this photo" in out
    assert "rank 1: Subject 0001 (synthetic)" in out
    assert "a lead, not an identification" in out
    assert "chain intact: True" in out
    # The walkthrough acts as the demo's own officer; the command it suggests carries a token.
    token = ws / "demo-officer.token"
    assert f"--token-file {token}" in out.replace("\n", "")
    assert oct(token.stat().st_mode)[-3:] == "600"
    from fieldid.demo import astronaut_path, closer_crop

    (tmp_path / "p.jpg").write_bytes(closer_crop(astronaut_path()))
    use = ["--purpose", "field-identification", "--case", "CASE-1", "-w", str(ws)]
    tried = runner.invoke(
        app, ["search", str(tmp_path / "p.jpg"), *use, "--token-file", str(token), "--json"]
    )
    assert tried.exit_code == 0, tried.output
    w = Workspace.open(ws)
    searches = w.store.audit_entries("search")
    w.close()
    assert {e.operator for e in searches} == {"demo-officer"}
    again = runner.invoke(
        app, ["demo", "--console", "--workspace", str(ws), "--distractors", "500"]
    )
    assert again.exit_code == 0 and "1 already enrolled" in again.output
    w = Workspace.open(ws)
    size = w.gallery.size()
    assert (size.persons, size.templates) == (501, 501)
    with w.store.read() as s:
        from sqlalchemy import select

        from fieldid.store.schema import Person

        assert all(s.scalars(select(Person.synthetic)))  # every identity is marked synthetic
    w.close()


@pytest.mark.parametrize(
    ("model", "dim", "low", "high"),
    [
        # Strangers' dlib templates have a cosine similarity of about 0.83, not 0.
        ("dlib-resnet-v1@frm-0.3.0", 128, 0.78, 0.88),
        # MobileFace v2's strangers are nearly orthogonal: a median of about 0.00 on lfw-dev.
        ("mobileface-v2@onnx-16dcdbe89c85", 256, -0.05, 0.05),
    ],
)
def test_bundled_distractors_look_like_real_templates(model, dim, low, high):
    dm = bundled(model)
    assert dm is not None and dm.fitted_on > 3000 and dm.model == model
    x = dm.sample(2000, seed=3)
    assert x.shape == (2000, dim)
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    scores = (x[:1000] * x[1000:]).sum(axis=1)
    assert low < float(np.median(scores)) < high
