"""Re-templating benchmark (issue 16 item 3): a dlib gallery of ``--people`` people moved to
MobileFace v2 by ``fieldid gallery retemplate``, killed with -9 once and resumed, against a
fresh MobileFace enrollment of the same images.

1. The dlib gallery: the first ``--people`` identities of the labelled set (sorted by name),
   ``--images-per-person`` images each, enrolled with dlib into a SQLite workspace (built once
   into ``benchmarks/.cache/retemplate-…``, reused; its build time is reported when it is built).
2. A fresh enrollment of the same images with MobileFace v2 (the default) into another
   workspace, timed: the baseline (enrollment runs in one process).
3. The re-templating, on a copy of the dlib gallery: ``fieldid gallery retemplate --model
   mobileface-v2 --workers W`` in a subprocess, killed with SIGKILL once ``--kill-at`` of the
   images have a new template, then run again to the end (resume and switch). Wall times of both
   runs (process start and model loading included) and the command's own compute time.
4. Identical results: every template against the fresh enrollment's (largest absolute
   difference), and the top-5 answers (ids and scores) of probes searched in both galleries: the
   enrolled people's other images (mated) and ``--nonmated`` people not enrolled.

    nice -n 10 python benchmarks/bench_retemplate.py --dataset ../shared/faces/lfw-dev \\
        --people 1000 --out benchmarks/results/retemplate.json

Records ``uptime`` before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.audit.verify import verify_log
from fieldid.dataset import LabelledImage, read_labelled
from fieldid.store.keys import TEMPLATE_VECTOR
from fieldid.store.schema import EnrollmentImage, Person, TemplateRow
from fieldid.workspace import Workspace

CACHE = Path(__file__).resolve().parent / ".cache"
FIELDID = Path(sys.executable).with_name("fieldid")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def choose(dataset: Path, people: int, per_person: int, nonmated: int) -> dict[str, Any]:
    by_id: dict[str, list[LabelledImage]] = defaultdict(list)
    for item in read_labelled(dataset):
        by_id[item.identity].append(item)
    names = sorted(by_id)
    if len(names) < people + nonmated:
        raise SystemExit(f"{dataset} has {len(names)} people; {people + nonmated} needed")
    enrolled = names[:people]
    gallery = [i for n in enrolled for i in sorted(by_id[n], key=lambda x: x.path)[:per_person]]
    mated = [i for n in enrolled for i in sorted(by_id[n], key=lambda x: x.path)[per_person:]]
    others = [sorted(by_id[n], key=lambda x: x.path)[0] for n in names[people : people + nonmated]]
    return {"gallery": gallery, "mated": mated, "nonmated": others}


def make_workspace(root: Path, embedder: str) -> Workspace:
    Workspace.init(root).close()
    cfg = root / "fieldid.toml"
    text = cfg.read_text().replace('embedder = "mobileface-v2"', f'embedder = "{embedder}"')
    # LFW news photographs: ~42 px between the eyes, bystanders in the frame (as the tests do).
    text = text.replace("min_inter_eye_px = 60.0", "min_inter_eye_px = 30.0")
    cfg.write_text(text.replace("max_faces = 1", "max_faces = 3"))
    return Workspace.open(root)


def enrol(root: Path, embedder: str, items: list[LabelledImage]) -> dict[str, Any]:
    t = time.perf_counter()
    ws = make_workspace(root, embedder)
    s = ws.enrollment.enroll_images(items, operator="bench", source_name="lfw-dev", synthetic=True)
    size = ws.gallery.size()
    ws.close()
    return {
        "seconds": round(time.perf_counter() - t, 1),
        "enrolled": s.enrolled,
        "refused": len(s.refused),
        "persons": size.persons,
        "templates": size.templates,
    }


def complete(root: Path, images: int) -> bool:
    """A cached gallery finished building (a build killed midway is built again, and so is one
    this version cannot open, e.g. made before its migrations were renumbered)."""
    if not (root / "fieldid.toml").exists():
        return False
    try:
        ws = Workspace.open(root)
    except Exception as e:  # any failure to open means: build it again
        print(f"cached gallery {root} unusable ({e}); building it again", flush=True)
        return False
    try:
        with ws.store.read() as s:
            return (s.scalar(select(func.count(EnrollmentImage.id))) or 0) >= images * 0.98
    finally:
        ws.close()


def pending(root: Path) -> int:
    ws = Workspace.open(root)
    try:
        with ws.store.read() as s:
            gen = s.scalar(select(func.max(TemplateRow.generation))) or 1
            if gen == 1:
                return 0
            return int(
                s.scalar(select(func.count(TemplateRow.id)).where(TemplateRow.generation == gen))
                or 0
            )
    finally:
        ws.close()


def admin_token(root: Path) -> str:
    """An admin account in the workspace and an API token for it: the command authenticates."""
    with Workspace.open(root) as ws:
        accounts = Accounts(ws.store, ws.clock)
        if accounts.get_user("bench-admin") is None:
            accounts.add_user(
                "bench-admin", Role.ADMIN, secrets.token_urlsafe(24), by="system:bench"
            )
        return accounts.issue_token("bench-admin", by="system:bench").secret


def retemplate(root: Path, workers: int, kill_at: float, total: int) -> dict[str, Any]:
    env = {**os.environ, "FIELDID_TOKEN": admin_token(root)}
    args = [
        str(FIELDID),
        "gallery",
        "retemplate",
        "-w",
        str(root),
        "--model",
        "mobileface-v2",
        "--workers",
        str(workers),
        "--json",
    ]
    out: dict[str, Any] = {}
    if kill_at > 0:
        t = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        want = int(kill_at * total)
        while pending(root) < want:
            if proc.poll() is not None:
                raise SystemExit(f"the command ended ({proc.returncode}) before the kill")
            time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        out["killed_after_s"] = round(time.perf_counter() - t, 1)
        out["templates_at_kill"] = pending(root)
    t = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    out["resume_s"] = round(time.perf_counter() - t, 1)
    result = json.loads(done.stdout[done.stdout.index("{") :])
    out["result"] = result
    out["total_s"] = round(out.get("killed_after_s", 0) + out["resume_s"], 1)
    runs = result["switched"]["runs"]
    out["computed_in_resume"] = sum(r["templated"] + r["synthetic"] for r in runs)
    out["compute_s_in_resume"] = round(sum(r["seconds"] for r in runs), 1)
    return out


def templates(ws: Workspace) -> dict[tuple[str, str], np.ndarray]:
    with ws.store.read() as s:
        rows = s.execute(
            select(Person.external_id, EnrollmentImage.sha256, TemplateRow.id, TemplateRow.vector)
            .join(EnrollmentImage, EnrollmentImage.id == TemplateRow.image_id)
            .join(Person, Person.id == TemplateRow.person_id)
        ).all()
    # stored sealed: opened with the workspace's keyring
    return {
        (e, sha): np.frombuffer(ws.keys.open(TEMPLATE_VECTOR, t, v), "<f4") for e, sha, t, v in rows
    }


def compare(moved: Path, fresh: Path, probes: list[LabelledImage]) -> dict[str, Any]:
    a, b = Workspace.open(moved), Workspace.open(fresh)
    try:
        ta, tb = templates(a), templates(b)
        same_keys = set(ta) == set(tb)
        diff = max((float(np.abs(ta[k] - tb[k]).max()) for k in ta if k in tb), default=0.0)
        pipeline = b.pipeline
        same_ids = same_scores = searched = 0
        worst = 0.0
        for p in probes:
            try:
                t = pipeline.process(p.path).template
            except Exception:  # no face: not a probe
                continue
            ha, hb = a.gallery.search(t, 5), b.gallery.search(t, 5)
            searched += 1
            same_ids += [h.external_id for h in ha] == [h.external_id for h in hb]
            d = max((abs(x.score - y.score) for x, y in zip(ha, hb, strict=False)), default=0.0)
            worst = max(worst, d)
            same_scores += d < 1e-4
        chain = verify_log(a.store)
        return {
            "model": str(a.gallery.model),
            "fresh_model": str(b.gallery.model),
            "images_compared": len(ta),
            "same_images": same_keys,
            "max_abs_template_difference": diff,
            "probes_searched": searched,
            "same_top5_ids": same_ids,
            "same_top5_scores_1e-4": same_scores,
            "max_score_difference": worst,
            "audit_chain_ok": chain.ok,
            "switch_audited": [e.payload["stage"] for e in a.store.audit_entries("retemplate")],
        }
    finally:
        a.close()
        b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--images-per-person", type=int, default=1)
    ap.add_argument("--nonmated", type=int, default=200)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--kill-at", type=float, default=0.4, help="share done when killed (0: none)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    report: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "uptime_before": uptime(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "people": args.people,
        "images_per_person": args.images_per_person,
        "workers": args.workers,
        "kill_at": args.kill_at,
    }
    chosen = choose(args.dataset, args.people, args.images_per_person, args.nonmated)
    cached = CACHE / f"retemplate-dlib-{args.people}x{args.images_per_person}" / "ws"
    if not complete(cached, args.people * args.images_per_person):
        shutil.rmtree(cached.parent, ignore_errors=True)
        cached.parent.mkdir(parents=True)
        report["dlib_gallery_built"] = enrol(cached, "dlib-resnet", chosen["gallery"])
        print(f"dlib gallery built: {report['dlib_gallery_built']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-retemplate-") as tmp:
        moved, fresh = Path(tmp) / "moved", Path(tmp) / "fresh"
        shutil.copytree(cached, moved)
        ws = Workspace.open(moved)
        total = ws.gallery.size().templates
        report["gallery"] = {"model": str(ws.gallery.model), "templates": total}
        ws.close()
        report["fresh_enrollment"] = enrol(fresh, "mobileface-v2", chosen["gallery"])
        print(f"fresh enrollment: {report['fresh_enrollment']}", flush=True)
        report["retemplate"] = run = retemplate(moved, args.workers, args.kill_at, total)
        print(f"retemplate: total {run['total_s']} s", flush=True)
        report["identical"] = compare(moved, fresh, chosen["mated"] + chosen["nonmated"])
        report["ratio_retemplate_to_fresh_enrollment"] = round(
            run["total_s"] / report["fresh_enrollment"]["seconds"], 2
        )
    report["uptime_after"] = uptime()
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    r, f, i = report["retemplate"], report["fresh_enrollment"], report["identical"]
    print(
        f"\n| people | templates | fresh MobileFace enrollment | retemplate (killed at "
        f"{args.kill_at:.0%}, resumed) | kill after | resume | max template diff | same top-5 |\n"
        f"|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {args.people:,} | {report['gallery']['templates']:,} | {f['seconds']} s | "
        f"{r['total_s']} s ({report['ratio_retemplate_to_fresh_enrollment']}×) | "
        f"{r.get('killed_after_s', '-')} s | {r['resume_s']} s | "
        f"{i['max_abs_template_difference']:.2g} | {i['same_top5_ids']}/{i['probes_searched']} |"
    )
    print(f"uptime before: {report['uptime_before']}\nuptime after: {report['uptime_after']}")


if __name__ == "__main__":
    main()
