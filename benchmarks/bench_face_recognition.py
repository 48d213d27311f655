"""fieldid's 1:N search against the ``face_recognition`` library on the same probes.

Both use dlib's models from face-recognition-models (HOG detector, 5-point landmarks, 128-d ResNet);
what differs is the path around them:

* **fieldid**: a fresh workspace (``Workspace.init``), ``Enrollment.enroll_images`` and
  ``SearchService.search`` on the image file, exactly as the CLI does (decode with intake checks,
  FaceFinder: HOG on a copy ≤ 480 px with upsampling 0→1→2, quality measures, embedding, exact
  cosine search of the gallery, audit-log write). The workspace's ``fieldid.toml`` is edited so the
  quality gate admits everything (LFW faces are ~42 px between the eyes, under the 60 px the
  default gate asks of a probe) and the threshold is -1, so the top candidate is always returned:
  this measures ranking, not the gate.
* **face_recognition**: ``load_image_file`` + ``face_locations`` (HOG, upsample 1, its default) +
  ``face_encodings`` (5-point model, num_jitters=1, its defaults) on the largest face found +
  ``face_distance`` brute force over the enrolled encodings (smallest Euclidean distance wins).

Gallery: one image per person (the first by file name) for the people with at least two images
(``--people N``: a seeded sample of them); probes: each of their other images. A probe counts as
correct when the top candidate is the probe's identity; a probe with no face found, or whose person
could not be enrolled by that system, is a miss. Time per probe is the whole call, file to
candidate (median, p95), measured in the same process with the two systems alternating first.

    python benchmarks/bench_face_recognition.py --dataset ../shared/faces/lfw-dev --out fr.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.audit.log import Attribution
from fieldid.dataset import LabelledImage, read_labelled
from fieldid.errors import FieldidError
from fieldid.workspace import Workspace

#: Quality-gate settings that admit every acquired face, and a threshold that returns every top-k.
OPEN_GATE = {
    "min_inter_eye_px": 0.0,
    "max_abs_yaw_deg": 180.0,
    "max_abs_pitch_deg": 180.0,
    "max_abs_roll_deg": 180.0,
    "min_sharpness_score": 0,
    "min_luminance": 0.0,
    "max_luminance": 255.0,
    "max_clipped_fraction": 1.0,
    "max_faces": 1000,
    "min_unified": 0,
}


def open_workspace(root: Path) -> Workspace:
    ws = Workspace.init(root)
    ws.close()
    cfg = (root / "fieldid.toml").read_text(encoding="utf-8")
    lines = []
    for line in cfg.splitlines():
        key = line.split("=")[0].strip()
        if key in OPEN_GATE:  # also [enrollment] min_inter_eye_px: enrol every face found
            line = f"{key} = {OPEN_GATE[key]}"
        elif line.strip().startswith("# threshold ="):
            line = "threshold = -1.0"
        elif key == "embedder":  # the model face_recognition uses, not the new default
            line = 'embedder = "dlib-resnet"'
        lines.append(line)
    (root / "fieldid.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Workspace.open(root)


class FaceRecognitionSearch:
    """The face_recognition library's own path, largest face kept (as fieldid does)."""

    def __init__(self) -> None:
        import face_recognition  # type: ignore[import-untyped]
        from PIL import ImageFile

        # face_recognition sets this process-wide on import (so it half-reads damaged files);
        # fieldid's intake refuses to run with it set. Put it back.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        self.fr = face_recognition
        self.names: list[str] = []
        self.encodings: list[NDArray[np.float64]] = []

    def encode(self, path: Path) -> NDArray[np.float64] | None:
        fr = self.fr
        img = fr.load_image_file(str(path))
        locs = fr.face_locations(img)  # HOG, upsample 1
        if not locs:
            return None
        # (top, right, bottom, left): keep the largest, as fieldid does
        loc = max(locs, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        return np.asarray(fr.face_encodings(img, [loc])[0])  # 5-point model, num_jitters=1

    def enroll(self, item: LabelledImage) -> bool:
        enc = self.encode(item.path)
        if enc is None:
            return False
        self.names.append(item.identity)
        self.encodings.append(enc)
        return True

    def search(self, path: Path) -> str | None:
        enc = self.encode(path)
        if enc is None or not self.encodings:
            return None
        d = self.fr.face_distance(self.encodings, enc)
        return self.names[int(np.argmin(d))]


def stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"median": float("nan"), "p95": float("nan")}
    return {"median": statistics.median(xs), "p95": float(np.percentile(xs, 95))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    items = read_labelled(args.dataset)
    by_person: dict[str, list[LabelledImage]] = defaultdict(list)
    for it in items:
        by_person[it.identity].append(it)
    people = sorted(p for p, imgs in by_person.items() if len(imgs) >= 2)
    if args.people and args.people < len(people):
        rng = np.random.default_rng(args.seed)
        people = sorted(rng.choice(people, args.people, replace=False).tolist())
    gallery_items, probes = [], []
    for p in people:
        imgs = sorted(by_person[p], key=lambda i: i.path.name)
        gallery_items.append(imgs[0])
        probes.extend(imgs[1:])
    if args.max_probes and args.max_probes < len(probes):
        rng = np.random.default_rng(args.seed + 1)
        probes = [
            probes[i] for i in sorted(rng.choice(len(probes), args.max_probes, replace=False))
        ]

    root = Path(args.workspace) if args.workspace else Path(tempfile.mkdtemp(prefix="fr-bench-"))
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty: give a new folder to --workspace")
    ws = open_workspace(root)
    frs = FaceRecognitionSearch()
    load_start = os.getloadavg()
    started = time.time()
    try:
        # enrollment, timed per image for each system
        fid_enrol_ms: list[float] = []
        fr_enrol_ms: list[float] = []
        fid_refused: dict[str, str] = {}
        fr_refused: list[str] = []
        for n, item in enumerate(gallery_items):
            t = time.perf_counter()
            summary = ws.enrollment.enroll_images(
                [item], operator="bench", source_name="bench", synthetic=True
            )
            fid_enrol_ms.append((time.perf_counter() - t) * 1000)
            for r in summary.refused:
                fid_refused[r.identity] = r.code
            t = time.perf_counter()
            if not frs.enroll(item):
                fr_refused.append(item.identity)
            fr_enrol_ms.append((time.perf_counter() - t) * 1000)
            if args.progress and (n + 1) % (args.progress * 4) == 0:
                print(f"enrolled {n + 1}/{len(gallery_items)}", file=sys.stderr, flush=True)

        service = ws.searches
        attr = Attribution("bench", "evaluation", "bench-face-recognition")
        # warm-up: load the index and the models' first-call costs, untimed
        for item in probes[: args.warmup]:
            with contextlib.suppress(FieldidError):
                service.search(item.path, attr, top_k=1)
            frs.search(item.path)

        rows: list[dict[str, Any]] = []
        fid_ms: list[float] = []
        fr_ms: list[float] = []
        stage_ms: dict[str, list[float]] = defaultdict(list)
        for n, item in enumerate(probes):
            fid_top: str | None = None
            fid_err: str | None = None
            fr_top: str | None = None

            def run_fid(item: LabelledImage = item) -> None:
                nonlocal fid_top, fid_err
                t = time.perf_counter()
                try:
                    res = service.search(item.path, attr, top_k=1)
                    fid_top = res.candidates[0].external_id if res.candidates else None
                    for k, v in res.timings_ms.items():
                        stage_ms[k].append(v)
                except FieldidError as e:
                    fid_err = e.code
                fid_ms.append((time.perf_counter() - t) * 1000)

            def run_fr(item: LabelledImage = item) -> None:
                nonlocal fr_top
                t = time.perf_counter()
                fr_top = frs.search(item.path)
                fr_ms.append((time.perf_counter() - t) * 1000)

            for f in (run_fid, run_fr) if n % 2 == 0 else (run_fr, run_fid):
                f()
            rows.append(
                {
                    "probe": str(item.path.relative_to(args.dataset))
                    if item.path.is_relative_to(args.dataset)
                    else str(item.path),
                    "identity": item.identity,
                    "fieldid_top1": fid_top,
                    "fieldid_error": fid_err,
                    "face_recognition_top1": fr_top,
                }
            )
            if args.progress and (n + 1) % args.progress == 0:
                print(
                    f"probes {n + 1}/{len(probes)}, {time.time() - started:.0f}s, "
                    f"load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
        size = ws.gallery.size()
    finally:
        ws.close()
        if not args.workspace and not args.keep_workspace:
            shutil.rmtree(root, ignore_errors=True)

    fid_ok = [r["fieldid_top1"] == r["identity"] for r in rows]
    fr_ok = [r["face_recognition_top1"] == r["identity"] for r in rows]
    both_found = [
        r["fieldid_top1"] is not None and r["face_recognition_top1"] is not None for r in rows
    ]
    n = len(rows)
    same = sum(r["fieldid_top1"] == r["face_recognition_top1"] for r in rows)
    fid_med, fr_med = stats(fid_ms)["median"], stats(fr_ms)["median"]
    return {
        "dataset": str(args.dataset),
        "people": len(people),
        "gallery": {"fieldid": size.persons, "face_recognition": len(frs.names)},
        "enrolment_refused": {"fieldid": fid_refused, "face_recognition": fr_refused},
        "probes": n,
        "fieldid_path": "Workspace + Enrollment.enroll_images + SearchService.search (gate opened, "
        "threshold -1)",
        "top1": {
            "fieldid": sum(fid_ok) / n if n else float("nan"),
            "face_recognition": sum(fr_ok) / n if n else float("nan"),
        },
        "top1_where_both_found_a_face": {
            "probes": sum(both_found),
            "fieldid": sum(o for o, b in zip(fid_ok, both_found, strict=True) if b)
            / max(1, sum(both_found)),
            "face_recognition": sum(o for o, b in zip(fr_ok, both_found, strict=True) if b)
            / max(1, sum(both_found)),
        },
        "no_face": {
            "fieldid": sum(r["fieldid_top1"] is None for r in rows),
            "face_recognition": sum(r["face_recognition_top1"] is None for r in rows),
        },
        "per_probe": {
            "same_top1": same,
            "both_correct": sum(a and b for a, b in zip(fid_ok, fr_ok, strict=True)),
            "fieldid_only_correct": sum(a and not b for a, b in zip(fid_ok, fr_ok, strict=True)),
            "face_recognition_only_correct": sum(
                b and not a for a, b in zip(fid_ok, fr_ok, strict=True)
            ),
            "both_wrong": sum(not a and not b for a, b in zip(fid_ok, fr_ok, strict=True)),
        },
        "time_ms": {
            "fieldid_search": stats(fid_ms),
            "face_recognition_search": stats(fr_ms),
            "ratio_face_recognition_over_fieldid": fr_med / fid_med if fid_med else None,
            "fieldid_stages": {k: stats(v) for k, v in stage_ms.items()},
            "fieldid_enrol": stats(fid_enrol_ms),
            "face_recognition_enrol": stats(fr_enrol_ms),
        },
        "seed": args.seed,
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "seconds": time.time() - started,
        "versions": versions(),
        "rows": rows,
    }


def versions() -> dict[str, str]:
    import dlib
    import face_recognition  # type: ignore[import-untyped]

    return {
        "python": platform.python_version(),
        "dlib": dlib.__version__,
        "face_recognition": face_recognition.__version__,
        "numpy": np.__version__,
    }


def table(r: dict[str, Any]) -> str:
    t, pp = r["time_ms"], r["per_probe"]
    w = r["top1_where_both_found_a_face"]
    lines = [
        f"{r['people']} people enrolled with one image each (fieldid gallery "
        f"{r['gallery']['fieldid']}, face_recognition {r['gallery']['face_recognition']}), "
        f"{r['probes']} probes; fieldid via {r['fieldid_path']}.",
        "",
        "| | fieldid | face_recognition |",
        "|---|---:|---:|",
        f"| top-1 accuracy (all probes) | {r['top1']['fieldid']:.4f} "
        f"| {r['top1']['face_recognition']:.4f} |",
        f"| top-1 where both found a face ({w['probes']}) | {w['fieldid']:.4f} "
        f"| {w['face_recognition']:.4f} |",
        f"| probes with no face found | {r['no_face']['fieldid']} "
        f"| {r['no_face']['face_recognition']} |",
        f"| enrolment images refused | {len(r['enrolment_refused']['fieldid'])} "
        f"| {len(r['enrolment_refused']['face_recognition'])} |",
        f"| per-probe time, median ms | {t['fieldid_search']['median']:.1f} "
        f"| {t['face_recognition_search']['median']:.1f} |",
        f"| per-probe time, p95 ms | {t['fieldid_search']['p95']:.1f} "
        f"| {t['face_recognition_search']['p95']:.1f} |",
        f"| enrolment per image, median ms | {t['fieldid_enrol']['median']:.1f} "
        f"| {t['face_recognition_enrol']['median']:.1f} |",
        "",
        f"Speed: face_recognition median / fieldid median = "
        f"{t['ratio_face_recognition_over_fieldid']:.2f}.",
        f"Per probe: same top-1 {pp['same_top1']}, both correct {pp['both_correct']}, "
        f"fieldid only {pp['fieldid_only_correct']}, face_recognition only "
        f"{pp['face_recognition_only_correct']}, both wrong {pp['both_wrong']}.",
        "fieldid stage medians (ms): "
        + ", ".join(f"{k} {v['median']:.1f}" for k, v in t["fieldid_stages"].items()),
    ]
    la, lb = r["load_avg_start"], r["load_avg_end"]
    lines.append(
        f"seed {r['seed']}, {r['seconds']:.0f} s, load average {la[0]:.1f} → {lb[0]:.1f}, "
        f"{r['versions']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, required=True, help="labelled set (folder or CSV)")
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    ap.add_argument("--people", type=int, default=0, help="seeded sample of people (0: all)")
    ap.add_argument("--max-probes", type=int, default=0, help="seeded sample of probes (0: all)")
    ap.add_argument("--workspace", help="an empty folder for the fieldid workspace (default: temp)")
    ap.add_argument("--keep-workspace", action="store_true")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", type=int, default=100)
    args = ap.parse_args(argv)
    args.dataset = args.dataset.resolve()
    report = run(args)
    print(table(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
