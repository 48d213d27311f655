"""``fieldid location``: load, list and retire sensitive areas; list approval requests.

Who acts is an authenticated account (:mod:`fieldid.cli.auth`); the core enforces what its role may
do (areas: admin; an event: supervisor or admin) and audits it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fieldid.cli.auth import operator, requires
from fieldid.cli.common import JsonOpt, WorkspaceOpt, console, fail
from fieldid.cli.common import open_workspace as _open
from fieldid.errors import FieldidError

location_app = typer.Typer(
    help="Sensitive areas (schools, hospitals, places of worship, courts, declared events) where "
    "a search needs a supervisor's prior approval or is refused ([location] in fieldid.toml)."
)


def features(doc: Any, name: str | None, kind: str | None) -> list[dict[str, Any]]:
    """The areas a GeoJSON document holds: a FeatureCollection (each feature's ``name`` and
    ``kind`` properties, unless given on the command line), a Feature, or a bare geometry."""
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        items = list(doc.get("features") or [])
    else:
        items = [doc]
    out = []
    for i, f in enumerate(items, 1):
        props = (f.get("properties") or {}) if isinstance(f, dict) else {}
        n = name or props.get("name")
        k = kind or props.get("kind")
        if not n or not k:
            raise FieldidError(
                f"area {i}: give its name and kind (feature properties 'name' and 'kind', or "
                "--name and --kind)",
                code="location.name",
            )
        out.append(
            {
                "name": str(n),
                "kind": str(k),
                "geometry": f,
                "starts_at": props.get("starts_at"),
                "ends_at": props.get("ends_at"),
            }
        )
    return out


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        raise FieldidError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01T14:00:00+00:00)",
            code="location.window",
        ) from None


@location_app.command("add")
@requires("location_event")
def add(
    file: Annotated[Path, typer.Argument(help="GeoJSON: a FeatureCollection, Feature or Polygon.")],
    workspace: WorkspaceOpt = Path("."),
    name: Annotated[str | None, typer.Option(help="The area's name (one area).")] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="school, hospital, place_of_worship, court or event (one area)."),
    ] = None,
    starts: Annotated[str | None, typer.Option(help="When it applies from (ISO 8601).")] = None,
    ends: Annotated[str | None, typer.Option(help="When it stops applying (ISO 8601).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load sensitive areas from a GeoJSON file (all of them, or none: one unit of work)."""
    from fieldid.location.areas import add_area

    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(FieldidError(f"{file}: {e}", code="location.bad_geometry"), as_json)
    try:
        ws = _open(workspace)
        who = operator(ws)
        items = features(doc, name, kind)
        if any(it["kind"] != "event" for it in items):
            operator(ws, "location_areas")  # the role, and a token's scopes
        with ws.store.unit_of_work() as uow:
            added = [
                add_area(
                    uow,
                    who,
                    name=it["name"],
                    kind=it["kind"],
                    geometry=it["geometry"],
                    starts_at=_when(starts or it["starts_at"]),
                    ends_at=_when(ends or it["ends_at"]),
                )
                for it in items
            ]
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps([a.to_dict() for a in added], indent=2))
        return
    for a in added:
        console.print(f"added area {a.id}: {escape(a.name)} ({a.kind})")
    if not ws.location.enabled:
        console.print(
            "[yellow]note:[/] [location] enabled = false in fieldid.toml: no search is placed, "
            "so these areas stop none until location is turned on."
        )


@location_app.command("list")
@requires("location_event")
def list_(
    workspace: WorkspaceOpt = Path("."),
    include_retired: Annotated[bool, typer.Option("--all", help="Retired areas too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The sensitive areas, whether each applies now, and the rule for its kind."""
    from fieldid.location.areas import list_areas

    try:
        ws = _open(workspace)
        who = operator(ws)
        with ws.store.read() as s:
            areas = list_areas(s, include_retired=include_retired)
        ws.store.append_audit(
            "location_view",
            operator=who.name,
            payload={"role": who.role.value, "what": "areas", "areas": [a.id for a in areas]},
        )
    except FieldidError as e:
        fail(e, as_json)
    now = ws.clock.now()
    lc = ws.location
    if as_json:
        print(
            json.dumps(
                {
                    "enabled": lc.enabled,
                    "rules": lc.rules,
                    "areas": [a.to_dict(now) for a in areas],
                },
                indent=2,
            )
        )
        return
    t = Table("id", "name", "kind", "rule", "applies now", "window")
    for a in areas:
        window = (
            f"{a.starts_at.isoformat() if a.starts_at else '…'} to "
            f"{a.ends_at.isoformat() if a.ends_at else '…'}"
        )
        t.add_row(str(a.id), escape(a.name), a.kind, lc.rules[a.kind], str(a.active(now)), window)
    console.print(t)
    console.print(f"location is {'on' if lc.enabled else 'OFF'} ([location] enabled)")


@location_app.command("retire")
@requires("location_event")
def retire(
    area_id: Annotated[int, typer.Argument(help="The area's id (fieldid location list).")],
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Retire an area: it applies no longer (searches made in it still name it)."""
    from fieldid.location.areas import retire_area
    from fieldid.store.schema import LocationArea

    try:
        ws = _open(workspace)
        # Authenticated before the unit of work begins (a login writes in its own).
        with ws.store.read() as s:
            row = s.get(LocationArea, area_id)
            kind = None if row is None else row.kind
        who = operator(ws, None if kind in (None, "event") else "location_areas")
        with ws.store.unit_of_work() as uow:
            a = retire_area(uow, who, area_id)
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(a.to_dict(), indent=2))
    else:
        console.print(f"retired area {a.id}: {escape(a.name)}")


@location_app.command("approvals")
@requires("location_approve")
def approvals_(
    workspace: WorkspaceOpt = Path("."),
    state: Annotated[
        str | None, typer.Option(help="pending, approved, denied, used or expired.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Approval requests for searches in sensitive areas, newest first."""
    from fieldid.location.approvals import list_approvals

    try:
        ws = _open(workspace)
        who = operator(ws)
        with ws.store.read() as s:
            got = list_approvals(s, ws.clock.now(), ws.location.approval_minutes, state=state)
        ws.store.append_audit(
            "location_view",
            operator=who.name,
            payload={"role": who.role.value, "what": "approvals", "approvals": [v.id for v in got]},
        )
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps([v.to_dict() for v in got], indent=2))
        return
    t = Table("id", "state", "operator", "case", "areas", "decided by", "reason")
    for v in got:
        d = v.to_dict()
        t.add_row(
            str(v.id),
            v.state,
            escape(v.operator),
            escape(v.case_ref),
            escape(d["areas_text"]),
            escape(v.decided_by or ""),
            escape(v.reason or ""),
        )
    console.print(t)


def register(app: typer.Typer) -> None:
    """Add ``location`` to the ``fieldid`` app."""
    app.add_typer(location_app, name="location")
