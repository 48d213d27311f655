"""Re-templating (issue 16 item 3): a dlib gallery moved to MobileFace v2, killed with -9 midway
and resumed, ends identical to a fresh enrollment with MobileFace; searches run on the old model
until the one audited switch; what cannot be carried over is refused or dropped as asked.

The gallery: the 20 fixture people with both their images (40) and 10 synthetic template-only
distractors, 30 people, made once per backend with dlib. Every test works on a copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from conftest import DEFAULT_MODEL, FACES, make_workspace, set_setting, subject_images
from fieldid.access import Actor, Role
from fieldid.audit import Attribution
from fieldid.audit.verify import verify_log
from fieldid.calibration.store import bundled as bundled_calibration
from fieldid.dataset import read_labelled
from fieldid.errors import FieldidError, ModelMismatch
from fieldid.gallery.distractors import bundled as bundled_distractors
from fieldid.gallery.retemplate import (
    RetemplateError,
    Retemplater,
    Target,
    abandon,
    embedder_settings,
    job_status,
)
from fieldid.keys.envelope import is_sealed
from fieldid.pipeline import FacePipeline
from fieldid.store import keys as store_keys
from fieldid.store.keys import ENROLLMENT_PIXELS, TEMPLATE_VECTOR
from fieldid.store.schema import EnrollmentImage, EnrollmentPixels, Person, TemplateRow
from fieldid.workspace import Workspace
from helpers_storage import Backend, add_template_people

DLIB = "dlib-resnet-v1@frm-0.3.0"
ADMIN = Actor("admin-1", Role.ADMIN)
ATTR = Attribution("officer-7", "field-identification", "CASE-2026-016-3")
FIELDID = Path(sys.executable).with_name("fieldid")
DISTRACTORS = [(f"distractor-{i:02d}", f"Distractor {i:02d} (synthetic)") for i in range(10)]


def _dlib_gallery(root: Path) -> Path:
    make_workspace(root, keep=True).close()
    cfg = root / "fieldid.toml"
    cfg.write_text(
        set_setting(set_setting(cfg.read_text(), "embedder", "dlib-resnet"), "threshold", None)
    )
    ws = Workspace.open(root)
    summary = ws.enrollment.enroll_images(
        read_labelled(FACES), operator="test", source_name="fixtures", synthetic=True
    )
    assert summary.enrolled == 40 and not summary.refused
    model = bundled_distractors(DLIB)
    assert model is not None
    add_template_people(ws, DISTRACTORS, model.sample(len(DISTRACTORS), seed=3))
    assert str(ws.gallery.model) == DLIB and ws.gallery.size().persons == 30
    ws.close()
    return root


@pytest.fixture(scope="session")
def galleries() -> dict[str, Path]:
    return {}


def _made(
    galleries: dict[str, Path],
    backend: Backend,
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
) -> Path:
    key = f"{kind}-{backend.name}"
    if key not in galleries:
        root = tmp_path_factory.mktemp(key) / "ws"
        if kind == "dlib":
            _dlib_gallery(root)
        else:  # a fresh enrollment of the same images with the default model, MobileFace v2
            ws = make_workspace(root, keep=True)
            items = read_labelled(FACES)
            assert (
                ws.enrollment.enroll_images(
                    items, operator="test", source_name="fixtures", synthetic=True
                ).enrolled
                == 40
            )
            ws.close()
        galleries[key] = root
    return galleries[key]


@pytest.fixture()
def dlib_ws(
    backend: Backend,
    galleries: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> Path:
    """A private copy of the dlib gallery (closed: tests open it, or hand it to a process)."""
    return backend.copy(_made(galleries, backend, tmp_path_factory, "dlib"), tmp_path / "ws")


@pytest.fixture()
def fresh_ws(
    backend: Backend,
    galleries: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> Path:
    return backend.copy(_made(galleries, backend, tmp_path_factory, "fresh"), tmp_path / "fresh")


def templates_by_image(ws: Workspace) -> dict[tuple[str, str], np.ndarray]:
    """The active generation's template of each enrolled image, by (external id, sha256)."""
    with ws.store.read() as s:
        rows = s.execute(
            select(Person.external_id, EnrollmentImage.sha256, TemplateRow.id, TemplateRow.vector)
            .join(EnrollmentImage, EnrollmentImage.id == TemplateRow.image_id)
            .join(Person, Person.id == TemplateRow.person_id)
            .where(TemplateRow.generation == ws.gallery.generation)
        ).all()
    # stored sealed (docs/security.md): opened with the workspace's keyring
    return {
        (e, sha): np.frombuffer(ws.keys.open(TEMPLATE_VECTOR, t, v), dtype="<f4")
        for e, sha, t, v in rows
    }


