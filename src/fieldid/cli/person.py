"""Person commands: ``fieldid person merge`` and ``fieldid person history``; gallery management
(``list``, ``show``, ``correct``, ``correct-image``, ``delete``: the admin role, every act audited,
``gallery/manage.py``).

A merge is a supervisor's explicit decision that two people are one (``records/merge.py``); the
command line acts as an authenticated account (:mod:`fieldid.cli.auth`) and everything is
audited under its name. People are named by external id (what lists show) or numeric id.
``fieldid person photo`` gives a gallery-managing role an enrolled photo outside any search,
with a reason, audited.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from fieldid.cli.auth import operator, requires
from fieldid.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    add_columns,
    console,
    fail,
    open_workspace,
)
from fieldid.errors import FieldidError

if TYPE_CHECKING:
    from fieldid.gallery.manage import PersonDetail

person_app = typer.Typer(
    help="People in the gallery: list, show, correct and delete them and their images (admin, "
    "audited); merge two people found to be one, and their merge history.",
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


# --- gallery management (admin) ------------------------------------------------------------------

PersonArg = Annotated[str, typer.Argument(help="External or numeric id.")]
ReasonOpt = Annotated[str, typer.Option(help="Why (10+ characters); kept in the audit log.")]


def _show_detail(d: PersonDetail) -> None:
    from rich.table import Table

    console.print(
        escape(
            f"person {d.id}: {d.external_id} — {d.display_name}"
            f"{' (synthetic)' if d.synthetic else ''}; {d.images} images, {d.templates} "
            f"templates, {d.records} records, {d.source_links} source links"
        )
    )
    if d.merged_from:
        console.print(escape(f"  merged into it: {', '.join(d.merged_from)}"))
    if not d.image_list:
        return
    table = Table(show_lines=False)
    add_columns(
        table,
        "image",
        "source",
        "provenance",
        "captured",
        "size",
        "quality",
        "templates",
        "photo",
        ids=("image", "source", "provenance"),
    )
    for i in d.image_list:
        table.add_row(
            str(i.id),
            escape(i.source),
            escape(i.provenance or ""),
            "" if i.capture_date is None else i.capture_date.isoformat(),
            f"{i.width}×{i.height}",
            str(i.quality_unified),
            str(i.templates),
            "kept" if i.has_photo else "none",
        )
    console.print(table)


def _gallery_act(workspace: Path, as_json: bool, act: Any) -> Any:
    try:
        ws = open_workspace(workspace)
        try:
            return act(ws, operator(ws))
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)


@person_app.command("list")
@requires("gallery_manage")
def person_list(
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Part of the external id or name.")
    ] = None,
    synthetic: Annotated[
        bool | None,
        typer.Option("--synthetic/--real", help="Only synthetic, or only real, people."),
    ] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """People in the gallery by id, with their image and template counts (admin; audited)."""
    from rich.table import Table

    page = _gallery_act(
        workspace,
        as_json,
        lambda ws, who: ws.gallery_admin.list_people(
            who, query=query, synthetic=synthetic, offset=offset, limit=limit
        ),
    )
    if as_json:
        print(json.dumps(page.to_dict(), indent=2))
        return
    table = Table()
    add_columns(
        table,
        "id",
        "external id",
        "name",
        "synthetic",
        "images",
        "templates",
        ids=("id", "external id", "name"),
    )
    for p in page.people:
        table.add_row(
            str(p.id),
            escape(p.external_id),
            escape(p.display_name),
            "yes" if p.synthetic else "",
            str(p.images),
            str(p.templates),
        )
    console.print(table)
    end = page.offset + len(page.people)
    console.print(f"{page.offset + 1 if page.people else 0}–{end} of {page.total} people")


@person_app.command("show")
@requires("gallery_manage")
def person_show(
    person: PersonArg,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """One person with their enrolled images (metadata, never the photo) (admin; audited)."""
    detail = _gallery_act(
        workspace,
        as_json,
        lambda ws, who: ws.gallery_admin.show_person(who, ws.gallery_admin.find(person)),
    )
    if as_json:
        print(json.dumps(detail.to_dict(), indent=2))
        return
    _show_detail(detail)


@person_app.command("correct")
@requires("gallery_manage")
def person_correct(
    person: PersonArg,
    display_name: Annotated[str, typer.Option("--display-name", help="The corrected name.")],
    reason: ReasonOpt,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Correct a person's display name (admin; audited with the old and new value)."""
    detail = _gallery_act(
        workspace,
        as_json,
        lambda ws, who: ws.gallery_admin.correct_person(
            who, ws.gallery_admin.find(person), display_name=display_name, reason=reason
        ),
    )
    if as_json:
        print(json.dumps(detail.to_dict(), indent=2))
        return
    _show_detail(detail)


