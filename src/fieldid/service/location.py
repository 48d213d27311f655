"""Sensitive areas and supervisors' approvals over HTTP (issue 17.3; fieldid.location).

- ``/approvals`` (supervisors): searches in sensitive areas waiting for a prior approval, each
  with who asked, for which case and purpose, where (the coarse cell and the areas), and a form
  to approve or refuse it with a reason; then what was decided.
- ``/api/v1/location/areas``: list, add (an admin: any kind; a supervisor: an event with its
  window) and retire areas; ``/api/v1/location/approvals``: list and decide.

Every write goes through the cores in :mod:`fieldid.location`, which check the role and audit the
act in the same unit of work as the rows it changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fieldid.errors import FieldidError
from fieldid.location import approvals
from fieldid.location.areas import add_area, list_areas, retire_area
from fieldid.location.config import KIND_TEXT
from fieldid.service import schemas
from fieldid.service.api import ERRORS, PROBLEM
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.db import Uow
from fieldid.service.problems import status_for
from fieldid.service.state import AppState
from fieldid.service.web import _when, render
from fieldid.store import UnitOfWork

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1/location")

STATES = Literal["pending", "approved", "denied", "used", "expired"]


def pending_count(state: AppState, uow: UnitOfWork | None = None) -> int:
    lc = state.workspace.location
    now = state.workspace.clock.now()
    if uow is not None:
        rows = approvals.list_approvals(uow.session, now, lc.approval_minutes, state="pending")
    else:
        with state.workspace.store.read() as s:
            rows = approvals.list_approvals(s, now, lc.approval_minutes, state="pending")
    return len(rows)


def decide(
    state: AppState,
    uow: UnitOfWork,
    principal: Principal,
    approval_id: int,
    decision: str,
    reason: str,
) -> dict[str, Any]:
    minutes = state.workspace.location.approval_minutes
    with state.workspace.store.using(uow) as u:
        out = approvals.decide(u, principal.actor, approval_id, decision, reason, minutes)
    state.metrics.outcome("location_approval", decision)
    return out.to_dict()


# -- pages ----------------------------------------------------------------------------------------


def _approvals_context(state: AppState, uow: UnitOfWork, **extra: Any) -> dict[str, Any]:
    lc = state.workspace.location
    now = state.workspace.clock.now()
    rows = [
        {**v.to_dict(), "requested_text": _when(v.requested_at.isoformat())}
        for v in approvals.list_approvals(uow.session, now, lc.approval_minutes)
    ]
    return {
        "pending": [r for r in rows if r["state"] == "pending"],
        "decided": [r for r in rows if r["state"] != "pending"][:50],
        "minutes": lc.approval_minutes,
        "enabled": lc.enabled,
        "kind_text": KIND_TEXT,
        "done": None,
        "error": None,
        "error_item": None,
        "form": {},
        **extra,
    }


@pages.get("/approvals")
def approvals_page(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("location_approve", page=True))],
    done: str = "",
) -> HTMLResponse:
    """Searches in sensitive areas waiting for a supervisor's approval, newest first."""
    state = app_state(request)
    ctx = _approvals_context(state, uow, done=int(done) if done.isdigit() else None)
    return render(request, "approvals.html", ctx)


