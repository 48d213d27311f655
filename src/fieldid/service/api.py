"""The REST API, version 1 (``/api/v1``). Every answer that refuses is problem+json."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import inspect, select, text
from starlette.concurrency import run_in_threadpool

from fieldid.access.accounts import AuthenticationError
from fieldid.audit import Attribution
from fieldid.errors import AcquisitionFailed, AuthorisationError, FieldidError, ProbeRejected
from fieldid.gallery.schema import EnrollmentImage, Person
from fieldid.quality.measures import assess, at_scale
from fieldid.service.auth import (
    SESSION_COOKIE,
    Need,
    Principal,
    app_state,
    client_address,
    is_secure,
)
from fieldid.service.state import AppState, StoredResult

router = APIRouter(prefix="/api/v1")

PROBLEM = {"content": {"application/problem+json": {}}, "description": "refused (problem+json)"}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: PROBLEM,
    403: PROBLEM,
    413: PROBLEM,
    415: PROBLEM,
    422: PROBLEM,
}


class LoginBody(BaseModel):
    name: str = Field(max_length=100)
    password: str = Field(max_length=1000)


class SessionOut(BaseModel):
    operator: str
    role: str
    csrf_token: str
    expires_at: str


async def read_upload(upload: UploadFile, state: AppState, what: str = "image") -> bytes:
    """The uploaded bytes, refusing more than the service's limit without reading it all."""
    limit = min(state.settings.max_upload_bytes, state.workspace.config.limits.max_bytes)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ProbeRejected(
            f"the {what} is larger than {limit // (1024 * 1024)} MiB: send a smaller photo",
            code="probe.too_large_bytes",
            limit_bytes=limit,
        )
    if not data:
        raise ProbeRejected(f"the {what} is empty", code="probe.empty")
    return data


def check_notice(state: AppState, notice_given: bool | None) -> None:
    if state.settings.notice_policy == "required" and not notice_given:
        raise AuthorisationError(
            "policy requires telling the person before a search: tick 'notice given'",
            code="use.no_notice",
        )


def run_search(
    state: AppState,
    principal: Principal,
    data: bytes,
    purpose: str,
    case_ref: str,
    notice_given: bool | None,
) -> StoredResult:
    """Search (serialised with other face work), keep the result for display, count it."""
    check_notice(state, notice_given)
    attr = Attribution(principal.actor.name, purpose.strip(), case_ref.strip())
    t = time.perf_counter()
    try:
        with state.work_lock:
            result = state.searches.search(data, attr)
    except FieldidError as e:
        state.metrics.outcome("search", e.code)
        raise
    state.metrics.search_seconds(time.perf_counter() - t)
    body = result.to_dict()
    state.metrics.outcome("search", "candidates" if result.candidates else "none_above_threshold")
    item = StoredResult(
        ref=result.search_ref,
        operator=principal.actor.name,
        purpose=attr.purpose,
        case_ref=attr.case_ref,
        notice_given=notice_given,
        created=time.time(),
        result=body,
        probe=data,
    )
    state.results.put(item)
    return item


def result_body(item: StoredResult) -> dict[str, Any]:
    return {
        **item.result,
        "operator": item.operator,
        "purpose": item.purpose,
        "case_ref": item.case_ref,
        "notice_given": item.notice_given,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item.created)),
        "links": {
            "self": f"/api/v1/searches/{item.ref}",
            "probe": f"/api/v1/searches/{item.ref}/probe",
            "page": f"/results/{item.ref}",
        },
    }


def stored_result(state: AppState, principal: Principal, ref: int) -> StoredResult:
    """A recent search the principal may see: their own, or any for a reviewer."""
    item = state.results.get(ref)
    if item is None:
        raise FieldidError(
            f"search {ref} is not held for display (results are kept "
            f"{state.settings.results_ttl_seconds // 60} minutes); its audit entry remains",
            code="search.not_found",
        )
    if item.operator != principal.actor.name and not principal.can("review"):
        raise AuthorisationError(
            "only the officer who ran a search, or a supervisor, may see its results",
            code="access.forbidden",
        )
    return item


@router.post(
    "/session", tags=["session"], response_model=SessionOut, responses={401: PROBLEM, 429: PROBLEM}
)
def login(body: LoginBody, request: Request, response: Response) -> SessionOut:
    """Log in with an operator name and password; sets the session cookie (HttpOnly,
    SameSite=Strict) and returns the CSRF token to send as ``X-CSRF-Token`` with every
    state-changing request."""
    state = app_state(request)
    actor = state.accounts.authenticate(body.name, body.password, client=client_address(request))
    secret, grant = state.accounts.open_session(actor, client=client_address(request))
    set_session_cookie(response, request, state, secret)
    state.metrics.outcome("login", "ok")
    return SessionOut(
        operator=actor.name,
        role=actor.role.value,
        csrf_token=grant.csrf_token,
        expires_at=grant.expires_at.isoformat(),
    )


