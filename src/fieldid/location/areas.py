"""Sensitive areas: GeoJSON polygons with a kind, loaded by an admin (an event: declared by a
supervisor, with its time window); which of them a search's cell lies in.

Geometry is Shapely's (GEOS): it validates what is loaded (closed rings, no self-intersection,
holes) and answers "does this polygon intersect this cell" exactly, holes and multipolygons
included, which a point-in-polygon test on the cell's centre would not: the true position may lie
anywhere in the cell.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from shapely import box
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.errors import FieldidError
from fieldid.location.cell import Cell
from fieldid.location.config import KINDS
from fieldid.store import UnitOfWork
from fieldid.store.schema import LocationArea

#: Largest number of vertices an area may have (a school's outline needs tens).
MAX_VERTICES = 10_000


def aware(t: datetime | None) -> datetime | None:
    """A time read back from the database, in UTC (SQLite returns it without its zone)."""
    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)


def parse_geometry(obj: Any) -> BaseGeometry:
    """A GeoJSON Polygon or MultiPolygon (or a Feature holding one), longitude/latitude in WGS 84,
    checked: valid, within range, not too large."""
    if isinstance(obj, dict) and obj.get("type") == "Feature":
        obj = obj.get("geometry")
    if not isinstance(obj, dict) or obj.get("type") not in ("Polygon", "MultiPolygon"):
        raise FieldidError(
            "an area must be a GeoJSON Polygon or MultiPolygon", code="location.bad_geometry"
        )
    try:
        geom = shape(obj)
        coords = shapely.get_coordinates(geom)
        valid = bool(geom.is_valid)
    except Exception as e:  # hostile input: whatever GEOS or the parser says, it is refused
        raise FieldidError(
            f"the area's GeoJSON is malformed: {e}", code="location.bad_geometry"
        ) from None
    if geom.is_empty:
        raise FieldidError("the area is empty", code="location.bad_geometry")
    if not np.isfinite(coords).all():
        raise FieldidError(
            "the area's coordinates must be finite numbers", code="location.bad_geometry"
        )
    if not valid:
        raise FieldidError(
            f"the area's polygon is not valid: {explain_validity(geom)}",
            code="location.bad_geometry",
        )
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise FieldidError(
            "the area's coordinates must be longitude (-180..180), latitude (-90..90), in that "
            "order (GeoJSON)",
            code="location.bad_geometry",
        )
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise FieldidError("the area has too many vertices", code="location.bad_geometry")
    return geom


@dataclass(frozen=True)
class Area:
    id: int
    name: str
    kind: str
    geometry: dict[str, Any]
    starts_at: datetime | None
    ends_at: datetime | None
    created_by: str
    created_at: datetime
    retired_at: datetime | None

    def active(self, now: datetime) -> bool:
        if self.retired_at is not None:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        return not (self.ends_at is not None and now >= self.ends_at)

    def ref(self) -> dict[str, Any]:
        """What a search, an approval and the audit record of the area: id, name, kind."""
        return {"id": self.id, "name": self.name, "kind": self.kind}

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        out = {
            **self.ref(),
            "geometry": self.geometry,
            "starts_at": None if self.starts_at is None else self.starts_at.isoformat(),
            "ends_at": None if self.ends_at is None else self.ends_at.isoformat(),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "retired_at": None if self.retired_at is None else self.retired_at.isoformat(),
        }
        if now is not None:
            out["active"] = self.active(now)
        return out


def _area(row: LocationArea) -> Area:
    created = aware(row.created_at)
    assert created is not None
    return Area(
        row.id,
        row.name,
        row.kind,
        dict(row.geometry),
        aware(row.starts_at),
        aware(row.ends_at),
        row.created_by,
        created,
        aware(row.retired_at),
    )


def add_area(
    uow: UnitOfWork,
    actor: Actor,
    *,
    name: str,
    kind: str,
    geometry: Any,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Area:
    """Add one sensitive area in ``uow``, audited ``location_area`` (action ``add``). Schools,
    hospitals, places of worship and courts: an admin (``location_areas``); an event: a
    supervisor or an admin (``location_event``), with its time window."""
    if kind not in KINDS:
        raise FieldidError(
            f"kind must be one of {', '.join(KINDS)}, not {kind!r}", code="location.bad_kind"
        )
    require(actor, "location_event" if kind == "event" else "location_areas")
    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise FieldidError(
            "an area needs a name (at most 200 printable characters)", code="location.name"
        )
    geom = parse_geometry(geometry)
    starts_at, ends_at = aware(starts_at), aware(ends_at)
    if kind == "event" and (starts_at is None or ends_at is None):
        raise FieldidError(
            "an event needs its time window (starts_at and ends_at)", code="location.window"
        )
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise FieldidError("the window must end after it starts", code="location.window")
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    row = LocationArea(
        name=name,
        kind=kind,
        geometry=mapping(geom),
        min_lon=min_lon,
        min_lat=min_lat,
        max_lon=max_lon,
        max_lat=max_lat,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=actor.name,
        created_at=uow.now(),
    )
    # GeoJSON coordinates as lists (mapping() gives tuples), so the JSON column round-trips.
    row.geometry = json.loads(json.dumps(row.geometry))
    uow.session.add(row)
    uow.flush()
    area = _area(row)
    uow.audit(
        "location_area",
        operator=actor.name,
        payload={
            "action": "add",
            **area.ref(),
            "role": actor.role.value,
            "starts_at": area.to_dict()["starts_at"],
            "ends_at": area.to_dict()["ends_at"],
            "bounds": [round(v, 6) for v in geom.bounds],
        },
    )
    return area


def retire_area(
    uow: UnitOfWork, actor: Actor, area_id: int, *, scopes: frozenset[str] | None = None
) -> Area:
    """Retire an area (it applies no longer; searches made in it still name it); audited.
    ``scopes``: an API token's, checked too."""
    from fieldid.access.accounts import require_scoped

    row = uow.session.get(LocationArea, area_id)
    if row is None:
        raise FieldidError(f"no area {area_id}", code="location.not_found")
    require_scoped(actor, "location_event" if row.kind == "event" else "location_areas", scopes)
    if row.retired_at is not None:
        raise FieldidError(f"area {area_id} is already retired", code="location.retired")
    row.retired_at = uow.now()
    row.retired_by = actor.name
    uow.flush()
    area = _area(row)
    uow.audit(
        "location_area",
        operator=actor.name,
        payload={"action": "retire", **area.ref(), "role": actor.role.value},
    )
    return area


def list_areas(session: Session, *, include_retired: bool = False) -> list[Area]:
    q = select(LocationArea).order_by(LocationArea.id)
    if not include_retired:
        q = q.where(LocationArea.retired_at.is_(None))
    return [_area(r) for r in session.scalars(q)]


def areas_near(session: Session, cell: Cell) -> list[Area]:
    """The areas in force whose bounding box meets the cell's (read from the database by
    their bounds; :func:`areas_at` then decides exactly)."""
    lo_lon, lo_lat, hi_lon, hi_lat = cell.bounds()
    q = (
        select(LocationArea)
        .where(
            LocationArea.retired_at.is_(None),
            LocationArea.min_lat <= hi_lat,
            LocationArea.max_lat >= lo_lat,
            LocationArea.min_lon <= hi_lon,
            LocationArea.max_lon >= lo_lon,
        )
        .order_by(LocationArea.id)
    )
    return [_area(r) for r in session.scalars(q)]


def areas_at(areas: Iterable[Area], cell: Cell, now: datetime) -> list[Area]:
    """The areas in force at ``now`` that the cell intersects (touching counts)."""
    cell_box = box(*cell.bounds())
    return [a for a in areas if a.active(now) and shape(a.geometry).intersects(cell_box)]