@pages.post("/approvals/{approval_id}")
async def approval_form(
    approval_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("location_approve", page=True))],
) -> Response:
    state = app_state(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        await run_in_threadpool(
            decide,
            state,
            uow,
            principal,
            approval_id,
            form.get("decision", ""),
            form.get("reason", ""),
        )
    except FieldidError as e:
        if status_for(e.code) in (401, 404):
            raise
        err = e
        ctx = await run_in_threadpool(
            lambda: _approvals_context(state, uow, error=err, error_item=approval_id, form=form)
        )
        return render(request, "approvals.html", ctx, status=status_for(e.code))
    return RedirectResponse(f"/approvals?done={approval_id}", status_code=303)


# -- API --------------------------------------------------------------------------------------


class AreaIn(BaseModel):
    name: str = Field(max_length=200, description="What the area is (e.g. the school's name).")
    kind: Literal["school", "hospital", "place_of_worship", "court", "event"]
    geometry: dict[str, Any] = Field(
        description="GeoJSON Polygon or MultiPolygon (or a Feature holding one), lon/lat WGS 84."
    )
    starts_at: datetime | None = Field(None, description="When it applies from (events: needed).")
    ends_at: datetime | None = Field(None, description="When it stops applying (events: needed).")


class DecisionIn(BaseModel):
    decision: Literal["approve", "deny"]
    reason: str = Field(max_length=4000, description="Why (at least 15 characters).")


@api.get("/areas", tags=["location"], response_model=schemas.AreaList, responses=ERRORS)
def get_areas(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("location_event"))],
    include_retired: bool = False,
) -> dict[str, Any]:
    """The sensitive areas (admins and supervisors), each with whether it applies now, and the
    rule per kind in force."""
    state = app_state(request)
    now = state.workspace.clock.now()
    lc = state.workspace.location
    return {
        "enabled": lc.enabled,
        "rules": dict(lc.rules),
        "areas": [a.to_dict(now) for a in list_areas(uow.session, include_retired=include_retired)],
    }


@api.post(
    "/areas",
    tags=["location"],
    status_code=201,
    response_model=schemas.Area,
    responses={**ERRORS, 409: PROBLEM},
)
def post_area(
    body: AreaIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("location_event"))],
) -> dict[str, Any]:
    """Add a sensitive area (audited ``location_area``). Schools, hospitals, places of worship
    and courts: admins; an event, with its window: supervisors or admins. Refusals: 422
    ``location.bad_geometry`` / ``location.window`` / ``location.name``, 403 for the role."""
    state = app_state(request)
    if body.kind != "event":
        principal.require("location_areas")  # the role, and a token's scopes
    with state.workspace.store.using(uow) as u:
        area = add_area(
            u,
            principal.actor,
            name=body.name,
            kind=body.kind,
            geometry=body.geometry,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
        )
    return area.to_dict(state.workspace.clock.now())


@api.delete(
    "/areas/{area_id}",
    tags=["location"],
    response_model=schemas.Area,
    responses={**ERRORS, 404: PROBLEM, 409: PROBLEM},
)
def delete_area(
    area_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("location_event"))],
) -> dict[str, Any]:
    """Retire an area: it applies no longer (audited; searches made in it still name it)."""
    state = app_state(request)
    with state.workspace.store.using(uow) as u:
        area = retire_area(u, principal.actor, area_id, scopes=principal.scopes)
    return area.to_dict(state.workspace.clock.now())


@api.get(
    "/approvals",
    tags=["location"],
    response_model=schemas.LocationApprovalList,
    responses=ERRORS,
)
def get_approvals(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("location_approve"))],
    state: Annotated[STATES | None, Query(description="Only those in this state now.")] = None,
) -> dict[str, Any]:
    """Approval requests for searches in sensitive areas, newest first (supervisors)."""
    st = app_state(request)
    lc = st.workspace.location
    now = st.workspace.clock.now()
    got = approvals.list_approvals(uow.session, now, lc.approval_minutes, state=state)
    return {"approvals": [v.to_dict() for v in got], "approval_minutes": lc.approval_minutes}


@api.post(
    "/approvals/{approval_id}",
    tags=["location"],
    response_model=schemas.LocationApproval,
    responses={**ERRORS, 404: PROBLEM, 409: PROBLEM},
)
def post_approval(
    approval_id: int,
    body: DecisionIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("location_approve"))],
) -> dict[str, Any]:
    """Approve or refuse a pending request with a reason (a supervisor other than the operator
    who asked); audited ``location_approval``. An approval lets that operator run one search in
    that case and those areas within ``[location] approval_minutes``. Refusals: 422
    ``location.reason``, 403 ``location.own_request``, 404 ``location.not_found``, 409
    ``location.decided``."""
    return decide(app_state(request), uow, principal, approval_id, body.decision, body.reason)
