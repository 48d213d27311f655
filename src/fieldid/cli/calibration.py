"""``fieldid calibrate``: measure what the installed model's scores mean, from labelled faces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fieldid.cli.auth import local_name, no_account
from fieldid.errors import FieldidError

console = Console()

#: Gallery sizes the summary shows thresholds for.
SHOWN_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)


@no_account(
    "fits what the model's scores mean on a labelled dataset; touches no gallery (audited as the "
    "local login that ran it)"
)
def calibrate(
    dataset: Annotated[Path, typer.Option(help="Labelled set: folder <identity>/<image> or CSV.")],
    workspace: Annotated[
        Path,
        typer.Option(
            "--workspace", "-w", envvar="FIELDID_WORKSPACE", help="Workspace folder (fieldid init)."
        ),
    ] = Path("."),
    fit_fraction: Annotated[
        float,
        typer.Option(
            help="Share of the people to fit on (split by identity); the rest are left for "
            "`fieldid eval` to check the calibration on people it never saw."
        ),
    ] = 0.5,
    cache: Annotated[Path | None, typer.Option(help="Cache templates in this .npz file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Fit score → FMR/FNMR per probe-quality band for the workspace's model and store it."""
    from fieldid.cli.common import fail, progress_bar
    from fieldid.dataset import read_labelled
    from fieldid.evaluation.calibrate import calibrate_workspace
    from fieldid.workspace import Workspace

    try:
        ws = Workspace.open(workspace)
        items = read_labelled(dataset)
        with progress_bar() as bar:
            task = bar.add_task("templates", total=len(items))
            cal, path = calibrate_workspace(
                ws.root,
                ws.pipeline,
                items,
                description=f"{dataset} ({len(items)} images)",
                fit_fraction=fit_fraction,
                cache=cache,
                progress=lambda n: bar.advance(task, n),
            )
        ws.store.append_audit(
            "calibrate",
            # No account: who ran it is the local login, marked so (never taken for an account).
            operator=local_name(),
            payload={
                "calibration": cal.id,
                "model": cal.model,
                "path": str(path),
                "dataset": cal.dataset,
                "split": cal.split,
                "counts": cal.counts,
                "fallbacks": cal.fallbacks,
            },
        )
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps({"calibration": cal.id, "path": str(path), **cal.to_dict()}, indent=1))
        return
    console.print(f"calibration {cal.id} written to {path}")
    console.print(cal.describe())
    t = Table(title="Comparisons per probe-quality band", title_justify="left")
    for col in ("band", "images", "impostor pairs", "genuine pairs", "fitted"):
        t.add_column(col)
    for band, c in cal.counts.items():
        fitted = "yes" if band in cal.bands else "no: 'all' stands in"
        t.add_row(band, f"{c['images']:,}", f"{c['impostor']:,}", f"{c['genuine']:,}", fitted)
    console.print(t)
    t = Table(title="Threshold for FPIR 1 % by gallery size (band all)", title_justify="left")
    for col in ("gallery", "threshold", "FMR per comparison", "FNMR", "region"):
        t.add_column(col)
    for n in SHOWN_SIZES:
        thr = cal.threshold_for_fpir(0.01, n)
        region = "extrapolated" if cal.curve("all").extrapolated(thr) else "measured"
        t.add_row(
            f"{n:,}", f"{thr:.4f}", f"{cal.fmr_at(thr):.2g}", f"{cal.fnmr_at(thr):.3f}", region
        )
    console.print(t)
