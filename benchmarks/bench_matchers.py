"""Where 1:N lives: each matcher's tail, open-set 1:N on the largest real gallery, and the
calibrated projection to galleries of 100k and 1M templates.

    python benchmarks/bench_matchers.py --dataset ../shared/faces/lfw-dev \
        [--timing 150] [--out benchmarks/results/matchers.json]

Matchers: dlib's ResNet, dlib with flip fusion, MobileFace v2, MobileFace v2 with flip fusion, and
score fusion of dlib and MobileFace v2 (each score z-normalised by the mean and standard
deviation of that model's impostor scores among the fit half's people, then
``w·z_mobileface + (1 − w)·z_dlib`` with ``w`` chosen on the fit half's pairs to maximise TAR at
FAR 1e-5). Every matcher sees the same images through the same detector (dlib HOG from a 320 px
copy with the MMOD fallback); dlib aligns on its 5 points, MobileFace on the ArcFace five points
taken from dlib's 68.

1. **Tail (all pairs).** Every same-person pair and every different-person pair of the set (for
   lfw-dev: 24,709 and 7.28 M), unweighted: TAR at FAR 1e-4, 1e-5 and 1e-6.
2. **Open-set 1:N on the largest real gallery.** Every person enrolled with one image (seeded
   choice): a gallery of all 1,719 people. Mated searches: each enrolled person's other images
   against the whole gallery. Non-mated searches: each person's images (their enrolled one
   included) against the gallery *without that person* (1,718 templates), so every search runs
   against the whole real gallery. At most 10 searches per person of each kind (seeded), so that
   the few people photographed hundreds of times do not decide the rates. Rank-1, and FNIR at
   FPIR 1 % and 0.1 % (a miss unless the mate is at rank 1 at or above the threshold).
3. **Projection.** Each matcher's calibration is fitted exactly as the bundled ones are (fit half
   of the people, identity-balanced, generalised Pareto tail; docs/calibration.md). For FPIR 1 %
   and 0.1 % at 1,719, 100k and 1M templates it gives the threshold; the FNMR at that threshold
   is *measured* on the report half's genuine pairs (people the calibration never saw,
   identity-balanced). The FMR per comparison behind it is *extrapolated* wherever it lies
   beyond the highest impostor score observed; the FPIR follows from the FMR by the independence
   model. A stranger who outranks the mate is not counted, so the projected FNIR is a lower
   bound on FNIR.
4. **Cost.** ``--timing N``: the embedding time per face of each matcher on N lfw-dev faces,
   measured in one process in blocks of one matcher over every face, the order of the blocks
   rotated each round (median ms, ratio to dlib), with the load average; and the bytes each
   template adds to the gallery. ``--timing-only`` measures only that.

Templates are cached in benchmarks/.cache (shared with bench_eval.py and bench_calibration.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from fieldid.calibration.run import calibrate_templates
from numpy.typing import NDArray

from fieldid.calibration.fit import (
    SPLIT_SALT,
    PairScores,
    fit_calibration,
    in_fit_split,
    pair_scores,
)
from fieldid.calibration.model import Calibration
from fieldid.calibration.store import bundled
from fieldid.dataset import read_labelled
from fieldid.errors import FieldidError
from fieldid.evaluation import metrics as m
from fieldid.evaluation.harness import TemplateSet, compute_templates
from fieldid.pipeline import FacePipeline, PipelineSpec

FARS = (1e-4, 1e-5, 1e-6)
FPIRS = (1e-2, 1e-3)
PROJECT_SIZES = (100_000, 1_000_000)
SINGLE = {
    "dlib": PipelineSpec(embedder="dlib-resnet"),
    "dlib+flip": PipelineSpec(embedder="dlib-resnet", flip=True),
    "mobileface-v2": PipelineSpec(embedder="mobileface-v2"),
    "mobileface-v2+flip": PipelineSpec(embedder="mobileface-v2", flip=True),
}
FUSION = "fusion dlib + mobileface-v2"
CACHE_TAG = {
    "dlib": "dlib-resnet",
    "dlib+flip": "dlib-resnet-flip",
    "mobileface-v2": "mobileface-v2",
    "mobileface-v2+flip": "mobileface-v2-flip",
}
F32 = NDArray[np.float32]


# --- scores -------------------------------------------------------------------------------------


class Scorer:
    """Scores between image indices for one matcher (a model, or the fusion of two)."""

    def __init__(
        self, name: str, grams: list[F32], weights: list[float], z: list[tuple[float, float]]
    ):
        self.name = name
        self._grams = grams
        self._weights = weights
        self._z = z

    def block(self, rows: NDArray[np.int64], cols: NDArray[np.int64]) -> F32:
        out = np.zeros((len(rows), len(cols)), dtype=np.float32)
        for g, w, (mu, sd) in zip(self._grams, self._weights, self._z, strict=True):
            out += np.float32(w) * (g[np.ix_(rows, cols)] - np.float32(mu)) / np.float32(sd)
        return out

    def pairs(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float64]:
        out = np.zeros(len(a), dtype=np.float64)
        for g, w, (mu, sd) in zip(self._grams, self._weights, self._z, strict=True):
            out += w * (g[a, b].astype(np.float64) - mu) / sd
        return out

    def fuse(self, parts: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        """The fused score from each model's raw scores of the same pairs."""
        out = np.zeros(len(parts[0]), dtype=np.float64)
        for s, w, (mu, sd) in zip(parts, self._weights, self._z, strict=True):
            out += w * (s - mu) / sd
        return out


