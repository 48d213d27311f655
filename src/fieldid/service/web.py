"""The officer's screens: server-rendered pages with a little plain JavaScript.

login → start (purpose, case reference, notice) → capture (live guidance, or a file input when
there is no camera) → results (the probe beside each candidate, leads not identifications) →
adjudication (confirm, reject or inconclusive, with a reason and the documents presented) →
outcome (who decided, and what still waits) → receipt for the person photographed.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from fieldid.access.accounts import AuthenticationError
from fieldid.candidate import LEAD_NOTICE
from fieldid.errors import FieldidError
from fieldid.service import api, queues, views
from fieldid.service.auth import (
    SESSION_COOKIE,
    Need,
    Principal,
    app_state,
    authenticate,
    client_address,
    is_secure,
)
from fieldid.service.db import Uow
from fieldid.service.guards import as_id
from fieldid.service.problems import status_for
from fieldid.store import UnitOfWork

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(
    directory=str(Path(str(resources.files("fieldid.service").joinpath("templates"))))
)
PRELOGIN_COOKIE = "fieldid_login_csrf"


def sentence(text: str) -> str:
    """Capitalise the first letter only (Jinja's ``capitalize`` lowercases the rest)."""
    return text[:1].upper() + text[1:]


def short(search_id: object) -> str:
    """A search's public id as pages show it: its first 8 characters (the whole id is in the
    URL, the API and the folded facts)."""
    text = str(search_id)
    return text if len(text) <= 10 else text[:8] + "…"


templates.env.filters["sentence"] = sentence
templates.env.filters["short"] = short


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
    who = principal or getattr(request.state, "principal", None)
    base = {
        "principal": who,
        "banner": state.settings.banner,
        "lead_notice": LEAD_NOTICE,
        "demo_onboarding": state.settings.demo_onboarding,
        "nav": nav(request, who),
    }
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def nav(request: Request, principal: Principal | None) -> list[dict[str, Any]]:
    """The header's links for this operator's role: searching for those who search, and the
    review queue with its count for supervisors (so waiting work is seen from any page)."""
    if principal is None:
        return []
    here = request.url.path
    items: list[dict[str, Any]] = []
    if principal.can("search"):
        items.append({"href": "/start", "text": "New search", "testid": "nav-start"})
        label = "Searches" if principal.can("review") else "My searches"
        items.append({"href": "/searches", "text": label, "testid": "nav-searches"})
    if principal.can("review"):
        n = _waiting_count(request, principal)
        items.append({"href": "/review", "text": f"Review ({n})", "testid": "nav-review"})
    if principal.can("location_approve") and app_state(request).workspace.location.enabled:
        from fieldid.service.location import pending_count

        n = pending_count(app_state(request), getattr(request.state, "uow", None))
        items.append({"href": "/approvals", "text": f"Approvals ({n})", "testid": "nav-approvals"})
    for item in items:
        item["current"] = here == item["href"] or (item["href"] == "/start" and here == "/capture")
    return items


def _waiting_count(request: Request, principal: Principal) -> int:
    """Read through the request's unit of work when the handler has one (an error page may be
    rendered before it exists)."""
    uow = getattr(request.state, "uow", None)
    if uow is not None:
        return queues.waiting_count(uow.session, principal.actor)
    with app_state(request).workspace.store.read() as s:
        return queues.waiting_count(s, principal.actor)


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
            # No one is logged in here: the phone's capture queue and its key are dropped.
            "logged_out": True,
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
    if state.workspace.config.notice_required and not notice_given:
        errors.append("Policy requires telling the person before a search: tick 'notice given'.")
    return errors


def _start_context(request: Request, **extra: Any) -> dict[str, Any]:
    state = app_state(request)
    return {
        "purposes": state.workspace.config.purposes,
        "notice_required": state.workspace.config.notice_required,
        "purpose": request.query_params.get("purpose", ""),
        "case_ref": request.query_params.get("case_ref", ""),
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
    # documents first (fieldid.service.documents_web): the document check this search follows
    doc = {
        "documentCheck": request.query_params.get("document_check", ""),
        "documentReason": request.query_params.get("document_reason", ""),
    }
    for k, v in (("documentCheck", "document_check"), ("documentReason", "document_reason")):
        if v in extra:
            doc[k] = str(extra.pop(v) or "")
    return {
        "document": doc,
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
            "operator": principal.actor.name,
            # The offline queue: how long a capture may wait for signal, and for an answer.
            "queueLimitS": s.capture_queue_limit_s,
            "sendTimeoutS": s.capture_send_timeout_s,
            # [location]: the phone reduces its position to this grid before sending it.
            "location": _location_config(request),
            **{k: v for k, v in doc.items() if v},
        },
        "error": None,
        **extra,
    }


def _location_config(request: Request) -> dict[str, Any]:
    lc = app_state(request).workspace.location
    return {"enabled": lc.enabled, "gridDeg": lc.grid_deg, "required": lc.required}


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
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    image: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()] = "",
    case_ref: Annotated[str, Form()] = "",
    notice_given: Annotated[bool | None, Form()] = None,
    below_gate_reason: Annotated[str | None, Form(max_length=2000)] = None,
    location: Annotated[str | None, Form(max_length=60)] = None,
    document_check: Annotated[str | None, Form(max_length=12)] = None,
    document_reason: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    """The file-input fallback: a plain form post, no JavaScript needed. A refused attempt
    goes to its own results page, which says it was refused, why, and what to do.
    ``below_gate_reason`` (a supervisor, from a refused attempt's page): search the file anyway
    as an investigation list labelled low quality."""
    state = app_state(request)
    try:
        data = await api.read_upload(image, state)
        body = await run_in_threadpool(
            lambda: api.run_search(
                state,
                uow,
                principal,
                data,
                purpose,
                case_ref,
                notice_given,
                capture="file",
                below_gate_reason=below_gate_reason,
                location=location or None,
                document_check=as_id(document_check) if document_check else None,
                document_reason=document_reason or None,
            )
        )
    except FieldidError as e:
        made = e.details.get("search_id")
        if isinstance(made, str):
            return RedirectResponse(f"/results/{made}", status_code=303)
        ctx = _capture_context(
            request,
            principal,
            purpose,
            case_ref,
            notice_given,
            error=e,
            document_check=document_check,
            document_reason=document_reason,
        )
        ctx["camera"] = False
        return render(request, "capture.html", ctx, status=status_for(e.code))
    return RedirectResponse(body["links"]["page"], status_code=303)


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def _retry_links(view: dict[str, Any]) -> dict[str, str]:
    """Back to the capture page with the same purpose, case and notice (camera, or a file)."""
    q = {
        "purpose": view["purpose"],
        "case_ref": view["case_ref"],
        "notice_given": "true" if view["notice_given"] else "",
    }
    return {
        "camera": "/capture?" + urlencode(q),
        "file": "/capture?" + urlencode({**q, "camera": "off"}),
    }


