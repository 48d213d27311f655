"""The OpenAPI description (``/openapi.json``): what FastAPI generates, plus what it cannot know.

FastAPI describes the routes, their parameters and their typed answers
(:mod:`fieldid.service.schemas`). This module adds, from the routes themselves:

- the **security schemes**: ``bearerAuth`` (``Authorization: Bearer <token>``), ``sessionCookie``
  (the ``fieldid_session`` cookie of ``POST /api/v1/session``) and ``csrfHeader``
  (``X-CSRF-Token``, which a session must send with every state-changing request); each
  operation's ``security`` is derived from its ``Need(...)`` dependency (public routes declare
  ``[]``), and ``x-fieldid-permission`` names the action it needs;
- **one error schema**: every 4xx answer is ``application/problem+json`` with the
  :class:`~fieldid.service.schemas.Problem` schema (FastAPI's own ``HTTPValidationError`` is not
  what this service answers, so it is removed); protected operations declare 401 and 403,
  operations that take input 422, operations that upload a photo 503 (``service.busy``).

The description is built once per app and cached (``app.openapi_schema``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from fieldid.access import PERMISSIONS
from fieldid.service.auth import SAFE_METHODS, SESSION_COOKIE, Need
from fieldid.service.problems import PROBLEM_JSON
from fieldid.service.schemas import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "fid_…",
        "description": "An API token (`fieldid token issue NAME [--scope ACTION …]`), sent as "
        "`Authorization: Bearer <token>`. The action must be in the token's scopes and permitted "
        "to its account's role. No CSRF token is needed.",
    },
    "sessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The browser session set by `POST /api/v1/session` (HttpOnly, "
        "SameSite=Strict). State-changing requests also need `csrfHeader`.",
    },
    "csrfHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "The session's CSRF token (returned by `POST /api/v1/session`), on every "
        "request but GET, HEAD and OPTIONS made with the session cookie. The Swagger UI at "
        "/docs sends it for you.",
    },
}

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute of an app, included routers too (FastAPI may keep those lazily)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        elif hasattr(r, "original_router"):
            yield from api_routes(r.original_router.routes)


def need_of(route: APIRoute) -> Need | None:
    """The ``Need`` dependency a route declares (None: a public route)."""
    stack = list(route.dependant.dependencies)
    while stack:
        d = stack.pop()
        if isinstance(d.call, Need):
            return d.call
        stack.extend(d.dependencies)
    return None


def security_for(need: Need | None, method: str) -> list[dict[str, list[str]]]:
    if need is None:
        return []
    session: dict[str, list[str]] = {"sessionCookie": []}
    if method.upper() not in SAFE_METHODS:
        session["csrfHeader"] = []
    return [{"bearerAuth": []}, session]


def _who(action: str | None) -> str:
    if action is None:
        return "any authenticated operator"
    roles = ", ".join(sorted(r.value for r in PERMISSIONS.get(action, ())))
    return f"the `{action}` permission ({roles or 'no role'})"


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}


def _takes_input(op: dict[str, Any]) -> bool:
    return "requestBody" in op or bool(op.get("parameters"))


def _drops_validation_schemas(schema: dict[str, Any]) -> None:
    schemas = schema.get("components", {}).get("schemas", {})
    text = repr(schema.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if name in schemas and f"#/components/schemas/{name}'" not in text:
            del schemas[name]
    # ValidationError is referenced only by HTTPValidationError.
    if "HTTPValidationError" not in schemas:
        schemas.pop("ValidationError", None)


def describe(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI description with security schemes and problem+json errors."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    components = schema.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    schemas = components.setdefault("schemas", {})
    _, defs = models_json_schema(
        [(Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )
    schemas.update(defs.get("$defs", {}))

    needs: dict[tuple[str, str], Need | None] = {}
    for route in api_routes(list(app.routes)):
        if route.include_in_schema:
            for m in route.methods or ():
                needs[(route.path_format, m.lower())] = need_of(route)

    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            need = needs.get((path, method))
            op["security"] = security_for(need, method)
            responses: dict[str, Any] = op.setdefault("responses", {})
            if need is not None:
                op["x-fieldid-permission"] = need.action
                note = f"Needs {_who(need.action)}."
                op["description"] = (op.get("description", "") + "\n\n" + note).strip()
                responses.setdefault("401", _problem_response("not authenticated"))
                responses.setdefault("403", _problem_response("not permitted"))
            if _takes_input(op):
                responses.setdefault("422", _problem_response("refused"))
            if "requestBody" not in op:  # nothing uploaded: no size or media type to refuse
                responses.pop("413", None)
                responses.pop("415", None)
            elif "multipart/form-data" in op["requestBody"].get("content", {}):
                # A photo goes to the face-work pool, which refuses at once when it is full.
                responses.setdefault(
                    "503",
                    _problem_response("the face-work pool is busy (service.busy; Retry-After)"),
                )
            for status, resp in responses.items():
                if status.isdigit() and 400 <= int(status) < 500:
                    desc = resp.get("description") or "refused"
                    if desc == "Validation Error":
                        desc = "the request is malformed (request.invalid) or refused"
                    responses[status] = _problem_response(desc)
    _drops_validation_schemas(schema)
    return schema


def install(app: FastAPI) -> None:
    """Serve :func:`describe` as the app's OpenAPI description (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def swagger_html(csrf_token: str | None) -> str:
    """The /docs page: Swagger UI from the offline bundle, with the session's CSRF token for
    ``static/swagger-init.js`` to send (none for a bearer-authenticated visit)."""
    from html import escape

    meta = (
        f'<meta name="csrf-token" content="{escape(csrf_token, quote=True)}">' if csrf_token else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="referrer" content="no-referrer">
{meta}
<title>fieldid API</title>
<link rel="stylesheet" href="/static/swagger/swagger-ui.css">
<link rel="icon" href="/static/icon-192.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""
