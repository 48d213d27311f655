"""Per-stage time of the face pipeline on phone-like photos: decode, detect, landmarks, align,
embed, quality (and the kept image's re-encoding).

Three kinds of probe, built from a labelled set (LFW: 250×250, subject centred):

* ``640``: a 640×480 JPEG (quality 90), the image scaled by ``--scale`` (default 1.7, which puts
  LFW's ~42 px inter-eye distance at ~70 px, a phone photo at arm's length) and centred on a
  neutral grey canvas (a taller scaled image is cropped top and bottom);
* ``1mp``: the same framing at 1155×866 (1.0 MP; the image scaled by ``--scale`` × 866/480);
* ``250``: the dataset file's own bytes.

Each probe goes through ``FacePipeline.process(bytes)`` exactly as a search does, for each
pipeline specification, interleaved image by image (the order rotates), after a warm-up.
``detect`` is every detection step (reduced copies, full-resolution re-detection in the region,
fallback), ``landmarks`` the landmark model at full resolution, ``align`` the aligned crop the
embedder makes (timed again on its own, after the pipeline ran: dlib's face chip or the ArcFace
warp), ``embed`` the embedding including that crop. Reported per stage: median and p95 over the
probes acquired, ``detect+align+embed`` (detect + landmarks + embed: the target is ≤ 20 ms median
at 640×480 with MobileFace v2) and ``all`` (every stage). Ratios are of medians against the first
specification, measured in the same process. Specifications:

* ``default``: ``PipelineSpec()`` (dlib's ResNet embedder);
* ``mobileface``: the ONNX MobileFace v2 embedder (``--onnx``, default
  ``../shared/models/mobileface-v2.onnx``), 68-point landmarks for its five ArcFace points;
* ``flip``: ``PipelineSpec(flip=True)`` (template of the face and of its mirror image, fused);
* ``max480``: ``PipelineSpec(detect_max_side=480)`` (detection first on a larger copy).

``--clock cpu`` times every stage by the process's CPU time instead of the wall clock (ONNX
Runtime then runs on one thread): on a machine shared with other work, the wall time of a stage
grows with the load, its CPU time hardly at all, and on an idle machine the two agree.

    python benchmarks/bench_pipeline.py --dataset ../shared/faces/lfw-dev --images 300 \
        --specs mobileface,default --views 640,1mp --out p.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from fieldid.dataset import read_labelled
from fieldid.errors import FieldidError
from fieldid.pipeline import FacePipeline, PipelineSpec

TARGET_MS = 20.0
STAGES = (
    "decode",
    "detect",
    "landmarks",
    "align",
    "embed",
    "quality",
    "keep",
    "detect_align_embed",
    "all",
)
ONNX = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mobileface-v2.onnx"
SPECS: dict[str, PipelineSpec] = {
    "default": PipelineSpec(),
    "mobileface": PipelineSpec(embedder="onnx", onnx_path=str(ONNX)),
    "flip": replace(PipelineSpec(), flip=True),
    "max480": replace(PipelineSpec(), detect_max_side=480),
}


def phone_photo(path: Path, scale: float, w: int = 640, h: int = 480, quality: int = 90) -> bytes:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    ih, iw = rgb.shape[:2]
    sw, sh = round(iw * scale), round(ih * scale)
    big: NDArray[np.uint8] = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_CUBIC)  # type: ignore[assignment]
    canvas = np.full((h, w, 3), 127, dtype=np.uint8)
    x0, y0 = (w - sw) // 2, (h - sh) // 2
    sx0, sy0, cx0, cy0 = max(0, -x0), max(0, -y0), max(0, x0), max(0, y0)
    cw, ch = min(sw - sx0, w - cx0), min(sh - sy0, h - cy0)
    canvas[cy0 : cy0 + ch, cx0 : cx0 + cw] = big[sy0 : sy0 + ch, sx0 : sx0 + cw]
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def use_cpu_clock() -> None:
    """Make the pipeline's stage timers (and this script's) read process CPU time, and ONNX
    Runtime use one thread, so that CPU time is the time a stage takes on an idle core."""
    import types

    import fieldid.detect.acquire as acquire_module
    import fieldid.pipeline as pipeline_module

    clock = types.SimpleNamespace(perf_counter=time.process_time)
    pipeline_module.time = clock  # type: ignore[assignment]
    acquire_module.time = clock  # type: ignore[assignment]
    globals()["_clock"] = time.process_time
    m = SPECS["mobileface"]
    SPECS["mobileface"] = replace(m, onnx_options={**m.onnx_options, "threads": 1})


_clock = time.perf_counter


def align_ms(pipe: FacePipeline, out: Any) -> float:
    """The embedder's alignment step alone, timed on the face the pipeline found."""
    emb: Any = pipe.embedder
    align = getattr(emb, "align", None) or getattr(emb, "chip", None)
    if align is None:
        return float("nan")
    t = _clock()
    align(out.probe.rgb, out.acquisition.face)
    return (_clock() - t) * 1000


def stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"median": float("nan"), "p95": float("nan"), "mean": float("nan")}
    return {
        "median": statistics.median(xs),
        "p95": float(np.percentile(xs, 95)),
        "mean": statistics.fmean(xs),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    items = read_labelled(args.dataset)
    rng = np.random.default_rng(args.seed)
    n = min(args.images + args.warmup, len(items))
    picked = [items[i] for i in rng.choice(len(items), n, replace=False)]
    warm, timed = picked[: args.warmup], picked[args.warmup :]
    names = [s for s in args.specs.split(",") if s]
    pipes = {name: FacePipeline.from_spec(SPECS[name]) for name in names}
    views = [v for v in args.views.split(",") if v]

    def probe_bytes(view: str, path: Path) -> bytes:
        if view == "640":
            return phone_photo(path, args.scale)
        if view == "1mp":
            return phone_photo(path, args.scale * 866 / 480, 1155, 866)
        return path.read_bytes()

    for item in warm:
        for v in views:
            data = probe_bytes(v, item.path)
            for p in pipes.values():
                with contextlib.suppress(FieldidError):
                    p.process(data)

    load_start = os.getloadavg()
    started = time.time()
    times: dict[tuple[str, str], dict[str, list[float]]] = {
        (v, s): {k: [] for k in STAGES} for v in views for s in names
    }
    fta: dict[tuple[str, str], int] = {(v, s): 0 for v in views for s in names}
    ied: dict[str, list[float]] = {v: [] for v in views}
    for i, item in enumerate(timed):
        for v in views:
            data = probe_bytes(v, item.path)
            order = names[i % len(names) :] + names[: i % len(names)]
            for s in order:
                try:
                    out = pipes[s].process(data)
                    kept = out.result()
                except FieldidError:
                    fta[(v, s)] += 1
                    continue
                t = dict(out.timings_ms)
                t["keep"] = kept.timings_ms["keep"]
                t.setdefault("detect", t["detect_align"])
                t.setdefault("landmarks", 0.0)
                t["align"] = align_ms(pipes[s], out)
                t["detect_align_embed"] = t["detect_align"] + t["embed"]
                t["all"] = t["decode"] + t["detect_align"] + t["quality"] + t["embed"]
                for k in STAGES:
                    times[(v, s)][k].append(t[k])
                if s == names[0]:
                    ied[v].append(out.acquisition.face.inter_eye_distance)
        if args.progress and (i + 1) % args.progress == 0:
            print(
                f"{i + 1}/{len(timed)}, {time.time() - started:.0f}s, "
                f"load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )

    results: dict[str, Any] = {}
    for v in views:
        results[v] = {}
        base = stats(times[(v, names[0])]["detect_align_embed"])["median"]
        for s in names:
            st = {k: stats(times[(v, s)][k]) for k in STAGES}
            results[v][s] = {
                "spec": {
                    "detector": SPECS[s].detector,
                    "detect_max_side": SPECS[s].detect_max_side,
                    "upsample_schedule": list(SPECS[s].upsample_schedule),
                    "flip": SPECS[s].flip,
                },
                "probes": len(timed),
                "fta": fta[(v, s)],
                "stages_ms": st,
                "ratio_to_first_spec": st["detect_align_embed"]["median"] / base if base else None,
                "target_met": st["detect_align_embed"]["median"] <= TARGET_MS,
            }
        results[v]["inter_eye_px"] = {
            "median": statistics.median(ied[v]) if ied[v] else None,
            "p5": float(np.percentile(ied[v], 5)) if ied[v] else None,
            "p95": float(np.percentile(ied[v], 95)) if ied[v] else None,
        }
    import dlib

    return {
        "dataset": str(args.dataset),
        "images": len(timed),
        "warmup": len(warm),
        "scale_640": args.scale,
        "seed": args.seed,
        "target_ms": TARGET_MS,
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "seconds": time.time() - started,
        "versions": {
            "python": platform.python_version(),
            "dlib": dlib.__version__,
            "opencv": cv2.__version__,
            "numpy": np.__version__,
        },
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    lines = []
    for v, rows in report["results"].items():
        what = {
            "640": f"640×480 JPEG photos (image ×{report['scale_640']} on grey)",
            "1mp": "1155×866 (1.0 MP) JPEG photos (same framing)",
        }.get(v, "250×250 dataset images")
        e = rows["inter_eye_px"]
        eye = (
            f"inter-eye distance median {e['median']:.0f} px (p5 {e['p5']:.0f}, p95 {e['p95']:.0f})"
            if e["median"]
            else ""
        )
        specs = [s for s in rows if s != "inter_eye_px"]
        lines.append(f"\n{what}, {report['images']} probes; {eye}:\n")
        head = "| stage (ms) | " + " | ".join(f"{s} median | {s} p95" for s in specs) + " |"
        lines.append(head)
        lines.append("|---|" + "---:|---:|" * len(specs))
        for k in STAGES:
            cells = []
            for s in specs:
                st = rows[s]["stages_ms"][k]
                cells.append(f"{st['median']:.1f} | {st['p95']:.1f}")
            name = {"detect_align_embed": "**detect+align+embed**", "keep": "keep (re-encode)"}.get(
                k, k
            )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append(
            "| × first spec (detect+align+embed median) | "
            + " | ".join(f"{rows[s]['ratio_to_first_spec']:.2f} | " for s in specs)
            + " |"
        )
        lines.append(
            "| failed to acquire | " + " | ".join(f"{rows[s]['fta']} | " for s in specs) + " |"
        )
        if v == "640":
            for s in specs:
                med = rows[s]["stages_ms"]["detect_align_embed"]["median"]
                ok = "met" if rows[s]["target_met"] else "NOT met"
                lines.append(
                    f"\n- {s}: detect+align+embed median {med:.1f} ms vs target "
                    f"{report['target_ms']:.0f} ms: {ok}"
                )
    la, lb = report["load_avg_start"], report["load_avg_end"]
    lines.append(
        f"\nclock: {report.get('clock', 'wall')}, seed {report['seed']}, "
        f"warm-up {report['warmup']}, {report['seconds']:.0f} s, "
        f"load average {la[0]:.1f} → {lb[0]:.1f}, {report['versions']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, required=True, help="labelled set (folder or CSV)")
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    ap.add_argument("--images", type=int, default=300, help="timed probes (seeded sample)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--scale", type=float, default=1.7, help="scale of the image in the 640 photo")
    ap.add_argument("--views", default="640,1mp,250")
    ap.add_argument("--specs", default="mobileface,default", help=f"from {', '.join(SPECS)}")
    ap.add_argument("--onnx", type=Path, help="the MobileFace v2 ONNX file (default: shared)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", type=int, default=50)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args(argv)
    if args.onnx:
        SPECS["mobileface"] = replace(SPECS["mobileface"], onnx_path=str(args.onnx))
    if args.clock == "cpu":
        use_cpu_clock()
    report = run(args)
    report["clock"] = args.clock
    print(table(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