def done_of(ws: Workspace, generation: int) -> int:
    """Images with a template of ``generation`` (committed)."""
    with ws.store.read() as s:
        return int(
            s.scalar(
                select(func.count(TemplateRow.id)).where(
                    TemplateRow.generation == generation, TemplateRow.image_id.is_not(None)
                )
            )
            or 0
        )


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def retemplate_cli(root: Path, *args: str) -> subprocess.Popen[str]:
    """The command, run as an operator runs it: an admin's API token in FIELDID_TOKEN."""
    from helpers_cli import tokens

    env = {**os.environ, "FIELDID_TOKEN": tokens(root)[Role.ADMIN], "FIELDID_USER": ""}
    return subprocess.Popen(
        [str(FIELDID), "gallery", "retemplate", "-w", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def top(ws: Workspace, pipeline: FacePipeline, path: Path, k: int = 5) -> list[tuple[str, float]]:
    hits = ws.gallery.search(pipeline.process(path).template, k)
    return [(h.external_id, round(h.score, 4)) for h in hits]


def test_killed_with_minus_9_and_resumed_it_equals_a_fresh_enrollment(
    dlib_ws: Path, fresh_ws: Path
):
    root = dlib_ws
    proc = retemplate_cli(root, "--model", "mobileface-v2", "--batch", "4", "--workers", "2")
    old = Workspace.open(root)  # a process searching meanwhile: on dlib until the switch
    try:
        deadline = time.monotonic() + 300
        workers: list[int] = []
        while done_of(old, 2) < 4:  # the first batch committed: kill at once
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no template of the new model was written"
            workers = children(proc.pid) or workers
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert len(workers) >= 2  # several processes computed
        gone = time.monotonic() + 15
        while any(alive(w) for w in workers) and time.monotonic() < gone:
            time.sleep(0.2)
        assert not any(alive(w) for w in workers), "worker processes outlived the command"
        # Killed mid-way: the old gallery is fully in force, the pending templates inert.
        assert 4 <= done_of(old, 2) < 40
        after = old.searches.search(subject_images("subject-0003")[1], ATTR)
        assert after.model == DLIB and after.candidates[0].external_id == "subject-0003"
        assert after.gallery_templates == 50
    finally:
        old.close()
    # Resumed: only what was missing is computed.
    out, err = retemplate_cli(root, "--model", "mobileface-v2", "--json").communicate(timeout=600)
    assert not err.strip() or "Traceback" not in err, err
    done = json.loads(out[out.index("{") :])
    sw = done["switched"]
    assert sum(r["templated"] for r in sw["runs"]) < 40
    assert sw["templates"] == 50 and sw["templates_deleted"] == 50
    assert sw["from_model"] == DLIB and sw["to_model"] == DEFAULT_MODEL
    ws, fresh = Workspace.open(root), Workspace.open(fresh_ws)
    try:
        model = ws.pipeline.model
        assert ws.config.pipeline.embedder == "mobileface-v2" and ws.gallery.model == model
        assert fresh.gallery.model == model and ws.gallery.generation == 2
        # Same templates as a fresh enrollment, to float tolerance.
        a, b = templates_by_image(ws), templates_by_image(fresh)
        assert set(a) == set(b) and len(a) == 40
        assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-5
        # The distractors were re-drawn for the new model, one each, reproducibly.
        distractor_model = bundled_distractors(str(model))
        assert distractor_model is not None
        with ws.store.read() as s:
            drawn = [
                (pid, ws.keys.open(TEMPLATE_VECTOR, tid, v))
                for pid, tid, v in s.execute(
                    select(Person.id, TemplateRow.id, TemplateRow.vector)
                    .join(Person, Person.id == TemplateRow.person_id)
                    .where(TemplateRow.image_id.is_(None))
                    .order_by(Person.id)
                ).all()
            ]
            assert s.scalar(select(func.count(TemplateRow.id))) == 50  # the old ones are gone
        again = distractor_model.sample_for([pid for pid, _ in drawn], seed=0)
        assert len(drawn) == 10
        assert np.array_equal(np.stack([np.frombuffer(v, "<f4") for _, v in drawn]), again)
        # Same search answers: the fresh gallery given the same distractors.
        add_template_people(
            fresh,
            [(e, e) for e, _ in DISTRACTORS],
            np.stack([np.frombuffer(v, "<f4") for _, v in drawn]),
        )
        pipeline = ws.pipeline
        for item in read_labelled(FACES):
            got, want = top(ws, pipeline, item.path), top(fresh, pipeline, item.path)
            assert [e for e, _ in got] == [e for e, _ in want], item.path
            assert np.allclose([x for _, x in got], [x for _, x in want], atol=1e-4)
        # A search now uses the new model and its calibration.
        result = ws.searches.search(subject_images("subject-0003")[1], ATTR)
        cal = bundled_calibration(str(model))
        assert cal is not None and result.model == str(model) and result.calibration == cal.id
        assert result.candidates[0].external_id == "subject-0003"
        # Audited: started, resumed, switched; the chain holds.
        stages = [e.payload["stage"] for e in ws.store.audit_entries("retemplate")]
        assert stages == ["started", "resumed", "switched"]
        assert verify_log(ws.store).ok
        changes = ws.store.audit_entries("config_change")
        assert changes[-1].operator == "cli-admin"  # the account the command authenticated as
        # Stored sealed (docs/security.md): every template the job wrote (images' and re-drawn
        # distractors') and every kept image opens with the key in use; none is in the clear.
        report = store_keys.check(ws.keys)
        assert report.ok and report.other_kek == 0, report.to_dict()
        assert report.checked["templates.vector"] == 50
        assert report.checked["enrollment_pixels.data"] == 40
        assert set(store_keys.plaintext_counts(ws.store).values()) == {0}
    finally:
        ws.close()
        fresh.close()


def retemplater(ws: Workspace, model: str = "mobileface-v2", *, flip: bool = False) -> Retemplater:
    """In this process (one worker), as the command does it."""
    return Retemplater(
        ws.store,
        ws.gallery,
        Target.of(ws.config.pipeline, model, flip=flip),
        limits=ws.config.limits,
        min_inter_eye_px=ws.config.enroll_min_inter_eye_px,
        workers=1,
        batch_size=16,
    )


def test_a_process_opened_before_the_switch_refuses_then_follows_it(dlib_ws: Path):
    probe = subject_images("subject-0004")[1]
    server = Workspace.open(dlib_ws)  # a long-running process, opened on dlib
    assert server.searches.search(probe, ATTR).model == DLIB
    ws = Workspace.open(dlib_ws)
    rt = retemplater(ws)
    st = rt.start(ADMIN, from_settings=embedder_settings(ws.config.pipeline))
    assert (st.images, st.synthetic, st.template_only_other) == (40, 10, 0)
    counts = rt.run(st.job_id)
    assert (counts.templated, counts.synthetic, counts.failed) == (40, 10, 0)
    assert server.searches.search(probe, ATTR).model == DLIB  # pending templates are inert
    sw = rt.switch(st.job_id, ADMIN)
    ws.close()  # "crashed" before fieldid.toml was rewritten: it still names dlib
    assert 'embedder = "dlib-resnet"' in (dlib_ws / "fieldid.toml").read_text()
    with pytest.raises(ModelMismatch) as e:
        server.searches.search(probe, ATTR)
    assert e.value.code == "gallery.model_switched"
    late = [i for i in read_labelled(FACES) if i.identity == "subject-0009"]
    with pytest.raises(ModelMismatch):  # prepared on dlib: refused, never written
        server.enrollment.enroll_images(late, operator="t", source_name="late")
    assert server.follow_model()
    assert not server.follow_model()  # once
    assert server.config.pipeline.embedder == "mobileface-v2"  # the file was completed
    assert 'embedder = "mobileface-v2"' in (dlib_ws / "fieldid.toml").read_text()
    result = server.searches.search(probe, ATTR)
    assert result.model == DEFAULT_MODEL and result.candidates[0].external_id == "subject-0004"
    assert server.gallery.index_source == "disk"  # built by the switch, not by this process
    assert server.gallery.size().templates == sw.templates == 50
    server.close()


def test_what_cannot_be_carried_is_refused_or_dropped_as_asked(dlib_ws: Path, tmp_path: Path):
    ws = Workspace.open(dlib_ws)
    model = bundled_distractors(DLIB)
    assert model is not None
    add_template_people(
        ws, [("vendor-0001", "A template from elsewhere")], model.sample(1, seed=9), synthetic=False
    )
    # Images enrolled before their pixels were kept: one whose file is still there (read again),
    # one whose file is gone, one whose file has changed since.
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(subject_images("subject-0011")[0].read_bytes())
    b.write_bytes(subject_images("subject-0012")[0].read_bytes())
    from fieldid.dataset import LabelledImage

    ws.enrollment.enroll_images(
        [LabelledImage(a, "late-a"), LabelledImage(b, "late-b")], operator="t", source_name="t"
    )
    kept = subject_images("subject-0013")[0]
    with ws.store.unit_of_work() as uow:
        s = uow.session
        ids = list(
            s.scalars(
                select(EnrollmentImage.id).where(
                    EnrollmentImage.source.in_([str(a), str(b), str(kept)])
                )
            )
        )
        assert len(ids) == 3
        s.execute(delete(EnrollmentPixels).where(EnrollmentPixels.image_id.in_(ids)))
    a.unlink()
    b.write_bytes(subject_images("subject-0014")[0].read_bytes())
    rt = retemplater(ws)
    with pytest.raises(RetemplateError) as e:
        rt.start(ADMIN)
    assert e.value.code == "retemplate.template_only" and e.value.details["template_only"] == 1
    st = rt.start(ADMIN, drop_template_only=True)
    counts = rt.run(st.job_id)
    assert (counts.templated, counts.failed) == (40, 2)
    with pytest.raises(RetemplateError) as e:
        rt.switch(st.job_id, ADMIN)
    assert e.value.code == "retemplate.unusable" and e.value.details["count"] == 2
    assert {i["code"] for i in e.value.details["images"]} == {
        "retemplate.image_unavailable",
        "retemplate.image_changed",
    }
    assert ws.gallery.size().templates == 53  # refused: still the old gallery, whole
    st = rt.start(ADMIN, drop_template_only=True, drop_unusable=True)  # resumes the job
    assert st.images_done == 40 and st.images_failed == 2
    assert rt.run(st.job_id).templated == 0
    sw = rt.switch(st.job_id, ADMIN)
    assert sw.templates == 50 and sorted(d["external_id"] for d in sw.images_dropped) == [
        "late-a",
        "late-b",
    ]
    assert len(sw.template_only_dropped) == 1
    with ws.store.read() as s:
        assert s.get(Person, sw.template_only_dropped[0]) is not None  # the person stays
        vendor_templates = s.scalar(
            select(func.count(TemplateRow.id)).where(
                TemplateRow.person_id == sw.template_only_dropped[0]
            )
        )
        assert vendor_templates == 0
        tid, blob = s.execute(
            select(TemplateRow.id, TemplateRow.vector)
            .join(EnrollmentImage, EnrollmentImage.id == TemplateRow.image_id)
            .where(EnrollmentImage.source == str(kept))
        ).one()
        row = ws.keys.open(TEMPLATE_VECTOR, tid, blob)
    # The image read again from its file has the template its file gives.
    fresh = FacePipeline.from_spec(rt.target.spec, limits=ws.config.limits).process(kept)
    assert np.allclose(np.frombuffer(row, "<f4"), fresh.template.vector, atol=1e-5)
    entry = ws.store.audit_entries("retemplate")[-1].payload
    assert entry["stage"] == "switched" and entry["images_dropped"] == 2
    assert entry["dropped_template_only_people"] == sw.template_only_dropped
    ws.close()


def test_an_image_enrolled_during_the_run_is_templated_before_the_switch(dlib_ws: Path):
    ws = Workspace.open(dlib_ws)
    rt = retemplater(ws)
    st = rt.start(ADMIN)
    rt.run(st.job_id)
    late = [i for i in read_labelled(FACES) if i.identity == "subject-0015"][:1]
    from fieldid.dataset import LabelledImage

    ws.enrollment.enroll_images(
        [LabelledImage(late[0].path, "late-c")], operator="t", source_name="late"
    )
    with pytest.raises(RetemplateError) as e:
        rt.switch(st.job_id, ADMIN)
    assert e.value.code == "retemplate.incomplete" and e.value.details["missing"] == 1
    assert rt.run(st.job_id).templated == 1
    assert rt.switch(st.job_id, ADMIN).templates == 51
    ws.close()


def test_one_job_at_a_time_and_abandoning_leaves_the_gallery_untouched(dlib_ws: Path):
    ws = Workspace.open(dlib_ws)
    with pytest.raises(RetemplateError) as e:
        retemplater(ws, "dlib-resnet").start(ADMIN)
    assert e.value.code == "retemplate.same_model"
    with pytest.raises(FieldidError) as e:
        retemplater(ws).start(Actor("officer-7", Role.OFFICER))
    assert e.value.code == "access.forbidden"
    rt = retemplater(ws)
    st = rt.start(ADMIN)
    rt.run(st.job_id)
    with pytest.raises(RetemplateError) as e:
        retemplater(ws, "dlib-resnet", flip=True).start(ADMIN)
    assert e.value.code == "retemplate.other_job"
    was = abandon(ws.store, ADMIN)
    assert was is not None and was.images_done == 40
    assert job_status(ws.store) is None
    with ws.store.read() as s:
        assert s.scalar(select(func.count(TemplateRow.id))) == 50
        assert set(s.scalars(select(TemplateRow.generation))) == {1}
    assert str(ws.gallery.model) == DLIB and ws.gallery.size().templates == 50
    assert [e.payload["stage"] for e in ws.store.audit_entries("retemplate")] == [
        "started",
        "abandoned",
    ]
    assert rt.start(ADMIN).generation == st.generation + 1  # a new job, a new generation
    ws.close()


def test_the_migration_round_trip(backend: Backend, tmp_path: Path):
    from helpers_migrations import round_trip

    round_trip(backend, tmp_path, "0012", "retemplate_jobs")


def test_the_command_moves_the_training_gallery_too(dlib_ws: Path):
    from fieldid.records.synth import synth
    from helpers_cli import cli, tokens

    ws = Workspace.open(dlib_ws)
    synth(ws.training(create=True), audit=ws.store, people=4, records_per_person=2, training=True)
    assert str(ws.training().gallery.model) == DLIB
    ws.close()
    token = tokens(dlib_ws)
    args = ["gallery", "retemplate", "-w", str(dlib_ws), "--model", "mobileface-v2"]
    # Only an authenticated admin moves a gallery.
    nobody = cli([*args, "--json"])
    assert nobody.exit_code != 0 and "access.unauthenticated" in nobody.output
    officer = cli([*args, "--json"], token=token[Role.OFFICER])
    assert officer.exit_code != 0 and "access.forbidden" in officer.output
    r = cli([*args, "--workers", "1", "--json"], token=token[Role.ADMIN])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["switched"]["templates"] == 50 and out["training"]["templates"] == 4
    ws = Workspace.open(dlib_ws)
    try:
        assert str(ws.training().gallery.model) == DEFAULT_MODEL
        result = ws.searches.search(subject_images("subject-0001")[0], ATTR, training=True)
        assert result.training and result.model == DEFAULT_MODEL
    finally:
        ws.close()
    again = cli(args, token=token[Role.ADMIN])
    assert again.exit_code == 2 and "retemplate.same_model" in again.output


def test_a_running_server_follows_the_switch_at_its_next_search(dlib_ws: Path):
    from fastapi.testclient import TestClient

    from fieldid.access.accounts import Accounts
    from fieldid.facework.pool import FacePool
    from fieldid.service import ServiceSettings, create_app
    from helpers_service import FAST_HASHER, PASSWORD, login, search

    ws = Workspace.open(dlib_ws)
    Accounts(ws.store, ws.clock, hasher=FAST_HASHER).add_user(
        "u-officer", Role.OFFICER, PASSWORD, by="test"
    )
    probe = subject_images("subject-0006")[1].read_bytes()
    settings = ServiceSettings(purge_interval_s=0, face_workers=1)
    with TestClient(create_app(ws, settings)) as c:
        state = c.app.state.fieldid
        old_pool = state.faces
        assert isinstance(old_pool, FacePool) and old_pool.expect_model == DLIB
        csrf = login(c, Role.OFFICER)
        before = search(c, csrf, probe).json()
        assert before["model"] == DLIB and before["candidates"][0]["external_id"] == "subject-0006"
        other = Workspace.open(dlib_ws)  # the command, in another process
        rt = retemplater(other)
        st = rt.start(ADMIN, from_settings=embedder_settings(other.config.pipeline))
        rt.run(st.job_id)
        assert search(c, csrf, probe).json()["model"] == DLIB  # until the switch
        rt.switch(st.job_id, ADMIN)
        other.complete_model_switch(ADMIN.name)
        other.close()
        after = search(c, csrf, probe)
        assert after.status_code == 201, after.text
        body = after.json()
        assert body["model"] == DEFAULT_MODEL and body["candidates"][0]["external_id"] == (
            "subject-0006"
        )
        assert body["gallery"]["templates"] == 50
        # The face work followed: a pool of workers on the new model, with the same limits;
        # the old pool's workers are stopped once idle.
        pool = state.faces
        assert isinstance(pool, FacePool) and pool is not old_pool
        assert pool.expect_model == DEFAULT_MODEL and pool.stats().ready_workers == 1
        assert pool.limits == old_pool.limits
        for _ in range(300):
            if not old_pool.stats().processes:
                break
            time.sleep(0.1)
        assert old_pool.stats().processes == []
        assert c.get("/readyz").json()["checks"]["face_work"]["ready_workers"] == 1
    ws.close()


def test_the_configuration_names_the_new_model_and_drops_the_old_models_scores():
    from fieldid.config import DEFAULT_TOML, WorkspaceConfig, with_model

    old = set_setting(set_setting(DEFAULT_TOML, "embedder", "dlib-resnet"), "threshold", 0.93)
    old = old.replace("# duplicate_threshold = 0.80", "duplicate_threshold = 0.97")
    new = with_model(old, {"embedder": "mobileface-v2", "flip": False}, why="a dlib score")
    cfg = WorkspaceConfig.from_toml(new)
    assert cfg.pipeline.embedder == "mobileface-v2" and not cfg.pipeline.flip
    assert cfg.threshold is None and cfg.duplicate_threshold is None
    assert "# threshold = 0.93  # a dlib score" in new
    assert "# duplicate_threshold = 0.97  # a dlib score" in new
    # Every other line as it was (comments kept), the three settings changed in place.
    changed = [(a, b) for a, b in zip(old.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 3
    assert "fuse the template of the mirrored face too" in new
    again = with_model(new, {"embedder": "dlib-resnet", "flip": True}, threshold=0.9)
    cfg = WorkspaceConfig.from_toml(again)
    assert cfg.pipeline.embedder == "dlib-resnet" and cfg.pipeline.flip and cfg.threshold == 0.9


def test_kept_pixels_are_the_decoded_image_and_go_with_it(enrolled: Workspace, tmp_path: Path):
    from fieldid.access import Actor as A
    from fieldid.dataset import LabelledImage
    from fieldid.gallery.pixels import decode_pixels
    from fieldid.probe import decode_probe
    from fieldid.records.merge import merge_people

    path = subject_images("subject-0005")[0]
    with enrolled.store.read() as s:
        image_id, sealed = s.execute(
            select(EnrollmentPixels.image_id, EnrollmentPixels.data)
            .join(EnrollmentImage, EnrollmentImage.id == EnrollmentPixels.image_id)
            .where(EnrollmentImage.source == str(path))
        ).one()
    # stored sealed (docs/security.md): no PNG signature, and none of the PNG's bytes
    assert is_sealed(sealed) and b"\x89PNG\r\n\x1a\n" not in bytes(sealed)
    data = enrolled.keys.open(ENROLLMENT_PIXELS, image_id, sealed)
    assert not any(data[i : i + 32] in bytes(sealed) for i in range(8, len(data) - 32, 997))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"  # a PNG of the pixels: no EXIF, not the JPEG sent
    assert np.array_equal(decode_pixels(data), decode_probe(path).rgb)

    def pixels() -> int:
        with enrolled.store.read() as s:
            return int(s.scalar(select(func.count()).select_from(EnrollmentPixels)) or 0)

    assert pixels() == 20
    # The same photo enrolled under a second identity, then the two merged: the duplicate
    # image goes, and its pixels with it.
    enrolled.enrollment.enroll_images(
        [LabelledImage(path, "again-0005")], operator="t", source_name="t", synthetic=True
    )
    assert pixels() == 21
    keep, dup = (
        enrolled.gallery.find_person("subject-0005"),
        enrolled.gallery.find_person("again-0005"),
    )
    assert keep is not None and dup is not None
    merge_people(
        enrolled.store,
        enrolled.gallery,
        keep=keep,
        merge=dup,
        actor=A("sup-1", Role.SUPERVISOR),
        reason="the same photograph enrolled twice",
    )
    assert pixels() == 20
    with enrolled.store.unit_of_work() as uow:
        enrolled.gallery.delete_person(uow, keep)
        uow.audit("enroll", operator="t", payload={"action": "delete", "person_id": keep})
    assert pixels() == 19


@pytest.mark.index_backends
def test_after_the_switch_every_index_backend_holds_only_the_new_model(
    backend: Backend, dlib_ws: Path, fresh_ws: Path
):
    """dlib (128-d) to MobileFace v2 (256-d) on faiss-local, pgvector (the workspace's
    PostgreSQL database) and Milvus (through the outbox): a process that searched on dlib follows
    the switch, and its engine then holds the new generation only, answering as a fresh
    enrollment's does. The command is taken to die between the switch's commit and its index
    build."""
    from sqlalchemy import text

    from fieldid.store.schema import IndexOutbox

    server = Workspace.open(dlib_ws)  # its engine is built on dlib's 128-d vectors
    assert server.gallery.backend == backend.index
    assert server.searches.search(subject_images("subject-0002")[1], ATTR).model == DLIB
    assert server.gallery.index().count() == 50
    ws = Workspace.open(dlib_ws)
    rt = retemplater(ws)
    st = rt.start(ADMIN, from_settings=embedder_settings(ws.config.pipeline))
    rt.run(st.job_id)
    # The command "dies" right after the switch's commit, before it builds the new index: the
    # engines follow from the database alone (the moved revision, the outbox).
    rt.build_index = lambda: None  # type: ignore[method-assign]
    # Until the switch the new generation is in no engine: the index still matches the database.
    assert ws.gallery.check_index(sample=10).ok and ws.gallery.index().count() == 50
    sw = rt.switch(st.job_id, ADMIN)
    ws.close()
    fresh = Workspace.open(fresh_ws)
    try:
        assert server.follow_model()
        gallery = server.gallery
        assert gallery.dim == 256 and gallery.backend == backend.index
        index = gallery.index()
        assert index.count() == sw.templates == 50
        report = gallery.check_index(sample=50)
        assert report.ok, report
        with server.store.read() as s:
            new_ids = set(s.scalars(select(TemplateRow.id)))
            assert s.scalar(select(func.count()).select_from(IndexOutbox)) == 0
        rng = np.random.default_rng(0)
        v = rng.standard_normal(256).astype(np.float32)
        found = index.search(v / np.linalg.norm(v), 200)
        assert {int(i) for i in found.ids[0] if i >= 0} <= new_ids  # none of dlib's left
        if backend.index == "pgvector":
            with server.store.engine.connect() as c:
                old_rows = c.execute(
                    text("SELECT count(*) FROM fieldid_vectors WHERE gallery = 'operational'")
                ).scalar()
                new_rows = c.execute(
                    text("SELECT count(*) FROM fieldid_vectors_256 WHERE gallery = 'operational'")
                ).scalar()
            assert (old_rows, new_rows) == (0, 50)
        # The same answers as a fresh MobileFace enrollment given the same distractors.
        with server.store.read() as s:
            drawn = s.execute(
                select(TemplateRow.id, TemplateRow.vector)
                .where(TemplateRow.image_id.is_(None))
                .order_by(TemplateRow.person_id)
            ).all()
        add_template_people(
            fresh,
            [(e, e) for e, _ in DISTRACTORS],
            np.stack(
                [np.frombuffer(server.keys.open(TEMPLATE_VECTOR, t, v), "<f4") for t, v in drawn]
            ),
        )
        pipeline = server.pipeline
        for item in read_labelled(FACES):
            got, want = top(server, pipeline, item.path), top(fresh, pipeline, item.path)
            assert [e for e, _ in got] == [e for e, _ in want], item.path
            assert np.allclose([x for _, x in got], [x for _, x in want], atol=1e-4)
        result = server.searches.search(subject_images("subject-0002")[1], ATTR)
        assert result.model == DEFAULT_MODEL and result.candidates[0].external_id == "subject-0002"
    finally:
        server.close()
        fresh.close()