def all_pairs(n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    a, b = np.triu_indices(n, 1)
    return a.astype(np.int64), b.astype(np.int64)


def balanced_tar_at_far(
    gen: NDArray[np.float64],
    gen_w: NDArray[np.float64],
    imp: NDArray[np.float64],
    imp_w: NDArray[np.float64],
    far: float,
) -> dict[str, float]:
    """TAR at FAR with identity-balanced pairs (each pair of people, each person, counts once:
    the weights of fieldid.calibration.fit). The threshold is the smallest score whose weighted
    FMR is at most ``far``."""
    order = np.argsort(-imp, kind="stable")
    s, w = imp[order], imp_w[order]
    mass = np.cumsum(w) / w.sum()  # weighted FMR at threshold s[i] (ties aside)
    k = int(np.searchsorted(mass, far, side="right"))  # pairs that may be accepted
    threshold = float(np.nextafter(s[k], np.inf)) if k < len(s) else -np.inf
    fmr = float(w[s >= threshold].sum() / w.sum())
    tar = float(gen_w[gen >= threshold].sum() / gen_w.sum())
    return {"far": far, "tar": tar, "far_achieved": fmr, "threshold": threshold}


def tail_rates(scorer: Scorer, labels: NDArray[np.int64]) -> dict[str, Any]:
    a, b = all_pairs(len(labels))
    s = np.empty(len(a), dtype=np.float64)
    for start in range(0, len(a), 2_000_000):
        sl = slice(start, start + 2_000_000)
        s[sl] = scorer.pairs(a[sl], b[sl])
    same = labels[a] == labels[b]
    gen, imp = s[same], s[~same]
    out: dict[str, Any] = {"genuine_pairs": len(gen), "impostor_pairs": len(imp)}
    out["tar_at_far"] = [
        {
            "far": far,
            "tar": t.tar,
            "far_achieved": t.far,
            "threshold": t.threshold,
            "resolvable": t.resolvable,
        }
        for far in FARS
        for t in [m.tar_at_far(gen, imp, far)]
    ]
    per_person = np.bincount(labels).astype(np.float64)
    imp_w = 1.0 / (per_person[labels[a[~same]]] * per_person[labels[b[~same]]])
    pairs_of = per_person * (per_person - 1) / 2
    gen_w = 1.0 / pairs_of[labels[a[same]]]
    out["balanced_tar_at_far"] = [balanced_tar_at_far(gen, gen_w, imp, imp_w, f) for f in FARS]
    order = np.argsort(-imp)[:50]
    ia, ib = a[~same][order], b[~same][order]
    out["top_impostor_pairs"] = [
        [int(x), int(y), float(v)] for x, y, v in zip(ia, ib, imp[order], strict=True)
    ]
    return out


# --- open-set 1:N -------------------------------------------------------------------------------


def open_set_protocol(labels: NDArray[np.int64], seed: int, cap: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    by_person: dict[int, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        by_person[int(lab)].append(i)
    people = sorted(by_person)
    gallery = np.array([int(rng.choice(by_person[p])) for p in people], dtype=np.int64)
    column = {p: c for c, p in enumerate(people)}

    def at_most(idxs: list[int]) -> list[int]:
        if len(idxs) <= cap:
            return idxs
        return sorted(int(i) for i in rng.choice(idxs, cap, replace=False))

    mated: list[int] = []
    nonmated: list[int] = []
    for p, g in zip(people, gallery, strict=True):
        mated += at_most([i for i in by_person[p] if i != g])
        nonmated += at_most(by_person[p])
    return {
        "gallery": gallery,
        "column": column,
        "mated": np.array(mated, dtype=np.int64),
        "nonmated": np.array(nonmated, dtype=np.int64),
    }


def open_set(scorer: Scorer, labels: NDArray[np.int64], proto: dict[str, Any]) -> dict[str, Any]:
    gallery, column = proto["gallery"], proto["column"]
    mated, nonmated = proto["mated"], proto["nonmated"]
    ranks = np.empty(len(mated))
    mate_scores = np.empty(len(mated))
    for start in range(0, len(mated), 512):
        chunk = mated[start : start + 512]
        s = scorer.block(chunk, gallery)
        for r, probe in enumerate(chunk):
            ms = s[r, column[int(labels[probe])]]
            mate_scores[start + r] = ms
            ranks[start + r] = 1 + int((s[r] > ms).sum())
    top = np.empty(len(nonmated))
    for start in range(0, len(nonmated), 512):
        chunk = nonmated[start : start + 512]
        s = scorer.block(chunk, gallery)
        own = np.array([column[int(labels[p])] for p in chunk])
        s[np.arange(len(chunk)), own] = -np.inf  # the person is not in this search's gallery
        top[start : start + len(chunk)] = s.max(axis=1)
    out: dict[str, Any] = {
        "_raw": (ranks, mate_scores, top),
        "gallery_size": len(gallery),
        "nonmated_gallery_size": len(gallery) - 1,
        "mated_searches": len(mated),
        "nonmated_searches": len(nonmated),
        "rank1": m.rank_k_rate(ranks, 1),
        "rank10": m.rank_k_rate(ranks, 10),
        "fnir_at_fpir": [],
    }
    for target in FPIRS:
        pt = m.fnir_at_fpir(ranks, mate_scores, top, target, max_rank=1)
        out["fnir_at_fpir"].append(
            {
                "target_fpir": target,
                "fpir": pt.fpir,
                "fnir": pt.fnir,
                "threshold": pt.threshold,
                "resolvable": pt.resolvable,
                "false_positive_searches": int(np.count_nonzero(top >= pt.threshold)),
            }
        )
    return out


def bootstrap_fnir_difference(
    ours: dict[str, Any],
    ref: dict[str, Any],
    labels: NDArray[np.int64],
    proto: dict[str, Any],
    target: float = 1e-2,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """FNIR at FPIR ``target`` of ``ours`` minus ``ref``, with a 95 % interval from a paired
    bootstrap over people (a resampled person brings all their searches, for both matchers)."""
    rng = np.random.default_rng(seed)
    mated_person = labels[proto["mated"]]
    non_person = labels[proto["nonmated"]]
    n_people = int(labels.max()) + 1

    def fnir(raw: tuple[Any, Any, Any], wm: NDArray[np.int64], wn: NDArray[np.int64]) -> float:
        ranks, mate_scores, top = raw
        pt = m.fnir_at_fpir(
            np.repeat(ranks, wm), np.repeat(mate_scores, wm), np.repeat(top, wn), target
        )
        return pt.fnir

    ones_m = np.ones(len(mated_person), dtype=np.int64)
    ones_n = np.ones(len(non_person), dtype=np.int64)
    point = fnir(ours["_raw"], ones_m, ones_n) - fnir(ref["_raw"], ones_m, ones_n)
    diffs = []
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n_people, n_people), minlength=n_people)
        wm, wn = counts[mated_person], counts[non_person]
        diffs.append(fnir(ours["_raw"], wm, wn) - fnir(ref["_raw"], wm, wn))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"difference": point, "ci95_low": float(lo), "ci95_high": float(hi)}


def faces_in_frame(items: list[Any], cache: Path) -> NDArray[np.int64]:
    """How many faces the default acquisition finds in each image (cached)."""
    from fieldid.probe import decode_probe

    key = "\n".join(str(i.path) for i in items)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return np.asarray(z["faces"], dtype=np.int64)
    finder = FacePipeline.from_spec(PipelineSpec(embedder="dlib-resnet")).finder
    out = np.zeros(len(items), dtype=np.int64)
    for n, item in enumerate(items):
        try:
            out[n] = finder.find(decode_probe(item.path).rgb).faces_found
        except FieldidError:
            out[n] = 0
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=key, faces=out)
    return out


