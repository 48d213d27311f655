"""Is the calibration honest? Predicted against measured rates on people it never saw.

1. *FMR*: for each target FMR the calibration's threshold is applied to every impostor pair of
   the report share (the people the calibration's split left out), overall and per quality band
   the calibration fitted on its own; measured FMR / predicted FMR is the ratio.
2. *FPIR at gallery size*: report-share people are split (seeded) into a real part of the
   gallery (one image each) and non-mated probes (their images, at most ``max_probes_per_person``
   each). Galleries of each size are the real part plus synthetic template-only distractors
   drawn from a Gaussian fitted to the *fit* share's templates (:mod:`fieldid.gallery.distractors`;
   no template of a report person shapes them). Each probe uses the threshold a search would use
   for its quality band at that gallery size; measured FPIR is the share of probes whose best
   gallery score reaches it (probes that failed to acquire count as searches with no candidate).
   The same is done on a gallery of the real part alone (no synthetic template), at 1 % and 10 %.
3. A row has *enough data* when at least 10 false matches are expected at the target
   (``trials * target >= 10``). The calibration has *drifted* when any such row is off by more
   than a factor of two either way.
4. Synthetic distractors are a Gaussian: at strict thresholds they score as high as a real
   stranger far less often than real strangers do (on LFW with dlib, 30-100 times less often at
   FMR 1e-5 to 1e-6). Each row with distractors counts how often they reached the threshold
   against how often real strangers would (by the calibration); where they fall short by more
   than the drift factor (and a Poisson test puts the shortfall beyond chance, p < 0.01), the row
   cannot judge the calibration and says so (``not_judged``;
   ``enough_data`` false) rather than report a drift that belongs to the distractors.
5. With a workspace (``fieldid eval --workspace``), one more FPIR row is measured against the
   workspace's real gallery (:func:`workspace_gallery_check`, ``"gallery": "workspace"``).

Also here: demographic differentials (FMR and FNMR per group at the operating threshold, and
the worst-to-best ratios, as NIST's demographic-effects reports give them), and the document
``W/evaluation/latest.json`` the oversight report reads (contracts.md).
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fieldid.calibration.fit import in_fit_split, pair_scores
from fieldid.calibration.model import Calibration
from fieldid.evaluation.harness import EvalReport, TemplateSet
from fieldid.evaluation.metrics import det_curve
from fieldid.gallery.distractors import DistractorModel
from fieldid.quality import band_of

FMR_TARGETS = (1e-2, 1e-3, 1e-4)
GALLERY_SIZES = (1_000, 10_000, 100_000)
FPIR_TARGETS = (0.01,)
#: Targets checked on a gallery of real faces only (as large as the report share allows).
REAL_ONLY_TARGETS = (0.01, 0.1)
ENOUGH_EXPECTED = 10
DRIFT_FACTOR = 2.0


def _row(
    kind: str,
    target: float,
    gallery_size: int | None,
    predicted: float,
    measured: float,
    trials: int,
    **extra: Any,
) -> dict[str, Any]:
    ratio = measured / predicted if predicted > 0 else math.inf
    return {
        "kind": kind,
        "target": target,
        "gallery_size": gallery_size,
        "predicted": predicted,
        "measured": measured,
        "ratio": ratio,
        "trials": trials,  # effective trials (identity-balanced pairs) for FMR
        "enough_data": trials * target >= ENOUGH_EXPECTED,
        **extra,
    }


def _poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam)."""
    term = total = math.exp(-lam)
    for i in range(1, k + 1):
        term *= lam / i
        total += term
    return total


