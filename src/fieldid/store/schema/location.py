"""Tables for where searches happen: sensitive areas and supervisors' approvals (issue 17.3).

A search's own location is a column of ``searches`` (the coarse cell only: :mod:`fieldid.location`);
these tables hold the areas an admin (or, for an event, a supervisor) configured, and the
approvals a search in an area that needs one asked for and a supervisor gave or refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldid.store.schema.base import NEVER_REUSED, Base


class LocationArea(Base):
    """A sensitive area: a GeoJSON polygon (or multipolygon) with a kind and, optionally, the
    time window in which it applies (an event a supervisor declares)."""

    __tablename__ = "location_areas"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: school | hospital | place_of_worship | court | event
    kind: Mapped[str] = mapped_column(String(40), index=True)
    #: The GeoJSON geometry (Polygon or MultiPolygon, WGS 84 longitude/latitude).
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The geometry's bounding box (degrees), so a search reads only the areas near its cell.
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float, index=True)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    #: When the area applies (None: always, from/until then).
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Retired areas apply no longer; kept so that past searches still name them.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    retired_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class LocationApproval(Base):
    """A search in an area that needs a supervisor's prior approval asks for one (the refused
    attempt makes it, ``pending``); a supervisor approves or refuses it with a reason; an
    approval is used by one search of the same operator and case, in the same areas, before it
    expires."""

    __tablename__ = "location_approvals"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: pending | approved | denied | used | expired
    status: Mapped[str] = mapped_column(String(20), index=True)
    operator: Mapped[str] = mapped_column(String(200), index=True)
    purpose: Mapped[str] = mapped_column(String(100))
    case_ref: Mapped[str] = mapped_column(String(200))
    #: The coarse cell the search was asked from ({lat, lon, grid_deg}).
    location: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The areas it lies in: [{id, name, kind}].
    areas: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Seq of the refused search's audit entry that asked for it.
    request_seq: Mapped[int] = mapped_column(Integer)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decision_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: An approval is valid until then (set when approved).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The search that used the approval (its public id).
    search_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