# --- calibration and projection ----------------------------------------------------------------


def half_pairs(ts: TemplateSet, identities: list[str], fit: bool) -> PairScores:
    mask = np.array([in_fit_split(i, 0.5, SPLIT_SALT) == fit for i in identities])
    assert ts.quality is not None
    return pair_scores(ts.vectors[mask], list(np.asarray(identities)[mask]), ts.quality[mask])


def fused_pairs(scorer: Scorer, parts: list[PairScores]) -> PairScores:
    """Fused pair scores of the same pairs (all pairs of a half: the order is the same)."""
    first = parts[0]
    for p in parts[1:]:
        if len(p.impostor) != len(first.impostor) or len(p.genuine) != len(first.genuine):
            raise SystemExit("the models' pair sets differ (different acquisitions): no fusion")
    return replace(
        first,
        genuine=scorer.fuse([p.genuine for p in parts]),
        impostor=scorer.fuse([p.impostor for p in parts]),
    )


def region(cal: Calibration, t: float) -> str:
    c = cal.curve("all")
    if t <= c.tail.u:
        return "empirical"
    if t <= c.tail.max_impostor:
        return "fitted tail, within observed impostor scores"
    return "extrapolated (beyond every impostor score observed)"


def projection(cal: Calibration, report: PairScores, real_gallery: int) -> list[dict[str, Any]]:
    rows = []
    c = cal.curve("all")
    for size in (real_gallery, *PROJECT_SIZES):
        for target in FPIRS:
            t = cal.threshold_for_fpir(target, size)
            rows.append(
                {
                    "gallery": size,
                    "target_fpir": target,
                    "threshold": t,
                    "fmr_per_comparison": cal.fmr_at(t),
                    "fmr_region": region(cal, t),
                    "smallest_fmr_observed": 1.0 / c.n_impostor,
                    "fnmr_report_half": report.fnmr_at(t),
                    "fnmr_fit_half": cal.fnmr_at(t),
                }
            )
    return rows


