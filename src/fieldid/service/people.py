"""Gallery management over the API (admin role, ``gallery_manage``): list, show, correct and
delete people and their enrolled images.

The same core as ``fieldid person list|show|correct|delete`` (:mod:`fieldid.gallery.manage`),
which audits every act in the unit of work of its change: ``gallery_read`` (list, show),
``person_correct``, ``image_correct``, ``person_delete``, ``image_delete``. Deleting purges the
person's (or image's) templates, stored face crop and vector-index entries: no search afterwards
returns them. Answers carry metadata only; an enrolled photo is served only by an audited use.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from fieldid.gallery.manage import MAX_LIMIT, MIN_REASON, UNSET
from fieldid.service import schemas
from fieldid.service.api import ERRORS, PROBLEM
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.db import Uow
from fieldid.service.guards import MAX_ID

router = APIRouter(prefix="/api/v1", tags=["gallery"])

#: What the gallery routes may answer besides ``ERRORS``: unknown person or image, a waiting
#: adjudication or bytes already held.
REFUSALS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: PROBLEM, 409: PROBLEM}

Reason = Annotated[
    str,
    Query(
        min_length=1,
        max_length=2000,
        description=f"Why (at least {MIN_REASON} characters); kept in the audit log.",
    ),
]
Manager = Annotated[Principal, Depends(Need("gallery_manage"))]


class PersonCorrection(BaseModel):
    display_name: str = Field(max_length=200, description="The corrected display name.")
    reason: str = Field(max_length=2000, description=f"Why ({MIN_REASON}+ characters).")


class ImageCorrection(BaseModel):
    """Give only what changes: ``capture_date`` / ``provenance`` (null clears it), or
    ``person_id`` to move the image with its templates to the person it really shows."""

    reason: str = Field(max_length=2000, description=f"Why ({MIN_REASON}+ characters).")
    capture_date: date | None = None
    provenance: str | None = Field(None, max_length=2000)
    person_id: int | None = Field(None, ge=1, le=MAX_ID, description="Move to this person.")


@router.get("/people", response_model=schemas.PeoplePage, responses=REFUSALS)
def list_people(
    request: Request,
    uow: Uow,
    principal: Manager,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Part of the external id or display name."),
    ] = None,
    synthetic: Annotated[
        bool | None, Query(description="Only synthetic (true) or only real (false) people.")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    """People in the gallery by id, with their image and template counts (admin). Audited
    (``gallery_read``)."""
    ws = app_state(request).workspace
    page = ws.gallery_admin.list_people(
        principal.actor, query=q, synthetic=synthetic, offset=offset, limit=limit, uow=uow
    )
    return page.to_dict()


@router.get("/people/{person_id}", response_model=schemas.PersonDetail, responses=REFUSALS)
def get_person(request: Request, uow: Uow, principal: Manager, person_id: int) -> dict[str, Any]:
    """One person with their enrolled images (metadata), records and source-link counts and
    the people merged into them (admin). Audited (``gallery_read``); 404 ``person.not_found``."""
    ws = app_state(request).workspace
    return ws.gallery_admin.show_person(principal.actor, person_id, uow=uow).to_dict()


@router.patch("/people/{person_id}", response_model=schemas.PersonDetail, responses=REFUSALS)
def correct_person(
    request: Request, uow: Uow, principal: Manager, person_id: int, body: PersonCorrection
) -> dict[str, Any]:
    """Correct a person's display name, with a reason (admin). Audited (``person_correct``,
    old and new value). Refusals: ``person.no_reason``, ``person.no_change``."""
    state = app_state(request)
    with state.work_lock:
        detail = state.workspace.gallery_admin.correct_person(
            principal.actor, person_id, display_name=body.display_name, reason=body.reason, uow=uow
        )
    return detail.to_dict()


@router.delete("/people/{person_id}", response_model=schemas.GalleryDeletion, responses=REFUSALS)
def delete_person(
    request: Request, uow: Uow, principal: Manager, person_id: int, reason: Reason
) -> dict[str, Any]:
    """Delete a person with their enrolled images, templates, source links and records (admin):
    purged from the database and the vector index, so no search afterwards returns them.
    Searches keep what they recorded. Audited (``person_delete``, with the counts). 409
    ``person.open_adjudication`` while a confirmation naming the person waits."""
    state = app_state(request)
    with state.work_lock:
        gone = state.workspace.gallery_admin.delete_person(
            principal.actor, person_id, reason=reason, uow=uow
        )
    return gone.to_dict()


@router.patch(
    "/people/{person_id}/images/{image_id}",
    response_model=schemas.EnrolledImage,
    responses=REFUSALS,
)
def correct_image(
    request: Request,
    uow: Uow,
    principal: Manager,
    person_id: int,
    image_id: int,
    body: ImageCorrection,
) -> dict[str, Any]:
    """Correct an enrolled image's capture date or provenance, or move it (with its templates)
    to the person it really shows (admin). Audited (``image_correct``). Refusals:
    ``person.no_change``, ``person.synthetic_mix``, 409 ``person.image_held``."""
    given = body.model_fields_set
    state = app_state(request)
    with state.work_lock:
        info = state.workspace.gallery_admin.correct_image(
            principal.actor,
            person_id,
            image_id,
            reason=body.reason,
            capture_date=body.capture_date if "capture_date" in given else UNSET,
            provenance=body.provenance if "provenance" in given else UNSET,
            move_to=body.person_id,
            uow=uow,
        )
    return info.to_dict()


@router.delete(
    "/people/{person_id}/images/{image_id}",
    response_model=schemas.GalleryDeletion,
    responses=REFUSALS,
)
def delete_image(
    request: Request, uow: Uow, principal: Manager, person_id: int, image_id: int, reason: Reason
) -> dict[str, Any]:
    """Delete one enrolled image with its templates and face crop (admin); the person stays.
    Purged from the vector index too. Audited (``image_delete``)."""
    state = app_state(request)
    with state.work_lock:
        gone = state.workspace.gallery_admin.delete_image(
            principal.actor, person_id, image_id, reason=reason, uow=uow
        )
    return gone.to_dict()
