"""The evaluation harness behind ``fieldid eval``: seeded, reproducible, on a labelled set.

1. Every image goes through the same pipeline as a search (decode, detect, align, embed); an image
   with no usable face is a failure to acquire (FTA) and is counted, not dropped.
2. Verification (1:1): all same-person pairs (sampled above ``max_genuine_pairs``) and a seeded
   sample of different-person pairs give TAR at FAR 1e-2, 1e-3, 1e-4 and the EER, plus the
   LFW-style 10-fold accuracy on balanced pairs.
3. Identification (1:N): a seeded share of the people (``nonmated_fraction``) is held out of the
   gallery and searched as non-mated probes; every other person is enrolled with one image and
   searched with each of their other images (mated probes; at most ``max_probes_per_person``
   searches per person, mated or not, so that a few much-photographed people do not decide the
   rates). Reported: rank-1 and rank-10 rates
   and FNIR at FPIR 1 % and 0.1 % (FNIR counts a mated search as a miss unless the mate is at
   rank 1 with a score at or above the threshold; mated probes that failed to acquire are misses).
"""

from __future__ import annotations

import hashlib
import os
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError
from fieldid.evaluation import metrics as m
from fieldid.pipeline import FacePipeline

FARS = (1e-2, 1e-3, 1e-4)
FPIRS = (1e-2, 1e-3)


@dataclass(frozen=True)
class EvalOptions:
    seed: int = 0
    max_impostor_pairs: int = 200_000
    max_genuine_pairs: int = 100_000
    nonmated_fraction: float = 0.3
    kfold_pairs: int = 3000  # of each kind, for the 10-fold accuracy
    #: Searches per person in 1:N, so that the few people photographed hundreds of times do not
    #: decide the rates (a person's images beyond this are sampled).
    max_probes_per_person: int = 10
    #: Also report FMR/FNMR and FPIR/FNIR at these thresholds (e.g. the one a workspace uses).
    thresholds: tuple[float, ...] = ()


@dataclass
class TemplateSet:
    """One template per image (NaN rows where acquisition failed), with the failure codes."""

    model: str
    paths: list[str]
    vectors: NDArray[np.float32]
    fta_codes: list[str | None]
    timings_ms: dict[str, list[float]] = field(default_factory=dict)
    #: The probe's unified quality score (0-100) per image, -1 where acquisition failed; the
    #: calibration measures score distributions per quality band from it.
    quality: NDArray[np.int16] | None = None

    @property
    def acquired(self) -> NDArray[np.bool_]:
        return np.array([c is None for c in self.fta_codes], dtype=bool)


def _cache_key(model: str, paths: Sequence[str]) -> str:
    # Resolved, so that ../shared/x and /work/shared/x name the same images.
    h = hashlib.sha256(model.encode())
    for p in paths:
        h.update(os.path.realpath(p).encode() + b"\0")
    return h.hexdigest()


