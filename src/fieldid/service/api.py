"""The REST API, version 1 (``/api/v1``). Every answer that refuses is problem+json."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fieldid.access.accounts import AuthenticationError
from fieldid.adjudication import idempotency
from fieldid.adjudication.store import get_search as get_stored_search
from fieldid.audit import Attribution
from fieldid.errors import AuthorisationError, FieldidError, ProbeRejected, combined
from fieldid.records.checks import presented_document
from fieldid.records.documents import PresentedDocument
from fieldid.search.service import use_problems
from fieldid.service import schemas, views
from fieldid.service.auth import (
    SESSION_COOKIE,
    Need,
    Principal,
    app_state,
    client_address,
    is_secure,
)
from fieldid.service.db import Uow
from fieldid.service.guards import MAX_ID
from fieldid.service.state import AppState
from fieldid.store import UnitOfWork
from fieldid.store.schema import AdjudicationRecord

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
    """``[use] notice_required`` (fieldid.toml): refuse a search the person was not told of."""
    if state.workspace.config.notice_required and not notice_given:
        raise AuthorisationError(
            "policy requires telling the person before a search: tick 'notice given'",
            code="use.no_notice",
        )


def parse_documents(documents: str | None) -> list[PresentedDocument]:
    """The ``documents`` form field: a JSON list of the documents the person presented."""
    if documents is None or not documents.strip():
        return []
    try:
        items = json.loads(documents)
    except json.JSONDecodeError as e:
        raise FieldidError(
            f"documents must be a JSON list of objects: {e.msg} at {e.pos}",
            code="document.syntax",
        ) from e
    except RecursionError:  # "[[[[…" nested past the parser's depth
        raise FieldidError(
            "documents must be a JSON list of objects, not nested lists", code="document.syntax"
        ) from None
    if not isinstance(items, list) or not all(isinstance(d, dict) for d in items):
        raise FieldidError("documents must be a JSON list of objects", code="document.syntax")
    return [presented_document(d) for d in items]


def idempotency_ttl(state: AppState) -> timedelta:
    """How long a search request's key is remembered: well past the phone's queue limit."""
    return max(idempotency.DEFAULT_TTL, timedelta(seconds=2 * state.settings.capture_queue_limit_s))


def replay(
    state: AppState,
    uow: UnitOfWork,
    principal: Principal,
    prior: idempotency.Remembered,
    digest: str,
) -> dict[str, Any]:
    """The answer to a repeated Idempotency-Key: the search the first request made, read back
    from the database (or its refusal, raised again). Nothing is searched or audited."""
    if prior.request_sha256 != digest:
        raise FieldidError(
            "this Idempotency-Key was already used for a different request (another photo, "
            "purpose or case): use a new key for a new search",
            code="search.idempotency_key_reused",
        )
    rec = views.visible_search(uow.session, principal, prior.search_id)
    state.metrics.outcome("search", "replayed")
    if rec.outcome == "refused":
        error = dict(rec.refusal or {})
        code = str(error.pop("code", rec.refusal_code or "search.refused"))
        message = str(error.pop("message", "the photo could not be searched"))
        error.update(receipt_code=rec.receipt_code, search_id=rec.public_id, replayed=True)
        raise FieldidError(message, code=code, **error)
    return {**views.search_view(uow.session, state.workspace, rec), "replayed": True}


def run_search(
    state: AppState,
    uow: UnitOfWork,
    principal: Principal,
    data: bytes,
    purpose: str,
    case_ref: str,
    notice_given: bool | None,
    *,
    investigation: bool = False,
    documents: str | None = None,
    capture: Literal["live", "file"] = "file",
    below_gate_reason: str | None = None,
    idempotency_key: str | None = None,
    location: str | None = None,
    document_check: int | None = None,
    document_reason: str | None = None,
) -> dict[str, Any]:
    """Search (serialised with other face work), count it, and answer with the candidate list
    plus who, why and where to see it. The search service persists the search; every later view
    reads it from the database.

    ``idempotency_key``: a repeat by the same operator answers with the first request's search
    (``replayed: true``) and runs nothing (``fieldid.adjudication.idempotency``). The key is
    looked up and remembered under the work lock, so a retry that arrives while the first
    request is still running waits for it and then gets its answer."""
    attr = Attribution(principal.actor.name, purpose.strip(), case_ref.strip())
    ws = state.workspace
    # Every problem of the request at once: the use (purpose, case, notice), the documents, the
    # idempotency key; one problem+json lists them all (``problems``).
    problems = use_problems(attr, ws.config.purposes)
    presented: list[PresentedDocument] = []
    key = None
    try:
        check_notice(state, notice_given)
    except FieldidError as e:
        problems.append(e)
    try:
        presented = parse_documents(documents)
    except FieldidError as e:
        problems.append(e)
    if idempotency_key is not None:
        try:
            key = idempotency.check_key(idempotency_key)
        except FieldidError as e:
            problems.append(e)
    if problems:
        raise combined(problems)
    reason = below_gate_reason.strip() if below_gate_reason and below_gate_reason.strip() else None
    if principal.via == "token" and (investigation or reason is not None):
        principal.require("investigation")  # a token's scopes too, not only its role
    digest = idempotency.request_digest(
        data,
        {
            "purpose": attr.purpose,
            "case_ref": attr.case_ref,
            "notice_given": notice_given,
            "investigation": investigation,
            "documents": documents or "",
            "capture": capture,
            "below_gate_reason": reason or "",
            **({} if location is None else {"location": location}),
            "document_check": document_check,
            "document_reason": document_reason or "",
        },
    )
    ttl = idempotency_ttl(state)
    t = time.perf_counter()
    try:
        with state.work_lock:
            state.follow_model()
            prior = None
            if key is not None:
                prior = idempotency.find(uow.session, attr.operator, key, ws.clock.now(), ttl)
            if prior is not None:
                return replay(state, uow, principal, prior, digest)

            def remember(unit: UnitOfWork, search_id: int) -> None:
                if key is not None:  # in the search's own unit of work
                    idempotency.remember(unit, attr.operator, key, digest, search_id, ttl)

            result = state.searches.search(
                data,
                attr,
                notice_given=notice_given,
                actor=principal.actor,
                investigation=investigation or reason is not None,
                presented=presented,
                capture=capture,
                below_gate_reason=reason,
                uow=uow,
                remember=remember,
                location=location,
                document_check=document_check,
                document_reason=document_reason,
            )
    except FieldidError as e:
        state.metrics.outcome("search", e.code)
        raise
    elapsed = time.perf_counter() - t
    state.metrics.search_seconds(elapsed)
    state.metrics.outcome("search", "candidates" if result.candidates else "none_above_threshold")
    assert result.search_id is not None and result.receipt_code is not None
    return {
        **result.to_dict(),
        "operator": principal.actor.name,
        "purpose": attr.purpose,
        "case_ref": attr.case_ref,
        "notice_given": notice_given,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "server_ms": round(elapsed * 1000, 2),
        "replayed": False,
        "links": views.links(result.search_id, result.receipt_code),
    }


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


@router.get("/me", tags=["session"], response_model=schemas.Me, responses=ERRORS)
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
        "notice_required": state.workspace.config.notice_required,
        "capture": {
            "width": s.capture_width,
            "height": s.capture_height,
            "guidance_width": s.guidance_width,
            "guidance_fps": s.guidance_fps,
        },
        "location": {
            "enabled": state.workspace.location.enabled,
            "grid_deg": state.workspace.location.grid_deg,
            "required": state.workspace.location.required,
        },
    }


@router.post(
    "/searches",
    tags=["search"],
    status_code=201,
    response_model=schemas.SearchResult,
    responses=ERRORS,
)
async def search(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
    image: Annotated[UploadFile, File(description="The probe photo: JPEG, PNG or WebP.")],
    purpose: Annotated[
        str, Form(max_length=200, description="One of the workspace's permitted purposes.")
    ],
    case_ref: Annotated[str, Form(max_length=200, description="The case this search belongs to.")],
    notice_given: Annotated[
        bool | None, Form(description="Whether the person was told (per notice policy).")
    ] = None,
    investigation: Annotated[
        bool,
        Form(
            description="A ranked list regardless of the threshold, labelled as an "
            "investigation list (roles that permit it: supervisor)."
        ),
    ] = False,
    documents: Annotated[
        str | None,
        Form(
            description="Documents the person presented, as a JSON list of objects with "
            "document_type, number, issuing_country, name, date_of_birth, nationality, expiry. "
            "Recorded with the search (numbers hashed) and compared with each candidate's records."
        ),
    ] = None,
    capture: Annotated[
        Literal["live", "file"],
        Form(
            description="Where the photo came from: the phone's live camera, or a supplied file "
            "(the default). The quality gate's refusals are worded for it."
        ),
    ] = "file",
    below_gate_reason: Annotated[
        str | None,
        Form(
            max_length=2000,
            description="Search a photo below the quality gate anyway, as an investigation list "
            "labelled low quality (roles that permit investigation lists), with this reason "
            "(at least 15 characters).",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A random key (8-100 of A-Z a-z 0-9 - _) per search. A repeat by the same "
            "operator within an hour answers with the first request's search (or refusal), "
            "with replayed: true, and runs no second search.",
        ),
    ] = None,
    location: Annotated[
        str | None,
        Form(
            max_length=60,
            description="Where the photo was taken, 'latitude,longitude', already reduced on the "
            "device to the workspace's grid ([location] grid_deg, default 0.01°). Used only when "
            "[location] is enabled (then a search in a sensitive area may need a supervisor's "
            "approval, or be refused: location.*); ignored otherwise.",
        ),
    ] = None,
    document_check: Annotated[
        int | None,
        Form(
            ge=1,
            le=2**31 - 1,
            description="The document check (POST /api/v1/document-checks) this search follows: "
            "its document is recorded with the search with its evidence level.",
        ),
    ] = None,
    document_reason: Annotated[
        str | None,
        Form(
            max_length=2000,
            description="Required when that document passed (the encounter was settled): why "
            "the document is not enough (at least 15 characters; audited).",
        ),
    ] = None,
) -> JSONResponse:
    """Search one face 1:N. The answer lists candidates at or above the threshold: leads for a
    person to adjudicate, never an identification. Refusals: ``probe.*`` (the image),
    ``acquire.no_face``, ``quality.*`` (with ``guidance``), ``use.*`` (purpose, case, notice).
    A refused attempt is recorded too: its problem carries ``search_id`` and ``receipt_code``.
    A repeated ``Idempotency-Key`` answers the first request's search as persisted (the
    ``SearchView`` of ``GET /api/v1/searches/{id}``) with ``replayed: true``."""
    state = app_state(request)
    data = await read_upload(image, state)
    body = await run_in_threadpool(
        lambda: run_search(
            state,
            uow,
            principal,
            data,
            purpose,
            case_ref,
            notice_given,
            investigation=investigation,
            documents=documents,
            capture=capture,
            below_gate_reason=below_gate_reason,
            idempotency_key=idempotency_key,
            location=location,
            document_check=document_check,
            document_reason=document_reason,
        )
    )
    headers = {"Location": body["links"]["self"]}
    if body.get("replayed"):
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=201, headers=headers)


class CaptureWipedIn(BaseModel):
    """A photo the phone app wiped unsent: it waited longer than the queue limit for signal."""

    captured_at: datetime
    wiped_at: datetime
    purpose: str = Field(max_length=100)
    case_ref: str = Field(min_length=1, max_length=200)
    #: An attempt was sent before the wipe (its answer was lost): it may have been searched.
    maybe_sent: bool = False


@router.post("/captures/wiped", tags=["search"], status_code=204, responses=ERRORS)
def capture_wiped(
    body: CaptureWipedIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
) -> Response:
    """The phone app reports, at its next contact, a capture it held without signal past the
    queue limit and wiped unsent (audited ``capture_wiped``; no image is sent or kept). The
    audit then shows the person was photographed for this case although nothing was searched."""
    state = app_state(request)
    waited = (body.wiped_at - body.captured_at).total_seconds()
    with state.workspace.store.using(uow) as u:
        u.audit(
            "capture_wiped",
            operator=principal.actor.name,
            purpose=body.purpose.strip() or None,
            case_ref=body.case_ref.strip(),
            payload={
                "captured_at": body.captured_at.isoformat(),
                "wiped_at": body.wiped_at.isoformat(),
                "waited_s": round(max(0.0, waited), 1),
                "reason": "queue_limit",
                "maybe_sent": body.maybe_sent,
            },
        )
    state.metrics.outcome("capture_wiped", "maybe_sent" if body.maybe_sent else "unsent")
    return Response(status_code=204)


@router.get(
    "/searches/{search_id}",
    tags=["search"],
    response_model=schemas.SearchView,
    responses={**ERRORS, 404: PROBLEM},
)
def get_search(
    search_id: str,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
) -> dict[str, Any]:
    """A search as persisted: who, why, the probe's quality and whether its photo is still held,
    the candidates (leads), and every human adjudication. The officer's own, or any for a
    supervisor (``review``). Reading it is audited (``search_view``)."""
    state = app_state(request)
    s = uow.session
    rec = views.visible_search(s, principal, search_id)
    view = views.search_view(s, state.workspace, rec)
    views.audit_access(
        uow, state.workspace.store, principal, "search_view", rec, {"via_route": "api"}
    )
    return view


IMAGE = {**ERRORS, 404: PROBLEM, 410: PROBLEM, 200: {"content": {"image/jpeg": {}}}}
NO_STORE = {"Cache-Control": "private, no-store"}


@router.get(
    "/searches/{search_id}/probe", tags=["search"], responses=IMAGE, response_class=Response
)
def get_probe(
    search_id: str,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
) -> Response:
    """The probe photo of a search, downscaled for display; 410 ``probe.purged`` once the
    retention policy has deleted it. Every photo served is audited (``photo_access``, kind
    ``probe``) with its search."""
    state = app_state(request)
    rec = views.visible_search(uow.session, principal, search_id)
    data = views.probe_display(uow.session, rec)
    views.audit_access(
        uow, state.workspace.store, principal, "photo_access", rec, {"kind": "probe"}
    )
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


@router.get(
    "/searches/{search_id}/candidates/{rank}/photo",
    tags=["search"],
    responses=IMAGE,
    response_class=Response,
)
def get_candidate_photo(
    search_id: str,
    rank: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
) -> Response:
    """The enrolled photo of the candidate at ``rank``, to compare with the probe: served only
    as part of a search the caller may see, and audited (``photo_access``, kind ``enrolled``)
    with that search. Template-only (synthetic) identities have none: 404 ``person.no_photo``."""
    state = app_state(request)
    rec = views.visible_search(uow.session, principal, search_id)
    data, cand, person = views.candidate_photo(uow.session, rec, rank)
    views.audit_access(
        uow,
        state.workspace.store,
        principal,
        "photo_access",
        rec,
        {"kind": "enrolled", "rank": rank, "person_id": person, "external_id": cand.external_id},
    )
    return Response(views._jpeg(data), media_type="image/jpeg", headers=NO_STORE)


class GalleryPhotoIn(BaseModel):
    person: str = Field(
        min_length=1, max_length=200, description="The person's external id (or person id)."
    )
    reason: str = Field(
        max_length=2000, description="Why the photo is needed outside a search (15+ characters)."
    )


#: Shortest reason for seeing an enrolled photo outside a search.
MIN_PHOTO_REASON = 15


@router.post("/gallery/photo", tags=["gallery"], responses=IMAGE, response_class=Response)
def gallery_photo(
    body: GalleryPhotoIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("gallery_photo"))],
) -> Response:
    """An enrolled photo outside any search, for the roles that manage the gallery
    (``gallery_photo``), with a written reason: audited (``photo_access``, kind ``gallery``,
    the reason). The person is named in the body, so no id travels in a URL."""
    from fieldid.records.merge import find_person

    state = app_state(request)
    if len(body.reason.strip()) < MIN_PHOTO_REASON:
        raise FieldidError(
            f"say why you need this photo outside a search (at least {MIN_PHOTO_REASON} "
            "characters): the reason is audited",
            code="photo.no_reason",
        )
    person = find_person(state.workspace.store, body.person.strip())
    data = views.person_photo(uow.session, person)
    views.audit_access(
        uow,
        state.workspace.store,
        principal,
        "photo_access",
        None,
        {
            "kind": "gallery",
            "person_id": person,
            "person": body.person.strip(),
            "reason": body.reason.strip(),
        },
    )
    return Response(views._jpeg(data), media_type="image/jpeg", headers=NO_STORE)


# --- adjudication -------------------------------------------------------------------------------

#: Kinds of document a person may present (the web form's choices; the API accepts any text).
DOCUMENT_TYPES = (
    "passport",
    "national identity card",
    "residence permit",
    "driving licence",
    "visa",
    "other",
)


class DocumentIn(BaseModel):
    """A document the person presented, as the officer read it. Recorded with the decision and
    compared with the candidate's records; a conflict blocks a confirmation."""

    type: str = Field(min_length=1, max_length=60, examples=["passport"])
    number: str = Field("", max_length=60)
    issuing_country: str = Field("", max_length=60)
    name: str = Field("", max_length=200)
    date_of_birth: date | None = None
    nationality: str = Field("", max_length=60)

    def record(self) -> dict[str, str]:
        """The fields filled in, as stored (empty ones left out, dates ISO)."""
        out = {k: str(v).strip() for k, v in self.model_dump().items() if v not in (None, "")}
        return {k: v for k, v in out.items() if v}


