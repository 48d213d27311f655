"""Honest scores: is the calibration right on people it never saw?

    python benchmarks/bench_calibration.py --dataset ../shared/faces/lfw-dev
        [--embedder mobileface-v2|dlib-resnet] [--flip] [--splits 5] [--bundle]
        [--out benchmarks/results/calibration.json]

The people of the labelled set are split by a salted hash of their identity into a fit half and a
report half (fieldid.calibration.fit.in_fit_split). The calibration is fitted on the fit half
(identity-balanced impostor and genuine scores per probe-quality band, generalised Pareto upper
tail) and checked on the report half (fieldid.evaluation.calcheck.calibration_check):

- predicted FMR (1e-2, 1e-3, 1e-4) against the FMR measured on every report-half impostor pair;
- predicted FPIR against FPIR measured by non-mated searches, on a gallery of report-half real
  faces alone and on galleries of 1k, 10k and 100k templates (real faces plus synthetic
  template-only distractors fitted to the fit half).

``--splits N`` repeats the whole fit/check with N-1 further salts, to show how much the figures
move from one split of the people to another. ``--bundle`` writes the first split's calibration
as the artefact fieldid ships (src/fieldid/calibration/bundled/) and, without --flip, the
distractor model for the embedder's synthetic template-only identities (a Gaussian fitted to all
the set's templates: src/fieldid/gallery/distractor_models/<model id>.npz). Templates are cached
in benchmarks/.cache (with each image's quality), so a second run only refits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from fieldid.calibration.fit import SPLIT_SALT
from fieldid.calibration.store import slug, write
from fieldid.dataset import read_labelled
from fieldid.evaluation.calcheck import calibration_check
from fieldid.evaluation.calibrate import calibrate_templates
from fieldid.evaluation.harness import compute_templates
from fieldid.gallery.distractors import DistractorModel
from fieldid.pipeline import DEFAULT_EMBEDDER, FacePipeline, PipelineSpec

SRC = Path(__file__).resolve().parents[1] / "src" / "fieldid"
BUNDLED = SRC / "calibration" / "bundled"
DISTRACTOR_MODELS = SRC / "gallery" / "distractor_models"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument(
        "--embedder", choices=("mobileface-v2", "dlib-resnet"), default=DEFAULT_EMBEDDER
    )
    ap.add_argument("--flip", action="store_true", help="flip fusion in the embedder")
    ap.add_argument("--splits", type=int, default=1, help="fit/check on this many splits")
    ap.add_argument("--bundle", action="store_true", help="write the bundled artefact")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    spec = PipelineSpec(embedder=args.embedder, flip=args.flip)
    tag = args.embedder + ("-flip" if args.flip else "")
    items = read_labelled(args.dataset)
    identities = [i.identity for i in items]
    cache = Path(__file__).parent / ".cache" / f"{args.dataset.name}-{tag}.npz"
    ts = compute_templates(FacePipeline.from_spec(spec), items, cache=cache)

    splits = []
    for n in range(args.splits):
        salt = SPLIT_SALT if n == 0 else f"{SPLIT_SALT}-check{n}"
        t = time.perf_counter()
        cal = calibrate_templates(
            ts,
            identities,
            description=f"{args.dataset.name}: fit half of the people of LFW (public faces)",
            origin="bundled" if n == 0 and args.bundle else "workspace",
            salt=salt,
        )
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        check = calibration_check(ts, identities, cal)
        splits.append(
            {
                "salt": salt,
                "calibration": cal.id,
                "fit_seconds": round(fit_s, 1),
                "check_seconds": round(time.perf_counter() - t, 1),
                "counts": cal.counts,
                "fallbacks": cal.fallbacks,
                "thresholds_fpir_1pct": {
                    str(g): cal.threshold_for_fpir(0.01, g)
                    for g in (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
                },
                "check": check,
            }
        )
        if n == 0 and args.bundle:
            BUNDLED.mkdir(parents=True, exist_ok=True)
            write(cal, BUNDLED / f"{slug(cal.model)}.json")
            if not args.flip:
                dm = DistractorModel.fit(ts.model, ts.vectors)
                dm.save(DISTRACTOR_MODELS / f"{ts.model.split('@')[0]}.npz")

    first = splits[0]["check"]
    print(
        f"| {tag} on {args.dataset.name} (split 1) | target | gallery | predicted | measured "
        "| ratio | trials | judged |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in first["rows"]:
        band = r.get("band", "all")
        kind = r["kind"].upper() + (f" [{band}]" if r["kind"] == "fmr" else "")
        gal = (
            ""
            if r["gallery_size"] is None
            else f"{r['gallery_size']:,} ({r['synthetic']:,} synth.)"
        )
        judged = "yes" if r["enough_data"] else "no: " + r.get("not_judged", "too few trials")[:60]
        print(
            f"| {kind} | {r['target']:g} | {gal} | {_fmt(r['predicted'])} | {_fmt(r['measured'])} "
            f"| {_fmt(r['ratio'])} | {r['trials']:,} | {judged} |"
        )
    print(f"\nmax factor {_fmt(first['max_ratio'])}, drifted {first['drifted']}")
    if len(splits) > 1:
        print("\nacross splits (ratio measured/predicted, median [min, max]):")
        keys = {
            (r["kind"], r["target"], r["gallery_size"], r.get("band", "all")) for r in first["rows"]
        }
        for key in sorted(keys, key=str):
            ratios = [
                r["ratio"]
                for s in splits
                for r in s["check"]["rows"]
                if (r["kind"], r["target"], r["gallery_size"], r.get("band", "all")) == key
            ]
            print(
                f"  {key}: {statistics.median(ratios):.3g} [{min(ratios):.3g}, {max(ratios):.3g}]"
            )
    if args.out:
        doc = {
            "command": "python benchmarks/bench_calibration.py "
            + " ".join(f"{k} {v}" for k, v in [("--dataset", args.dataset)])
            + f" --embedder {args.embedder}"
            + (" --flip" if args.flip else "")
            + f" --splits {args.splits}",
            "model": ts.model,
            "loadavg": os.getloadavg(),
            "splits": splits,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
