"""Two processes draining the Milvus ``index_outbox`` at once leave the collection equal to the
database: no older upsert lands after a newer delete (fieldid.gallery.vectors.OutboxSync.drain).

A writer (this process, which does not drain) commits a shuffled stream of enrollments and
deletions (many a deletion of someone enrolled a few milliseconds before); two drainer
processes apply the outbox concurrently against the session's real Milvus server, in batches of
two rows, each with a random pause between reading a template's state and writing it to Milvus
(the window in which, without claims, a drainer holding an old "enrolled" state could overwrite
another's newer "deleted"). Then the collection must hold exactly the database's templates, with
their vectors. On SQLite (drainers take turns by a lock file) and on PostgreSQL (drainers claim
rows with ``FOR UPDATE SKIP LOCKED`` and lock template buckets)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import make_workspace
from fieldid.gallery.vectors import OutboxSync, stream_templates
from fieldid.store.schema import IndexOutbox
from fieldid.workspace import Workspace
from helpers_storage import Backend, add_template_people, delete_person, using

DRAINER = """
import random, sys, time
from pathlib import Path

import fieldid.gallery.vectors as vectors
from fieldid.index.milvus import MilvusIndex
from fieldid.workspace import Workspace

root, stop, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
vectors.DRAIN_BATCH = 2
upsert, delete = MilvusIndex.upsert, MilvusIndex.delete

def slow_upsert(self, *a, **k):  # the state was read; the engine gets it a little later
    time.sleep(rng.uniform(0, 0.2))
    return upsert(self, *a, **k)

def slow_delete(self, *a, **k):
    time.sleep(rng.uniform(0, 0.01))
    return delete(self, *a, **k)

MilvusIndex.upsert, MilvusIndex.delete = slow_upsert, slow_delete
ws = Workspace.open(root)
sync = ws.gallery.sync
sync.drain()
(stop.parent / f"ready-{seed}").touch()
applied = 0
while True:
    done = stop.exists()
    applied += sync.drain()
    if done and sync.pending() == 0:
        break
    time.sleep(rng.uniform(0, 0.01))
ws.close()
print(f"applied {applied}")
"""


def _collection(ws: Workspace) -> dict[int, np.ndarray]:
    """Every (id, vector) the gallery's Milvus collection holds."""
    index: Any = ws.gallery.sync.index  # type: ignore[attr-defined]
    coll = index._collection("operational")
    rows = coll.query(
        expr="id >= 0",
        output_fields=["id", "vector"],
        consistency_level="Strong",
        limit=16_384,
    )
    return {int(r["id"]): np.asarray(r["vector"], dtype=np.float32) for r in rows}


def _database(ws: Workspace) -> dict[int, np.ndarray]:
    """Every (id, vector) the database holds, opened with the workspace's keys."""
    with ws.store.read(stream=True) as s:
        return {t: v.copy() for t, v in stream_templates(s, ws.gallery.dim)}


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_two_drainers_leave_the_collection_equal_to_the_database(
    storage: str,
    pg_server: Any,
    milvus_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = Backend(
        storage,
        pg_server if storage == "postgresql" else None,
        index="milvus",
        milvus_uri=milvus_uri,
    )
    root = tmp_path / "ws"
    try:
        with using(backend):
            ws = make_workspace(root)
        ws.gallery.index()  # the collection exists and reflects the (empty) gallery
        dim = ws.gallery.sync.dim  # type: ignore[attr-defined]
        # The writer only commits (each change and its outbox rows); the drainers apply.
        monkeypatch.setattr(OutboxSync, "drain", lambda self, progress=None: 0)
        stop = tmp_path / "stop"
        script = tmp_path / "drain.py"
        script.write_text(textwrap.dedent(DRAINER))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        drainers = [
            subprocess.Popen(
                [sys.executable, str(script), str(root), str(stop), str(seed)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for seed in (1, 2)
        ]
        deadline = time.monotonic() + 180
        while not all((tmp_path / f"ready-{seed}").exists() for seed in (1, 2)):
            for d in drainers:
                assert d.poll() is None, d.communicate()
            assert time.monotonic() < deadline, "the drainers did not start"
            time.sleep(0.2)
        rng = np.random.default_rng(0)
        live: list[int] = []  # person ids, newest last
        n = 0
        t0 = time.monotonic()
        while n < 120 and time.monotonic() - t0 < 120:
            k = int(rng.integers(1, 4))
            v = rng.standard_normal((k, dim)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            people = [(f"p{n}-{j}", f"P {n}-{j} (synthetic)") for j in range(k)]
            add_template_people(ws, people, v)
            for ext, _ in people:
                pid = ws.gallery.find_person(ext)
                assert pid is not None
                live.append(pid)
            # A drainer may be applying the enrollment right now: delete one of these people
            # (or an older one) while it does.
            time.sleep(float(rng.uniform(0, 0.1)))
            if rng.random() < 0.6:
                pick = len(live) - 1 - min(len(live) - 1, int(rng.geometric(0.5)) - 1)
                delete_person(ws, live.pop(pick))
            time.sleep(float(rng.uniform(0, 0.05)))
            n += 1
        stop.touch()
        outs = [d.communicate(timeout=300) for d in drainers]
        for d, (out, err) in zip(drainers, outs, strict=True):
            assert d.returncode == 0, out + err
        applied = [int(out.split("applied ")[-1]) for out, _ in outs]
        assert all(a > 0 for a in applied), applied  # both drained: they did run concurrently

        with ws.store.read() as s:
            assert s.scalar(select(func.count()).select_from(IndexOutbox)) == 0
        want = _database(ws)
        have = _collection(ws)
        assert len(want) > 20
        assert set(have) == set(want), (
            f"stale in Milvus: {sorted(set(have) - set(want))}; "
            f"missing: {sorted(set(want) - set(have))}"
        )
        for tid, v in want.items():
            np.testing.assert_allclose(have[tid], v, atol=1e-6)
        ws.close()
    finally:
        backend.drop_made()
