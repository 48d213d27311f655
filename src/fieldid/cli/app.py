"""The ``fieldid`` command line."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fieldid.cli.accountability import register as register_accountability
from fieldid.cli.auth import client_name, no_account, operator, requires
from fieldid.cli.calibration import calibrate
from fieldid.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    add_columns,
    console,
    err_console,
    fail,
    progress_bar,
)
from fieldid.cli.common import open_workspace as _open
from fieldid.cli.database import register as register_database
from fieldid.cli.documents import register as register_documents
from fieldid.cli.gallery import register as register_gallery
from fieldid.cli.index import register as register_index
from fieldid.cli.keys import register as register_keys
from fieldid.cli.location import register as register_location
from fieldid.cli.models import models_app
from fieldid.cli.person import register as register_person
from fieldid.cli.records import register as register_records
from fieldid.cli.transparency import register as register_transparency
from fieldid.cli.users import token_app, user_app, write_secret
from fieldid.errors import FieldidError

app = typer.Typer(
    name="fieldid",
    help="Field identity verification: searches give leads, never determinations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
register_records(app)
register_person(app)
register_documents(app)
register_database(app)
register_index(app)
register_gallery(app)
register_keys(app)
app.command("calibrate")(calibrate)

PurposeOpt = Annotated[str, typer.Option(help="Why: one of the workspace's permitted purposes.")]
CaseOpt = Annotated[str, typer.Option("--case", help="Case reference this use belongs to.")]


def _quality_table(q: dict[str, Any]) -> Table:
    t = Table(title=f"Probe quality: {q['unified']}/100 ({q['band']})", title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("score", justify="right")
    for name, m in q["measures"].items():
        t.add_row(name.replace("_", " "), f"{m['value']:g} {m['unit']}", str(m["score"]))
    return t


@app.command()
@no_account("creates the workspace and its first admin account")
def init(
    workspace: Annotated[Path, typer.Argument(help="Folder to create.")],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Keep the data in this database (postgresql://user@host:5432/db) instead of "
            "W/fieldid.db; written to [database] url.",
        ),
    ] = None,
    admin: Annotated[str, typer.Option(help="Name of the first admin account.")] = "admin",
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the admin's password from standard input."),
    ] = False,
    generate_password: Annotated[
        bool,
        typer.Option(
            "--generate-password",
            help="Generate the admin's password and show it once (the default without a terminal).",
        ),
    ] = False,
    token_out: Annotated[
        Path | None,
        typer.Option(
            "--token-out",
            help="Also issue the admin an API token and write it to this file (mode 600), for "
            "scripts: fieldid … --token-file FILE.",
        ),
    ] = None,
) -> None:
    """Create a workspace (configuration, database, index folder) and its first admin account.

    The admin's password is asked twice at a terminal, read with --password-stdin, or generated
    and shown once (--generate-password, or without a terminal). The admin then adds the
    operators: fieldid user add NAME --role officer."""
    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.cli.users import read_new_password
    from fieldid.workspace import Workspace

    generated = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif generate_password or not sys.stdin.isatty():
        password = generated = secrets.token_urlsafe(15)
    else:
        password = read_new_password(f"password for the admin {admin}")
    try:
        ws = Workspace.init(workspace, database_url=database_url)
    except FieldidError as e:
        fail(e)
    try:
        accounts = Accounts(ws.store, ws.clock)
        info = accounts.add_user(admin, Role.ADMIN, password, by=f"init:{client_name()}")
        token = None
        if token_out is not None:
            token = accounts.issue_token(admin, label="fieldid init --token-out", by=admin)
            write_secret(token_out, token.secret)
    except FieldidError as e:
        ws.close()
        fail(e)
    where = ws.store.shown_url
    created, source, kek = ws.key_created, ws.keys.source, ws.keys.kek_id
    ws.close()
    console.print(f"workspace created at {workspace} (configuration: {workspace}/fieldid.toml)")
    console.print(f"database: {escape(where)}")
    console.print(f"admin account: {info.name}")
    if generated is not None:
        err_console.print(
            f"the admin's password, shown once (store it now): {generated}",
            markup=False,
            highlight=False,
        )
    if token is not None:
        console.print(f"admin API token {token.id} written to {token_out} (mode 600)")
    console.print(f"biometric data sealed under the key {kek} from {escape(source)}")
    if created is not None:
        from fieldid.cli.keys import key_created_notice

        key_created_notice(created, kek)


@app.command()
@requires("enroll")
def enroll(
    source: Annotated[Path, typer.Argument(help="Folder <identity>/<image> or CSV path,identity.")],
    workspace: WorkspaceOpt = Path("."),
    synthetic: Annotated[bool, typer.Option(help="Mark the people enrolled as synthetic.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Enrol a labelled image set (admin). Running it again enrols nothing twice."""
    from fieldid.dataset import read_labelled

    try:
        ws = _open(workspace)
        who = operator(ws)
        items = read_labelled(source)
        with progress_bar() as bar:
            task = bar.add_task("enrolling", total=len(items))
            summary = ws.enrollment.enroll_images(
                items,
                operator=who.name,
                source_name=str(source),
                synthetic=synthetic,
                progress=lambda n: bar.advance(task, n),
            )
        size = ws.gallery.size()
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        out = summary.to_dict()
        out["gallery"] = {"persons": size.persons, "templates": size.templates}
        print(json.dumps(out, indent=2))
        return
    console.print(
        f"enrolled {summary.enrolled} images ({summary.new_people} new people); "
        f"{summary.already_enrolled} already enrolled; {len(summary.refused)} refused. "
        f"Gallery: {size.persons} people, {size.templates} templates."
    )
    if summary.possible_duplicates:
        console.print(
            f"[bold]{len(summary.possible_duplicates)} possible duplicate(s)[/]: an image matched "
            "a different person very closely; see `fieldid review list` (nothing was merged)."
        )
    if summary.dedupe_off:
        console.print(f"dedupe off: {summary.dedupe_off}")
    if summary.refused:
        t = Table(title="Refused (failure to acquire or unusable)", title_justify="left")
        add_columns(t, "image", "code", "reason", ids=("image", "code"))
        for r in summary.refused:
            t.add_row(r.path, r.code, r.message)
        console.print(t)