@person_app.command("correct-image")
@requires("gallery_manage")
def person_correct_image(
    person: PersonArg,
    image: Annotated[int, typer.Argument(help="The image id (fieldid person show).")],
    reason: ReasonOpt,
    capture_date: Annotated[
        str | None,
        typer.Option(help="When the photo was taken (YYYY-MM-DD), or 'none' to clear it."),
    ] = None,
    provenance: Annotated[
        str | None, typer.Option(help="Where the image comes from, in words ('' clears it).")
    ] = None,
    move_to: Annotated[
        str | None,
        typer.Option("--move-to", help="Move the image to the person it really shows (id)."),
    ] = None,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Correct an enrolled image's capture date or provenance, or move it with its templates
    to the person it really shows (admin; audited)."""
    from datetime import date

    from fieldid.gallery.manage import UNSET

    when: Any = UNSET
    if capture_date is not None:
        try:
            when = None if capture_date.lower() == "none" else date.fromisoformat(capture_date)
        except ValueError:
            fail(
                FieldidError(
                    f"--capture-date {capture_date!r} is not a date (YYYY-MM-DD) or 'none'",
                    code="request.invalid",
                ),
                as_json,
            )

    def act(ws: Any, who: Any) -> Any:
        admin = ws.gallery_admin
        return admin.correct_image(
            who,
            admin.find(person),
            image,
            reason=reason,
            capture_date=when,
            provenance=UNSET if provenance is None else provenance,
            move_to=None if move_to is None else admin.find(move_to),
        )

    info = _gallery_act(workspace, as_json, act)
    if as_json:
        print(json.dumps(info.to_dict(), indent=2))
        return
    console.print(
        escape(
            f"image {info.id} of person {info.person_id}: captured "
            f"{info.capture_date or 'unknown'}, provenance {info.provenance or '(none)'}"
        )
    )


@person_app.command("delete")
@requires("gallery_manage")
def person_delete(
    person: PersonArg,
    reason: ReasonOpt,
    image: Annotated[
        int | None, typer.Option("--image", help="Delete only this image (the person stays).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Delete a person with their images, templates, records and index entries, or one image
    with its templates (admin; audited). No search afterwards returns what was deleted."""
    what = f"image {image} of {person}" if image is not None else f"person {person}"

    def act(ws: Any, who: Any) -> Any:
        admin = ws.gallery_admin
        pid = admin.find(person)  # the account and the person first, then the question
        if not yes and not typer.confirm(
            f"Delete {what} from the gallery? This cannot be undone", default=False
        ):
            raise typer.Exit(code=1)
        if image is None:
            return admin.delete_person(who, pid, reason=reason)
        return admin.delete_image(who, pid, image, reason=reason)

    gone = _gallery_act(workspace, as_json, act)
    if as_json:
        print(json.dumps(gone.to_dict(), indent=2))
        return
    if gone.image_id is None:
        console.print(
            escape(
                f"person {gone.person_id} ({gone.external_id}) deleted: {gone.images_removed} "
                f"images, {gone.templates_removed} templates, {gone.records_removed} records, "
                f"{gone.links_removed} source links; audit entry {gone.audit_seq}"
            )
        )
    else:
        console.print(
            escape(
                f"image {gone.image_id} of person {gone.person_id} ({gone.external_id}) "
                f"deleted with {gone.templates_removed} templates; audit entry {gone.audit_seq}"
            )
        )


def register(app: typer.Typer) -> None:
    """Add ``fieldid person`` to the main app."""
    app.add_typer(person_app, name="person")