class AdjudicationIn(BaseModel):
    decision: str = Field(
        max_length=20,
        description="confirm | reject (one lead: person_id) | not_identified | inconclusive | "
        "no_lead (close the whole search)",
    )
    person_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="The lead decided on (required to confirm or reject)."
    )
    reason: str = Field(
        "",
        max_length=4000,
        description="Why: every decision needs one (closing as no_lead excepted).",
    )
    documents: list[DocumentIn] = Field(default_factory=list, max_length=10)


class SecondIn(BaseModel):
    decision: Literal["confirm", "disagree"] = Field(
        description="The second person confirms the first person's confirmation, or disagrees."
    )
    reason: str = Field(max_length=4000, description="Why (required either way).")


class OverrideIn(BaseModel):
    reason: str = Field(max_length=4000)


def adjudicate(
    state: AppState,
    uow: UnitOfWork,
    principal: Principal,
    search_id: str,
    decision: str,
    person_id: int | None,
    reason: str,
    documents: list[dict[str, str]],
) -> dict[str, Any]:
    """Record a human decision (the Adjudicator enforces and audits every rule, an officer
    deciding on someone else's search included)."""
    with state.work_lock:
        adj = state.adjudicator().adjudicate(
            search_id,
            principal.actor,
            decision.strip(),
            person_id=person_id,
            reason=reason.strip(),
            documents=documents,
            uow=uow,
        )
    state.metrics.outcome("adjudicate", f"{adj.decision}:{adj.state}")
    return adjudication_answer(state, uow, adj.id)