def headline(view: dict[str, Any]) -> str:
    """What happened, for the first line of the results page: refused, no candidate, leads, or
    an investigation list (never the lead notice over an empty or refused result)."""
    if view["outcome"] == "refused":
        return "refused"
    if view["list_kind"] == "investigation":
        return "investigation"
    return "leads" if view["candidates"] else "no_candidate"


def _search_context(
    request: Request, uow: UnitOfWork, principal: Principal, search_id: str, *, audit: str = ""
) -> dict[str, Any]:
    """Everything the results and outcome pages show of a persisted search; ``audit``: the page
    being shown, recorded as a ``search_view`` (a re-rendered form after a refusal is not a new
    view)."""
    from fieldid.adjudication.states import OPEN_STATES

    ws = app_state(request).workspace
    s = uow.session
    rec = views.visible_search(s, principal, search_id)
    view = views.search_view(s, ws, rec)
    by_person = {c["person_id"]: c for c in view["candidates"]}
    for a in view["adjudications"]:
        a["at_text"] = _when(a["at"])
        a["second_at_text"] = _when(a["second_at"])
        a["override_at_text"] = _when(a["override_at"])
        a["candidate"] = by_person.get(a["person_id"])
        a["may_second"] = (
            a["state"] == "pending_second"
            and principal.can("second_confirm")
            and a["by"] != principal.actor.name
        )
        a["may_override"] = (
            a["state"] == "blocked_conflict"
            and principal.can("override_conflict")
            and a["by"] != principal.actor.name
        )
    may_adjudicate = (
        view["status"] in OPEN_STATES
        and view["outcome"] != "refused"
        and principal.can("adjudicate")
        and (principal.actor.name == view["operator"] or principal.can("review"))
    )
    waiting = next(
        (a for a in view["adjudications"] if a["state"] in ("pending_second", "blocked_conflict")),
        None,
    )
    disagreed = [a for a in view["adjudications"] if a["state"] == "disagreed"]
    refusal = view["refusal"] or {}
    if audit:
        views.audit_access(uow, ws.store, principal, "search_view", rec, {"page": audit})
    return {
        "r": view,
        "candidates": view["candidates"],
        "at": _when(view["at"]),
        "may_adjudicate": may_adjudicate,
        # A confirmation waits: no other lead can be confirmed until it is settled.
        "waiting": waiting,
        "disagreed": disagreed,
        "document_types": api.DOCUMENT_TYPES,
        "status_text": view["status_text"],
        "headline": headline(view),
        "retry": _retry_links(view),
        # A supervisor may search a refused file anyway as a low-quality investigation list.
        "may_below_gate": bool(refusal.get("quality_refusal")) and principal.can("investigation"),
        "error": None,
        "form": {},
    }