def calibration_check(
    ts: TemplateSet,
    identities: Sequence[str],
    cal: Calibration,
    *,
    seed: int = 0,
    fmr_targets: Sequence[float] = FMR_TARGETS,
    gallery_sizes: Sequence[int] = GALLERY_SIZES,
    fpir_targets: Sequence[float] = FPIR_TARGETS,
    real_only_targets: Sequence[float] = REAL_ONLY_TARGETS,
    gallery_real_fraction: float = 0.3,
    max_probes_per_person: int = 10,
) -> dict[str, Any]:
    """The ``calibration_check`` block of ``W/evaluation/latest.json`` (contracts.md)."""
    if ts.quality is None:
        raise ValueError("templates need quality scores (compute_templates records them)")
    fraction = float(cal.split.get("fit_fraction", 1.0))
    salt = str(cal.split.get("salt", ""))
    fit = np.array([in_fit_split(i, fraction, salt) for i in identities], dtype=bool)
    report = ~fit
    ids = np.asarray(identities)
    out: dict[str, Any] = {
        "calibration": cal.id,
        "report_identities": len(set(ids[report].tolist())),
        "report_images": int(report.sum()),
        "rows": [],
        "max_ratio": None,
        "drifted": False,
    }
    if len(set(ids[report].tolist())) < 2:
        out["note"] = "no people outside the calibration's fit share: nothing to check on"
        return out
    rows: list[dict[str, Any]] = out["rows"]

    # --- FMR per comparison ---------------------------------------------------------------
    pairs = pair_scores(ts.vectors[report], list(ids[report]), ts.quality[report], seed=seed)
    for band in ["all", *[b for b in cal.bands if b != "all"]]:
        imp = pairs.of(band)[1]
        if len(imp) == 0:
            continue
        for target in fmr_targets:
            t = cal.threshold_for_fmr(target, band)
            measured = pairs.fmr_at(t, band)  # identity-balanced, as the calibration is
            rows.append(
                _row(
                    "fmr",
                    target,
                    None,
                    cal.fmr_at(t, band),
                    measured,
                    pairs.effective_impostor(band),
                    band=band,
                    threshold=t,
                    pairs=len(imp),
                )
            )

    # --- FPIR at gallery sizes --------------------------------------------------------------
    rng = np.random.default_rng(seed)
    x = np.asarray(ts.vectors, dtype=np.float32)
    ok = np.isfinite(x).all(axis=1) & (ts.quality >= 0)
    by_person: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(report):
        by_person[str(ids[i])].append(int(i))
    people = sorted(by_person)
    rng.shuffle(people)
    n_real = round(len(people) * gallery_real_fraction)
    real: list[int] = []
    for p in people[:n_real]:
        usable = [i for i in by_person[p] if ok[i]]
        if usable:
            real.append(int(rng.choice(usable)))
    probes: list[int] = []
    for p in people[n_real:]:
        idxs = by_person[p]
        if len(idxs) > max_probes_per_person:
            idxs = sorted(int(i) for i in rng.choice(idxs, max_probes_per_person, replace=False))
        probes.extend(idxs)
    probe_ok = [i for i in probes if ok[i]]
    n_searches = len(probes)
    fit_usable = np.flatnonzero(fit & ok)
    max_n = max(gallery_sizes, default=0)
    synth = np.zeros((0, x.shape[1]), dtype=np.float32)
    distractor_note = "no synthetic distractors needed"
    if max_n > len(real):
        try:
            dm = DistractorModel.fit(ts.model, x[fit_usable])
            synth = dm.sample(max_n - len(real), seed=seed + 1)
            distractor_note = (
                f"synthetic distractors from a Gaussian fitted to {dm.fitted_on} fit-share "
                "templates"
            )
        except ValueError as e:
            distractor_note = f"no synthetic distractors: {e}"
    out["fpir_gallery"] = {
        "real_templates": len(real),
        "nonmated_searches": n_searches,
        "nonmated_failed_to_acquire": n_searches - len(probe_ok),
        "distractors": distractor_note,
    }
    if not probe_ok or not real:
        out["fpir_gallery"]["note"] = "too few report-share people for non-mated searches"
    else:
        P = x[probe_ok]
        bands = [band_of(int(ts.quality[i])) for i in probe_ok]
        real_scores = P @ x[real].T
        sizes = sorted(n for n in gallery_sizes if n <= len(real) + len(synth))
        cases = [(len(real), t, True) for t in real_only_targets]
        cases += [(n, t, False) for n in sizes for t in fpir_targets]
        for n, target, real_only in cases:
            thr = {b: cal.threshold_for_fpir(target, n, b) for b in set(bands)}
            t_all = cal.threshold_for_fpir(target, n)
            top = real_scores[:, : min(n, len(real))].max(axis=1).astype(np.float64)
            need = 0 if real_only else max(0, n - len(real))
            synth_hits = 0
            for start in range(0, need, 20_000):
                block = P @ synth[start : min(need, start + 20_000)].T
                top = np.maximum(top, block.max(axis=1))
                synth_hits += int(np.count_nonzero(block >= t_all))
            predicted = float(np.mean([cal.fpir(n, thr[b], b) for b in bands]))
            # Failed acquisitions are searches with no candidate: in the denominator only.
            predicted *= len(probe_ok) / n_searches
            hit = [sc >= thr[b] for sc, b in zip(top, bands, strict=True)]
            hits = int(sum(hit))
            extra: dict[str, Any] = {
                "threshold": t_all,
                # False candidates cluster on look-alike people: how many people they came from.
                "people_with_false_candidates": len(
                    {str(ids[i]) for i, h in zip(probe_ok, hit, strict=True) if h}
                ),
                "real": min(n, len(real)),
                "synthetic": need,
            }
            row = _row("fpir", target, n, predicted, hits / n_searches, n_searches, **extra)
            if need:
                # Do the synthetic distractors score like real strangers at this threshold?
                comparisons = len(probe_ok) * need
                expected = cal.fmr_at(t_all) * comparisons
                row["distractor_comparisons_at_or_above"] = synth_hits
                row["distractor_expected_if_like_real"] = expected
                row["distractor_fmr_ratio"] = synth_hits / expected if expected > 0 else None
                if (
                    synth_hits < expected / DRIFT_FACTOR
                    and _poisson_cdf(synth_hits, expected) < 0.01
                ):
                    row["enough_data"] = False
                    row["not_judged"] = (
                        f"the synthetic distractors reach this threshold {synth_hits} times in "
                        f"{comparisons:,} comparisons where real strangers would about "
                        f"{expected:.0f} times: they are not a fair stand-in for people here, "
                        "so this row cannot judge the calibration"
                    )
            rows.append(row)
    _judge(out)
    return out


