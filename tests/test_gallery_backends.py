"""The gallery on every vector-index backend: the same answers, moved between backends, and
nothing committed lost when an engine outside the database misses a change.

Backends (tests/conftest.py): faiss-local on SQLite (the embedded default), pgvector in the
workspace's PostgreSQL database (vectors written in the enrollment's transaction), Milvus beside
a SQLite workspace (changes through the ``index_outbox`` table).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import FACES, make_workspace, subject_images
from fieldid.access import Role
from fieldid.dataset import read_labelled
from fieldid.store.schema import IndexOutbox, TemplateRow
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens
from helpers_storage import Backend, add_template_people, indexed, using

#: Probes: the second and third images of the people with several.
PROBES = [p for i in range(1, 11) for p in subject_images(f"subject-{i:04d}")[1:3]]


def _enrolled(backend: Backend, root: Path) -> Workspace:
    with using(backend):
        ws = make_workspace(root)
    items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
    summary = ws.enrollment.enroll_images(
        items, operator="test", source_name="fixtures", synthetic=True
    )
    assert summary.enrolled == 20
    return ws


def _answers(ws: Workspace, templates: list[Any], k: int = 5) -> list[list[tuple[str, float]]]:
    """Each probe's top ``k`` people (external id and score), straight from the gallery."""
    return [[(h.external_id, h.score) for h in ws.gallery.search(t, top_k=k)] for t in templates]


