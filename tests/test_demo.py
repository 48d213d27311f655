"""The README's main command: the demo runs end to end and attaches nothing to a real face."""

from __future__ import annotations

import numpy as np
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
    again = runner.invoke(
        app, ["demo", "--console", "--workspace", str(ws), "--distractors", "500"]
    )
    assert again.exit_code == 0 and "1 already enrolled" in again.output
    w = Workspace.open(ws)
    size = w.gallery.size()
    assert (size.persons, size.templates) == (501, 501)
    with w.sessions() as s:
        from sqlalchemy import select

        from fieldid.gallery.schema import Person

        assert all(s.scalars(select(Person.synthetic)))  # every identity is marked synthetic
    w.close()


def test_bundled_distractors_look_like_real_templates():
    model = bundled("dlib-resnet-v1@frm-0.3.0")
    assert model is not None and model.fitted_on > 3000
    x = model.sample(2000, seed=3)
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    scores = (x[:1000] * x[1000:]).sum(axis=1)
    # Strangers' dlib templates have a cosine similarity of about 0.83, not 0.
    assert 0.78 < float(np.median(scores)) < 0.88