@router.get("/results/{search_id}")
def results(
    search_id: str,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    ctx = _search_context(request, uow, principal, search_id, audit="results")
    return render(request, "results.html", ctx)


def _document_from_form(form: dict[str, str]) -> list[dict[str, str]]:
    """The one document the web form records (the API takes a list). Nothing filled in: none."""
    fields = {
        "type": form.get("doc_type", ""),
        "number": form.get("doc_number", ""),
        "issuing_country": form.get("doc_issuing_country", ""),
        "name": form.get("doc_name", ""),
        "date_of_birth": form.get("doc_date_of_birth", "") or None,
        "nationality": form.get("doc_nationality", ""),
    }
    if not any(v for k, v in fields.items() if k != "type"):
        return []
    if not fields["type"]:
        raise FieldidError(
            "say what kind of document was presented", code="adjudication.document_type"
        )
    try:
        doc = api.DocumentIn(**fields)  # type: ignore[arg-type]
    except ValueError as e:
        raise FieldidError(
            "the document's date of birth must be a date (YYYY-MM-DD)",
            code="adjudication.document_invalid",
        ) from e
    return [doc.record()]


@router.post("/results/{search_id}/adjudications")
async def adjudicate_form(
    search_id: str,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("adjudicate", page=True))],
) -> Response:
    """The web form's adjudication: the same rules and audit as the API. A reject goes back to
    the leads (the search stays open for the others); a confirmation or a close goes to the
    outcome."""
    state = app_state(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    person = form.get("person_id", "").strip()
    decision = form.get("decision", "")
    try:
        docs = _document_from_form(form)
        out = await run_in_threadpool(
            api.adjudicate,
            state,
            uow,
            principal,
            search_id,
            decision,
            as_id(person),
            form.get("reason", ""),
            docs,
        )
    except FieldidError as e:
        if status_for(e.code) in (401, 403) or e.code == "search.not_found":
            raise
        ctx = await run_in_threadpool(_search_context, request, uow, principal, search_id)
        ctx["error"], ctx["form"] = e, form
        return render(request, "results.html", ctx, status=status_for(e.code))
    if decision == "reject" and out["search"]["status"] != "not_identified":
        rank = next(
            (c["rank"] for c in out["search"]["candidates"] if str(c["person_id"]) == person), ""
        )
        return RedirectResponse(f"/results/{search_id}?ruled_out={rank}", status_code=303)
    return RedirectResponse(f"/outcome/{search_id}", status_code=303)


@router.get("/outcome/{search_id}")
def outcome(
    search_id: str,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    """The decisions recorded on a search: who decided, when, why, on which documents, and
    what is still waiting (a second person, or a supervisor's override of a conflict). A
    confirmation waiting for this person shows both photos, the score and what it means, the
    first person's reason, and the form to confirm or disagree."""
    ctx = _search_context(request, uow, principal, search_id, audit="outcome")
    return render(request, "outcome.html", ctx)


async def _outcome_action(
    request: Request,
    uow: UnitOfWork,
    principal: Principal,
    search_id: str,
    adjudication_id: int,
    act: str,
) -> Response:
    state = app_state(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}

    def work() -> None:
        views.visible_search(uow.session, principal, search_id)
        with state.work_lock:
            adj = state.adjudicator()
            if act == "second":
                adj.second(
                    adjudication_id,
                    principal.actor,
                    form.get("decision", ""),
                    form.get("reason", ""),
                    search_id=search_id,
                    uow=uow,
                )
            else:
                adj.override(
                    adjudication_id,
                    principal.actor,
                    form.get("reason", ""),
                    search_id=search_id,
                    uow=uow,
                )

    try:
        await run_in_threadpool(work)
    except FieldidError as e:
        if status_for(e.code) in (401, 403) or e.code == "search.not_found":
            raise
        ctx = await run_in_threadpool(_search_context, request, uow, principal, search_id)
        ctx["error"], ctx["form"] = e, {**form, "adjudication_id": str(adjudication_id)}
        return render(request, "outcome.html", ctx, status=status_for(e.code))
    return RedirectResponse(f"/outcome/{search_id}", status_code=303)


@router.post("/outcome/{search_id}/adjudications/{adjudication_id}/second")
async def second_form(
    search_id: str,
    adjudication_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("second_confirm", page=True))],
) -> Response:
    """The second person's answer: confirm or disagree, with a reason."""
    return await _outcome_action(request, uow, principal, search_id, adjudication_id, "second")