# --- cost ---------------------------------------------------------------------------------------


def embed_timings(items: list[Any], n: int, seed: int, rounds: int = 4) -> dict[str, Any]:
    """Median embedding time per face of each model, measured in one process."""
    from fieldid.probe import decode_probe

    pipes = {name: FacePipeline.from_spec(spec) for name, spec in SINGLE.items()}
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(items), size=min(n, len(items)), replace=False)
    faces = []
    for i in pick:
        rgb = decode_probe(items[int(i)].path).rgb
        try:
            by_scheme = {
                name: p.finder.find(rgb).face
                for name, p in pipes.items()
                if name in ("dlib", "mobileface-v2")
            }
        except FieldidError:  # no face: not part of the timing
            continue
        faces.append((rgb, by_scheme))
    for name, p in pipes.items():  # warm-up: load the models, first runs
        base = name.split("+")[0]
        for rgb, f in faces[:3]:
            p.embedder.embed(rgb, f[base])
    load_before = os.getloadavg()
    times: dict[str, list[float]] = defaultdict(list)
    names = list(pipes)
    # Blocks of one matcher over every face, the order of the blocks rotated each round: no
    # call is timed right after another matcher's, and each matcher runs early and late.
    for rnd in range(rounds):
        for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
            p, base = pipes[name], name.split("+")[0]
            for rgb, f in faces:
                t = time.perf_counter()
                p.embedder.embed(rgb, f[base])
                times[name].append((time.perf_counter() - t) * 1000)
    times[FUSION] = [a + b for a, b in zip(times["dlib"], times["mobileface-v2"], strict=True)]
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    dims = {n: p.embedder.dim for n, p in pipes.items()}
    dims[FUSION] = dims["dlib"] + dims["mobileface-v2"]
    return {
        "faces": len(faces),
        "rounds": rounds,
        "median_ms": med,
        "p95_ms": {k: float(np.percentile(v, 95)) for k, v in times.items()},
        "ratio_to_dlib": {k: v / med["dlib"] for k, v in med.items()},
        "template_bytes": {k: 4 * d for k, d in dims.items()},
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "onnx_threads": min(4, os.cpu_count() or 1),
    }


