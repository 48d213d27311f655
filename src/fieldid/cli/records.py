"""Records commands: ``import``, ``synth``, ``source``, ``review``, ``record``.

Registered on the main app by :func:`register`. Each acts as an authenticated account
(:mod:`fieldid.cli.auth`) and is audited under its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fieldid.cli.auth import operator, requires
from fieldid.cli.common import JsonOpt, WorkspaceOpt, add_columns, console
from fieldid.cli.common import fail as _fail
from fieldid.cli.common import open_workspace as _open
from fieldid.cli.common import progress_bar as _bar
from fieldid.errors import FieldidError

source_app = typer.Typer(help="Record sources: register and list them.", no_args_is_help=True)
review_app = typer.Typer(help="Review items (possible duplicates).", no_args_is_help=True)
record_app = typer.Typer(help="Show and correct identity records.", no_args_is_help=True)


@requires("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet file of records.")],
    source: Annotated[str, typer.Option("--source", help="Registered source name.")],
    workspace: WorkspaceOpt = Path("."),
    kind: Annotated[
        str | None, typer.Option(help="Record kind of every row (else a `kind` column).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")] = (
        False
    ),
    as_json: JsonOpt = False,
) -> None:
    """Import a source's records: good rows go in, every bad row is reported with its line."""
    from fieldid.records.importer import count_rows

    try:
        ws = _open(workspace)
        actor = operator(ws)
        total = count_rows(file) if file.exists() else None
        with _bar() as bar:
            task = bar.add_task("importing" + (" (dry run)" if dry_run else ""), total=total)
            report = ws.importer.import_file(
                source,
                file,
                kind=kind,
                dry_run=dry_run,
                operator=actor.name,
                actor=actor,
                progress=lambda n: bar.advance(task, n),
            )
        ws.close()
    except FieldidError as e:
        _fail(e, as_json)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        c = report.counts()
        verb = "would be " if dry_run else ""
        console.print(
            f"{report.rows} rows from {file} (source {source}): {c['inserted']} {verb}inserted, "
            f"{c['updated']} {verb}updated, {c['unchanged']} unchanged, "
            f"{c['bad_rows']} bad; {c['new_people']} new people; photos: "
            f"{c['photos_enrolled']} enrolled, {c['photo_refusals']} refused; "
            f"{c['possible_duplicates']} possible duplicates for review."
        )
        if report.unknown_columns:
            console.print(
                "columns not in any record schema (kept in the raw payload): "
                + ", ".join(report.unknown_columns)
            )
        for title, rows in (
            ("Bad rows", report.bad_rows),
            ("Photos refused", report.photo_refusals),
        ):
            if rows:
                t = Table(title=title, title_justify="left")
                add_columns(t, "line", "code", "reason", ids=("code",))
                for b in rows[:200]:
                    t.add_row(str(b.line), b.code, escape(b.reason))
                console.print(t)
                if len(rows) > 200:
                    console.print(f"… and {len(rows) - 200} more (use --json for all)")
    if report.bad_rows or report.photo_refusals:
        raise typer.Exit(code=1)