def compute_templates(
    pipeline: FacePipeline,
    items: Sequence[LabelledImage],
    *,
    cache: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> TemplateSet:
    model = str(pipeline.model)
    paths = [str(i.path) for i in items]
    key = _cache_key(pipeline.describe(), paths)
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            # Caches written before quality was recorded are recomputed.
            if str(z["key"]) == key and "quality" in z.files:
                cached = [c or None for c in z["fta_codes"].tolist()]
                if progress:
                    progress(len(items))
                return TemplateSet(model, paths, z["vectors"], cached, quality=z["quality"])
    dim = pipeline.embedder.dim
    vectors = np.full((len(items), dim), np.nan, dtype=np.float32)
    quality = np.full(len(items), -1, dtype=np.int16)
    codes: list[str | None] = []
    timings: dict[str, list[float]] = defaultdict(list)
    for n, item in enumerate(items):
        try:
            processed = pipeline.process(item.path)
            vectors[n] = processed.template.vector
            quality[n] = processed.quality.unified
            codes.append(None)
            for k, v in processed.timings_ms.items():
                timings[k].append(v)
        except FieldidError as e:
            codes.append(e.code)
        if progress:
            progress(1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            key=key,
            vectors=vectors,
            fta_codes=np.array([c or "" for c in codes]),
            quality=quality,
        )
        tmp.replace(cache)
    return TemplateSet(model, paths, vectors, codes, dict(timings), quality=quality)


def _at_most(idxs: list[int], cap: int, rng: np.random.Generator) -> list[int]:
    if len(idxs) <= cap:
        return idxs
    return sorted(int(i) for i in rng.choice(idxs, cap, replace=False))


def _pairs_within(groups: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    out = [
        np.stack(np.triu_indices(len(g), 1), axis=1).reshape(-1, 2) for g in groups if len(g) > 1
    ]
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(
        [g[idx] for g, idx in zip([g for g in groups if len(g) > 1], out, strict=True)]
    )


@dataclass
class EvalReport:
    model: str
    seed: int
    images: int
    identities: int
    fta: dict[str, Any]
    verification: dict[str, Any]
    identification: dict[str, Any]
    timings_ms: dict[str, float]
    #: The genuine and impostor scores behind the verification figures (not serialised; the
    #: DET curve and group differentials of ``fieldid eval --workspace`` use them).
    pairs: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seed": self.seed,
            "images": self.images,
            "identities": self.identities,
            "failure_to_acquire": self.fta,
            "verification": self.verification,
            "identification": self.identification,
            "median_timings_ms": self.timings_ms,
        }

    def to_markdown(self) -> str:
        v, i, f = self.verification, self.identification, self.fta
        lines = [
            f"model {self.model}, seed {self.seed}: {self.images} images of "
            f"{self.identities} people",
            f"failure to acquire: {f['count']} ({f['rate']:.3%}) {f['by_code']}",
            f"verification: {v['genuine_pairs']} genuine, {v['impostor_pairs']} impostor pairs",
        ]
        for p in v["tar_at_far"]:
            note = "" if p["resolvable"] else " (too few impostor pairs to resolve)"
            lines.append(
                f"  TAR {p['tar']:.4f} at FAR {p['far']:g} (threshold {p['threshold']:.4f}){note}"
            )
        lines.append(f"  EER {v['eer']['rate']:.4f} at {v['eer']['threshold']:.4f}")
        k = v["kfold_accuracy"]
        lines.append(f"  10-fold pair accuracy {k['mean']:.4f} ± {k['std']:.4f}")
        lines.append(
            f"identification: gallery {i['gallery_size']}, {i['mated_searches']} mated and "
            f"{i['nonmated_searches']} non-mated searches"
        )
        lines.append(f"  rank-1 {i['rank1']:.4f}, rank-10 {i['rank10']:.4f}")
        for p in i["fnir_at_fpir"]:
            note = "" if p["resolvable"] else " (too few non-mated searches to resolve)"
            lines.append(
                f"  FNIR {p['fnir']:.4f} at FPIR {p['target_fpir']:g} "
                f"(threshold {p['threshold']:.4f}){note}"
            )
        for p in i.get("at_thresholds", []):
            lines.append(
                f"at threshold {p['threshold']:g}: FMR {p['fmr']:.5f}, FNMR {p['fnmr']:.4f}"
                + (f", FPIR {p['fpir']:.4f}, FNIR {p['fnir']:.4f}" if "fpir" in p else "")
            )
        if self.timings_ms:
            lines.append(
                "median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings_ms.items())
            )
        return "\n".join(lines)


def evaluate_templates(ts: TemplateSet, identities: Sequence[str], opts: EvalOptions) -> EvalReport:
    # Independent streams, so that which images failed to acquire (which changes the
    # verification sampling) never changes the identification split.
    rng, split_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(opts.seed).spawn(2))
    ok = ts.acquired
    n = len(identities)
    fta_count = int((~ok).sum())
    fta = {
        "count": fta_count,
        "rate": fta_count / n if n else 0.0,
        "by_code": dict(Counter(c for c in ts.fta_codes if c)),
    }
    labels = np.unique(np.asarray(identities), return_inverse=True)[1]
    by_person: dict[int, list[int]] = defaultdict(list)
    for idx, lab in enumerate(labels):
        by_person[int(lab)].append(idx)
    X = np.nan_to_num(ts.vectors).astype(np.float32)

    # --- verification over acquired images -----------------------------------------------------
    acq_groups = [
        np.array([i for i in idxs if ok[i]], dtype=np.int64) for idxs in by_person.values()
    ]
    gen_pairs = _pairs_within(acq_groups)
    if len(gen_pairs) > opts.max_genuine_pairs:
        gen_pairs = gen_pairs[rng.choice(len(gen_pairs), opts.max_genuine_pairs, replace=False)]
    acq_idx = np.flatnonzero(ok)
    a = rng.choice(acq_idx, opts.max_impostor_pairs * 2)
    b = rng.choice(acq_idx, opts.max_impostor_pairs * 2)
    keep = labels[a] != labels[b]
    imp_pairs = np.stack([a[keep], b[keep]], axis=1)[: opts.max_impostor_pairs]
    genuine = np.einsum("ij,ij->i", X[gen_pairs[:, 0]], X[gen_pairs[:, 1]])
    impostor = np.einsum("ij,ij->i", X[imp_pairs[:, 0]], X[imp_pairs[:, 1]])
    if len(genuine) == 0 or len(impostor) == 0:
        raise m.MetricInputError(
            "the set needs at least one person with two usable images and two people",
            code="dataset.too_small",
        )
    kn = min(opts.kfold_pairs, len(genuine), len(impostor))
    kg = genuine[rng.choice(len(genuine), kn, replace=False)]
    ki = impostor[rng.choice(len(impostor), kn, replace=False)]
    folds = 10 if kn >= 10 else 2
    acc = m.kfold_accuracy(kg, ki, folds=folds, seed=opts.seed)
    e = m.eer(genuine, impostor)
    verification = {
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "genuine_mean": float(genuine.mean()),
        "impostor_mean": float(impostor.mean()),
        "tar_at_far": [
            {"far": far, "tar": t.tar, "threshold": t.threshold, "resolvable": t.resolvable}
            for far in FARS
            for t in [m.tar_at_far(genuine, impostor, far)]
        ],
        "eer": {"rate": e.rate, "threshold": e.threshold},
        "kfold_accuracy": {"mean": acc.mean, "std": acc.std, "pairs_each": kn, "folds": folds},
    }

    # --- identification ------------------------------------------------------------------------
    people = np.array(sorted(by_person))
    split_rng.shuffle(people)
    n_non = round(len(people) * opts.nonmated_fraction)
    nonmated_people, mated_people = people[:n_non], people[n_non:]
    cap = opts.max_probes_per_person
    gallery_idx: list[int] = []
    gallery_label: list[int] = []
    mated_probes: list[int] = []
    for p in mated_people:
        idxs = by_person[int(p)]
        usable = [i for i in idxs if ok[i]]
        if not usable:
            continue  # nobody to enrol: the person is not in the gallery
        g = int(split_rng.choice(usable))
        gallery_idx.append(g)
        gallery_label.append(int(p))
        mated_probes.extend(_at_most([i for i in idxs if i != g], cap, split_rng))
    nonmated_probes = [
        i for p in nonmated_people for i in _at_most(by_person[int(p)], cap, split_rng)
    ]
    G = X[gallery_idx]
    glabels = np.array(gallery_label)
    mated_ok = [i for i in mated_probes if ok[i]]
    mated_fta = len(mated_probes) - len(mated_ok)
    ranks = np.empty(len(mated_ok))
    mate_scores = np.empty(len(mated_ok))
    column = {int(lab): c for c, lab in enumerate(glabels)}
    for start in range(0, len(mated_ok), 512):
        chunk = mated_ok[start : start + 512]
        S = X[chunk] @ G.T
        for r, probe in enumerate(chunk):
            mate = column[int(labels[probe])]
            ms = S[r, mate]
            mate_scores[start + r] = ms
            ranks[start + r] = 1 + int((S[r] > ms).sum())
    non_ok = [i for i in nonmated_probes if ok[i]]
    non_fta = len(nonmated_probes) - len(non_ok)
    top = (X[non_ok] @ G.T).max(axis=1) if non_ok and len(G) else np.zeros(0)
    identification: dict[str, Any] = {
        "gallery_size": len(gallery_idx),
        "mated_searches": len(mated_probes),
        "nonmated_searches": len(nonmated_probes),
        "mated_fta": mated_fta,
        "nonmated_fta": non_fta,
        "rank1": m.rank_k_rate(ranks, 1, fta=mated_fta) if len(mated_probes) else float("nan"),
        "rank10": m.rank_k_rate(ranks, 10, fta=mated_fta) if len(mated_probes) else float("nan"),
        "fnir_at_fpir": [],
    }
    if len(mated_probes) and len(top):
        for target in FPIRS:
            pt = m.fnir_at_fpir(
                ranks,
                mate_scores,
                top,
                target,
                max_rank=1,
                mated_fta=mated_fta,
                nonmated_fta=non_fta,
            )
            identification["fnir_at_fpir"].append(
                {
                    "target_fpir": target,
                    "fpir": pt.fpir,
                    "fnir": pt.fnir,
                    "threshold": pt.threshold,
                    "resolvable": pt.resolvable,
                }
            )
    at_thresholds = []
    for t in opts.thresholds:
        rates = m.fmr_fnmr_at(genuine, impostor, t)
        point: dict[str, Any] = {"threshold": t, "fmr": rates.fmr, "fnmr": rates.fnmr}
        if len(mated_probes) and len(top):
            point["fpir"] = m.fpir_at(top, t, fta=non_fta)
            point["fnir"] = m.fnir_at(ranks, mate_scores, t, max_rank=1, fta=mated_fta)
        at_thresholds.append(point)
    identification["at_thresholds"] = at_thresholds
    timings = {k: statistics.median(v) for k, v in ts.timings_ms.items() if v}
    return EvalReport(
        ts.model,
        opts.seed,
        n,
        len(by_person),
        fta,
        verification,
        identification,
        timings,
        pairs=(genuine.astype(np.float64), impostor.astype(np.float64)),
    )


def evaluate_dataset(
    pipeline: FacePipeline,
    items: Sequence[LabelledImage],
    opts: EvalOptions | None = None,
    *,
    cache: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    opts = opts or EvalOptions()
    ts = compute_templates(pipeline, items, cache=cache, progress=progress)
    return evaluate_templates(ts, [i.identity for i in items], opts)
