"""A workspace configured with a user-supplied ONNX embedder, end to end."""

from __future__ import annotations

import pytest

from conftest import FACES, SHARED, subject_images
from fieldid.audit import Attribution
from fieldid.dataset import read_labelled
from fieldid.errors import WorkspaceError
from helpers_onnx import configure_onnx, linear_embedder, projection

ATTR = Attribution("officer-7", "field-identification", "CASE-1")
MOBILEFACE = SHARED / "models" / "mobileface-v2.onnx"


def test_onnx_workspace_enrols_and_searches_with_its_own_model_id(backend, tmp_path):
    model = linear_embedder(tmp_path / "tiny.onnx", projection(dim=16))
    ws = configure_onnx(tmp_path / "ws", model, threshold=0.0)
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")][:5]
    summary = ws.enrollment.enroll_images(items, operator="t", source_name="t", synthetic=True)
    assert summary.enrolled == 5
    assert ws.gallery.model.id == "onnx:tiny" and ws.gallery.dim == 16
    result = ws.searches.search(items[0].path, ATTR)
    # The same image searched again is its own best match, whatever the (random) weights.
    assert result.candidates[0].external_id == items[0].identity
    assert result.candidates[0].score == pytest.approx(1.0, abs=1e-4)
    ws.close()


def test_onnx_model_without_a_threshold_refuses_to_search(backend, tmp_path):
    model = linear_embedder(tmp_path / "tiny.onnx", projection(dim=16))
    ws = configure_onnx(tmp_path / "ws", model, threshold=None)
    with pytest.raises(WorkspaceError) as e:
        ws.searches.search(subject_images("subject-0001")[0], ATTR)
    assert e.value.code == "config.threshold"
    ws.close()


@pytest.mark.skipif(not MOBILEFACE.exists(), reason="needs ../shared/models/mobileface-v2.onnx")
def test_real_onnx_model_ranks_a_persons_other_photo_first(backend, tmp_path):
    ws = configure_onnx(tmp_path / "ws", MOBILEFACE, threshold=0.33)
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
    assert ws.enrollment.enroll_images(items, operator="t", source_name="t").enrolled == 20
    service = ws.searches
    for n in range(1, 11):
        subject = f"subject-{n:04d}"
        for probe in subject_images(subject)[1:]:
            top = service.search(probe, ATTR, top_k=3).candidates
            assert top and top[0].external_id == subject, (probe.name, top)
    ws.close()