def second_opinion(
    state: AppState,
    uow: UnitOfWork,
    principal: Principal,
    search_id: str,
    adjudication_id: int,
    decision: str,
    reason: str,
) -> dict[str, Any]:
    """The second person's answer (confirm or disagree, with a reason)."""
    views.visible_search(uow.session, principal, search_id)
    with state.work_lock:
        state.adjudicator().second(
            adjudication_id,
            principal.actor,
            decision.strip(),
            reason.strip(),
            search_id=search_id,
            uow=uow,
        )
    state.metrics.outcome("second", decision)
    return adjudication_answer(state, uow, adjudication_id)


def adjudication_answer(state: AppState, uow: UnitOfWork, adjudication_id: int) -> dict[str, Any]:
    s = uow.session
    row = s.get(AdjudicationRecord, adjudication_id)
    assert row is not None
    rec = get_stored_search(s, row.search_id)
    return {
        "adjudication": views.adjudication_dict(row, rec),
        "search": views.search_view(s, state.workspace, rec),
    }


@router.post(
    "/searches/{search_id}/adjudications",
    tags=["adjudication"],
    status_code=201,
    response_model=schemas.AdjudicationResult,
    responses={**ERRORS, 404: PROBLEM, 409: PROBLEM},
)
def post_adjudication(
    search_id: str,
    body: AdjudicationIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("adjudicate"))],
) -> JSONResponse:
    """A human decision on a search: ``confirm`` or ``reject`` one lead (``person_id``), or
    close the search as ``not_identified``, ``inconclusive`` or (no candidate listed)
    ``no_lead``, with a reason and the documents the person presented. A reject rules out one
    lead and leaves the search open for the others. Only a confirmation records an
    identification, and only as "confirmed by <operator> (human adjudication)"; it may wait for
    a second person (search ``awaiting_second``) or be blocked by a conflict with a document
    presented (``blocked_conflict``). Refusals: ``adjudication.*`` (422 rule, 409 state, 403 not
    the officer's own search)."""
    state = app_state(request)
    out = adjudicate(
        state,
        uow,
        principal,
        search_id,
        body.decision,
        body.person_id,
        body.reason,
        [d.record() for d in body.documents],
    )
    return JSONResponse(
        out,
        status_code=201,
        headers={"Location": out["search"]["links"]["self"]},
    )


