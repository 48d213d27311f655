"""Enrollment, 1:N search, verification and the audit of each use, on real faces."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sqlalchemy import inspect

from conftest import DEFAULT_MODEL, FACES, make_workspace, subject_images
from fieldid.audit import Attribution
from fieldid.audit.verify import verify_log
from fieldid.dataset import read_labelled
from fieldid.errors import AuthorisationError, ModelMismatch, QualityRefused
from fieldid.store.engine import make_engine
from fieldid.store.migrate import current_revision, head_revision, upgrade
from fieldid.store.schema import Base
from fieldid.template.types import ModelId, Template
from fieldid.workspace import INDEX_DIR, Workspace
from helpers_storage import delete_person

ATTR = Attribution("officer-7", "field-identification", "CASE-2026-001")
MULTI = [f"subject-{i:04d}" for i in range(1, 11)]


@pytest.mark.parametrize("subject", MULTI)
def test_a_persons_other_photo_ranks_them_first(enrolled: Workspace, subject: str):
    service = enrolled.searches
    for probe in subject_images(subject)[1:]:
        result = service.search(probe, ATTR)
        assert result.candidates, f"{probe.name}: no candidate above threshold"
        assert result.candidates[0].external_id == subject
        assert result.candidates[0].rank == 1


@pytest.mark.index_backends
def test_people_not_enrolled_are_not_returned_above_threshold(backend, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    # Enrol only subjects 1-10 (first image); search with the singletons 11-20.
    items = [
        i for i in read_labelled(FACES) if i.identity in MULTI and i.path.name.endswith("1.jpg")
    ]
    ws.enrollment.enroll_images(items, operator="t", source_name="t", synthetic=True)
    service = ws.searches
    for n in range(11, 21):
        result = service.search(subject_images(f"subject-{n:04d}")[0], ATTR)
        assert result.candidates == [], [(c.external_id, c.score) for c in result.candidates]
    ws.close()


@pytest.mark.index_backends
def test_enrollment_is_idempotent(enrolled: Workspace):
    before = enrolled.gallery.size()
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
    summary = enrolled.enrollment.enroll_images(items, operator="t", source_name="again")
    assert summary.enrolled == 0
    assert summary.already_enrolled == len(items)
    assert enrolled.gallery.size() == before


@pytest.mark.index_backends
def test_enrolling_more_images_adds_templates_to_the_same_person(enrolled: Workspace):
    items = [i for i in read_labelled(FACES) if i.identity == "subject-0001"]
    summary = enrolled.enrollment.enroll_images(items, operator="t", source_name="more")
    assert (summary.enrolled, summary.already_enrolled, summary.new_people) == (2, 1, 0)
    size = enrolled.gallery.size()
    assert (size.persons, size.templates) == (20, 22)


def test_a_refused_image_is_reported_not_dropped(enrolled: Workspace, tmp_path):
    bad = tmp_path / "subject-0099" / "bad.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a jpeg at all")
    blank = tmp_path / "subject-0099" / "blank.png"
    from PIL import Image

    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    summary = enrolled.enrollment.enroll_images(
        read_labelled(tmp_path), operator="t", source_name="bad"
    )
    codes = sorted(r.code for r in summary.refused)
    assert codes == ["acquire.no_face", "probe.not_an_image"]
    assert summary.enrolled == 0


def test_deleted_index_is_rebuilt_from_the_database(enrolled: Workspace):
    probe = subject_images("subject-0003")[1]
    first = enrolled.searches.search(probe, ATTR)
    enrolled.close()
    shutil.rmtree(enrolled.root / INDEX_DIR)
    ws = Workspace.open(enrolled.root)
    again = ws.searches.search(probe, ATTR)
    assert [(c.person_id, round(c.score, 5)) for c in again.candidates] == [
        (c.person_id, round(c.score, 5)) for c in first.candidates
    ]
    assert (ws.root / INDEX_DIR).is_dir() and any((ws.root / INDEX_DIR).iterdir())
    ws.close()


@pytest.mark.index_backends
def test_a_stale_index_is_rebuilt(enrolled: Workspace):
    gallery = enrolled.gallery
    gallery.index()  # built and saved at the current revision
    pid = gallery.find_person("subject-0003")
    assert pid is not None
    enrolled.close()
    # Another process deletes the person and never saves an index: the saved one is stale.
    other = Workspace.open(enrolled.root)
    delete_person(other, pid)  # its index was never loaded: only the database changes
    other.close()
    ws = Workspace.open(enrolled.root)
    result = ws.searches.search(subject_images("subject-0003")[1], ATTR)
    assert all(c.external_id != "subject-0003" for c in result.candidates)
    ws.close()


@pytest.mark.index_backends
def test_deletions_remove_a_person_from_search(enrolled: Workspace):
    service = enrolled.searches
    probe = subject_images("subject-0006")[2]
    assert service.search(probe, ATTR).candidates[0].external_id == "subject-0006"
    pid = enrolled.gallery.find_person("subject-0006")
    assert pid is not None and delete_person(enrolled, pid) == 1
    result = service.search(probe, ATTR)
    assert all(c.external_id != "subject-0006" for c in result.candidates)
    assert enrolled.gallery.size().persons == 19


def test_template_from_another_model_is_refused(enrolled: Workspace):
    alien = Template(np.ones(128, dtype=np.float32) / np.sqrt(128), ModelId("other-model", "1"))
    with pytest.raises(ModelMismatch) as e:
        enrolled.gallery.search(alien)
    assert e.value.code == "template.model_mismatch"
    with pytest.raises(ModelMismatch), enrolled.store.unit_of_work() as uow:
        enrolled.gallery.enroll(
            uow,
            external_id="x",
            display_name=None,
            template=alien,
            source="x",
            sha256="0" * 64,
            width=1,
            height=1,
            quality_unified=0,
        )


def test_gallery_bound_to_another_model_refuses_to_open(enrolled: Workspace):
    from fieldid.gallery.store import Gallery

    with pytest.raises(ModelMismatch) as e:
        Gallery(enrolled.store, enrolled.root / INDEX_DIR, ModelId("onnx:x", "abc"), 512)
    assert e.value.code == "gallery.model_mismatch"


def test_search_audit_row_holds_what_it_should(enrolled: Workspace):
    probe = subject_images("subject-0002")[1]
    result = enrolled.searches.search(probe, ATTR, top_k=5)
    entry = [e for e in enrolled.store.audit_entries("search")][-1]
    assert entry.seq == result.audit_seq
    assert (entry.operator, entry.purpose, entry.case_ref) == (
        "officer-7",
        "field-identification",
        "CASE-2026-001",
    )
    p = entry.payload
    assert p["model"] == str(enrolled.pipeline.model) == DEFAULT_MODEL == result.model
    assert result.to_dict()["model"] == DEFAULT_MODEL
    assert p["gallery"] == {"persons": 20, "templates": 20}
    assert p["threshold"] == result.threshold
    assert p["probe"]["quality"]["unified"] == result.quality["unified"]
    assert p["candidates"][0]["person_id"] == result.candidates[0].person_id
    assert p["candidates"][0]["score"] == pytest.approx(result.candidates[0].score, abs=1e-5)
    assert p["started"] <= p["ended"]
    assert p["outcome"] == "candidates"
    assert verify_log(enrolled.store).ok


def test_refused_probe_is_audited_with_its_reason(enrolled: Workspace, tmp_path):
    strict = enrolled.config.gate.__class__(min_inter_eye_px=200)
    object.__setattr__(enrolled.config, "gate", strict)
    with pytest.raises(QualityRefused) as e:
        enrolled.searches.search(subject_images("subject-0001")[1], ATTR)
    assert e.value.code == "quality.too_far"
    entry = list(enrolled.store.audit_entries("search"))[-1]
    assert entry.payload["outcome"] == "refused"
    assert entry.payload["error"]["code"] == "quality.too_far"


@pytest.mark.parametrize(
    ("attr", "code"),
    [
        (Attribution("", "field-identification", "C-1"), "use.no_operator"),
        (Attribution("o", "field-identification", " "), "use.no_case"),
        (Attribution("o", "curiosity", "C-1"), "use.purpose_not_permitted"),
    ],
)
def test_every_use_needs_operator_purpose_and_case(enrolled: Workspace, attr, code):
    with pytest.raises(AuthorisationError) as e:
        enrolled.searches.search(subject_images("subject-0001")[1], attr)
    assert e.value.code == code


def test_verify_scores_same_person_above_threshold_and_strangers_below(enrolled: Workspace):
    service = enrolled.searches
    a1, a2, _ = subject_images("subject-0007")
    same = service.verify(a1, a2, ATTR)
    other = service.verify(a1, subject_images("subject-0008")[0], ATTR)
    assert same.above_threshold and not other.above_threshold
    assert list(enrolled.store.audit_entries("verify"))[-1].payload["score"] == pytest.approx(
        other.score, abs=1e-5
    )


def test_migrations_create_exactly_the_models_schema(backend, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(backend.database_url() or f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert set(inspect(engine).get_table_names()) >= {
        "persons",
        "enrollment_images",
        "templates",
        "audit_entries",
        "gallery_meta",
        "audit_head",
    }
    engine.dispose()


def test_enrollment_leaves_a_current_index_on_disk(enrolled: Workspace):
    from fieldid.gallery.index import FaissIndex

    items = [i for i in read_labelled(FACES) if i.identity == "subject-0002"]
    enrolled.enrollment.enroll_images(items, operator="t", source_name="more")
    saved = FaissIndex.load(
        enrolled.root / INDEX_DIR, enrolled.gallery.revision(), keyring=enrolled.keys.keyring
    )
    assert saved is not None and saved.ntotal == 22
