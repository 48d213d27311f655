"""The application factory: ``create_app(workspace, settings)`` builds the FastAPI app.

Served by uvicorn (``fieldid demo`` or ``fieldid serve``; ``fieldid serve --workers N`` runs N such
processes on one PostgreSQL database: ``service/serve.py``). One process holds one workspace; its
database work and its gallery serve one request at a time (see ``AppState.work_lock``), while face
work runs in a pool of worker processes outside that lock (``fieldid.facework``), so a slow or
hostile photo holds neither the lock nor the interpreter: ``/healthz`` always answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fieldid.access.accounts import AccessPolicy, Accounts
from fieldid.adjudication.service import DocumentConflicts
from fieldid.errors import FieldidError
from fieldid.facework import outside_lock
from fieldid.service import (
    admin,
    api,
    documents_api,
    documents_web,
    location,
    onboarding,
    openapi,
    people,
    review,
    web,
)
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.guards import RequestGuard
from fieldid.service.problems import (
    from_error,
    http_error_handler,
    status_for,
    validation_error_handler,
)
from fieldid.service.settings import ServiceSettings
from fieldid.service.state import AppState, PurgeSchedule, face_work
from fieldid.workspace import Workspace

API_VERSION = "1"
log = logging.getLogger(__name__)
requests_log = logging.getLogger("fieldid.requests")
#: This server process, in request lines and the ``X-Fieldid-Worker`` header (random per process:
#: which of ``fieldid serve --workers N`` answered, without telling a client its pid).
WORKER_ID = secrets.token_hex(4)


def log_request(request: Request, status: int, t0: float) -> str:
    """One JSON line per request on ``fieldid.requests``: the route's template (never the path,
    whose ids could identify a search or a person, nor the query string), method, status,
    milliseconds, the operator who was authenticated (if any) and the worker. Never a body: no
    image, template or record. Returns the route template."""
    route = getattr(request.scope.get("route"), "path", "unmatched")
    if requests_log.isEnabledFor(logging.INFO):
        operator = getattr(request.state, "operator", None)
        requests_log.info(
            json.dumps(
                {
                    "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "ms": round((time.perf_counter() - t0) * 1000, 1),
                    "operator": operator,
                    "worker": WORKER_ID,
                },
                separators=(",", ":"),
            )
        )
    return route


def purge_once(state: AppState) -> None:
    """One scheduled retention purge (audited by the purge itself), serialised with searches;
    in the demo, volunteers' enrolments past their time go too. A failure is logged and kept
    for /readyz, and the schedule goes on: a purge that stops silently is worse than one that
    complains."""
    sched = state.purge
    assert sched is not None
    try:
        with state.work_lock:
            report = state.workspace.retention.run_scheduled()
            if state.settings.demo_onboarding:
                from fieldid.service.volunteers import expire_volunteers

                expire_volunteers(state.workspace, state.settings.demo_volunteer_ttl_s)
        sched.last_total, sched.last_error = report.total, None
    except Exception as e:
        log.exception("scheduled purge failed")
        sched.last_error = f"{type(e).__name__}: {e}"
    sched.runs += 1
    sched.last_at = state.workspace.clock.now()


async def purge_forever(state: AppState) -> None:
    """At start-up, then every ``settings.purge_interval_s`` seconds."""
    while True:
        await run_in_threadpool(purge_once, state)
        await asyncio.sleep(state.settings.purge_interval_s)


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("fieldid.service").joinpath(name)))


def _swagger_dir() -> Path:
    """Swagger UI's files, served from here so /docs works offline (no CDN)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def create_app(
    workspace: Workspace,
    settings: ServiceSettings | None = None,
    *,
    policy: AccessPolicy | None = None,
    accounts: Accounts | None = None,
    conflicts: DocumentConflicts | None = None,
) -> FastAPI:
    """``conflicts``: how documents presented are compared with a candidate's records (default:
    the workspace's checker, see ``fieldid.adjudication.service.default_conflict_checker``)."""
    settings = settings or ServiceSettings()
    lock = threading.Lock()
    faces = face_work(workspace, settings)
    state = AppState(
        workspace=workspace,
        settings=settings,
        accounts=accounts or Accounts(workspace.store, workspace.clock, policy),
        searches=workspace.search_service(outside_lock(faces, lock)),
        enrollment=workspace.enrollment_service(outside_lock(faces, lock)),
        conflicts=conflicts,
        work_lock=lock,
        faces=faces,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load the models and the index before the first request, so /readyz means it.
        # The face workers load their models while this process loads its own and the index;
        # the service is ready when both are.
        workers = asyncio.ensure_future(run_in_threadpool(faces.start))
        workspace.pipeline.load()
        workspace.gallery.index()
        await workers
        task = None
        if settings.purge_interval_s > 0:
            state.purge = PurgeSchedule(settings.purge_interval_s)
            task = asyncio.create_task(purge_forever(state))
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # state.faces: the pool in use now (another one after a re-templating's switch).
            assert state.faces is not None
            state.faces.close()

    app = FastAPI(
        title="fieldid",
        version=API_VERSION,
        description=(
            "Field identity verification. A search returns **leads, never a determination**: "
            "each candidate carries its score and the probe's quality, for a person to "
            "adjudicate. Every use is attributed to an authenticated operator, a purpose and a "
            "case reference, and audited. Errors are `application/problem+json` with a stable "
            "`code`. Authenticate with the session cookie from `POST /api/v1/session` (and "
            "`X-CSRF-Token` on state-changing requests) or `Authorization: Bearer <token>` "
            "(`fieldid token issue`)."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        # operationId = the handler's name (search, get_search, …): what generated clients call.
        generate_unique_id_function=lambda route: route.name,
    )
    openapi.install(app)
    app.state.fieldid = state

    async def fieldid_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FieldidError)
        if getattr(request.state, "page", False):
            status = status_for(exc.code)
            if status == 401:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse(f"/login?next={web.quote_next(target)}", status_code=303)
            return web.error_page(request, status, exc)
        return from_error(exc)

    app.add_exception_handler(FieldidError, fieldid_error)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log_request(request, 500, t0)
            raise
        # The router records the matched route in the scope: label by its template, never by the
        # concrete path (which would carry search references into the metrics).
        route = log_request(request, response.status_code, t0)
        state.metrics.request(request.method, route, response.status_code)
        response.headers["X-Fieldid-Worker"] = WORKER_ID
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    def body_limit(path: str) -> int:
        # Two images for a verification, plus the form's other fields.
        if path.startswith("/api/v1/imports"):
            return api.MAX_IMPORT_BYTES + 1024 * 1024
        return 2 * settings.max_upload_bytes + 1024 * 1024

    # Outermost: refuses an oversized body (with or without Content-Length) and out-of-range ids
    # before anything else reads the request.
    app.add_middleware(RequestGuard, body_limit=body_limit)

    app.include_router(api.router)
    app.include_router(documents_api.router)
    app.include_router(review.api)
    app.include_router(admin.router)
    app.include_router(people.router)
    app.include_router(location.api)
    app.include_router(onboarding.router)
    app.include_router(web.router)
    app.include_router(documents_web.router)
    app.include_router(review.pages)
    app.include_router(location.pages)
    app.include_router(onboarding.web)
    # The more specific mount first: Starlette takes the first prefix that matches.
    app.mount("/static/swagger", StaticFiles(directory=_swagger_dir()), name="swagger")
    app.mount("/static", StaticFiles(directory=_package_dir("static")), name="static")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Runs on the event loop itself: it never waits for a
        worker thread, the database or face work."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "not ready"}})
    def readyz(request: Request) -> JSONResponse:
        """Readiness: the database answers, the model and the index are loaded, and the face
        workers can take a search now (503 while every worker is busy and the queue is full)."""
        ok, checks = api.readiness(app_state(request))
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics(
        request: Request, principal: Annotated[Principal, Depends(Need("metrics"))]
    ) -> PlainTextResponse:
        """Prometheus text format (needs the ``metrics`` action: auditor or admin, or a token
        scoped for it)."""
        st = app_state(request)
        size = st.workspace.gallery.size()
        gauges = {
            "fieldid_gallery_persons": ("People in the gallery.", float(size.persons)),
            "fieldid_gallery_templates": ("Templates in the gallery.", float(size.templates)),
            "fieldid_ready": ("1 when ready to search.", 1.0 if st.ready else 0.0),
            "fieldid_started_seconds": ("Process start (Unix time).", started),
        }
        return PlainTextResponse(
            st.metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    started = time.time()

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json(
        principal: Annotated[Principal, Depends(Need(None))],
    ) -> dict[str, Any]:
        """The OpenAPI description, for any authenticated operator (session or API token)."""
        return app.openapi()

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs(principal: Annotated[Principal, Depends(Need(None, page=True))]) -> HTMLResponse:
        return HTMLResponse(
            openapi.swagger_html(principal.csrf_token),
            headers={"Cache-Control": "no-store"},
        )

    return app
