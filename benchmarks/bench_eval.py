"""Accuracy on a labelled set with the bundled pipeline, against the published dlib baseline.

    python benchmarks/bench_eval.py --dataset ../shared/faces/lfw-dev
        [--embedder mobileface-v2|dlib-resnet] [--flip] [--onnx MODEL] [--out results.json]

Runs the same harness as ``fieldid eval`` (seeded) and prints the metrics next to the baseline
figures of ../shared/faces/README.md (whole LFW, dlib HOG + 5-point + ResNet, measured there).
Templates are cached in benchmarks/.cache so a second run only recomputes the metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fieldid.dataset import read_labelled
from fieldid.evaluation.harness import EvalOptions, evaluate_dataset
from fieldid.pipeline import DEFAULT_EMBEDDER, FacePipeline, PipelineSpec

BASELINE = {"pair_accuracy": 0.984, "tar_at_far_1e-3": 0.947, "fta": 0.005}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument(
        "--embedder", choices=("mobileface-v2", "dlib-resnet"), default=DEFAULT_EMBEDDER
    )
    ap.add_argument("--flip", action="store_true", help="flip fusion in the embedder")
    ap.add_argument("--onnx", type=Path, help="an ArcFace-style ONNX model file instead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    if args.onnx:
        spec = PipelineSpec(flip=args.flip, embedder="onnx", onnx_path=str(args.onnx))
        tag = args.onnx.stem
    else:
        spec = PipelineSpec(embedder=args.embedder, flip=args.flip)
        tag = args.embedder
    tag += "-flip" if args.flip else ""
    pipeline = FacePipeline.from_spec(spec)
    items = read_labelled(args.dataset)
    cache = Path(__file__).parent / ".cache" / f"{args.dataset.name}-{tag}.npz"
    report = evaluate_dataset(pipeline, items, EvalOptions(seed=args.seed), cache=cache)
    d = report.to_dict()
    v, i = d["verification"], d["identification"]
    tar3 = next(p["tar"] for p in v["tar_at_far"] if p["far"] == 1e-3)
    rows = [
        ("failure to acquire", f"{d['failure_to_acquire']['rate']:.2%}", "0.50 %", "≤ 0.20 %"),
        (
            "10-fold pair accuracy",
            f"{v['kfold_accuracy']['mean']:.2%} ± {v['kfold_accuracy']['std']:.2%}",
            "98.40 %",
            "≥ baseline",
        ),
        ("TAR at FAR 1e-3", f"{tar3:.2%}", "94.70 %", ""),
    ]
    rows += [
        (f"TAR at FAR {p['far']:g}", f"{p['tar']:.2%}", "", "")
        for p in v["tar_at_far"]
        if p["far"] != 1e-3
    ]
    rows += [
        ("EER", f"{v['eer']['rate']:.2%}", "", ""),
        ("rank-1 (1:N)", f"{i['rank1']:.2%}", "", ""),
        ("rank-10 (1:N)", f"{i['rank10']:.2%}", "", ""),
    ]
    rows += [
        (f"FNIR at FPIR {p['target_fpir']:g}", f"{p['fnir']:.2%} (T={p['threshold']:.4f})", "", "")
        for p in i["fnir_at_fpir"]
    ]
    print(f"| {tag} on {args.dataset.name} | measured | dlib baseline (whole LFW) | target |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(
        f"\n{d['images']} images, {d['identities']} people; {v['genuine_pairs']} genuine and "
        f"{v['impostor_pairs']} impostor pairs; gallery {i['gallery_size']}, "
        f"{i['mated_searches']} mated and {i['nonmated_searches']} non-mated searches"
    )
    if args.out:
        args.out.write_text(json.dumps({"report": d, "baseline": BASELINE}, indent=2))


if __name__ == "__main__":
    main()
