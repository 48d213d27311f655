"""What encryption at rest costs: start-up at a million templates, rotation, check, per search.

Builds a gallery of ``--templates`` synthetic template-only identities (``--dim``, default 256:
MobileFace) on SQLite in ``--dir`` (default ``benchmarks/.cache/keys-<n>``, deleted afterwards
unless ``--keep``), sealed as fieldid stores them, then measures in one process:

* **insert**: ``Gallery.add_template_only`` (Core INSERT … RETURNING, then each vector sealed for
  its id and written by primary key), identities per second, against the same insert with the
  vectors in the clear and no second write (as before encryption) into a scratch database
  (``--baseline-templates``);
* **rebuild from the store**: reading every template row, and opening (decrypting) each, against
  reading the same rows without opening them; then building the index (IVF above 50,000);
* **start from disk**: ``FaissIndex.load`` of the sealed index the workspace keeps, against the
  same index saved in the clear (the baseline), interleaved, median of ``--repeats``; both
  verify checksums;
* **check** and **rotate**: ``fieldid keys check`` and ``fieldid keys rotate``'s passes over every
  template (values per second); re-sealing the index after the rotation;
* **per search**: sealing a probe photo (``--probe-bytes``, default a 1 MP JPEG's size) and a
  template, and opening ten candidates' face crops, against a real search of a fixture face on a
  small workspace (median of ``--searches``): the share of a search's time encryption adds.

Run it under ``nice -n 10`` on a shared machine; the load average is recorded with the results.

    nice -n 10 python benchmarks/bench_keys.py --templates 1000000 \\
        --out benchmarks/results/keys.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _distractors as dist
from fieldid.gallery.store import Gallery
from fieldid.gallery.vectors import LocalSync
from fieldid.index.faiss_engine import FaissIndex, IndexParams
from fieldid.keys import FileKek, KeysSpec
from fieldid.store import keys as sk
from fieldid.store import open_store
from fieldid.store.schema import TemplateRow
from fieldid.template.types import ModelId

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def median_time(fn: Any, repeats: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def build(root: Path, n: int, dim: int, chunk: int) -> tuple[Any, Gallery, dict[str, Any]]:
    root.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{root / 'fieldid.db'}")
    kek = FileKek(root.parent / f"{root.name}.kek")
    if not kek.exists():
        kek.create()
    sk.open_keys(store, KeysSpec(), root, kek=kek)
    gallery = Gallery(store, root / "index", ModelId("bench-256", "1"), dim)
    have = gallery.size().templates
    out: dict[str, Any] = {"templates": n, "dim": dim}
    if have >= n:
        out["insert"] = "reused"
        return store, gallery, out
    rng = np.random.default_rng(7)
    model = dist.synthetic_model(dim, rng)
    t_all = 0.0
    for start in range(have, n, chunk):
        m = min(chunk, n - start)
        vecs = model.sample(m, rng)
        people = [(f"bench-{start + i}", f"Synthetic {start + i}") for i in range(m)]

        def add(people: list[tuple[str, str]] = people, vecs: Any = vecs) -> None:
            with store.unit_of_work() as uow:
                gallery.add_template_only(uow, people, vecs)

        dt, _ = timed(add)
        t_all += dt
        print(f"  inserted {start + m:,} ({m / dt:,.0f}/s)", flush=True)
    out["insert"] = {"seconds": round(t_all, 1), "per_second": round((n - have) / t_all)}
    return store, gallery, out


def rebuild(store: Any, gallery: Gallery, dim: int) -> dict[str, Any]:
    from sqlalchemy import select

    def raw_read() -> int:
        n = 0
        with store.read() as s:
            q = select(TemplateRow.id, TemplateRow.vector).execution_options(yield_per=10_000)
            for _tid, blob in s.execute(q):
                n += len(blob)
        return n

    read_s, nbytes = timed(raw_read)
    open_s, (ids, vecs) = timed(lambda: gallery._vectors(None))
    build_s, index = timed(
        lambda: FaissIndex.build(ids, vecs, dim=dim, params=IndexParams(exact_threshold=50_000))
    )
    return {
        "read_rows_s": round(read_s, 2),
        "read_and_open_s": round(open_s, 2),
        "opening_adds_s": round(open_s - read_s, 2),
        "build_index_s": round(build_s, 2),
        "rebuild_total_s": round(open_s + build_s, 2),
        "stored_bytes": nbytes,
        "mode": index.mode,
        "_index": index,
    }


def insert_baseline(tmp: Path, n: int, dim: int, chunk: int) -> dict[str, Any]:
    """The same bulk insert as ``add_template_only`` did before encryption (vectors in the
    clear, no second write), into a scratch database: the baseline for the insert rate."""
    from sqlalchemy import insert

    from fieldid.store.schema import Person

    store = open_store(f"sqlite:///{tmp / 'plain.db'}")
    rng = np.random.default_rng(8)
    model = dist.synthetic_model(dim, rng)
    total = 0.0
    try:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            vecs = model.sample(m, rng)

            def add(start: int = start, m: int = m, vecs: Any = vecs) -> None:
                with store.unit_of_work() as uow:
                    s, now = uow.session, uow.now()
                    pids = list(
                        s.scalars(
                            insert(Person).returning(Person.id, sort_by_parameter_order=True),
                            [
                                {
                                    "external_id": f"plain-{start + i}",
                                    "display_name": "x",
                                    "synthetic": True,
                                    "created_at": now,
                                }
                                for i in range(m)
                            ],
                        )
                    )
                    s.execute(
                        insert(TemplateRow),
                        [
                            {
                                "person_id": pid,
                                "image_id": None,
                                "model_id": "bench-256",
                                "model_version": "1",
                                "vector": vecs[i].tobytes(),
                                "created_at": now,
                            }
                            for i, pid in enumerate(pids)
                        ],
                    )

            total += timed(add)[0]
    finally:
        store.close()
    return {"templates": n, "seconds": round(total, 1), "per_second": round(n / total)}


def start_from_disk(
    index: FaissIndex, keyring: Any, tmp: Path, repeats: int, rev: str
) -> dict[str, Any]:
    sealed_dir, plain_dir = tmp / "sealed", tmp / "plain"
    save_sealed = median_time(lambda: index.save(sealed_dir, revision=rev, keyring=keyring), 1)
    save_plain = median_time(lambda: index.save(plain_dir, revision=rev), 1)
    params = IndexParams(exact_threshold=50_000)
    sealed_t: list[float] = []
    plain_t: list[float] = []
    for _ in range(repeats):  # interleaved, so that the machine's load falls on both alike
        sealed_t.append(
            timed(
                lambda: FaissIndex.load(
                    sealed_dir, rev, params=params, keyring=keyring, strict=True
                )
            )[0]
        )
        plain_t.append(
            timed(lambda: FaissIndex.load(plain_dir, rev, params=params, strict=True))[0]
        )
    load_sealed, load_plain = statistics.median(sealed_t), statistics.median(plain_t)
    size = sum(p.stat().st_size for p in sealed_dir.iterdir())
    return {
        "save_sealed_s": round(save_sealed, 2),
        "save_plain_s": round(save_plain, 2),
        "load_sealed_s": round(load_sealed, 2),
        "load_plain_s": round(load_plain, 2),
        "load_ratio": round(load_sealed / load_plain, 2),
        "index_bytes_on_disk": size,
    }


def passes(store: Any, gallery: Gallery, root: Path) -> dict[str, Any]:
    keys = store.keys
    n = gallery.size().templates
    check_s, report = timed(lambda: sk.check(keys))
    assert report.ok, report.to_dict()
    new = FileKek(root.parent / f"{root.name}.next.kek")
    if new.exists():
        new.path.unlink()
    new.create()
    sk.begin_rotation(keys, new.load(), new)
    rotate_s, rep = timed(lambda: sk.rotate(keys))
    reseal_s, _ = timed(gallery.reseal_index)
    return {
        "check_s": round(check_s, 1),
        "check_per_second": round(n / check_s),
        "rotate_s": round(rotate_s, 1),
        "rotate_per_second": round(n / rotate_s),
        "rewrapped": rep.rewrapped,
        "reseal_index_s": round(reseal_s, 2),
    }


def per_search(keyring: Any, probe_bytes: int, dim: int, searches: int) -> dict[str, Any]:
    from fieldid.store.keys import PROBE_IMAGE, PROBE_TEMPLATE, THUMBNAIL

    image = os.urandom(probe_bytes)
    template = np.random.default_rng(1).standard_normal(dim).astype("<f4").tobytes()
    crop = os.urandom(12_000)
    sealed_crop = keyring.seal(crop, THUMBNAIL.aad(1))
    reps = 2_000

    def seal_probe() -> None:
        keyring.seal(image, PROBE_IMAGE.aad(1))
        keyring.seal(template, PROBE_TEMPLATE.aad(1))

    def open_crops() -> None:
        for _ in range(10):
            keyring.open(sealed_crop, THUMBNAIL.aad(1))

    seal_us = median_time(lambda: [seal_probe() for _ in range(100)], reps // 100) / 100 * 1e6
    crops_us = median_time(lambda: [open_crops() for _ in range(10)], reps // 100) / 10 * 1e6
    out: dict[str, Any] = {
        "probe_bytes": probe_bytes,
        "seal_probe_and_template_us": round(seal_us, 1),
        "open_ten_face_crops_us": round(crops_us, 1),
    }
    if searches:
        out.update(search_baseline(searches))
        out["encryption_share_of_search"] = round(seal_us / 1e3 / out["search_p50_ms"], 5)
    return out


def search_baseline(searches: int) -> dict[str, Any]:
    """A real search (pipeline, index, store with the probe sealed, audit) on a small workspace:
    the demo's portrait enrolled with the fixture faces, its closer capture searched."""
    from fieldid.audit import Attribution
    from fieldid.dataset import LabelledImage, read_labelled
    from fieldid.demo import astronaut_path, closer_crop
    from fieldid.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="bench-keys-ws-"))
    os.environ["FIELDID_KEY_DIR"] = str(tmp / "keys")
    try:
        ws = Workspace.init(tmp / "ws")
        faces = REPO / "tests" / "fixtures" / "faces"
        items = [i for i in read_labelled(faces) if i.path.name.endswith("_0001.jpg")]
        items.append(LabelledImage(astronaut_path(), "subject-astronaut", None))
        ws.enrollment.enroll_images(items, operator="bench", source_name="fx", synthetic=True)
        probe = closer_crop(astronaut_path())
        attr = Attribution("bench", "field-identification", "BENCH-1")
        ws.searches.search(probe, attr, notice_given=True)  # warm-up
        times = [
            timed(lambda: ws.searches.search(probe, attr, notice_given=True))[0]
            for _ in range(searches)
        ]
        ws.close()
        return {
            "search_p50_ms": round(statistics.median(times) * 1e3, 1),
            "search_probe_bytes": len(probe),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--templates", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-templates", type=int, default=200_000)
    ap.add_argument("--searches", type=int, default=20)
    ap.add_argument("--probe-bytes", type=int, default=300_000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    root = a.dir or HERE / ".cache" / f"keys-{a.templates}"
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": load(),
    }
    try:
        print(f"building {a.templates:,} sealed templates in {root}", flush=True)
        store, gallery, built = build(root, a.templates, a.dim, a.chunk)
        result.update(built)
        if built["insert"] != "reused":
            n0 = min(a.templates, a.baseline_templates)
            print(f"insert baseline: {n0:,} templates in the clear, as before", flush=True)
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                result["insert_baseline_in_the_clear"] = insert_baseline(
                    Path(tmp), n0, a.dim, a.chunk
                )
        print("rebuild from the encrypted store", flush=True)
        rb = rebuild(store, gallery, a.dim)
        index = rb.pop("_index")
        result["rebuild_from_store"] = rb
        print("start from disk: sealed vs in the clear", flush=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            result["start_from_disk"] = start_from_disk(
                index, store.keys.keyring, Path(tmp), a.repeats, gallery.revision()
            )
        # the workspace's own index: the one built above, saved sealed where the gallery keeps it
        sync = gallery.sync
        assert isinstance(sync, LocalSync), "the benchmark measures the faiss-local backend"
        sync.follower._set(index, gallery.revision(), dirty=True)
        gallery.flush()
        del index
        print("check and rotate", flush=True)
        result["passes"] = passes(store, gallery, root)
        print("per search", flush=True)
        result["per_search"] = per_search(store.keys.keyring, a.probe_bytes, a.dim, a.searches)
        store.close()
    finally:
        result["load_after"] = load()
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
            for p in root.parent.glob(f"{root.name}*.kek"):
                p.unlink()
    print(json.dumps(result, indent=2))
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