@requires("enroll", except_when="--export writes CSV files only and touches no workspace")
def synth_command(
    workspace: WorkspaceOpt = Path("."),
    people: Annotated[int, typer.Option(help="Synthetic people with records.")] = 1000,
    records_per_person: Annotated[int, typer.Option(help="Records per person.")] = 6,
    distractors: Annotated[
        int, typer.Option(help="Template-only distractors (no records) to add.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 0,
    training: Annotated[
        bool, typer.Option("--training", help="Fill the separate training gallery instead.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option(help="Write the records as one CSV per source here instead (no workspace)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make reproducible synthetic people and records (all marked synthetic)."""
    from fieldid.records.synth import export_files, synth

    if export is not None:
        paths = export_files(
            export, people=people, records_per_person=records_per_person, seed=seed
        )
        for name, p in paths.items():
            console.print(f"{name}: {p}  (fieldid import --source {name} {p})")
        return
    try:
        ws = _open(workspace)
        who = operator(ws)
        with _bar() as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done)

            target = ws.training(create=True) if training else ws
            summary = synth(
                target,
                audit=ws.store,
                people=people,
                records_per_person=records_per_person,
                distractors=distractors,
                seed=seed,
                training=training,
                operator=who.name,
                progress=progress,
            )
        ws.close()
    except FieldidError as e:
        _fail(e, as_json)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
        return
    inserted = sum(s["inserted"] for s in summary.sources.values())
    console.print(
        f"{'training gallery ' if training else ''}{summary.workspace}: "
        f"{summary.people_added} synthetic people added ({summary.people_present} present), "
        f"{inserted} records inserted, {summary.distractors_added} distractors added. "
        "Everything generated is marked synthetic."
    )


@source_app.command("add")
@requires("admin_sources")
def source_add(
    name: Annotated[str, typer.Argument(help="Source name used with --source.")],
    kind: Annotated[
        str, typer.Option(help="criminal_history|immigration|border|port_of_entry|other")
    ],
    authority: Annotated[str, typer.Option(help="The authority that owns the records.")],
    refresh: Annotated[str, typer.Option(help="How and when the copy here is refreshed.")],
    workspace: WorkspaceOpt = Path("."),
    synthetic: Annotated[bool, typer.Option(help="The source holds synthetic data.")] = False,
) -> None:
    """Register a record source (imports name a registered source)."""
    from fieldid.records.sources import add_source

    try:
        ws = _open(workspace)
        info = add_source(
            ws.store,
            name,
            kind=kind,
            authority=authority,
            refresh=refresh,
            synthetic=synthetic,
            actor=operator(ws),
        )
        ws.close()
    except FieldidError as e:
        _fail(e)
    console.print(f"source {info.name} registered ({info.kind}, {info.authority})")


@source_app.command("list")
@requires("record_read")
def source_list(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False) -> None:
    """List registered sources."""
    from fieldid.records.sources import list_sources

    try:
        ws = _open(workspace)
        who = operator(ws)
        sources = list_sources(ws.store)
        ws.store.append_audit("source_list", operator=who.name, payload={"role": who.role.value})
        ws.close()
    except FieldidError as e:
        _fail(e, as_json)
    if as_json:
        print(json.dumps([s.to_dict() for s in sources], indent=2))
        return
    t = Table(title="Record sources", title_justify="left")
    add_columns(
        t, "name", "kind", "authority", "refresh", "last import", "synthetic", ids=("name",)
    )
    for s in sources:
        when = s.refreshed_at.isoformat(timespec="seconds") if s.refreshed_at else "never"
        t.add_row(s.name, s.kind, s.authority, s.refresh, when, "yes" if s.synthetic else "")
    console.print(t)


@review_app.command("list")
@requires("review")
def review_list(
    workspace: WorkspaceOpt = Path("."),
    all_items: Annotated[bool, typer.Option("--all", help="Resolved items too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List open review items (possible duplicates)."""
    from fieldid.records.review import list_review_items

    try:
        ws = _open(workspace)
        who = operator(ws)
        items = list_review_items(ws.store, state=None if all_items else "open", actor=who)
        ws.store.append_audit(
            "review_view",
            operator=who.name,
            payload={"role": who.role.value, "review_items": [i.id for i in items]},
        )
        ws.close()
    except FieldidError as e:
        _fail(e, as_json)
    if as_json:
        print(json.dumps([i.to_dict() for i in items], indent=2))
        return
    t = Table(title="Review items", title_justify="left")
    add_columns(
        t,
        *("id", "kind", "state", "person", "other person", "image", "score", "decision"),
        ids=("id", "person", "other person", "image"),
    )
    for i in items:
        t.add_row(
            str(i.id),
            i.kind,
            i.state,
            str(i.person_external_id),
            str(i.other_person_external_id),
            str(i.image_id),
            "" if i.score is None else f"{i.score:.4f}",
            i.decision or "",
        )
    console.print(t)


@review_app.command("resolve")
@requires("review")
def review_resolve(
    item: Annotated[int, typer.Argument(help="Review item id.")],
    decision: Annotated[
        str,
        typer.Option(help="different_people | same_person | wrong_image | needs_more_information"),
    ],
    note: Annotated[str, typer.Option(help="Why (required).")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Record a decision on a review item (nothing is merged automatically)."""
    from fieldid.records.review import resolve_review_item

    try:
        ws = _open(workspace)
        view = resolve_review_item(ws.store, item, decision=decision, note=note, actor=operator(ws))
        ws.close()
    except FieldidError as e:
        _fail(e)
    console.print(f"review item {view.id} resolved: {view.decision}")


@record_app.command("show")
@requires("record_read")
def record_show(
    record_id: Annotated[int, typer.Argument(help="Record id.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Show one record: fields, the source's raw payload and its correction history (JSON)."""
    from fieldid.records.api import get_record

    try:
        ws = _open(workspace)
        who = operator(ws)
        out = get_record(ws.store, record_id, actor=who)
        ws.store.append_audit(
            "record_view",
            operator=who.name,
            payload={"role": who.role.value, "record_id": record_id},
        )
        ws.close()
    except FieldidError as e:
        _fail(e, True)
    print(json.dumps(out, indent=2))


@record_app.command("correct")
@requires("record_correct")
def record_correct(
    record_id: Annotated[int, typer.Argument(help="Record id.")],
    set_: Annotated[
        list[str], typer.Option("--set", help="field=value (repeat; empty value removes).")
    ],
    reason: Annotated[str, typer.Option(help="Why the record is corrected (required).")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """Correct a record's fields; the old value, who, when and why are kept and audited."""
    from fieldid.records.correct import correct_record

    changes: dict[str, Any] = {}
    for item in set_:
        k, sep, v = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set needs field=value, got {item!r}")
        changes[k.strip()] = v if v != "" else None
    try:
        ws = _open(workspace)
        c = correct_record(ws.store, ws.root, record_id, changes, actor=operator(ws), reason=reason)
        ws.close()
    except FieldidError as e:
        _fail(e)
    console.print(f"record {record_id} corrected (correction {c.id}, audit #{c.audit_seq})")


def register(app: typer.Typer) -> None:
    """Add the records commands to the main ``fieldid`` app."""
    app.command("import")(import_command)
    app.command("synth")(synth_command)
    app.add_typer(source_app, name="source")
    app.add_typer(review_app, name="review")
    app.add_typer(record_app, name="record")
