"""The latest evaluation (``W/evaluation/latest.json``, read by :func:`fieldid.report.data.
load_evaluation`) as both published documents state it: the measured rates, the group
differentials and the calibration check, in words. Nothing here names a file path beyond the
labelled set's folder name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fieldid.report.data import load_evaluation
from fieldid.workspace import Workspace

NOT_MEASURED = "No evaluation has been recorded: the accuracy of this system is not measured."


def summary(ws: Workspace) -> dict[str, Any]:
    """``{"available": False}``, or the evaluation's date, model, set and rates."""
    ev = load_evaluation(ws.root)
    if not ev.get("available"):
        return {"available": False}
    op = ev.get("operating_point") or {}
    cc = ev.get("calibration_check") or None
    rows = (cc or {}).get("rows") or []
    return {
        "available": True,
        "at": ev.get("at"),
        "model": ev.get("model"),
        "dataset": Path(str(ev.get("dataset", "?"))).name,
        "images": ev.get("n_images"),
        "identities": ev.get("n_identities"),
        "failure_to_acquire": ev.get("fta"),
        "threshold": op.get("threshold"),
        "fmr": op.get("fmr"),
        "fnmr": op.get("fnmr"),
        "fpir": op.get("fpir"),
        "fnir": op.get("fnir"),
        "identification_gallery_size": op.get("gallery_size"),
        "groups": [
            {k: g.get(k) for k in ("group", "n_images", "fmr", "fnmr")}
            for g in ev.get("groups") or []
            if "group" in g
        ],
        "group_ratios": ev.get("group_ratios") or None,
        "calibration": None
        if cc is None
        else {
            "drifted": bool(cc.get("drifted")),
            "judged_checks": sum(1 for r in rows if r.get("enough_data")),
            "checks": len(rows),
            "max_ratio": cc.get("max_ratio"),
        },
    }


def rate_rows(s: dict[str, Any]) -> list[list[Any]]:
    """The measured rates as (measure, value) rows."""
    return [
        ["failure to acquire a face", s["failure_to_acquire"]],
        ["operating threshold", s["threshold"]],
        ["false match rate per comparison (FMR)", s["fmr"]],
        ["false non-match rate (FNMR)", s["fnmr"]],
        [
            "false positive identification rate (FPIR), gallery of "
            f"{s['identification_gallery_size']}",
            s["fpir"],
        ],
        ["false negative identification rate (FNIR)", s["fnir"]],
    ]


def group_rows(s: dict[str, Any]) -> list[list[Any]]:
    return [[g["group"], g["n_images"], g["fmr"], g["fnmr"]] for g in s["groups"]]


GROUP_HEAD = ["group", "images", "FMR", "FNMR"]


def statements(s: dict[str, Any]) -> list[str]:
    """What the evaluation says about groups and calibration, in sentences."""
    out = []
    if s["groups"]:
        r = s["group_ratios"] or {}
        if r:
            out.append(
                f"Differences between groups (worst to best): FMR x{r.get('fmr_worst_to_best')}, "
                f"FNMR x{r.get('fnmr_worst_to_best')}."
            )
    else:
        out.append(
            "The evaluation set carries no group labels: differences between demographic groups "
            "were not measured."
        )
    cal = s["calibration"]
    if cal is None:
        out.append(
            "No calibration check was made: the rates shown beside candidates are the "
            "calibration's predictions, not checked on this evaluation."
        )
    elif cal["drifted"]:
        out.append(
            f"The calibration check found drift (measured and predicted rates differ by a factor "
            f"of {cal['max_ratio']}): the rates shown beside candidates are not reliable until "
            "the model is recalibrated."
        )
    elif not cal["judged_checks"]:
        out.append(
            "The calibration check could not judge the calibration: no check had enough trials."
        )
    else:
        out.append(
            f"The calibration holds within a factor of two on {cal['judged_checks']} of "
            f"{cal['checks']} checks with enough trials."
        )
    return out