def set_session_cookie(response: Response, request: Request, state: AppState, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(state.accounts.policy.session_lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=is_secure(request, state),
        path="/",
    )


@router.delete("/session", tags=["session"], status_code=204, responses=ERRORS)
def logout(request: Request, principal: Annotated[Principal, Depends(Need(None))]) -> Response:
    """End this browser session."""
    state = app_state(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        state.accounts.close_session(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", tags=["session"], responses=ERRORS)
def me(request: Request, principal: Annotated[Principal, Depends(Need(None))]) -> dict[str, Any]:
    """Who is logged in, what they may do, and the use policy the screens need."""
    from fieldid.access import PERMISSIONS

    state = app_state(request)
    s = state.settings
    return {
        "operator": principal.actor.name,
        "role": principal.actor.role.value,
        "via": principal.via,
        "may": sorted(a for a in PERMISSIONS if principal.can(a)),
        "purposes": list(state.workspace.config.purposes),
        "notice_policy": s.notice_policy,
        "capture": {
            "width": s.capture_width,
            "height": s.capture_height,
            "guidance_width": s.guidance_width,
            "guidance_fps": s.guidance_fps,
        },
    }


@router.post("/searches", tags=["search"], status_code=201, responses=ERRORS)
async def search(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search"))],
    image: Annotated[UploadFile, File(description="The probe photo: JPEG, PNG or WebP.")],
    purpose: Annotated[str, Form(description="One of the workspace's permitted purposes.")],
    case_ref: Annotated[str, Form(description="The case this search belongs to.")],
    notice_given: Annotated[
        bool | None, Form(description="Whether the person was told (per notice policy).")
    ] = None,
) -> JSONResponse:
    """Search one face 1:N. The answer lists candidates at or above the threshold: leads for a
    person to adjudicate, never an identification. Refusals: ``probe.*`` (the image),
    ``acquire.no_face``, ``quality.*`` (with ``guidance``), ``use.*`` (purpose, case, notice)."""
    state = app_state(request)
    data = await read_upload(image, state)
    item = await run_in_threadpool(
        run_search, state, principal, data, purpose, case_ref, notice_given
    )
    return JSONResponse(
        result_body(item),
        status_code=201,
        headers={"Location": f"/api/v1/searches/{item.ref}"},
    )


@router.get("/searches/{ref}", tags=["search"], responses={**ERRORS, 404: PROBLEM})
def get_search(
    ref: int, request: Request, principal: Annotated[Principal, Depends(Need("search"))]
) -> dict[str, Any]:
    """A recent search's answer (the officer's own, or any for a supervisor)."""
    return result_body(stored_result(app_state(request), principal, ref))


@router.get(
    "/searches/{ref}/probe",
    tags=["search"],
    responses={**ERRORS, 404: PROBLEM, 200: {"content": {"image/jpeg": {}}}},
    response_class=Response,
)
def get_probe(
    ref: int, request: Request, principal: Annotated[Principal, Depends(Need("search"))]
) -> Response:
    """The probe photo of a recent search, downscaled for display."""
    item = stored_result(app_state(request), principal, ref)
    return Response(
        item.probe_thumbnail(), media_type="image/jpeg", headers={"Cache-Control": "private"}
    )


@router.post("/verifications", tags=["search"], responses=ERRORS)
async def verify(
    request: Request,
    principal: Annotated[Principal, Depends(Need("verify"))],
    image_a: Annotated[UploadFile, File()],
    image_b: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()],
    case_ref: Annotated[str, Form()],
) -> dict[str, Any]:
    """Compare two photos 1:1: a similarity score for a person to weigh."""
    state = app_state(request)
    a = await read_upload(image_a, state, "first image")
    b = await read_upload(image_b, state, "second image")
    attr = Attribution(principal.actor.name, purpose.strip(), case_ref.strip())

    def work() -> dict[str, Any]:
        with state.work_lock:
            return state.searches.verify(a, b, attr).to_dict()

    try:
        out = await run_in_threadpool(work)
    except FieldidError as e:
        state.metrics.outcome("verify", e.code)
        raise
    state.metrics.outcome("verify", "ok")
    return out


def check_quality(state: AppState, data: bytes, scale: float) -> dict[str, Any]:
    """Live guidance for one frame: face box, gate result and what to change. Not a search:
    nothing is stored and nothing is audited (no template is even made)."""
    pipeline = state.workspace.pipeline
    with state.work_lock:
        probe, _ = pipeline.decode(data)
        try:
            acq = pipeline.finder.find(probe.rgb)
        except AcquisitionFailed:
            state.metrics.outcome("quality_check", "no_face")
            return {
                "face": None,
                "passes": False,
                "guidance": [
                    {
                        "code": "acquire.no_face",
                        "message": "no face found: point the camera at the face",
                    }
                ],
                "quality": None,
                "frame": {"width": probe.width, "height": probe.height},
            }
        report = at_scale(assess(probe.rgb, acq), scale)
    guidance = [asdict(g) for g in state.workspace.config.gate.check(report)]
    state.metrics.outcome("quality_check", "passes" if not guidance else guidance[0]["code"])
    box = acq.face.box
    return {
        "face": {
            "box": [
                round(box.left, 1),
                round(box.top, 1),
                round(box.width, 1),
                round(box.height, 1),
            ],
            "inter_eye_px_at_capture": round(report.value("inter_eye_distance"), 1),
        },
        "passes": not guidance,
        "guidance": guidance,
        "quality": report.to_dict(),
        "frame": {"width": probe.width, "height": probe.height},
    }


@router.post("/quality", tags=["search"], responses=ERRORS)
async def quality(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search"))],
    frame: Annotated[UploadFile, File(description="A downscaled camera frame (JPEG).")],
    scale: Annotated[
        float,
        Form(ge=1.0, le=8.0, description="Capture width / frame width (pixel measures scale)."),
    ] = 1.0,
) -> dict[str, Any]:
    """Check a live camera frame against the quality gate for guidance ("move closer", "hold
    still", "more light", "face the camera"). Not a search: not audited, nothing stored."""
    state = app_state(request)
    data = await read_upload(frame, state, "frame")
    return await run_in_threadpool(check_quality, state, data, scale)


def _thumbnail_column(state: AppState) -> bool:
    cols = inspect(state.workspace.engine).get_columns("enrollment_images")
    return any(c["name"] == "thumbnail" for c in cols)


@router.get(
    "/persons/{person_id}/photo",
    tags=["gallery"],
    responses={**ERRORS, 404: PROBLEM, 200: {"content": {"image/jpeg": {}}}},
    response_class=Response,
)
def person_photo(
    person_id: int, request: Request, principal: Annotated[Principal, Depends(Need("search"))]
) -> Response:
    """The enrolled face photo of a candidate (a small crop made at enrollment), to compare with
    the probe. Template-only (synthetic) identities and people enrolled before photos were kept
    have none: 404 ``person.no_photo``."""
    state = app_state(request)
    with state.workspace.sessions() as s:
        if s.get(Person, person_id) is None:
            raise FieldidError(f"no person {person_id}", code="person.not_found")
        blob = None
        if _thumbnail_column(state):
            blob = s.execute(
                text(
                    "SELECT thumbnail FROM enrollment_images WHERE person_id = :p "
                    "AND thumbnail IS NOT NULL ORDER BY quality_unified DESC LIMIT 1"
                ),
                {"p": person_id},
            ).scalar()
        images = s.scalar(
            select(EnrollmentImage.id).where(EnrollmentImage.person_id == person_id).limit(1)
        )
    if not blob:
        why = "has no enrolled image" if images is None else "has no stored photo"
        raise FieldidError(f"person {person_id} {why}", code="person.no_photo")
    return Response(bytes(blob), media_type="image/jpeg", headers={"Cache-Control": "private"})


@router.post("/enrollments", tags=["gallery"], status_code=201, responses=ERRORS)
async def enroll(
    request: Request,
    principal: Annotated[Principal, Depends(Need("enroll"))],
    image: Annotated[UploadFile, File()],
    external_id: Annotated[str, Form(max_length=200, description="The source's identity key.")],
    display_name: Annotated[str, Form(max_length=200)] = "",
    source: Annotated[str, Form(max_length=200, description="Record source (provenance).")] = "",
    synthetic: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Enrol one image under an identity (admin). Idempotent for the same bytes."""
    from fieldid.dataset import LabelledImage
    from fieldid.gallery.enroll import enroll_images

    state = app_state(request)
    data = await read_upload(image, state)
    if not external_id.strip():
        raise FieldidError("external_id is required", code="request.invalid")
    if not source.strip():
        raise FieldidError(
            "name the record source the image comes from (provenance)", code="request.invalid"
        )

    def work() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            with state.work_lock:
                summary = enroll_images(
                    state.workspace,
                    [LabelledImage(path, external_id.strip(), display_name.strip() or None)],
                    operator=principal.actor.name,
                    source_name=source.strip(),
                    synthetic=synthetic,
                )
        if summary.refused:
            r = summary.refused[0]
            raise FieldidError(r.message, code=r.code)
        size = state.workspace.gallery.size()
        return {
            "enrolled": summary.enrolled,
            "already_enrolled": summary.already_enrolled,
            "gallery": {"persons": size.persons, "templates": size.templates},
        }

    return await run_in_threadpool(work)


def readiness(state: AppState) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    try:
        with state.workspace.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"error: {type(e).__name__}"
    ws = state.workspace
    checks["model"] = str(ws.pipeline.model) if "pipeline" in ws.__dict__ else "not loaded"
    gallery_loaded = "gallery" in ws.__dict__ and ws.gallery._index is not None
    checks["index"] = (
        f"{ws.gallery._index.ntotal} templates"
        if gallery_loaded and ws.gallery._index
        else "not loaded"
    )
    ok = checks["database"] == "ok" and state.ready and gallery_loaded
    return ok, checks


__all__ = ["AuthenticationError", "readiness", "router"]
