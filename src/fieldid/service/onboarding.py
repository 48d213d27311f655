"""Demo onboarding routes: a volunteer enrols their own face with consent, searches for it, and
deletes it (see :mod:`fieldid.service.volunteers`).

Served only when ``ServiceSettings.demo_onboarding`` is on (``fieldid demo``); otherwise every
route answers 404 ``demo.off``. The routes need the ``search`` action: in the demo the officer
enrols the volunteer through the administrator's enrollment path, which a deployment never
allows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from fieldid.errors import FieldidError
from fieldid.service import api
from fieldid.service import volunteers as ob
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.problems import status_for
from fieldid.service.state import AppState

router = APIRouter()
web = APIRouter(include_in_schema=False)

CONSENT_REASON = "the volunteer asked to delete their enrollment"


def _on(state: AppState) -> None:
    if not state.settings.demo_onboarding:
        raise FieldidError("onboarding exists only in the demo (fieldid demo)", code="demo.off")


def _enrol(state: AppState, principal: Principal, data: bytes, consent: bool) -> ob.Volunteer:
    with state.work_lock:
        return ob.enrol_volunteer(
            state.workspace, data, operator=principal.actor.name, consent=consent
        )


def _delete(state: AppState, principal: Principal, person_id: int) -> None:
    with state.work_lock:
        ob.delete_volunteer(
            state.workspace, person_id, operator=principal.actor.name, reason=CONSENT_REASON
        )


def _volunteer_body(v: ob.Volunteer) -> dict[str, Any]:
    return {
        **v.to_dict(),
        "records": [],
        "links": {
            "page": f"/demo/volunteers/{v.person_id}",
            "self": f"/api/v1/demo/volunteers/{v.person_id}",
            "search": _search_link(v),
        },
    }


def _search_link(v: ob.Volunteer) -> str:
    return f"/start?purpose=evaluation&case_ref=DEMO-ONBOARDING-{v.number}"


# --- API ------------------------------------------------------------------------------------------


@router.post(
    "/api/v1/demo/volunteers",
    tags=["demo"],
    status_code=201,
    responses={**api.ERRORS, 404: api.PROBLEM},
)
async def enrol_volunteer(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search"))],
    image: Annotated[UploadFile, File(description="The volunteer's own photo.")],
    consent: Annotated[bool, Form(description="The volunteer agreed (required).")] = False,
) -> JSONResponse:
    """Demo only: enrol the volunteer's own face, with their consent, as "Demo volunteer NNNN"
    with no records. Audited as ``enroll``."""
    state = app_state(request)
    _on(state)
    data = await api.read_upload(image, state)
    v = await run_in_threadpool(_enrol, state, principal, data, consent)
    body = _volunteer_body(v)
    return JSONResponse(body, status_code=201, headers={"Location": body["links"]["self"]})


@router.delete(
    "/api/v1/demo/volunteers/{volunteer_id}",
    tags=["demo"],
    status_code=204,
    responses={**api.ERRORS, 404: api.PROBLEM},
)
def delete_volunteer(
    volunteer_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(Need("search"))],
) -> Response:
    """Demo only: delete a volunteer's enrollment (person, image record, template); audited."""
    state = app_state(request)
    _on(state)
    _delete(state, principal, volunteer_id)
    return Response(status_code=204)


# --- pages ----------------------------------------------------------------------------------------


def _render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    from fieldid.service.web import render

    return render(request, name, ctx, status=status)


def _consent_ctx(request: Request, **extra: Any) -> dict[str, Any]:
    state = app_state(request)
    return {
        "consent_text": ob.consent_text(state.workspace, state.settings.demo_volunteer_ttl_s),
        "volunteers": ob.list_volunteers(state.workspace),
        "error": None,
        **extra,
    }


@web.get("/demo/onboarding")
def onboarding(
    request: Request, principal: Annotated[Principal, Depends(Need("search", page=True))]
) -> HTMLResponse:
    """Step 1: what is stored, for how long, how to delete it; the consent box."""
    _on(app_state(request))
    return _render(request, "onboarding.html", _consent_ctx(request))


@web.get("/demo/onboarding/capture")
def onboarding_capture(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    consent: bool = False,
) -> HTMLResponse:
    """Step 2 (after consent): the camera with live guidance, or a file input."""
    state = app_state(request)
    _on(state)
    if not consent:
        ctx = _consent_ctx(
            request, error="Tick the consent box first: nothing is enrolled without it."
        )
        return _render(request, "onboarding.html", ctx, status=422)
    s = state.settings
    camera = request.query_params.get("camera", "on") != "off"
    cfg = {
        "width": s.capture_width,
        "height": s.capture_height,
        "guidanceWidth": s.guidance_width,
        "fps": s.guidance_fps,
        "csrf": principal.csrf_token or "",
        "camera": camera,
        "endpoint": "/api/v1/demo/volunteers",
        "fields": {"consent": "true"},
        "busyText": "Enrolling…",
        "failText": "The enrollment was refused.",
    }
    return _render(
        request, "onboarding_capture.html", {"capture": cfg, "camera": camera, "error": None}
    )


@web.post("/demo/onboarding")
async def onboarding_upload(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    image: Annotated[UploadFile, File()],
    consent: Annotated[bool, Form()] = False,
) -> Response:
    """The file-input fallback of step 2."""
    state = app_state(request)
    _on(state)
    try:
        data = await api.read_upload(image, state)
        v = await run_in_threadpool(_enrol, state, principal, data, consent)
    except FieldidError as e:
        if status_for(e.code) in (401, 403):
            raise
        return _render(
            request,
            "onboarding.html",
            _consent_ctx(request, error=e.message),
            status=status_for(e.code),
        )
    return RedirectResponse(f"/demo/volunteers/{v.person_id}", status_code=303)


@web.get("/demo/volunteers/{volunteer_id}")
def volunteer_page(
    volunteer_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    """Step 3: enrolled; search for yourself, or delete the enrollment."""
    state = app_state(request)
    _on(state)
    v = ob.get_volunteer(state.workspace, volunteer_id)
    return _render(
        request,
        "volunteer.html",
        {
            "v": v,
            "search_link": _search_link(v),
            "ttl_h": state.settings.demo_volunteer_ttl_s // 3600,
        },
    )


@web.post("/demo/volunteers/{volunteer_id}/delete")
def volunteer_delete(
    volunteer_id: int,
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    state = app_state(request)
    _on(state)
    v = ob.get_volunteer(state.workspace, volunteer_id)
    _delete(state, principal, volunteer_id)
    return _render(request, "volunteer_deleted.html", {"v": v})
