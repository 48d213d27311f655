"""Gallery commands: ``fieldid gallery retemplate``, moving a gallery to another face model.

The command body opens the workspace, checks that the new model can be searched with (a
calibration, or a fixed ``--threshold``), then starts or resumes the re-templating, computes
with a progress bar, switches, and has ``fieldid.toml`` name the new model
(``gallery/retemplate.py`` has the contract). Searches go on with the old model until the
switch. Interrupted, it is run again with the same ``--model``: it resumes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fieldid.cli.auth import operator, requires
from fieldid.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    fail,
    open_workspace,
    progress_bar,
)
from fieldid.errors import FieldidError

gallery_app = typer.Typer(
    help="The gallery as a whole: move it to another face model (re-templating).",
    no_args_is_help=True,
)

#: Switch attempts when images were enrolled during the run (each attempt templates them).
SWITCH_ATTEMPTS = 3


def _status_table(st: Any) -> Table:
    t = Table(title=f"Re-templating job {st.job_id}: {st.from_model} → {st.to_model}")
    t.add_column("")
    t.add_column("done", justify="right")
    t.add_column("of", justify="right")
    t.add_row("enrolled images", f"{st.images_done:,}", f"{st.images:,}")
    t.add_row("images that failed", f"{st.images_failed:,}", "")
    t.add_row("synthetic identities re-drawn", f"{st.synthetic_done:,}", f"{st.synthetic:,}")
    t.add_row("template-only identities (not carried)", "", f"{st.template_only_other:,}")
    return t


def _move(
    gallery: Any,
    target: Any,
    who: Any,
    workers: int,
    batch: int,
    options: dict[str, Any],
    quiet: bool,
) -> dict[str, Any]:
    """Start or resume, compute, switch (again after a run when images were enrolled
    meanwhile); what the switch did, with the runs."""
    from fieldid.gallery.retemplate import RetemplateError, Retemplater

    rt = Retemplater(
        gallery.store,
        gallery,
        target,
        limits=options["limits"],
        min_inter_eye_px=options["min_inter_eye_px"],
        workers=workers or None,
        batch_size=batch,
    )
    st = rt.start(
        who,
        drop_template_only=options["drop_template_only"],
        drop_unusable=options["drop_unusable"],
        seed=options["seed"],
        from_settings=options["from_settings"],
        extra=options["extra"],
    )
    if not quiet:
        verb = "resuming" if st.images_done or st.synthetic_done else "starting"
        console.print(
            f"{verb} job {st.job_id}: {st.from_model} → {st.to_model}, {st.remaining:,} to do "
            f"in {rt.workers} worker process(es); searches go on with {st.from_model} until the "
            "switch"
        )
    runs = []
    for attempt in range(SWITCH_ATTEMPTS):
        runs.append(_run_with_bar(rt, st.job_id, st.remaining))
        try:
            switched = rt.switch(st.job_id, who, extra=options["extra"])
            break
        except RetemplateError as e:
            if e.code != "retemplate.incomplete" or attempt == SWITCH_ATTEMPTS - 1:
                raise
    return {**switched.to_dict(), "job": st.job_id, "runs": [r.to_dict() for r in runs]}


def _run_with_bar(rt: Any, job_id: int, remaining: int) -> Any:
    with progress_bar() as bar:
        task = bar.add_task("re-templating", total=max(1, remaining))

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(1, total))

        return rt.run(job_id, progress=tick)


@gallery_app.command("retemplate")
@requires("retemplate")
def retemplate(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="The new model: mobileface-v2, dlib-resnet or onnx (with --onnx-path).",
        ),
    ] = None,
    flip: Annotated[
        bool, typer.Option("--flip/--no-flip", help="Fuse the mirrored face's template too.")
    ] = False,
    onnx_path: Annotated[
        Path | None, typer.Option("--onnx-path", help="With --model onnx: the model file.")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="A fixed search threshold for the new model (needed when it has no "
            "calibration); a fixed threshold of the old model is commented out at the switch."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes computing templates (default: one per CPU).")
    ] = 0,
    batch: Annotated[int, typer.Option(help="Images written per transaction.")] = 64,
    drop_template_only: Annotated[
        bool,
        typer.Option(
            "--drop-template-only",
            help="Delete, at the switch, the templates of identities that have no image and "
            "cannot be re-drawn (the people and their records stay).",
        ),
    ] = False,
    drop_unusable: Annotated[
        bool,
        typer.Option(
            "--drop-unusable",
            help="Delete, at the switch, enrolled images the new model cannot template.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for re-drawn synthetic identities.")] = 0,
    status: Annotated[
        bool, typer.Option("--status", help="Show the running job and do nothing.")
    ] = False,
    abandon: Annotated[
        bool,
        typer.Option("--abandon", help="Abandon the running job (the gallery is untouched)."),
    ] = False,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Move the gallery to another face model: every template computed again from the enrolled
    images, in worker processes, while searches go on with the old model; then one audited
    switch. Run it again after an interruption: it resumes.

    Acts as your account (FIELDID_TOKEN, --token-file, or your name and password): an admin's."""
    from fieldid.calibration.store import load_for
    from fieldid.gallery.retemplate import (
        RetemplateError,
        Target,
        embedder_settings,
        job_status,
        view_status,
    )
    from fieldid.gallery.retemplate import abandon as abandon_job

    out: dict[str, Any] = {}
    try:
        ws = open_workspace(workspace)
        try:
            who = operator(ws)
            if status or abandon:
                st = abandon_job(ws.store, who) if abandon else view_status(ws.store, who)
                if as_json:
                    print(json.dumps({"abandoned" if abandon else "job": st and st.to_dict()}))
                elif st is None:
                    console.print("no re-templating is running")
                else:
                    if abandon:
                        console.print(f"abandoned job {st.job_id}; the gallery is untouched")
                    console.print(_status_table(st))
                return
            if model is None:
                raise FieldidError("name the new model with --model", code="request.invalid")
            target = Target.of(
                ws.config.pipeline,
                model,
                flip=flip,
                onnx_path=None if onnx_path is None else str(onnx_path.resolve()),
            )
            cal = load_for(ws.root, str(target.model))
            if cal is None and threshold is None:
                raise RetemplateError(
                    f"{target.model} has no calibration: searches after the switch could not "
                    "say what a score means nor set a threshold. Calibrate it first (`fieldid "
                    "calibrate`), or give a fixed --threshold for it",
                    code="retemplate.uncalibrated",
                )
            extra = {"threshold": threshold, "calibration": None if cal is None else cal.id}
            options = {
                "drop_template_only": drop_template_only,
                "drop_unusable": drop_unusable,
                "seed": seed,
                "limits": ws.config.limits,
                "min_inter_eye_px": ws.config.enroll_min_inter_eye_px,
                "from_settings": embedder_settings(ws.config.pipeline),
                "extra": extra,
            }
            gallery = ws.bound_gallery()
            if gallery is not None and (
                gallery.model != target.model or job_status(ws.store) is not None
            ):
                out["switched"] = _move(gallery, target, who, workers, batch, options, as_json)
                ws.complete_model_switch(who.name)
            # The training gallery searches with the workspace's model: it moves too.
            training = ws.bound_gallery(training=True)
            if training is not None:
                try:
                    if training.model != target.model or job_status(training.store) is not None:
                        out["training"] = _move(
                            training, target, who, workers, batch, options, as_json
                        )
                finally:
                    training.store.close()
            if not out:
                raise RetemplateError(
                    f"the gallery already holds {target.model} templates: nothing to re-template",
                    code="retemplate.same_model",
                )
            out.update(calibration=extra["calibration"], threshold=threshold)
        finally:
            ws.close()
    except FieldidError as e:
        if e.code == "retemplate.unusable" and not as_json:
            t = Table(title="Images the new model could not template", title_justify="left")
            for col in ("image", "person", "code", "reason"):
                t.add_column(col)
            for im in e.details.get("images", []):
                t.add_row(str(im["image_id"]), im["external_id"], im["code"], im["message"])
            console.print(t)
        fail(e, as_json)
    if as_json:
        print(json.dumps(out, indent=2, default=str))
        return
    for key, what in (("switched", "the gallery"), ("training", "the training gallery")):
        sw = out.get(key)
        if sw is None:
            continue
        seconds = sum(r["seconds"] for r in sw["runs"])
        console.print(
            f"switched {what}: it now holds {sw['templates']:,} {escape(sw['to_model'])} "
            f"templates (generation {sw['generation']}); {sw['templates_deleted']:,} "
            f"{escape(sw['from_model'])} templates deleted; audit entry {sw['audit_seq']}; "
            f"computed in {seconds:.1f} s"
        )
        if sw["images_dropped"]:
            console.print(
                f"  {len(sw['images_dropped'])} unusable images dropped (listed in the audit entry)"
            )
        if sw["template_only_dropped"]:
            console.print(
                f"  {len(sw['template_only_dropped'])} template-only identities' templates dropped"
            )
    console.print(
        "calibration in force: "
        + (out["calibration"] or f"none; fixed threshold {out['threshold']}")
        + ". fieldid.toml names the new model."
    )


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
