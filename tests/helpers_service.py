"""Shared set-up of the HTTP service tests: a demo-like workspace with one operator per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.service import ServiceSettings, create_app
from fieldid.service.auth import Need
from fieldid.workspace import Workspace
from helpers_storage import Backend, active

PASSWORD = "test-password-1"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="module")
def service_root(tmp_path_factory: pytest.TempPathFactory, backend_kind: Backend) -> Path:
    """A workspace with the astronaut enrolled and one operator per role, on each backend."""
    from rich.console import Console

    from fieldid.demo.server import prepare

    root = tmp_path_factory.mktemp(f"service-{backend_kind.name}") / "ws"
    ws, _ = prepare(
        root,
        distractors=50,
        console=Console(quiet=True),
        database_url=backend_kind.database_url(keep=True),
    )
    accounts = Accounts(ws.store, ws.clock, hasher=FAST_HASHER)
    for role in Role:
        accounts.add_user(f"u-{role.value}", role, PASSWORD, by="system:test-setup")
    ws.close()
    return root


@contextmanager
def serving(
    service_root: Path,
    tmp_path: Path,
    *,
    conflicts: Any = None,
    configure: Callable[[Path], None] | None = None,
    **settings: Any,
) -> Iterator[TestClient]:
    """The app on a fresh copy of the module's workspace (``settings``: ServiceSettings;
    ``configure(root)`` may edit the copy's fieldid.toml before it is opened)."""
    root = active().copy(service_root, tmp_path / "ws")
    if configure is not None:
        configure(root)
    ws = Workspace.open(root)
    settings.setdefault("max_upload_bytes", 2 * 1024 * 1024)
    settings.setdefault("face_workers", 1)  # the real pool, one worker: quicker to start
    app = create_app(ws, ServiceSettings(**settings), conflicts=conflicts)
    try:
        with TestClient(app) as c:
            yield c
    finally:
        ws.close()


def workspace_of(c: TestClient) -> Workspace:
    ws: Workspace = c.app.state.fieldid.workspace  # type: ignore[attr-defined]
    return ws


@pytest.fixture()
def client(service_root: Path, tmp_path: Path) -> Iterator[TestClient]:
    with serving(service_root, tmp_path) as c:
        yield c


def login(c: TestClient, role: Role) -> str:
    r = c.post("/api/v1/session", json={"name": f"u-{role.value}", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def search(c: TestClient, csrf: str, data: bytes, **form: str) -> Any:
    fields = {"purpose": "field-identification", "case_ref": "CASE-1", "notice_given": "true"}
    fields.update(form)
    return c.post(
        "/api/v1/searches",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("probe.jpg", data, "image/jpeg")},
        data=fields,
    )


class NameConflicts:
    """A stand-in records source: any document naming someone conflicts with the record."""

    def conflicts(
        self, search_id: int, person_id: int, documents: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        return [
            f"the {d['type']} names {d['name']}; the record of {person_id} names someone else"
            for d in documents
            if d.get("name")
        ]


def need_of(route: APIRoute) -> Need | None:
    """The ``Need`` dependency a route declares (None when it declares none)."""
    stack = list(route.dependant.dependencies)
    while stack:
        d = stack.pop()
        if isinstance(d.call, Need):
            return d.call
        stack.extend(d.dependencies)
    return None


def _walk(items: list[Any], prefix: str = "") -> Iterator[APIRoute]:
    for r in items:
        if isinstance(r, APIRoute):
            yield r
        elif hasattr(r, "original_router"):  # FastAPI's included router (kept lazily)
            assert r.include_context.prefix == prefix == ""  # paths are already complete
            yield from _walk(r.original_router.routes, prefix)


def routes(c: TestClient) -> list[tuple[str, str, APIRoute]]:
    """Every (method, path, route) of the app, included routers too."""
    return [
        (m, r.path, r)
        for r in _walk(list(c.app.routes))  # type: ignore[attr-defined]
        for m in sorted(r.methods)
    ]