@router.post(
    "/searches/{search_id}/adjudications/{adjudication_id}/second",
    tags=["adjudication"],
    response_model=schemas.AdjudicationResult,
    responses={**ERRORS, 404: PROBLEM, 409: PROBLEM},
)
def second(
    search_id: str,
    adjudication_id: int,
    body: SecondIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("second_confirm"))],
) -> dict[str, Any]:
    """The second person's answer to a confirmation waiting under the two-person rule, by
    someone other than the first person, with a reason: ``confirm`` (it becomes final) or
    ``disagree`` (it does not stand; the search is open again and both see why)."""
    state = app_state(request)
    return second_opinion(
        state, uow, principal, search_id, adjudication_id, body.decision, body.reason
    )


@router.post(
    "/searches/{search_id}/adjudications/{adjudication_id}/override",
    tags=["adjudication"],
    response_model=schemas.AdjudicationResult,
    responses={**ERRORS, 404: PROBLEM, 409: PROBLEM},
)
def override(
    search_id: str,
    adjudication_id: int,
    body: OverrideIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("override_conflict"))],
) -> dict[str, Any]:
    """A supervisor, other than the adjudicator, lifts a document-conflict block with a written
    reason (at least 15 characters)."""
    state = app_state(request)
    views.visible_search(uow.session, principal, search_id)
    with state.work_lock:
        state.adjudicator().override(
            adjudication_id, principal.actor, body.reason, search_id=search_id, uow=uow
        )
    return adjudication_answer(state, uow, adjudication_id)