def _attr(name: str, purpose: str, case: str) -> Any:
    from fieldid.audit import Attribution

    return Attribution(operator=name, purpose=purpose, case_ref=case)


@app.command()
@requires("search")
def search(
    purpose: PurposeOpt,
    case: CaseOpt,
    photo: Annotated[
        Path | None, typer.Argument(help="The probe photo (JPEG, PNG or WebP).")
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    top: Annotated[int, typer.Option("--top", help="At most this many candidates.")] = 0,
    document: Annotated[
        list[str] | None,
        typer.Option(
            "--document",
            help="A document the person presents: type=passport,number=…,country=…,name=…,"
            "dob=YYYY-MM-DD,nationality=…,expiry=… (repeat for several).",
        ),
    ] = None,
    training: Annotated[
        bool, typer.Option("--training", help="Search the separate training gallery only.")
    ] = False,
    investigation: Annotated[
        bool,
        typer.Option(
            "--investigation",
            help="A ranked list regardless of the threshold (roles that permit it only); "
            "labelled as an investigation list here and in the audit.",
        ),
    ] = False,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            help="Search every photo of a folder, or of a CSV (columns path, optional case_ref "
            "and purpose): the model loads once, one audited search per probe, one JSON line "
            "each (see docs/api.md).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --batch: write the JSON lines here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search one face against the gallery: the probe's quality, then candidates (leads).

    Acts as your account (FIELDID_TOKEN, --token-file, or your name and password)."""
    from fieldid.not_checked import capture_text
    from fieldid.records.documents import PresentedDocument

    if (photo is None) == (batch is None):
        raise typer.BadParameter("give one photo, or --batch FOLDER|CSV (not both)")
    if batch is not None:
        if document:
            raise typer.BadParameter("--document belongs to one person: not with --batch")
        from fieldid.cli.batch import search_batch

        search_batch(
            batch,
            workspace=workspace,
            purpose=purpose,
            case_ref=case,
            out=out,
            top_k=top or None,
            investigation=investigation,
            training=training,
        )
        return
    assert photo is not None
    try:
        ws = _open(workspace)
        who = operator(ws, "investigation" if investigation else None)
        presented = [PresentedDocument.parse(d) for d in document or []]
        result = ws.searches.search(
            photo,
            _attr(who.name, purpose, case),
            top_k=top or None,
            presented=presented,
            training=training,
            investigation=investigation,
            actor=who,
        )
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(_quality_table(result.quality))
    tif = result.threshold_in_force or {}
    how = (
        f"set for FPIR {tif['target_fpir']:g} at this gallery size"
        if tif.get("how") == "target_fpir"
        else "configured"
    )
    console.print(
        f"search {result.search_id} (audit entry {result.audit_seq}): gallery of "
        f"{result.gallery_persons:,} people "
        f"({result.gallery_templates:,} templates), model {result.model}, threshold "
        f"{result.threshold:.4f} ({how})"
    )
    console.print(f"photo {escape(capture_text(result.capture))}")
    if result.rates_unavailable:
        console.print(f"[bold red]rates unavailable:[/] {escape(result.rates_unavailable)}")
    if result.list_kind == "investigation":
        console.print(f"[bold magenta]{escape(result.list_label)}[/]")
    if result.receipt_code:
        console.print(f"receipt for the person photographed: {result.receipt_code}")
    if not result.candidates:
        console.print("[bold]no candidate at or above the threshold[/]")
        return
    console.print(f"[bold yellow]{result.notice}[/]")
    if result.training:
        console.print("[bold]training search[/]: training gallery only, left out of statistics")
    for i, d in enumerate(result.presented_documents):
        ranks = d["conflicts_with_ranks"]
        console.print(
            f"[bold]presented document {i + 1}[/]: {escape(d['document_type'])} "
            f"({escape(str(d['issuing_country']))})"
            + (
                f" — [bold red]conflicts with the records of candidate(s) {ranks}[/]"
                if ranks
                else " — no conflict found with the candidates' records"
            )
        )
    console.print(candidates_table(result))
    console.print(f"what each score means (probe quality {result.quality_band}):")
    for c in result.candidates:
        console.print(f"  {c.rank}. {escape(c.meaning_text)}")
    for c in result.candidates:
        for x in c.presented_document_conflicts:
            console.print(
                f"  rank {c.rank}: presented {x['field']} {escape(str(x['presented']))} differs "
                f"from: "
                + "; ".join(
                    f"{escape(str(r['value']))} ({r['source']}, {r['date'] or 'undated'})"
                    for r in x["records"]
                )
            )
        for x in c.conflicts:
            console.print(f"  rank {c.rank}: records disagree on {x['field']} ({x['rule']})")
        for st in c.summary[:5]:
            console.print(f"  rank {c.rank}: {escape(st['text'])}")


def candidates_table(result: Any) -> Table:
    """The candidates of a search (a ``CandidateList``); ids are never cut short."""
    title = "Investigation list" if result.list_kind == "investigation" else "Candidates"
    t = Table(title=title, title_justify="left")
    cols = ["rank", "person id", "display name", "score", "FMR", "records", "conflicts"]
    if result.list_kind == "investigation":
        cols.append("threshold")
    add_columns(t, *cols, ids=("person id",))
    for c in result.candidates:
        name = c.display_name + (" [dim](synthetic)[/]" if c.synthetic else "")
        fmr = "n/a" if c.fmr is None else f"{c.fmr:.2g}"
        n = sum(len(g["records"]) for g in c.records)
        flags = len(c.conflicts) + len(c.presented_document_conflicts)
        row = [str(c.rank), c.external_id, name, f"{c.score:.4f}", fmr, str(n), str(flags)]
        if result.list_kind == "investigation":
            row.append("above" if c.above_threshold else "[red]below[/]")
        t.add_row(*row)
    return t


@app.command()
@requires("verify")
def verify(
    photo_a: Annotated[Path, typer.Argument(help="First photo.")],
    photo_b: Annotated[Path, typer.Argument(help="Second photo.")],
    purpose: PurposeOpt,
    case: CaseOpt,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Compare two photos 1:1 and print their similarity score."""

    try:
        ws = _open(workspace)
        who = operator(ws)
        v = ws.searches.verify(photo_a, photo_b, _attr(who.name, purpose, case))
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(v.to_dict(), indent=2))
        return
    side = "at or above" if v.above_threshold else "below"
    console.print(
        f"verification (audit entry {v.audit_seq}): score {v.score:.4f}, {side} the threshold "
        f"{v.threshold:.4f} ({v.threshold_set_by}; {v.model}). A score to weigh, not an "
        "identification."
    )
    fmr = "n/a" if v.fmr is None else f"{v.fmr:.2g}"
    console.print(f"FMR at this score: {fmr}: {escape(v.meaning_text)}")


@app.command("eval")
@requires(
    "evaluate",
    except_when="without --workspace it measures the bundled pipeline on a labelled dataset and "
    "touches no workspace",
)
def evaluate(
    dataset: Annotated[Path, typer.Option(help="Labelled set: folder <identity>/<image> or CSV.")],
    seed: Annotated[int, typer.Option(help="Seed for sampling and splits.")] = 0,
    max_impostor_pairs: Annotated[int, typer.Option(help="Impostor pairs sampled.")] = 200_000,
    nonmated_fraction: Annotated[
        float, typer.Option(help="Share of people held out of the gallery as non-mated.")
    ] = 0.3,
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="Evaluate this workspace's pipeline at its operating threshold and write "
            "W/evaluation/latest.json (default: the bundled pipeline, nothing written)."
        ),
    ] = None,
    cache: Annotated[Path | None, typer.Option(help="Cache templates in this .npz file.")] = None,
    threshold: Annotated[
        list[float] | None, typer.Option(help="Also report the error rates at this threshold.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure accuracy on a labelled set: FTA, TAR at FAR, EER, rank-k, FNIR at FPIR.

    With --workspace: at that workspace's operating threshold, with the calibration check and
    demographic differentials, written to W/evaluation/latest.json for the oversight report."""
    from fieldid.config import WorkspaceConfig
    from fieldid.dataset import read_labelled
    from fieldid.evaluation.harness import EvalOptions, evaluate_dataset
    from fieldid.pipeline import FacePipeline

    doc: dict[str, Any] | None = None
    try:
        items = read_labelled(dataset)
        opts = EvalOptions(
            seed=seed,
            max_impostor_pairs=max_impostor_pairs,
            nonmated_fraction=nonmated_fraction,
            thresholds=tuple(threshold or ()),
        )
        if workspace is not None:
            from fieldid.evaluation.calcheck import evaluate_workspace

            ws = _open(workspace)
            # Checks the calibration against this workspace's own gallery: a use, audited.
            who = operator(ws)
            with progress_bar() as bar:
                task = bar.add_task("templates", total=len(items))
                report, doc, path = evaluate_workspace(
                    ws,
                    items,
                    opts,
                    dataset=str(dataset),
                    cache=cache,
                    progress=lambda n: bar.advance(task, n),
                )
            ws.store.append_audit(
                "evaluate",
                operator=who.name,
                payload={
                    "role": who.role.value,
                    "dataset": str(dataset),
                    "images": len(items),
                    "written": str(path),
                },
            )
            ws.close()
        else:
            cfg = WorkspaceConfig()
            pipeline = FacePipeline.from_spec(cfg.pipeline, limits=cfg.limits)
            with progress_bar() as bar:
                task = bar.add_task("templates", total=len(items))
                report = evaluate_dataset(
                    pipeline, items, opts, cache=cache, progress=lambda n: bar.advance(task, n)
                )
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        out = report.to_dict()
        if doc is not None:
            out["latest"] = doc
        print(json.dumps(out, indent=2, default=str))
        return
    console.print(report.to_markdown())
    if doc is not None:
        console.print(escape(_latest_summary(doc)))
        console.print(f"written to {path}")


def _latest_summary(doc: dict[str, Any]) -> str:
    op = doc["operating_point"]
    lines = [
        f"operating threshold {op['threshold']:.4f}: FMR {op['fmr']:.3g}, FNMR {op['fnmr']:.3g}"
    ]
    for g in doc["groups"]:
        lines.append(
            f"  group {g['group']}: {g['n_images']} images, FMR {g['fmr']}, FNMR {g['fnmr']}"
        )
    if doc["group_ratios"]:
        r = doc["group_ratios"]
        lines.append(
            f"  worst/best: FMR {r['fmr_worst_to_best']:.3g}, FNMR {r['fnmr_worst_to_best']:.3g}"
        )
    check = doc.get("calibration_check")
    if check is None:
        lines.append(f"calibration check: none ({doc.get('calibration_unavailable', '')})")
        return "\n".join(lines)
    lines.append(f"calibration check of {check['calibration']}:")
    for r in check["rows"]:
        where = f" at {r['gallery_size']:,}" if r["gallery_size"] else ""
        if r.get("gallery") == "workspace":
            where += " (this workspace's gallery)"
        band = f" (band {r['band']})" if r.get("band", "all") != "all" else ""
        if r["enough_data"]:
            flag = ""
        elif "not_judged" in r:
            flag = " (not judged: synthetic distractors do not score like real strangers here)"
        else:
            flag = " (too few trials to judge)"
        lines.append(
            f"  {r['kind'].upper()} {r['target']:g}{where}{band}: predicted "
            f"{r['predicted']:.3g}, measured {r['measured']:.3g}{flag}"
        )
    state = "DRIFTED (more than a factor of 2)" if check["drifted"] else "within a factor of 2"
    factor = check["max_ratio"]
    lines.append(f"  {state}; largest factor {'n/a' if factor is None else f'{factor:.3g}'}")
    return "\n".join(lines)


@app.command()
@no_account(
    "makes or reuses its own demo workspace and creates its demo operators; the app it serves "
    "authenticates every request"
)
def demo(
    workspace: Annotated[
        Path | None,
        typer.Option(help="Demo workspace folder (default: ~/.local/share/fieldid/demo)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    distractors: Annotated[int, typer.Option(help="Synthetic template-only identities.")] = 10_000,
    console_only: Annotated[
        bool,
        typer.Option(
            "--console", help="Run the command-line walkthrough instead of serving the app."
        ),
    ] = False,
) -> None:
    """Serve the field app on a demo workspace of synthetic identities (http://127.0.0.1:8000).

    Prints a demo officer's and supervisor's passwords (new at every start)."""
    try:
        if console_only:
            from fieldid.demo import run_demo

            run_demo(workspace or Path("demo-workspace"), distractors=distractors, console=console)
            return
        from fieldid.demo.server import serve_demo

        serve_demo(workspace, host=host, port=port, distractors=distractors, console=console)
    except FieldidError as e:
        fail(e)


@app.command()
@no_account("the server it starts authenticates every request against the workspace's accounts")
def serve(
    workspace: WorkspaceOpt = Path("."),
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    cookie_secure: Annotated[
        str, typer.Option(help="Session cookie Secure flag: auto, always or never.")
    ] = "auto",
    trust_forwarded_proto: Annotated[
        bool, typer.Option(help="Believe X-Forwarded-Proto (only behind your own TLS proxy).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Server processes (above 1 only on PostgreSQL; docs/deploy-postgresql.md)."
        ),
    ] = 1,
    face_workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Face-work processes per server process (default: the cores shared out "
            "among the server processes).",
        ),
    ] = None,
    face_queue: Annotated[
        int,
        typer.Option(
            min=0,
            help="Searches that may wait per server process while its face workers are busy; "
            "one more is refused with 503 service.busy.",
        ),
    ] = 8,
    request_log: Annotated[
        str,
        typer.Option(
            help="Where the JSON request lines go: '-' (stderr), a file (appended), or 'off'."
        ),
    ] = "-",
) -> None:
    """Serve the API and the field app on a workspace (put it behind TLS beyond localhost).

    Logs one JSON line per request (route template, status, ms, operator, worker)."""
    from fieldid.service import ServiceSettings
    from fieldid.service.serve import face_workers_per_process
    from fieldid.service.serve import serve as run_server

    if cookie_secure not in {"auto", "always", "never"}:
        raise typer.BadParameter("--cookie-secure: auto, always or never")
    settings = ServiceSettings(
        cookie_secure=cookie_secure,  # type: ignore[arg-type]
        trust_forwarded_proto=trust_forwarded_proto,
        face_workers=face_workers or face_workers_per_process(workers),
        face_queue=face_queue,
    )
    try:
        run_server(
            workspace,
            settings,
            host=host,
            port=port,
            workers=workers,
            request_log=None if request_log == "off" else request_log,
        )
    except FieldidError as e:
        fail(e)


register_accountability(app)
register_transparency(app)
register_location(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