# --- main ---------------------------------------------------------------------------------------


def fit_fusion_weight(
    a: PairScores, b: PairScores, za: tuple[float, float], zb: tuple[float, float]
) -> tuple[float, list[dict[str, float]]]:
    """w (MobileFace's weight) maximising TAR at FAR 1e-5 on the fit half's pairs."""
    curve = []
    for w in np.round(np.linspace(0, 1, 21), 2):
        s = Scorer("", [], [float(1 - w), float(w)], [za, zb])
        gen = s.fuse([a.genuine, b.genuine])
        imp = s.fuse([a.impostor, b.impostor])
        curve.append({"w": float(w), "tar_at_far_1e-5": m.tar_at_far(gen, imp, 1e-5).tar})
    best = max(curve, key=lambda r: (r["tar_at_far_1e-5"], -abs(r["w"] - 0.5)))
    return best["w"], curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cap", type=int, default=10, help="searches per person of each kind")
    ap.add_argument("--timing", type=int, default=0, help="time embedding on this many faces")
    ap.add_argument("--timing-only", action="store_true", help="only the embedding times")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.timing_only:
        timing = embed_timings(read_labelled(args.dataset), args.timing or 150, args.seed)
        print_tables({}, timing)
        if args.out:
            args.out.write_text(json.dumps({"timing": timing}, indent=1, default=float) + "\n")
        return

    items = read_labelled(args.dataset)
    identities = [i.identity for i in items]
    labels = np.unique(np.asarray(identities), return_inverse=True)[1].astype(np.int64)
    cache_dir = Path(__file__).parent / ".cache"
    sets: dict[str, TemplateSet] = {}
    for name, spec in SINGLE.items():
        cache = cache_dir / f"{args.dataset.name}-{CACHE_TAG[name]}.npz"
        sets[name] = compute_templates(FacePipeline.from_spec(spec), items, cache=cache)
        fta = int((~sets[name].acquired).sum())
        print(f"{name}: {sets[name].model}, failure to acquire {fta} of {len(items)}")
        if fta:
            raise SystemExit("every image must give a template for an all-pairs comparison")

    grams = {k: ts.vectors @ ts.vectors.T for k, ts in sets.items()}
    fit_pairs = {k: half_pairs(ts, identities, fit=True) for k, ts in sets.items()}
    report_pairs = {k: half_pairs(ts, identities, fit=False) for k, ts in sets.items()}

    def znorm(k: str) -> tuple[float, float]:
        imp = fit_pairs[k].impostor
        return float(imp.mean()), float(imp.std())

    scorers: dict[str, Scorer] = {k: Scorer(k, [grams[k]], [1.0], [(0.0, 1.0)]) for k in SINGLE}
    zd, zm = znorm("dlib"), znorm("mobileface-v2")
    w, w_curve = fit_fusion_weight(fit_pairs["dlib"], fit_pairs["mobileface-v2"], zd, zm)
    scorers[FUSION] = Scorer(FUSION, [grams["dlib"], grams["mobileface-v2"]], [1 - w, w], [zd, zm])
    print(
        f"fusion: MobileFace weight {w} (fit half, best TAR at FAR 1e-5); z-norm dlib {zd}, "
        f"MobileFace {zm}"
    )

    proto = open_set_protocol(labels, args.seed, args.cap)
    results: dict[str, Any] = {}
    for name, scorer in scorers.items():
        t0 = time.perf_counter()
        if name == FUSION:
            fit = fused_pairs(scorer, [fit_pairs["dlib"], fit_pairs["mobileface-v2"]])
            rep = fused_pairs(scorer, [report_pairs["dlib"], report_pairs["mobileface-v2"]])
            cal = fit_calibration(
                fit,
                model=FUSION,
                dataset={"description": f"{args.dataset.name}: fit half"},
                split={"salt": SPLIT_SALT, "fit_fraction": 0.5},
            )
            bundled_id = None
        else:
            ts = sets[name]
            cal = calibrate_templates(
                ts, identities, description=f"{args.dataset.name}: fit half of the people of LFW"
            )
            rep = report_pairs[name]
            b = bundled(ts.model)
            bundled_id = None if b is None else b.id
        results[name] = {
            "model": sets[name].model if name in sets else FUSION,
            "tail_all_pairs": tail_rates(scorer, labels),
            "open_set": open_set(scorer, labels, proto),
            "calibration": {
                "fitted": cal.id,
                "bundled": bundled_id,
                "impostor_pairs_fit": cal.curve("all").n_impostor,
                "tail": cal.curve("all").tail.to_dict(),
            },
            "projection": projection(cal, rep, len(proto["gallery"])),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        tail = results[name]["tail_all_pairs"]
        tail["top_impostor_pairs"] = [
            [items[i].path.name, items[j].path.name, round(v, 4)]
            for i, j, v in tail["top_impostor_pairs"]
        ]
        print(f"{name}: done in {results[name]['seconds']} s")

    ref = results["mobileface-v2"]["open_set"]
    for name, r in results.items():
        if name != "mobileface-v2":
            r["open_set"]["fnir_1pct_minus_mobileface"] = bootstrap_fnir_difference(
                r["open_set"], ref, labels, proto, seed=args.seed
            )

    # The same on the images in which exactly one face is found: the default quality gate
    # refuses a probe with more than one face (max_faces = 1), and in two-person photographs
    # the face acquired is sometimes the other person's, which no matcher can put right.
    faces = faces_in_frame(items, cache_dir / f"{args.dataset.name}-faces.npz")
    keep = np.flatnonzero(faces == 1)
    sub_labels = np.unique(labels[keep], return_inverse=True)[1].astype(np.int64)
    sub_proto = open_set_protocol(sub_labels, args.seed, args.cap)
    one_face: dict[str, Any] = {
        "images": len(keep),
        "identities": int(sub_labels.max() + 1),
        "images_with_more_than_one_face": int((faces > 1).sum()),
        "matchers": {},
    }
    for name, scorer in scorers.items():
        sub = Scorer(
            name,
            [g[np.ix_(keep, keep)] for g in scorer._grams],
            scorer._weights,
            scorer._z,
        )
        one_face["matchers"][name] = {
            "tail_all_pairs": tail_rates(sub, sub_labels),
            "open_set": open_set(sub, sub_labels, sub_proto),
        }
        one_face["matchers"][name]["tail_all_pairs"].pop("top_impostor_pairs")
    for r in [*results.values(), *one_face["matchers"].values()]:
        r["open_set"].pop("_raw")

    timing = embed_timings(items, args.timing, args.seed) if args.timing else None
    print_tables(results, timing)
    print(
        f"\nImages with exactly one face found: {one_face['images']:,} of {len(items):,} "
        f"({one_face['identities']:,} people)"
    )
    print_main_table(one_face["matchers"])
    if args.out:
        doc = {
            "command": f"python benchmarks/bench_matchers.py --dataset {args.dataset}"
            + (f" --timing {args.timing}" if args.timing else ""),
            "images": len(items),
            "identities": int(labels.max() + 1),
            "fusion": {
                "mobileface_weight": w,
                "weight_curve_fit_half": w_curve,
                "znorm_dlib": zd,
                "znorm_mobileface": zm,
            },
            "loadavg_end": os.getloadavg(),
            "matchers": results,
            "one_face_images": one_face,
            "timing": timing,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1, default=float) + "\n")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def print_main_table(results: dict[str, Any]) -> None:
    head = ["matcher", "TAR @ FAR 1e-4", "1e-5", "1e-6", "rank-1", "FNIR @ FPIR 1 %", "0.1 %"]
    print("\n| " + " | ".join(head) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n, r in results.items():
        tars = [_pct(p["tar"]) for p in r["tail_all_pairs"]["tar_at_far"]]
        fn = [f"{_pct(p['fnir'])} (T {p['threshold']:.3f})" for p in r["open_set"]["fnir_at_fpir"]]
        print(f"| {n} | {' | '.join(tars)} | {_pct(r['open_set']['rank1'])} | {' | '.join(fn)} |")
    print("| identity-balanced TAR: | " + " | ".join(["1e-4", "1e-5", "1e-6"]) + " | | | |")
    for n, r in results.items():
        tars = [_pct(p["tar"]) for p in r["tail_all_pairs"]["balanced_tar_at_far"]]
        print(f"| {n} | {' | '.join(tars)} | | | |")


def print_tables(results: dict[str, Any], timing: dict[str, Any] | None) -> None:
    if results:
        print_results(results)
    if timing:
        print(f"\nEmbedding per face, {timing['faces']} faces, load {timing['loadavg_before']}:")
        print("| matcher | median ms | p95 ms | × dlib | bytes per template |")
        print("|---|---:|---:|---:|---:|")
        for k, v in timing["median_ms"].items():
            print(
                f"| {k} | {v:.1f} | {timing['p95_ms'][k]:.1f} | "
                f"{timing['ratio_to_dlib'][k]:.3f} | {timing['template_bytes'][k]:,} |"
            )


def print_results(results: dict[str, Any]) -> None:
    names = list(results)
    any_r = results[names[0]]
    o = any_r["open_set"]
    t = any_r["tail_all_pairs"]
    print(
        f"\nTail: all {t['genuine_pairs']:,} genuine and {t['impostor_pairs']:,} impostor pairs. "
        f"Open set: gallery {o['gallery_size']:,} people ({o['nonmated_gallery_size']:,} for "
        f"non-mated searches), {o['mated_searches']:,} mated and {o['nonmated_searches']:,} "
        "non-mated searches."
    )
    print_main_table(results)
    print("\nFNIR at FPIR 1 % minus MobileFace v2's (paired bootstrap over people, 95 %):")
    for n in names:
        b = results[n]["open_set"].get("fnir_1pct_minus_mobileface")
        if b:
            print(
                f"  {n}: {100 * b['difference']:+.1f} points "
                f"[{100 * b['ci95_low']:+.1f}, {100 * b['ci95_high']:+.1f}]"
            )
    print("\nProjection (calibration fitted on the fit half; FNMR measured on the report half):")
    head = ["matcher", "gallery", "target FPIR", "threshold", "FMR per comparison", "FMR is"]
    print("| " + " | ".join([*head, "FNMR (≈ FNIR)"]) + " |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for n in names:
        for p in results[n]["projection"]:
            print(
                f"| {n} | {p['gallery']:,} | {p['target_fpir']:g} | {p['threshold']:.4f} | "
                f"{p['fmr_per_comparison']:.2g} | {p['fmr_region']} | "
                f"{_pct(p['fnmr_report_half'])} |"
            )


if __name__ == "__main__":
    main()