@router.post(
    "/verifications",
    tags=["search"],
    response_model=schemas.VerificationResult,
    responses=ERRORS,
)
async def verify(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("verify"))],
    image_a: Annotated[UploadFile, File()],
    image_b: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form(max_length=200)],
    case_ref: Annotated[str, Form(max_length=200)],
) -> dict[str, Any]:
    """Compare two photos 1:1: a similarity score for a person to weigh."""
    state = app_state(request)
    a = await read_upload(image_a, state, "first image")
    b = await read_upload(image_b, state, "second image")
    attr = Attribution(principal.actor.name, purpose.strip(), case_ref.strip())

    def work() -> dict[str, Any]:
        with state.work_lock:
            state.follow_model()
            return state.searches.verify(a, b, attr, uow=uow).to_dict()

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
    assert state.faces is not None
    frame = state.faces.check(data, scale)
    size = {"width": frame.width, "height": frame.height}
    acq, report = frame.acquisition, frame.quality
    if acq is None or report is None:
        state.metrics.outcome("quality_check", "no_face")
        return {
            "face": None,
            "passes": False,
            "guidance": [
                {
                    "code": "acquire.no_face",
                    "message": "point the camera at the face",
                    "detail": "no face found",
                    "text": "point the camera at the face: no face found",
                }
            ],
            "quality": None,
            "frame": size,
        }
    guidance = [g.to_dict() for g in state.workspace.config.gate.check(report, "live")]
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
        "frame": size,
    }