def _judge(check: dict[str, Any]) -> None:
    """Set ``max_ratio`` and ``drifted`` from the rows with enough data."""
    factors = [
        max(r["ratio"], 1 / r["ratio"]) if 0 < r["ratio"] < math.inf else math.inf
        for r in check["rows"]
        if r["enough_data"]
    ]
    check["max_ratio"] = max(factors) if factors else None
    check["drifted"] = any(f > DRIFT_FACTOR for f in factors)


def group_differentials(
    ts: TemplateSet,
    identities: Sequence[str],
    groups: Sequence[str | None],
    threshold: float,
    *,
    seed: int = 0,
    min_impostor: int = 100,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """FMR and FNMR per demographic group at ``threshold``, and worst-to-best ratios.

    A person's group is the group of their images (the first given, if they differ). Rates are
    identity-balanced as in the calibration (:mod:`fieldid.calibration.fit`). FMR uses
    impostor pairs *within* the group (both people in it, as NIST's demographic reports do for
    same-group impostors), FNMR the group's genuine pairs. Ratios are over groups with at least
    ``min_impostor`` impostor and one genuine pair; a best rate of 0 is replaced by
    ``1 / pairs`` (at most that, so the ratio is then a lower bound, flagged).
    """
    ids = np.asarray(identities)
    person_group: dict[str, str] = {}
    for i, g in zip(identities, groups, strict=True):
        if g and i not in person_group:
            person_group[i] = g
    if not person_group:
        return [], None
    rows: list[dict[str, Any]] = []
    judged: list[tuple[dict[str, Any], int, int]] = []
    for g in sorted(set(person_group.values())):
        mask = np.array([person_group.get(i) == g for i in ids], dtype=bool)
        q = ts.quality if ts.quality is not None else np.zeros(len(ids), dtype=np.int16)
        p = pair_scores(
            ts.vectors[mask], list(ids[mask]), q[mask], seed=seed, max_impostor_pairs=1_000_000
        )
        gen, imp = p.genuine, p.impostor
        row: dict[str, Any] = {
            "group": g,
            "n_images": int(mask.sum()),
            "n_identities": len({i for i in ids[mask]}),
            "fmr": p.fmr_at(threshold) if len(imp) else None,
            "fnmr": p.fnmr_at(threshold) if len(gen) else None,
            "impostor_pairs": len(imp),
            "genuine_pairs": len(gen),
        }
        rows.append(row)
        if len(imp) >= min_impostor and len(gen) >= 1:
            judged.append((row, len(imp), len(gen)))
    if len(judged) < 2:
        return rows, None

    def ratio(key: str, n_idx: int) -> tuple[float, bool]:
        rates = [(r[key], (n_imp, n_gen)[n_idx]) for r, n_imp, n_gen in judged]
        worst = max(v for v, _ in rates)
        best_v, best_n = min(rates, key=lambda t: t[0])
        if worst == 0:
            return 1.0, False
        if best_v == 0:
            # The best rate is below 1 / pairs: the ratio is at least worst · pairs, and a
            # worst-to-best ratio is at least 1 by definition.
            return max(1.0, worst * best_n), True
        return worst / best_v, False

    fmr_r, fmr_lb = ratio("fmr", 0)
    fnmr_r, fnmr_lb = ratio("fnmr", 1)
    return rows, {
        "fmr_worst_to_best": fmr_r,
        "fnmr_worst_to_best": fnmr_r,
        "fmr_ratio_is_lower_bound": fmr_lb,
        "fnmr_ratio_is_lower_bound": fnmr_lb,
        "threshold": threshold,
    }


def latest_document(
    *,
    at: str,
    dataset: str,
    report: EvalReport,
    operating: dict[str, Any],
    groups: list[dict[str, Any]],
    group_ratios: dict[str, Any] | None,
    check: dict[str, Any] | None,
) -> dict[str, Any]:
    """``W/evaluation/latest.json`` as contracts.md defines it (extra keys are additive)."""
    det: dict[str, Any] = {"fmr": [], "fnmr": []}
    if report.pairs is not None:
        d = det_curve(report.pairs[0], report.pairs[1], 100)
        det = {"fmr": d.fmr[::-1].tolist(), "fnmr": d.fnmr[::-1].tolist()}
    return {
        "at": at,
        "model": report.model,
        "dataset": dataset,
        "n_images": report.images,
        "n_identities": report.identities,
        "fta": report.fta["rate"],
        "det": det,
        "operating_point": operating,
        "groups": groups,
        "group_ratios": group_ratios,
        "calibration_check": check,
    }


def write_latest(root: Path, doc: dict[str, Any]) -> Path:
    path = root / "evaluation" / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    text = json.dumps(_finite(doc), indent=1, default=_json_default, allow_nan=False)
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _finite(o: Any) -> Any:
    """JSON has no infinity or NaN: they become null (readers tolerate absent values)."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, float | np.floating) and not math.isfinite(float(o)):
        return None
    return o


def _json_default(o: object) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def workspace_gallery_check(
    ws: Any,
    ts: TemplateSet,
    identities: Sequence[str],
    cal: Calibration,
    target: float,
    *,
    max_probes_per_person: int = 10,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Predicted against measured FPIR on the workspace's *real* gallery, where feasible.

    Non-mated probes are the labelled images of report-share people (never seen by the
    calibration) whose identity label is not an enrolled ``external_id``; each is searched
    exhaustively against every template in the gallery at the threshold a search would use for
    its band. None when the gallery is empty or no such probe exists.
    """
    from sqlalchemy import func, select

    from fieldid.store.schema import Person, TemplateRow

    _, gallery = ws.gallery.all_vectors()
    n = len(gallery)
    if n == 0 or ts.quality is None:
        return None
    with ws.store.read() as s:
        enrolled = set(s.scalars(select(Person.external_id)))
        template_only = s.scalar(
            select(func.count(TemplateRow.id)).where(
                TemplateRow.image_id.is_(None), TemplateRow.generation == ws.gallery.generation
            )
        )
    fraction = float(cal.split.get("fit_fraction", 1.0))
    salt = str(cal.split.get("salt", ""))
    x = np.asarray(ts.vectors, dtype=np.float32)
    ok = np.isfinite(x).all(axis=1) & (ts.quality >= 0)
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[int]] = defaultdict(list)
    for i, ident in enumerate(identities):
        if ident not in enrolled and not in_fit_split(ident, fraction, salt):
            by_person[ident].append(i)
    probes: list[int] = []
    for idxs in by_person.values():
        if len(idxs) > max_probes_per_person:
            idxs = sorted(int(i) for i in rng.choice(idxs, max_probes_per_person, replace=False))
        probes.extend(idxs)
    usable = [i for i in probes if ok[i]]
    if not usable:
        return None
    bands = [band_of(int(ts.quality[i])) for i in usable]
    top = np.full(len(usable), -np.inf)
    for start in range(0, n, 50_000):
        top = np.maximum(top, (x[usable] @ gallery[start : start + 50_000].T).max(axis=1))
    thr = {b: cal.threshold_for_fpir(target, n, b) for b in set(bands)}
    predicted = float(np.mean([cal.fpir(n, thr[b], b) for b in bands])) * len(usable) / len(probes)
    hits = int(sum(1 for sc, b in zip(top, bands, strict=True) if sc >= thr[b]))
    row = _row(
        "fpir",
        target,
        n,
        predicted,
        hits / len(probes),
        len(probes),
        gallery="workspace",
        threshold=cal.threshold_for_fpir(target, n),
        template_only=int(template_only or 0),
    )
    if template_only and template_only > n / 2:
        row["enough_data"] = False
        row["not_judged"] = (
            f"{template_only:,} of the workspace's {n:,} templates are template-only (synthetic "
            "distractors), which do not score like real strangers"
        )
    return row