@router.post("/outcome/{search_id}/adjudications/{adjudication_id}/override")
async def override_form(
    search_id: str,
    adjudication_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("override_conflict", page=True))],
) -> Response:
    return await _outcome_action(request, uow, principal, search_id, adjudication_id, "override")


# --- receipt ------------------------------------------------------------------------------------


def qr_svg(payload: str) -> str:
    """The QR code as inline SVG (segno: pure Python, no network, no image files)."""
    import segno

    qr = segno.make_qr(payload, error="m")
    return str(qr.svg_inline(scale=4, border=2, dark="#000", light="#fff", omitsize=True))


@router.get("/receipt/{code}")
def receipt(
    code: str,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    """The receipt for the person photographed: the code to quote, when, why, and how to ask
    for redress, with a QR code. Printable (print CSS). Shown to the officer who ran the search
    and to supervisors (the code itself is the person's key to a redress request)."""
    from fieldid.retention.policy import RetentionPolicy

    ws = app_state(request).workspace
    rec = views.visible_receipt(uow.session, principal, code)
    views.audit_access(uow, ws.store, principal, "search_view", rec, {"page": "receipt"})
    text = ws.config.receipt
    retention = RetentionPolicy.load(ws.root)
    return render(
        request,
        "receipt.html",
        {
            "rec": rec,
            "at": _when(views.iso(rec.started_at)),
            "purpose": rec.purpose.replace("-", " "),
            "text": text,
            "qr": qr_svg(text.qr_payload(rec.receipt_code)),
            "qr_payload": text.qr_payload(rec.receipt_code),
            "retention": retention.human(),
            "refused": rec.outcome == "refused",
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
