"""Errors as RFC 9457 problem details (``application/problem+json``) with fieldid's stable codes.

Every refusal the service makes is ``{type, title, status, detail, code, ...details}``; ``code``
is the :class:`fieldid.errors.FieldidError` code, so clients match on it, never on the wording.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fieldid.errors import FieldidError

PROBLEM_JSON = "application/problem+json"

#: Exact codes whose status differs from their family's.
_STATUS_BY_CODE: dict[str, int] = {
    "probe.too_large_bytes": 413,
    "probe.too_many_pixels": 413,
    "probe.side_too_large": 413,
    "probe.unsupported_format": 415,
    "probe.not_an_image": 415,
    "probe.empty": 400,
    "access.forbidden": 403,
    "access.scope": 403,
    "access.csrf": 403,
    "access.throttled": 429,
    "search.not_found": 404,
    "person.not_found": 404,
    "person.no_photo": 404,
    "search.no_candidate": 404,
    "account.unknown": 404,
    "account.unknown_token": 404,
    "account.last_admin": 409,
    "account.unchanged": 409,
    "account.token_revoked": 409,
    "adjudication.lead_ruled_out": 409,
    "adjudication.refused_attempt": 409,
    "adjudication.bad_state": 409,
    "person.image_not_found": 404,
    "person.open_adjudication": 409,
    "person.image_held": 409,
    "account.exists": 409,
    "gallery.model_mismatch": 409,
    "gallery.model_switched": 503,
    "search.bad_receipt": 400,
    "search.below_gate_reason": 422,
    "search.below_gate_not_investigation": 422,
    "search.idempotency_key": 422,
    "search.idempotency_key_reused": 422,
    "probe.purged": 410,
    "import.too_large": 413,
    "import.format": 415,
    "adjudication.not_found": 404,
    "adjudication.not_own_search": 403,
    "adjudication.search_closed": 409,
    "adjudication.pending": 409,
    "adjudication.not_pending": 409,
    "adjudication.not_blocked": 409,
    "adjudication.same_person": 409,
    "review.not_found": 404,
    "merge.unknown_person": 404,
    "merge.changed": 409,
    "review.resolved": 409,
    "demo.not_a_volunteer": 404,
    "demo.off": 404,
    "request.not_found": 404,
    "location.approval_required": 403,
    "location.refused": 403,
    "location.own_request": 403,
    "location.not_found": 404,
    "location.decided": 409,
    "location.retired": 409,
    "document.check_not_found": 404,
    "document.check_used": 409,
    "search.document_settled": 409,
}

#: Status by code family (the part before the first dot).
_STATUS_BY_FAMILY: dict[str, int] = {
    "probe": 422,
    "acquire": 422,
    "quality": 422,
    "use": 422,
    "access": 401,
    "account": 422,
    "request": 422,
    "dataset": 422,
    "template": 422,
    "enroll": 422,
    "workspace": 500,
    "keys": 500,
    "config": 500,
    "model": 500,
    "adjudication": 422,
    "demo": 422,
    "document": 422,
    "chip": 422,
    "records": 422,
    "review": 422,
    "merge": 422,
    "import": 422,
    "service": 503,
    "photo": 422,
    "person": 422,
    "search": 422,
    "location": 422,
}

_TITLES: dict[str, str] = {
    "merge": "The two people could not be merged",
    "probe": "The image could not be taken in",
    "acquire": "No usable face was found",
    "quality": "The photo is not good enough to search with",
    "use": "The use is not attributable",
    "access": "Access refused",
    "document": "A presented document could not be read",
    "records": "The records could not be read",
    "review": "The review decision was refused",
    "account": "Account request refused",
    "adjudication": "The adjudication was refused",
    "photo": "The photo was not served",
    "request": "The request is malformed",
    "service": "The service is busy",
    "location": "Where the search was asked from",
    "keys": "Stored data could not be opened with the workspace's key",
    "http": "HTTP error",
}


def status_for(code: str) -> int:
    if code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[code]
    return _STATUS_BY_FAMILY.get(code.split(".", 1)[0], 400)


def problem(
    status: int, code: str, detail: str, *, title: str | None = None, **extra: Any
) -> JSONResponse:
    family = code.split(".", 1)[0]
    body = {
        "type": f"/problems/{code}",
        "title": title or _TITLES.get(family, HTTPStatus(status).phrase),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra["retry_after"])
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="fieldid"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def from_error(err: FieldidError) -> JSONResponse:
    extra = {k: v for k, v in err.details.items() if k not in {"type", "title", "status"}}
    return problem(status_for(err.code), err.code, err.message, **extra)


async def fieldid_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldidError)
    return from_error(exc)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    path_params = [e for e in exc.errors() if tuple(e.get("loc", ()))[:1] == ("path",)]
    if path_params:  # /searches/abc: there is no such resource, rather than a bad request
        names = ", ".join(str(e["loc"][-1]) for e in path_params)
        return problem(
            404,
            "request.not_found",
            f"no such record: the path's {names} is not an id (ids are whole numbers)",
            title="Not found",
        )
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
        for e in exc.errors()
    ]
    missing = ", ".join(e["field"] for e in errors if e["field"]) or "the request"
    return problem(422, "request.invalid", f"check these fields: {missing}", errors=errors)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(
        exc.status_code,
        f"http.{exc.status_code}",
        str(exc.detail),
        title=HTTPStatus(exc.status_code).phrase,
    )
