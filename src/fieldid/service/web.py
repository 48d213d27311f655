"""The officer's screens: server-rendered pages with a little plain JavaScript.

login → start (purpose, case reference, notice) → capture (live guidance, or a file input when
there is no camera) → results (the probe beside each candidate, leads not identifications).
"""

from __future__ import annotations

import secrets
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from fieldid.access.accounts import AuthenticationError
from fieldid.candidate import LEAD_NOTICE
from fieldid.errors import FieldidError
from fieldid.service import api
from fieldid.service.auth import (
    SESSION_COOKIE,
    Need,
    Principal,
    app_state,
    authenticate,
    client_address,
    is_secure,
)
from fieldid.service.problems import status_for

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(
    directory=str(Path(str(resources.files("fieldid.service").joinpath("templates"))))
)
PRELOGIN_COOKIE = "fieldid_login_csrf"


def quote_next(target: str) -> str:
    return quote(target, safe="")


def safe_next(target: str | None) -> str:
    """Only a local path: never redirect a login to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status: int = 200,
    principal: Principal | None = None,
) -> HTMLResponse:
    state = app_state(request)
    base = {
        "principal": principal or getattr(request.state, "principal", None),
        "banner": state.settings.banner,
        "lead_notice": LEAD_NOTICE,
    }
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, err: FieldidError) -> HTMLResponse:
    return render(request, "error.html", {"status": status, "error": err}, status=status)


# --- login ---------------------------------------------------------------------------------------


def _login_page(
    request: Request, error: str | None = None, status: int = 200, name: str = ""
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {
            "error": error,
            "csrf": token,
            "name": name,
            "next": safe_next(request.query_params.get("next")),
        },
        status=status,
    )
    state = app_state(request)
    response.set_cookie(
        PRELOGIN_COOKIE,
        token,
        max_age=1800,
        httponly=True,
        samesite="strict",
        secure=is_secure(request, state),
        path="/login",
    )
    return response


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.post("/login")
def login_submit(
    request: Request,
    name: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    state = app_state(request)
    expected = request.cookies.get(PRELOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return _login_page(request, "The login form expired: please try again.", 403, name)
    try:
        actor = state.accounts.authenticate(name, password, client=client_address(request))
    except AuthenticationError as e:
        state.metrics.outcome("login", e.code)
        return _login_page(request, e.message, status_for(e.code), name)
    secret, _ = state.accounts.open_session(actor, client=client_address(request))
    state.metrics.outcome("login", "ok")
    response = RedirectResponse(safe_next(next), status_code=303)
    api.set_session_cookie(response, request, state, secret)
    response.delete_cookie(PRELOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request, principal: Annotated[Principal, Depends(Need(None, page=True))]
) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        app_state(request).accounts.close_session(cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- home, start, capture, results -------------------------------------------------------------


@router.get("/")
def home(
    request: Request, principal: Annotated[Principal, Depends(Need(None, page=True))]
) -> Response:
    if principal.can("search"):
        return RedirectResponse("/start", status_code=303)
    return render(request, "home.html", {})


def _use_errors(
    request: Request, purpose: str, case_ref: str, notice_given: bool | None
) -> list[str]:
    state = app_state(request)
    errors = []
    if purpose not in state.workspace.config.purposes:
        errors.append("Choose the purpose of this search.")
    if not case_ref.strip():
        errors.append("Enter the case reference this search belongs to.")
    if len(case_ref) > 200:
        errors.append("The case reference is too long (200 characters at most).")
    if state.settings.notice_policy == "required" and not notice_given:
        errors.append("Policy requires telling the person before a search: tick 'notice given'.")
    return errors


def _start_context(request: Request, **extra: Any) -> dict[str, Any]:
    state = app_state(request)
    return {
        "purposes": state.workspace.config.purposes,
        "notice_policy": state.settings.notice_policy,
        "purpose": "",
        "case_ref": "",
        "notice_given": False,
        "errors": [],
        **extra,
    }


@router.get("/start")
def start(
    request: Request, principal: Annotated[Principal, Depends(Need("search", page=True))]
) -> HTMLResponse:
    return render(request, "start.html", _start_context(request))


def _capture_context(
    request: Request,
    principal: Principal,
    purpose: str,
    case_ref: str,
    notice_given: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    s = app_state(request).settings
    camera = request.query_params.get("camera", "on") != "off"
    return {
        "purpose": purpose,
        "case_ref": case_ref,
        "notice_given": notice_given,
        "camera": camera,
        "capture": {
            "width": s.capture_width,
            "height": s.capture_height,
            "guidanceWidth": s.guidance_width,
            "fps": s.guidance_fps,
            "csrf": principal.csrf_token or "",
            "purpose": purpose,
            "caseRef": case_ref,
            "noticeGiven": bool(notice_given),
            "camera": camera,
        },
        "error": None,
        **extra,
    }


@router.get("/capture")
def capture(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    purpose: str = "",
    case_ref: str = "",
    notice_given: bool | None = None,
) -> HTMLResponse:
    errors = _use_errors(request, purpose, case_ref, notice_given)
    if errors:
        ctx = _start_context(
            request,
            purpose=purpose,
            case_ref=case_ref,
            notice_given=bool(notice_given),
            errors=errors,
        )
        return render(request, "start.html", ctx, status=422)
    return render(
        request,
        "capture.html",
        _capture_context(request, principal, purpose, case_ref.strip(), notice_given),
    )


@router.post("/capture")
async def capture_upload(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    image: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()] = "",
    case_ref: Annotated[str, Form()] = "",
    notice_given: Annotated[bool | None, Form()] = None,
) -> Response:
    """The file-input fallback: a plain form post, no JavaScript needed."""
    state = app_state(request)
    try:
        data = await api.read_upload(image, state)
        item = await run_in_threadpool(
            api.run_search, state, principal, data, purpose, case_ref, notice_given
        )
    except FieldidError as e:
        ctx = _capture_context(request, principal, purpose, case_ref, notice_given, error=e)
        ctx["camera"] = False
        return render(request, "capture.html", ctx, status=status_for(e.code))
    return RedirectResponse(f"/results/{item.ref}", status_code=303)


def _rate_text(c: dict[str, Any], persons: int) -> str | None:
    """What a candidate's score means, from whatever rate the candidate list carries."""
    for key in ("fpir", "false_positive_rate", "fpr"):
        v = c.get(key)
        if isinstance(v, int | float):
            return (
                f"In a gallery of {persons:,} people, a stranger scores this high in about "
                f"{v:.2%} of searches."
            )
    rates = c.get("rates")
    if isinstance(rates, dict) and isinstance(rates.get("text"), str):
        return str(rates["text"])
    return None


@router.get("/results/{ref}")
def results(
    ref: int,
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    state = app_state(request)
    item = api.stored_result(state, principal, ref)
    r = item.result
    persons = int(r.get("gallery", {}).get("persons", 0))
    candidates = [{**c, "rate_text": _rate_text(c, persons)} for c in r.get("candidates", [])]
    return render(
        request,
        "results.html",
        {
            "item": item,
            "r": r,
            "candidates": candidates,
            "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(item.created)),
        },
    )


# --- PWA -----------------------------------------------------------------------------------------


def _static(name: str) -> Path:
    return Path(str(resources.files("fieldid.service").joinpath("static", name)))


@router.get("/manifest.webmanifest")
def manifest() -> FileResponse:
    return FileResponse(_static("manifest.webmanifest"), media_type="application/manifest+json")


@router.get("/sw.js")
def service_worker() -> FileResponse:
    """At the root so its scope covers the whole app."""
    return FileResponse(
        _static("sw.js"), media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )


__all__ = ["authenticate", "error_page", "quote_next", "router"]