def _same(a: list[list[tuple[str, float]]], b: list[list[tuple[str, float]]]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert [x for x, _ in ra] == [x for x, _ in rb]
        np.testing.assert_allclose([s for _, s in ra], [s for _, s in rb], atol=1e-5, rtol=0)


@pytest.fixture()
def kinds(pg_server: Any, milvus_uri: str) -> dict[str, Backend]:
    made = {
        "faiss-local": Backend("sqlite"),
        "faiss-local-pg": Backend("postgresql", pg_server),
        "pgvector": Backend("postgresql", pg_server, index="pgvector"),
        "milvus": Backend("sqlite", index="milvus", milvus_uri=milvus_uri),
    }
    yield made
    for b in made.values():
        b.drop_made()


def test_the_same_people_give_the_same_candidates_and_scores_on_every_backend(
    kinds: dict[str, Backend], tmp_path: Path
) -> None:
    spaces = {
        name: _enrolled(kinds[name], tmp_path / name)
        for name in ("faiss-local", "pgvector", "milvus")
    }
    try:
        assert {n: ws.gallery.backend for n, ws in spaces.items()} == {
            "faiss-local": "faiss-local",
            "pgvector": "pgvector",
            "milvus": "milvus",
        }
        for name in ("pgvector", "milvus"):  # followed enrollment by enrollment, never rebuilt
            spaces[name].gallery.index()
            assert spaces[name].gallery.index_source == "memory"
        pipeline = spaces["faiss-local"].pipeline
        templates = [pipeline.process(p).template for p in PROBES]
        base = _answers(spaces["faiss-local"], templates)
        assert all(len(r) == 5 for r in base)
        for name in ("pgvector", "milvus"):
            _same(base, _answers(spaces[name], templates))
        # And through the whole search service: the same candidates, scores and calibration.
        from fieldid.audit import Attribution

        attr = Attribution("officer-7", "field-identification", "CASE-2026-001")
        for probe in PROBES[:4]:
            shown = {
                n: [
                    (c.external_id, round(c.score, 5), c.meaning and c.meaning.text)
                    for c in ws.searches.search(probe, attr).candidates
                ]
                for n, ws in spaces.items()
            }
            assert shown["faiss-local"] and shown["pgvector"] == shown["faiss-local"]
            assert shown["milvus"] == shown["faiss-local"]
    finally:
        for ws in spaces.values():
            ws.close()


def test_a_gallery_moved_to_pgvector_and_to_milvus_gives_the_same_candidates(
    kinds: dict[str, Backend], tmp_path: Path
) -> None:
    moves = {"pgvector": ("faiss-local-pg", []), "milvus": ("faiss-local", [])}
    for target, (source, _) in moves.items():
        root = tmp_path / f"{source}-to-{target}"
        ws = _enrolled(kinds[source], root)
        assert ws.gallery.backend == "faiss-local"
        templates = [ws.pipeline.process(p).template for p in PROBES]
        before = _answers(ws, templates)
        ws.close()
        args = ["index", "rebuild", "--workspace", str(root), "--backend", target, "--json"]
        if target == "milvus":
            prefix = f"t{os.urandom(6).hex()}"
            kinds["milvus"].collections.append(prefix)
            (root / "fieldid.toml").write_text(
                (root / "fieldid.toml").read_text()
                + f'\n[index.milvus]\ncollection_prefix = "{prefix}"\n'
            )
            args += ["--uri", kinds["milvus"].milvus_uri]
        admin = tokens(root)[Role.ADMIN]
        r = cli(args, admin)
        assert r.exit_code == 0, r.output
        out = json.loads(r.stdout[r.stdout.index("{") :])
        assert (out["backend"], out["templates"], out["ok"], out["switched"]) == (
            target,
            20,
            True,
            True,
        )
        moved = Workspace.open(root)
        try:
            assert moved.gallery.backend == target
            _same(before, _answers(moved, templates))
            assert moved.gallery.index_source in ("disk", "memory")  # the rebuilt one, trusted
        finally:
            moved.close()
        r = cli(["index", "check", "--workspace", str(root), "--json"], admin)
        assert r.exit_code == 0, r.output
        check = json.loads(r.stdout[r.stdout.index("{") :])
        assert check["ok"] and check["sampled"] == 20 and check["backend"] == target


def test_pgvector_vectors_commit_and_roll_back_with_the_enrollment(
    kinds: dict[str, Backend], tmp_path: Path
) -> None:
    ws = _enrolled(kinds["pgvector"], tmp_path / "ws")
    try:
        index = ws.gallery.index()
        assert index.count() == 20
        rng = np.random.default_rng(3)
        v = rng.standard_normal((1, ws.gallery.dim)).astype(np.float32)
        v /= np.linalg.norm(v)
        with pytest.raises(RuntimeError), ws.store.unit_of_work() as uow:
            ws.gallery.add_template_only(uow, [("x-1", "X 1")], v)
            # Inside the transaction the vector is there, beside the template row.
            assert uow.session.scalar(select(func.count()).select_from(TemplateRow)) == 21
            assert index.within(uow.session).count() == 21  # type: ignore[attr-defined]
            raise RuntimeError("the enrollment fails before its commit")
        assert index.count() == 20 and ws.gallery.check_index().ok
        (tid,) = add_template_people(ws, [("x-2", "X 2")], v)
        assert index.count() == 21 and indexed(ws.gallery, tid)
        assert ws.gallery.check_index(sample=21).ok
    finally:
        ws.close()


CRASH = """
import os, sys
import numpy as np
from fieldid.index.milvus import MilvusIndex
from fieldid.workspace import Workspace

def killed(self, *a, **k):  # the process dies after the commit, before the engine has it
    os.kill(os.getpid(), 9)

ws = Workspace.open(sys.argv[1])
ws.gallery.index()
MilvusIndex.upsert = killed
v = np.load(sys.argv[2])
with ws.store.unit_of_work() as uow:
    ws.gallery.add_template_only(uow, [("late-1", "Late 1 (synthetic)")], v)
    uow.audit("synth", operator="test", payload={"added": 1, "synthetic": True})
print("not killed")
"""


def test_milvus_misses_nothing_when_the_process_is_killed_between_commit_and_upsert(
    kinds: dict[str, Backend], tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    ws = _enrolled(kinds["milvus"], root)
    probe = ws.pipeline.process(PROBES[0]).template
    ws.close()
    v = np.asarray(probe.vector, dtype=np.float32)[None, :]
    np.save(tmp_path / "v.npy", v)
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASH))
    proc = subprocess.run(
        [sys.executable, str(script), str(root), str(tmp_path / "v.npy")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr  # SIGKILL
    assert "not killed" not in proc.stdout

    # Committed: the template and its outbox row; not in Milvus yet.
    admin = tokens(root)[Role.ADMIN]
    r = cli(["index", "check", "--workspace", str(root), "--json"], admin)
    assert r.exit_code == 1, r.output
    seen = json.loads(r.stdout[r.stdout.index("{") :])
    assert seen["outbox"] == 1 and seen["database_templates"] == 21
    assert seen["index_templates"] == 20 and not seen["ok"]

    # The next start catches up (here: `fieldid index check --repair`, then a search).
    r = cli(["index", "check", "--workspace", str(root), "--repair", "--json"], admin)
    assert r.exit_code == 0, r.output
    fixed = json.loads(r.stdout[r.stdout.index("{") :])
    assert fixed["ok"] and fixed["outbox"] == 0 and fixed["index_templates"] == 21
    assert "caught up (1 changes applied)" in fixed["repair"]
    ws = Workspace.open(root)
    try:
        hit = ws.gallery.search(probe, top_k=1)[0]
        assert hit.external_id == "late-1" and hit.score == pytest.approx(1.0, abs=1e-5)
    finally:
        ws.close()


def test_milvus_outbox_is_drained_at_the_next_use_after_a_failed_upsert(
    kinds: dict[str, Backend], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _enrolled(kinds["milvus"], tmp_path / "ws")
    try:
        gallery = ws.gallery
        probe = ws.pipeline.process(PROBES[1]).template
        from fieldid.index.milvus import MilvusIndex

        def down(self: Any, *a: Any, **k: Any) -> None:
            raise ConnectionError("Milvus does not answer")

        with monkeypatch.context() as m:
            m.setattr(MilvusIndex, "upsert", down)
            (tid,) = add_template_people(ws, [("late-2", "Late 2")], probe.vector[None, :])
        with ws.store.read() as s:
            assert s.scalar(select(func.count()).select_from(IndexOutbox)) == 1
        # The search after the engine came back applies the outbox first.
        hit = gallery.search(probe, top_k=1)[0]
        assert (hit.external_id, hit.template_id) == ("late-2", tid)
        assert gallery.index_source == "caught_up"
        with ws.store.read() as s:
            assert s.scalar(select(func.count()).select_from(IndexOutbox)) == 0
        assert gallery.check_index(sample=5).ok
    finally:
        ws.close()


def test_pgvector_needs_a_postgresql_database(tmp_path: Path) -> None:
    from fieldid.errors import FieldidError

    ws = Workspace.init(tmp_path / "ws")
    ws.close()
    from fieldid.index.config import with_index_settings

    toml = tmp_path / "ws" / "fieldid.toml"
    toml.write_text(with_index_settings(toml.read_text(), backend="pgvector"))
    ws = Workspace.open(tmp_path / "ws")
    try:
        with pytest.raises(FieldidError) as e:
            ws.gallery  # noqa: B018
        assert e.value.code == "index.pgvector_needs_postgresql"
    finally:
        ws.close()


@pytest.mark.parametrize("kind", ["pgvector", "milvus"])
def test_the_training_gallery_keeps_its_own_vectors(
    kinds: dict[str, Backend], tmp_path: Path, kind: str
) -> None:
    with using(kinds[kind]):
        ws = make_workspace(tmp_path / "ws")
    try:
        rng = np.random.default_rng(5)
        v = rng.standard_normal((2, ws.gallery.dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        (real,) = add_template_people(ws, [("real-1", "Real 1")], v[:1])
        training = ws.training(create=True)
        assert training.gallery.name == "training" and training.gallery.backend == kind
        (fake,) = add_template_people(training, [("train-1", "Train 1")], v[1:])
        tmpl = ws.pipeline.embedder.model
        from fieldid.template.types import Template

        hits = training.gallery.search(Template(v[0], tmpl), top_k=5)
        assert [h.external_id for h in hits] == ["train-1"]
        hits = ws.gallery.search(Template(v[1], tmpl), top_k=5)
        assert [h.external_id for h in hits] == ["real-1"]
        assert indexed(ws.gallery, real) and indexed(training.gallery, fake)
        assert ws.gallery.check_index().ok and training.gallery.check_index().ok
    finally:
        ws.close()