def evaluate_workspace(
    ws: Any,
    items: Sequence[Any],
    opts: Any,
    *,
    dataset: str,
    cache: Path | None = None,
    progress: Any = None,
    gallery_sizes: Sequence[int] = GALLERY_SIZES,
) -> tuple[EvalReport, dict[str, Any], Path]:
    """``fieldid eval --workspace W``: the harness at W's operating threshold, the calibration
    check and group differentials; writes and returns ``W/evaluation/latest.json``.

    The operating threshold is the one W's searches use now (its target FPIR at its current
    gallery size, or its configured threshold). FMR/FNMR are measured at it on the labelled set;
    FPIR/FNIR on the harness's identification split, whose gallery size is reported.
    """
    from dataclasses import replace

    from fieldid.calibration import load_for, threshold_in_force
    from fieldid.evaluation.harness import compute_templates, evaluate_templates

    cfg = ws.config
    model = str(ws.pipeline.model)
    cal = load_for(ws.root, model)
    ws_size = ws.gallery.size().templates
    tif = threshold_in_force(
        configured=cfg.threshold,
        target_fpir=cfg.target_fpir,
        calibration=cal,
        model=model,
        gallery_size=ws_size,
        workspace=str(ws.root),
    )
    ts = compute_templates(ws.pipeline, items, cache=cache, progress=progress)
    identities = [i.identity for i in items]
    opts = replace(opts, thresholds=(*opts.thresholds, tif.value))
    report = evaluate_templates(ts, identities, opts)
    ident = report.identification
    point = next(p for p in ident["at_thresholds"] if p["threshold"] == tif.value)
    operating = {
        "threshold": tif.value,
        "fmr": point["fmr"],
        "fnmr": point["fnmr"],
        "fpir": point.get("fpir"),
        "fnir": point.get("fnir"),
        "gallery_size": ident["gallery_size"] if "fpir" in point else None,
        "set_by": tif.to_dict(),
        "workspace_gallery_size": ws_size,
    }
    groups, ratios = group_differentials(
        ts, identities, [i.group for i in items], tif.value, seed=opts.seed
    )
    check: dict[str, Any] | None
    if cal is None:
        check = None
    else:
        check = calibration_check(ts, identities, cal, seed=opts.seed, gallery_sizes=gallery_sizes)
        live = workspace_gallery_check(ws, ts, identities, cal, cfg.target_fpir, seed=opts.seed)
        if live is not None:
            check["rows"].append(live)
            _judge(check)
    doc = latest_document(
        at=ws.clock.now().isoformat(timespec="seconds"),
        dataset=dataset,
        report=report,
        operating=operating,
        groups=groups,
        group_ratios=ratios,
        check=check,
    )
    if cal is None:
        from fieldid.calibration import uncalibrated_reason

        doc["calibration_unavailable"] = uncalibrated_reason(model, str(ws.root))
    path = write_latest(ws.root, doc)
    return report, doc, path