@router.post("/quality", tags=["search"], response_model=schemas.QualityCheck, responses=ERRORS)
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


@router.post(
    "/enrollments",
    tags=["gallery"],
    status_code=201,
    response_model=schemas.EnrollmentResult,
    responses=ERRORS,
)
async def enroll(
    request: Request,
    principal: Annotated[Principal, Depends(Need("enroll"))],
    image: Annotated[UploadFile, File()],
    external_id: Annotated[str, Form(max_length=200, description="The source's identity key.")],
    display_name: Annotated[str, Form(max_length=200)] = "",
    source: Annotated[str, Form(max_length=200, description="Record source (provenance).")] = "",
    synthetic: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    """Enrol one image under an identity (admin). Idempotent for the same bytes. The answer
    names the person the image is enrolled under (``person_id``): new, or the one already
    enrolled under ``external_id`` (or the person it was merged into)."""
    from fieldid.dataset import LabelledImage

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
                state.follow_model()
                # Face work in the pool (outside the work lock), as for a search.
                enrollment = state.enrollment or state.workspace.enrollment
                summary = enrollment.enroll_images(
                    [LabelledImage(path, external_id.strip(), display_name.strip() or None)],
                    operator=principal.actor.name,
                    source_name=source.strip(),
                    synthetic=synthetic,
                )
        if summary.refused:
            r = summary.refused[0]
            raise FieldidError(r.message, code=r.code)
        size = state.workspace.gallery.size()
        person_id = state.workspace.gallery.find_person(external_id.strip())
        assert person_id is not None  # enrolled now or before: the refusal was raised above
        return {
            "person_id": person_id,
            "external_id": external_id.strip(),
            "enrolled": summary.enrolled,
            "already_enrolled": summary.already_enrolled,
            "new_person": summary.new_people > 0,
            "possible_duplicates": list(summary.possible_duplicates),
            "gallery": {"persons": size.persons, "templates": size.templates},
        }

    return await run_in_threadpool(work)


#: Largest records file the API takes in one request (larger imports: ``fieldid import``).
MAX_IMPORT_BYTES = 64 * 1024 * 1024


@router.post("/imports", tags=["records"], response_model=schemas.ImportReport, responses=ERRORS)
async def import_records(
    request: Request,
    principal: Annotated[Principal, Depends(Need("import"))],
    file: Annotated[UploadFile, File(description="CSV, JSONL or Parquet records file.")],
    source: Annotated[str, Form(max_length=100, description="A registered record source.")],
    kind: Annotated[
        str | None, Form(description="Record kind for every row (else each row's kind column).")
    ] = None,
    dry_run: Annotated[bool, Form(description="Validate and report; write nothing.")] = False,
) -> dict[str, Any]:
    """Import identity records from a registered source (admin): good rows are upserted by the
    source's record id, every bad row is reported with its line and reason, nothing is dropped
    silently. Photos referenced by rows cannot travel with an upload: those rows are reported
    (use ``fieldid import`` beside the photos)."""
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson", ".parquet"}:
        raise FieldidError(
            f"name the file .csv, .jsonl or .parquet (got {file.filename!r})",
            code="import.format",
        )
    data = await file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise FieldidError(
            f"records files over {MAX_IMPORT_BYTES // (1024 * 1024)} MiB go through "
            "`fieldid import`",
            code="import.too_large",
        )
    state = app_state(request)

    def work() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            with state.work_lock:
                report = state.workspace.importer.import_file(
                    source.strip(),
                    path,
                    kind=kind or None,
                    dry_run=dry_run,
                    operator=principal.actor.name,
                    actor=principal.actor,
                )
        return report.to_dict()

    return await run_in_threadpool(work)


def readiness(state: AppState) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    ws = state.workspace
    try:
        ws.store.ping()
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"error: {type(e).__name__}"
    checks["backend"] = ws.store.backend
    checks["model"] = str(ws.pipeline.model) if ws.pipeline_loaded else "not loaded"
    gallery = ws.gallery_loaded
    index = None if gallery is None else gallery.index_loaded
    gallery_loaded = index is not None
    if index is None or gallery is None:
        checks["index"] = "not loaded"
    else:
        try:
            checks["index"] = f"{index.count(gallery=gallery.name)} templates ({index.backend})"
        except Exception as e:  # a remote engine down: not ready, and say so
            checks["index"] = f"error: {type(e).__name__}"
            gallery_loaded = False
    work = state.faces.stats() if state.faces is not None else None
    checks["face_work"] = None if work is None else work.to_dict()
    sched = state.purge
    checks["scheduled_purge"] = (
        "off"
        if sched is None
        else {
            "interval_s": sched.interval_s,
            "runs": sched.runs,
            "last_at": None if sched.last_at is None else sched.last_at.isoformat(),
            "last_removed": sched.last_total,
            "last_error": sched.last_error,
        }
    )
    can_work = work is None or (work.ready_workers > 0 and not work.saturated)
    ok = checks["database"] == "ok" and state.ready and gallery_loaded and can_work
    return ok, checks


__all__ = ["AuthenticationError", "readiness", "router"]
