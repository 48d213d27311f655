"""Accountability commands: ``audit verify|export|verify-export``, ``purge``, ``report``,
``redress export``, and ``adjudicate`` / ``close`` / ``second`` / ``override``.

Each acts as an authenticated account (:mod:`fieldid.cli.auth`); the core enforces what its role
may do and records it in the audit log under its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from fieldid.cli.auth import no_account, operator, requires
from fieldid.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    err_console,
    fail,
)
from fieldid.cli.common import open_workspace as _open
from fieldid.errors import FieldidError

audit_app = typer.Typer(help="Verify and export the hash-chained audit log.", no_args_is_help=True)
redress_app = typer.Typer(
    help="What was done with a person's face and records.", no_args_is_help=True
)

# -- audit ---------------------------------------------------------------------------------------


@audit_app.command("verify")
@requires("audit_read")
def audit_verify(
    workspace: WorkspaceOpt = Path("."),
    head: Annotated[
        Path | None,
        typer.Option(
            "--head", help="An earlier export: also check the log still holds its signed head."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every entry of the audit log; name the first bad one (edited, deleted, inserted,
    reordered, truncated). Exit 1 when the log does not verify."""
    from fieldid.audit.export import read_export
    from fieldid.audit.ops import verify_store

    try:
        known = None
        if head is not None:
            h = read_export(head).head
            known = (int(h["seq"]), str(h["hash"]))
        ws = _open(workspace)
        who = operator(ws)
        result = verify_store(ws.store, known)
        ws.store.append_audit(
            "audit_verify",
            operator=who.name,
            payload={"role": who.role.value, "ok": result.ok, "checked": result.checked},
        )
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    elif result.ok:
        console.print(
            f"[green]audit log intact[/]: {result.checked} entries, seq {result.start_seq} to "
            f"{result.head_seq}; head {result.head_hash}"
        )
        if result.message != "the audit log is intact":
            console.print(result.message)
    else:
        console.print(
            f"[bold red]audit log does not verify[/]: {escape(result.message)} "
            + escape(f"[{result.kind}, first bad entry {result.bad_seq}]")
        )
    if not result.ok:
        raise typer.Exit(code=1)


