"""Person commands: ``fieldid person merge`` and ``fieldid person history``.

A merge is a supervisor's explicit decision that two people are one (``records/merge.py``); the
command line acts as an authenticated account (:mod:`fieldid.cli.auth`) and everything is
audited under its name. People are named by external id (what lists show) or numeric id.
``fieldid person photo`` gives a gallery-managing role an enrolled photo outside any search,
with a reason, audited.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from fieldid.cli.auth import operator, requires
from fieldid.cli.common import JsonOpt, WorkspaceOpt, console, fail, open_workspace
from fieldid.errors import FieldidError

person_app = typer.Typer(
    help="People in the gallery: merge two people found to be one, and their merge history.",
    no_args_is_help=True,
)


@person_app.command("merge")
@requires("review")
def person_merge(
    keep: Annotated[str, typer.Option("--keep", help="The person kept (external or numeric id).")],
    merge: Annotated[
        str, typer.Option("--merge", help="The person merged into it and removed (id).")
    ],
    reason: Annotated[str, typer.Option(help="Why these are one person (15+ characters).")],
    review_item: Annotated[
        int | None,
        typer.Option("--review-item", help="The possible-duplicate item this decides."),
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Merge one person into another: images, templates, records and links move; audited."""
    from fieldid.records.merge import find_person, merge_people

    try:
        ws = open_workspace(workspace)
        try:
            who = operator(ws)
            result = merge_people(
                ws.store,
                ws.gallery,
                keep=find_person(ws.store, keep),
                merge=find_person(ws.store, merge),
                actor=who,
                reason=reason,
                review_item=review_item,
            )
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(
        escape(
            f"merge {result.merge_id}: {result.merged_external_id} (person "
            f"{result.merged_person_id}) merged into {result.kept_external_id} (person "
            f"{result.kept_person_id}) by {result.by} ({result.role}); moved "
            f"{result.images_moved} images, {result.templates_moved} templates, "
            f"{result.records_moved} records, {result.links_moved} source links; "
            f"{result.images_dropped} images already held byte for byte dropped; "
            f"audit entry {result.audit_seq}"
        )
    )
    if result.review_item is not None:
        console.print(f"review item {result.review_item} resolved: same_person")


@person_app.command("history")
@requires("record_read")
def person_history(
    person: Annotated[str, typer.Argument(help="External or numeric id (an old one too).")],
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Merges behind a person: who was merged into them, by whom, when and why."""
    from fieldid.records.merge import merge_history

    try:
        ws = open_workspace(workspace)
        try:
            who = operator(ws)
            views = merge_history(ws.store, person, actor=who)
            ws.store.append_audit(
                "merge_history_view",
                operator=who.name,
                payload={"role": who.role.value, "person": person, "merges": len(views)},
            )
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps([v.to_dict() for v in views], indent=2))
        return
    if not views:
        console.print(f"no merges affect {escape(person)}")
        return
    for v in views:
        c = v.counts
        console.print(
            escape(
                f"merge {v.merge_id}, {v.at.isoformat(timespec='seconds')}, by {v.by} "
                f"({v.role}): {v.merged_external_id} (person {v.merged_person_id}, "
                f"{v.merged_display_name}{', synthetic' if v.merged_synthetic else ''}) merged "
                f"into {v.kept_external_id} (person {v.kept_person_id})"
                + ("" if v.review_item is None else f", deciding review item {v.review_item}")
            )
        )
        console.print(
            f"  moved {c['images_moved']} images, {c['templates_moved']} templates, "
            f"{c['records_moved']} records, {c['links_moved']} source links; "
            f"{c['images_dropped']} images held twice byte for byte dropped"
        )
        console.print(f"  reason: {escape(v.reason)}")
        if v.audit_seq is not None:
            console.print(f"  audit entry {v.audit_seq}")


@person_app.command("photo")
@requires("gallery_photo")
def person_photo(
    person: Annotated[str, typer.Argument(help="External or numeric id.")],
    reason: Annotated[
        str, typer.Option(help="Why you need the photo outside a search (15+ characters).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Write the JPEG here.")],
    workspace: WorkspaceOpt = Path("."),
) -> None:
    """An enrolled photo outside any search (roles that manage the gallery), with a reason:
    audited (``photo_access``, kind ``gallery``)."""
    from fieldid.gallery.photos import best_photo
    from fieldid.records.merge import find_person

    try:
        ws = open_workspace(workspace)
        try:
            who = operator(ws)
            if len(reason.strip()) < 15:
                raise FieldidError(
                    "say why you need this photo outside a search (at least 15 characters): the "
                    "reason is audited",
                    code="photo.no_reason",
                )
            pid = find_person(ws.store, person)
            with ws.store.unit_of_work() as uow:
                data = best_photo(uow.session, pid)
                uow.audit(
                    "photo_access",
                    operator=who.name,
                    payload={
                        "role": who.role.value,
                        "via": "cli",
                        "kind": "gallery",
                        "person_id": pid,
                        "person": person,
                        "reason": reason.strip(),
                        "out": str(out),
                    },
                )
        finally:
            ws.close()
    except FieldidError as e:
        fail(e)
    out.write_bytes(data)
    console.print(escape(f"enrolled photo of {person} written to {out} (audited)"))


def register(app: typer.Typer) -> None:
    """Add ``fieldid person`` to the main app."""
    app.add_typer(person_app, name="person")
