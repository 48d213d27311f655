"""Document commands: ``fieldid document read``, ``fieldid document chip``, ``fieldid document
verify``.

They work offline on files: nothing is written, no workspace is opened, nothing is audited (an
operator's use of a document within a workspace belongs to the field app and API). ``verify``
uses the bundled face pipeline and its bundled calibration, as ``fieldid eval`` does without a
workspace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fieldid.cli.auth import no_account
from fieldid.cli.common import JsonOpt, console, fail
from fieldid.errors import FieldidError

document_app = typer.Typer(
    help="Identity documents (offline, on files): read the MRZ, verify chip data, compare a "
    "face 1:1 with the portrait.",
    no_args_is_help=True,
)

CscaOpt = Annotated[
    Path | None,
    typer.Option(
        "--csca", help="Folder of CSCA certificates (PEM or DER) to verify chips against."
    ),
]


def _print_reading(d: dict[str, Any]) -> None:
    state = "[bold green]valid[/]" if d["valid"] else "[bold red]NOT valid[/]"
    console.print(
        f"{d['format']} MRZ: {state} (confidence {d['confidence']:.2f}; expiry "
        f"{d['expiry_state']} on {d['checked_on']})"
    )
    for line in d["mrz_lines"]:
        console.print(f"  {escape(line)}")
    t = Table(title="Fields", title_justify="left")
    t.add_column("field")
    t.add_column("value")
    for k, v in d["fields"].items():
        t.add_row(k.replace("_", " "), escape(str(v)))
    console.print(t)
    c = Table(title="Check digits", title_justify="left")
    for col in ("check", "state", "read", "computed"):
        c.add_column(col)
    for name, s in d["checks"].items():
        colour = {"valid": "green", "invalid": "red"}.get(s["state"], "yellow")
        c.add_row(name.replace("_", " "), f"[{colour}]{s['state']}[/]", s["read"], s["computed"])
    console.print(c)
    for x in d["corrections"]:
        console.print(
            f"corrected line {x['line']} column {x['column']}: read {escape(x['read'])}, "
            f"taken as {escape(x['corrected'])} ({x['reason'].replace('_', ' ')})"
        )
    for x in d["length_repairs"]:
        console.print(f"line {x['line']}: {escape(x['repair'])}")
    for x in d["uncertain"]:
        console.print(
            f"[yellow]uncertain[/] line {x['line']} column {x['column']} read {escape(x['read'])} "
            f"(confidence {x['confidence']:.2f}; no check digit covers it)"
        )


def _print_chip(d: dict[str, Any]) -> None:
    if d["verified"]:
        console.print("chip: [bold green]passive authentication holds[/]")
    else:
        console.print("chip: [bold red]NOT verified[/]")
    for r in d["reasons"]:
        console.print(f"  {escape('[' + r['code'] + ']')} {escape(r['message'])}")
    for k, v in d["data_groups"].items():
        console.print(f"  {k} hash: {v}")
    if d["document_signer"]:
        console.print(f"  document signer: {escape(d['document_signer'])}")
    if d["csca"]:
        console.print(f"  issued by CSCA: {escape(d['csca'])}")
    for line in d["mrz_lines"] or []:
        console.print(f"  DG1: {escape(line)}")
    if d["face_image"]:
        console.print(f"  DG2: {d['face_image']['format']} face, {d['face_image']['bytes']} bytes")


@document_app.command("read")
@no_account("reads a document photo on file: no workspace, nothing stored or audited")
def read(
    image: Annotated[Path, typer.Argument(help="Photo of the data page (JPEG, PNG or WebP).")],
    as_json: JsonOpt = False,
) -> None:
    """Read the MRZ of a passport, ID card or visa photo and check its check digits."""
    from fieldid.documents.read import read_document

    try:
        r = read_document(image)
    except FieldidError as e:
        fail(e, as_json)
    d = r.to_dict()
    if as_json:
        print(json.dumps(d, indent=2))
        return
    _print_reading(d)


@document_app.command("chip")
@no_account("checks chip files on disk: no workspace, nothing stored or audited")
def chip(
    folder: Annotated[Path, typer.Argument(help="Folder with EF_SOD, DG1 (and DG2) files.")],
    csca: CscaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify chip data by passive authentication (SOD signature, CSCA, data group hashes)."""
    from fieldid.documents.chip import load_chip_dir, verify_chip

    try:
        v = verify_chip(load_chip_dir(folder), csca)
    except FieldidError as e:
        fail(e, as_json)
    d = v.to_dict()
    if as_json:
        print(json.dumps(d, indent=2))
        return
    _print_chip(d)


@document_app.command("verify")
@no_account(
    "compares two photos on file with the bundled model: no workspace, no gallery, nothing "
    "stored or audited"
)
def verify(
    document: Annotated[Path, typer.Argument(help="Photo of the data page.")],
    face: Annotated[Path, typer.Argument(help="Photo of the person's face.")],
    chip_dir: Annotated[
        Path | None, typer.Option("--chip", help="Folder of chip files (EF_SOD, DG1, DG2).")
    ] = None,
    csca: CscaOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read the document, verify its chip (if given), and compare the face with its portrait."""
    from fieldid.calibration import load_for
    from fieldid.config import WorkspaceConfig
    from fieldid.documents.chip import load_chip_dir
    from fieldid.documents.service import DocumentChecker
    from fieldid.pipeline import FacePipeline

    try:
        cfg = WorkspaceConfig()
        pipeline = FacePipeline.from_spec(cfg.pipeline, limits=cfg.limits)
        checker = DocumentChecker(
            pipeline,
            load_for(None, str(pipeline.model)),
            csca_folder=csca,
            verify_target_fmr=cfg.verify_target_fmr,
            limits=cfg.limits,
        )
        files = None if chip_dir is None else load_chip_dir(chip_dir)
        result = checker.check(document, face, chip=files)
    except FieldidError as e:
        fail(e, as_json)
    d = result.to_dict()
    if as_json:
        print(json.dumps(d, indent=2))
        return
    console.print(
        f"[bold]evidence: {d['evidence'].replace('_', ' ')}[/] (expiry {d['expiry_state']})"
    )
    if d["mrz"]:
        _print_reading(d["mrz"])
    elif d["mrz_error"]:
        console.print(f"MRZ: [red]{escape(d['mrz_error']['message'])}[/]")
    if d["chip"]:
        _print_chip(d["chip"])
    for x in d["chip_page_conflicts"]:
        console.print(
            f"[bold red]chip and page disagree[/] on {x['field']}: page {escape(str(x['page']))}, "
            f"chip {escape(str(x['chip']))}"
        )
    m = d["face"]
    if m is None:
        console.print(f"face: [red]{escape(d['face_error']['message'])}[/]")
        return
    side = "at or above" if m["above_threshold"] else "below"
    console.print(
        f"face against the {m['portrait_source'].replace('_', ' ')} portrait: score "
        f"{m['score']:.4f}, {side} the threshold {m['threshold']:.4f} ({m['threshold_set_by']}; "
        f"{m['model']}). A score to weigh, not an identification."
    )
    fmr = "n/a" if m["fmr"] is None else f"{m['fmr']:.2g}"
    console.print(f"FMR at this score: {fmr}: {escape(m['meaning'])}")
    pq, lq = m["portrait_quality"], m["live_quality"]
    console.print(
        f"portrait quality {pq['unified']}/100 ({pq['band']}), "
        f"live face quality {lq['unified']}/100 ({lq['band']})"
    )


def register(app: typer.Typer) -> None:
    """Add ``fieldid document`` to the main app."""
    app.add_typer(document_app, name="document")