@audit_app.command("export")
@requires("audit_read")
def audit_export(
    workspace: WorkspaceOpt = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="JSONL file (default: W/exports/audit-<time>.jsonl).")
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(help="Ed25519 private key (PEM). Default: W/keys/audit-ed25519.pem."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the audit log with an Ed25519-signed head, and the public key beside it."""
    from fieldid.audit.ops import export_audit

    try:
        ws = _open(workspace)
        res = export_audit(ws.store, ws.root, ws.clock, operator(ws), out, key)
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(res.to_dict(), indent=2))
        return
    console.print(
        f"exported {res.head['count']} entries (seq {res.head['first_seq']}-{res.head['seq']}) "
        f"to {res.path}\nsigned head {res.head['hash']} with key {res.head['key_id']} "
        f"({res.key})\npublic key: {res.public_key}"
    )


@audit_app.command("verify-export")
@no_account("checks export files against their signature: no workspace")
def audit_verify_export(
    old: Annotated[Path, typer.Argument(help="An export (the earlier one when giving two).")],
    new: Annotated[Path | None, typer.Argument(help="A later export that must extend OLD.")] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="The signer's public key (PEM). Default: the one beside OLD."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """For an outside party: check an export's hashes and signature, and that NEW extends OLD.
    Needs no workspace. Exit 1 when the check fails."""
    from fieldid.audit.export import (
        load_public_key,
        pub_path,
        read_export,
        verify_export,
        verify_extension,
    )

    try:
        key = load_public_key(public_key or pub_path(old))
        a = read_export(old)
        check = verify_export(a, key) if new is None else verify_extension(a, read_export(new), key)
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(check.to_dict(), indent=2))
    else:
        colour = "green" if check.ok else "bold red"
        console.print(f"[{colour}]{'valid' if check.ok else 'NOT valid'}[/]: {check.message}")
    if not check.ok:
        raise typer.Exit(code=1)


# -- purge ---------------------------------------------------------------------------------------


@requires("purge")
def purge(
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Remove everything held past its retention period (every data class), and audit it."""
    try:
        ws = _open(workspace)
        report = ws.retention.purge(actor=operator(ws), trigger="manual")
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    t = Table(title=f"Purge at {report.at.isoformat()}", title_justify="left")
    t.add_column("data class")
    t.add_column("removed", justify="right")
    for k, v in report.counts.items():
        t.add_row(k.replace("_", " "), str(v))
    console.print(t)
    if report.audit_anchor:
        console.print(f"audit log now starts at entry {report.audit_anchor['first_seq']}")
    for p in report.outside_workspace:
        console.print(f"[yellow]past retention, outside the workspace, not removed:[/] {p}")
    console.print(f"recorded as audit entry {report.audit_seq}")


# -- report --------------------------------------------------------------------------------------


@requires("report")
def report(
    workspace: WorkspaceOpt = Path("."),
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC).")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option("--to", help="Last day, included (YYYY-MM-DD, UTC).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="HTML file to write.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The oversight report: every use (searches, verifications, photo accesses, investigation
    lists, wiped captures), outcomes, quality, accuracy, accounts, retention, audit state."""
    from fieldid.report import build_report, parse_day, record_report, render_html
    from fieldid.report.data import STEPS

    if out is None and not as_json:
        fail(FieldidError("give --out report.html, or --json", code="report.no_output"))
    try:
        start = parse_day(date_from) if date_from else None
        end = parse_day(date_to, end=True) if date_to else None
        ws = _open(workspace)
        actor = operator(ws)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("report", total=STEPS + (7 if out else 0))

            def tick(name: str) -> None:
                bar.update(task, advance=1, description=name)

            data = build_report(
                ws.store,
                ws.root,
                ws.clock,
                start,
                end,
                progress=tick,
                model=lambda: str(ws.pipeline.model),
            )
            html = None if out is None else render_html(data, progress=tick)
        record_report(ws.store, actor, data, out, html)
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        console.print(f"report written to {out} ({data['searches']['total']} searches)")


# -- redress -------------------------------------------------------------------------------------


@redress_app.command("export")
@requires("redress")
def redress_export_cmd(
    workspace: WorkspaceOpt = Path("."),
    person: Annotated[
        str | None, typer.Option(help="The person's id in the gallery (external or internal).")
    ] = None,
    receipt: Annotated[
        str | None, typer.Option(help="The receipt code given to the person photographed.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here (else print it).")] = None,
) -> None:
    """Every search in which the person was a candidate (or the receipt's search), the
    adjudications, the records and their sources."""
    try:
        ws = _open(workspace)
        data = ws.redress.export(operator(ws), person=person, receipt=receipt, out=out)
        ws.close()
    except FieldidError as e:
        fail(e, True)
    if out is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        console.print(f"redress export ({len(data['searches'])} searches) written to {out}")


# -- adjudication --------------------------------------------------------------------------------


def _documents(values: list[str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for v in values:
        if v.lstrip().startswith("{"):
            try:
                d = json.loads(v)
            except ValueError as e:
                raise FieldidError(
                    f"--document {v!r} is not JSON: {e}", code="adjudication.bad_document"
                ) from e
            if not isinstance(d, dict):
                raise FieldidError(
                    "--document JSON must be an object", code="adjudication.bad_document"
                )
            docs.append(d)
        elif ":" in v:
            kind, number = v.split(":", 1)
            docs.append({"type": kind.strip(), "number": number.strip()})
        else:
            raise FieldidError(
                f"--document {v!r}: write TYPE:NUMBER (passport:X123) or a JSON object",
                code="adjudication.bad_document",
            )
    return docs


def _print_adjudication(a: Any, as_json: bool) -> None:
    from fieldid.adjudication.states import STATE_TEXT, SearchState

    if as_json:
        print(json.dumps(a.to_dict(), indent=2))
        return
    msg = {
        "final": "recorded",
        "pending_second": "recorded; a confirmation waits for a second person "
        f"(fieldid second --search {a.search_id} --adjudication {a.id} --decision "
        "confirm|disagree --reason …)",
        "blocked_conflict": "BLOCKED: the documents presented conflict with the candidate's "
        f"records; only a supervisor can override (fieldid override --search {a.search_id} "
        f"--adjudication {a.id} --reason …)",
        "disagreed": "the second person disagreed: the confirmation does not stand and the search "
        "is open again",
    }.get(a.state, a.state)
    console.print(f"adjudication {a.id} ({a.decision}) on search {a.search_id}: {msg}")
    for c in a.conflicts:
        console.print(f"  [red]conflict[/]: {escape(c)}")
    console.print(f"search {a.search_id}: {STATE_TEXT[SearchState(a.search_status)]}")
    if a.is_identification:
        console.print("identification recorded by a human adjudication")


SearchOpt = Annotated[
    str, typer.Option("--search", help="The search's id (as fieldid search shows it).")
]
ReasonOpt = Annotated[str, typer.Option(help="Why (required).")]


@requires("adjudicate")
def adjudicate(
    search: SearchOpt,
    decision: Annotated[
        str,
        typer.Option(
            help="confirm or reject one lead (--person), or close the search: not_identified, "
            "inconclusive, or no_lead (when it listed no candidate)."
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why (required; optional for no_lead).")] = "",
    workspace: WorkspaceOpt = Path("."),
    person: Annotated[
        str | None,
        typer.Option(help="The lead decided on (external or internal id, or its rank as #N)."),
    ] = None,
    document: Annotated[
        list[str] | None,
        typer.Option(help="A document the person presented: TYPE:NUMBER or JSON (repeat)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a human decision on a search (the only way an identification comes to exist).

    A reject rules out one lead and leaves the search open for the others."""
    from fieldid.adjudication.store import candidates_of, get_search

    try:
        ws = _open(workspace)
        who = operator(ws)
        pid: int | None = None
        if person is not None:
            with ws.store.read() as s:
                cands = candidates_of(s, get_search(s, search).id)
            match = [
                c
                for c in cands
                if c.external_id == person or str(c.person_id) == person or f"#{c.rank}" == person
            ]
            pid = match[0].person_id if match else (int(person) if person.isdigit() else -1)
        a = ws.adjudicator().adjudicate(
            search,
            who,
            decision,
            person_id=pid,
            reason=reason,
            documents=_documents(document or []),
        )
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    _print_adjudication(a, as_json)


@requires("adjudicate")
def close(
    search: SearchOpt,
    outcome: Annotated[
        str,
        typer.Option(
            help="not_identified (no lead is the person), inconclusive (cannot tell), or no_lead "
            "(the search listed no candidate)."
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why (required; optional for no_lead).")] = "",
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Close a search without an identification; its probe photo is deleted."""
    try:
        ws = _open(workspace)
        a = ws.adjudicator().close(search, operator(ws), outcome, reason=reason)
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    _print_adjudication(a, as_json)


@requires("second_confirm")
def second(
    search: SearchOpt,
    adjudication: Annotated[int, typer.Option(help="The confirmation waiting for you.")],
    decision: Annotated[str, typer.Option(help="confirm or disagree.")],
    reason: ReasonOpt,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """The second person's answer to a confirmation (someone other than the first person):
    confirm it, or disagree (the search is open again); with a reason either way."""

    try:
        ws = _open(workspace)
        a = ws.adjudicator().second(adjudication, operator(ws), decision, reason, search_id=search)
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    _print_adjudication(a, as_json)


@requires("override_conflict")
def override(
    search: SearchOpt,
    adjudication: Annotated[int, typer.Option(help="The blocked adjudication id.")],
    reason: Annotated[str, typer.Option(help="Why the conflict does not outweigh the match.")],
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """A supervisor lifts a document-conflict block, with a written reason."""

    try:
        ws = _open(workspace)
        a = ws.adjudicator().override(adjudication, operator(ws), reason, search_id=search)
        ws.close()
    except FieldidError as e:
        fail(e, as_json)
    _print_adjudication(a, as_json)


def register(app: typer.Typer) -> None:
    """Add the accountability commands to the ``fieldid`` app."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(redress_app, name="redress")
    app.command()(purge)
    app.command()(report)
    app.command()(adjudicate)
    app.command()(close)
    app.command()(second)
    app.command()(override)
