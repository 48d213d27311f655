"""Transparency commands: ``fieldid pia`` (the privacy impact assessment, versioned and signed)
and ``fieldid transparency`` (the publishable report), each with ``verify``.

Writing either acts as an authenticated account (:mod:`fieldid.cli.auth`), audited under its
name; checking a signed file needs none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fieldid.cli.auth import no_account, operator, requires
from fieldid.cli.common import JsonOpt, WorkspaceOpt, console, fail
from fieldid.cli.common import open_workspace as _open
from fieldid.errors import FieldidError

KeyOpt = Annotated[
    Path | None,
    typer.Option(help="Ed25519 private key (PEM). Default: W/keys/audit-ed25519.pem."),
]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(help="The signer's public key (PEM), obtained by another channel."),
]

pia_app = typer.Typer(
    help="The privacy impact assessment, written from the live system: `fieldid pia -w W "
    "--out pia.md` writes the next signed version; `fieldid pia verify` checks versions.",
    invoke_without_command=True,
)
transparency_app = typer.Typer(
    help="The publishable transparency report: `fieldid transparency -w W --from D --to D "
    "--out report.html|report.json`; `fieldid transparency verify FILE` checks one.",
    invoke_without_command=True,
)


def _print_checks(checks: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(checks, indent=2))
        return
    for c in checks:
        colour = "green" if c["ok"] else "bold red"
        word = "valid" if c["ok"] else "NOT valid"
        console.print(f"[{colour}]{word}[/] {escape(str(c['path']))}: {escape(str(c['message']))}")


@pia_app.callback()
@requires("pia")
def pia(
    ctx: typer.Context,
    workspace: WorkspaceOpt = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Also write the assessment as pia.md or pia.html.")
    ] = None,
    agency: Annotated[
        Path | None,
        typer.Option(
            help="Take the agency's sections from this file (an edited pia.md, or JSON) instead "
            "of W/pia/agency.md."
        ),
    ] = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the next version of the privacy impact assessment (W/pia/NNNN.json, signed)."""
    if ctx.invoked_subcommand is not None:
        return
    from fieldid.transparency.pia import generate

    try:
        ws = _open(workspace)
        res = generate(ws, operator(ws), out=out, agency=agency, key=key)
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(res.doc, indent=2, ensure_ascii=False))
        return
    ch = res.doc["changes"]
    console.print(
        f"assessment version {res.version} written to {res.path} (signed, key "
        f"{res.signature['key_id']}); {escape(ch['statement'])}"
    )
    if res.out is not None:
        console.print(f"rendered to {res.out} (signature {res.out}.sig)")
    missing = [a["title"] for a in res.doc["agency"].values() if not a.get("text")]
    if missing:
        where = res.agency_file or (res.path.parent / "agency.md")
        console.print(
            f"[yellow]for the agency to write:[/] {', '.join(missing)} (in {where}, between "
            "the markers; run fieldid pia again to record them)"
        )


@pia_app.command("verify")
@no_account("checks the signed assessment files against their signatures; no personal data")
def pia_verify(
    file: Annotated[
        Path | None,
        typer.Argument(help="A signed file: a stored version or a rendering (pia.md/pia.html)."),
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    version: Annotated[
        int | None, typer.Option(help="Check this stored version (default: every version).")
    ] = None,
    public_key: PublicKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check stored versions (signature, content, numbering, link to the previous version), or
    one signed file. Exit 1 when a check fails."""
    from fieldid.audit.export import load_public_key
    from fieldid.transparency.pia import verify_versions
    from fieldid.transparency.signing import verify_file

    try:
        key = None if public_key is None else load_public_key(public_key)
        if file is not None:
            checks = [verify_file(file, key)]
        else:
            checks = verify_versions(workspace, version, key)
    except FieldidError as e:
        fail(e, as_json)
    _print_checks([c.to_dict() for c in checks], as_json)
    if not all(c.ok for c in checks):
        raise typer.Exit(code=1)


@transparency_app.callback()
@requires("report")
def transparency(
    ctx: typer.Context,
    workspace: WorkspaceOpt = Path("."),
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC).")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last day, included (YYYY-MM-DD, UTC).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="report.html or report.json (signed: FILE.sig).")
    ] = None,
    key: KeyOpt = None,
) -> None:
    """Write the transparency report: aggregate counts only, small cells suppressed, signed."""
    if ctx.invoked_subcommand is not None:
        return
    from fieldid.report import parse_day
    from fieldid.transparency.public_report import publish

    if out is None or date_from is None or date_to is None:
        fail(
            FieldidError(
                "give --from YYYY-MM-DD --to YYYY-MM-DD --out report.html (or .json)",
                code="transparency.no_output",
            )
        )
    try:
        start, end = parse_day(date_from), parse_day(date_to, end=True)
        ws = _open(workspace)
        data, sig = publish(ws, operator(ws), start, end, out, key=key)
        ws.close()
    except FieldidError as e:
        fail(e)
    sup = data["suppression"]
    console.print(
        f"transparency report for {data['period']['from']} to {data['period']['to']} written to "
        f"{out}; {sup['small_cells']} counts under {sup['k']} shown as '< {sup['k']}', "
        f"{sup['withheld_cells']} withheld so they cannot be worked back; signed with key "
        f"{sig['key_id']} ({out}.sig, public key {out}.pub.pem)"
    )
    if data.get("warning"):
        console.print(f"[yellow]warning:[/] {escape(data['warning'])}")


@transparency_app.command("verify")
@no_account("checks a published report against its signature: no workspace")
def transparency_verify(
    file: Annotated[Path, typer.Argument(help="The report (HTML or JSON).")],
    public_key: PublicKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a report against its signature (FILE.sig). Needs no workspace. Exit 1 on failure."""
    from fieldid.audit.export import load_public_key
    from fieldid.transparency.signing import verify_file

    try:
        check = verify_file(file, None if public_key is None else load_public_key(public_key))
    except FieldidError as e:
        fail(e, as_json)
    _print_checks([check.to_dict()], as_json)
    if not check.ok:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``pia`` and ``transparency`` to the ``fieldid`` app."""
    app.add_typer(pia_app, name="pia")
    app.add_typer(transparency_app, name="transparency")
