"""Every surface that touches a face, a record or a search needs an authenticated account with
the right role, and writes an audit entry under that account (issue 13, "Done means").

The routes and commands are derived from the app (``app.routes``, each route's ``Need``) and the
command line (the Click command tree, each command's ``@requires`` / ``@no_account``), never
typed by hand: a new route or command that touches data fails here until it has a way to be
called below (a *recipe*) or a stated reason to be exempt. Each recipe is then run

- without credentials: refused (401 problem / the login page; ``access.unauthenticated``);
- by every role the permission table does not allow: refused (403; ``access.forbidden``);
- by an allowed role: it works, and the audit log gains an entry by that account.
"""

from __future__ import annotations

import csv
import itertools
import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer.main
from fastapi.testclient import TestClient

from conftest import FACES, subject_images
from fieldid.access import PERMISSIONS, Actor, Role
from fieldid.audit import Attribution
from fieldid.cli.app import app as cli_app
from fieldid.demo import astronaut_path, closer_crop
from fieldid.workspace import Workspace
from helpers_account import set_config
from helpers_cli import cli, tokens
from helpers_service import (
    PASSWORD,
    NameConflicts,
    login,
    need_of,
    routes,
    service_root,
    serving,
    workspace_of,
)

__all__ = ["service_root"]  # fixtures

GOOD = closer_crop(astronaut_path())


def specimen_page() -> bytes:
    """A SPECIMEN passport data page (invented holder, drawn portrait), photographed clean."""
    global _SPECIMEN
    if _SPECIMEN is None:
        import random

        from fieldid.documents.specimen import (
            Degradation,
            photograph,
            random_identity,
            render_page,
        )

        rng = random.Random(5)
        page = render_page(random_identity("TD3", rng), seed=5)
        _SPECIMEN = photograph(page, rng, Degradation().clean()).jpeg
    return _SPECIMEN


_SPECIMEN: bytes | None = None

#: Actions whose routes and commands touch a face, a record or a search.
DATA_ACTIONS = frozenset(
    {
        "search",
        "verify",
        "investigation",
        "adjudicate",
        "second_confirm",
        "override_conflict",
        "review",
        "enroll",
        "import",
        "record_read",
        "record_correct",
        "redress",
        "gallery_photo",
        "purge",
        "evaluate",
        "db_copy",
        "index",
        "audit_read",
        "report",
        "pia",
        "gallery_manage",
    }
)

#: Routes declaring a data action that nonetheless touch no face, record or search, and why.
EXEMPT_ROUTES = {
    ("GET", "/start"): "a form for purpose, case and notice; nothing is read",
    ("GET", "/capture"): "the capture page; the photo goes to POST /capture or /api/v1/searches",
    ("POST", "/api/v1/quality"): (
        "live guidance: a camera frame is checked against the quality gate and dropped; it is "
        "compared with no one and kept nowhere (docs/field-app.md), several times a second"
    ),
    ("GET", "/demo/onboarding"): "the demo's consent page: made-up volunteer labels, no face",
    ("GET", "/demo/onboarding/capture"): "the demo's capture page; the photo goes to a POST",
    ("GET", "/demo/volunteers/{volunteer_id}"): (
        "a demo volunteer's made-up label and a delete button: no face, record or search"
    ),
    ("GET", "/document"): "the document page; the photos go to POST /document",
}

ROLE_ORDER = (Role.OFFICER, Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR)


def allowed_role(action: str) -> Role:
    return next(r for r in ROLE_ORDER if r in PERMISSIONS[action])


# --- the HTTP surfaces --------------------------------------------------------------------------


@dataclass
class Scene:
    """The running app and what recipes make on it (each recipe makes what it consumes)."""

    c: TestClient
    count: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def ws(self) -> Workspace:
        return workspace_of(self.c)

    def as_(self, role: Role) -> str:
        self.c.cookies.clear()
        return login(self.c, role)

    def search(self, purpose: str = "field-identification", role: Role = Role.OFFICER) -> Any:
        csrf = self.as_(role)
        r = self.c.post(
            "/api/v1/searches",
            headers={"X-CSRF-Token": csrf},
            files={"image": ("p.jpg", GOOD, "image/jpeg")},
            data={
                "purpose": purpose,
                "case_ref": f"CASE-S{next(self.count)}",
                "notice_given": "true",
            },
        )
        assert r.status_code == 201, r.text
        return r.json()

    def adjudication(self, state: str) -> tuple[str, int]:
        """A search with a confirmation waiting for a second person, or blocked."""
        if state == "pending_second":
            body = self.search("evaluation")  # two-person purpose here
            extra: dict[str, Any] = {}
        else:
            body = self.search()
            extra = {"documents": [{"type": "passport", "name": "Sam Sample"}]}
        csrf = self.as_(Role.OFFICER)
        r = self.c.post(
            f"/api/v1/searches/{body['search_id']}/adjudications",
            headers={"X-CSRF-Token": csrf},
            json={
                "decision": "confirm",
                "person_id": body["candidates"][0]["person_id"],
                "reason": "features agree",
                **extra,
            },
        )
        adj = r.json()["adjudication"]
        assert adj["state"] == state, r.text
        return body["search_id"], adj["adjudication_id"]

    def review_item(self) -> int:
        """A fresh possible duplicate: the astronaut enrolled again under a new identity."""
        csrf = self.as_(Role.ADMIN)
        ext = f"subject-09{next(self.count):02d}"
        r = self.c.post(
            "/api/v1/enrollments",
            headers={"X-CSRF-Token": csrf},
            files={"image": ("a.jpg", astronaut_path().read_bytes(), "image/jpeg")},
            data={"external_id": ext, "display_name": ext, "source": "t", "synthetic": "true"},
        )
        assert r.status_code == 201, r.text
        self.as_(Role.SUPERVISOR)
        items = self.c.get("/api/v1/reviews").json()["review_items"]
        return int(next(i["id"] for i in items if i["enrolled"]["external_id"] == ext))

    def document_check(self) -> Any:
        """A document check by the officer: a SPECIMEN page with a drawn portrait, no face."""
        csrf = self.as_(Role.OFFICER)
        r = self.c.post(
            "/api/v1/document-checks",
            headers={"X-CSRF-Token": csrf},
            files={"document": ("d.jpg", specimen_page(), "image/jpeg")},
            data={"purpose": "field-identification", "case_ref": f"CASE-D{next(self.count)}"},
        )
        assert r.status_code == 201, r.text
        return r.json()

    def volunteer(self) -> int:
        csrf = self.as_(Role.OFFICER)
        r = self.c.post(
            "/api/v1/demo/volunteers",
            headers={"X-CSRF-Token": csrf},
            files={"image": ("me.jpg", GOOD, "image/jpeg")},
            data={"consent": "true"},
        )
        assert r.status_code == 201, r.text
        return int(r.json()["person_id"])


@dataclass
class Call:
    """A request that works for an allowed role (``csrf`` filled in when sent)."""

    path: str
    kw: dict[str, Any] = field(default_factory=dict)
    form: bool = False  # the CSRF token goes in the form (a page), else in the header


def _image(**data: str) -> dict[str, Any]:
    return {"files": {"image": ("p.jpg", GOOD, "image/jpeg")}, "data": data}


USE = {"purpose": "field-identification", "case_ref": "CASE-R", "notice_given": "true"}
Recipe = Callable[[Scene], Call]

ROUTE_RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", "/api/v1/searches"): lambda s: Call("/api/v1/searches", _image(**USE)),
    ("POST", "/api/v1/captures/wiped"): lambda s: Call(
        "/api/v1/captures/wiped",
        {
            "json": {
                "captured_at": "2026-01-01T10:00:00Z",
                "wiped_at": "2026-01-01T10:30:00Z",
                "purpose": "field-identification",
                "case_ref": "CASE-W",
            }
        },
    ),
    ("GET", "/api/v1/searches/{search_id}"): lambda s: Call(
        f"/api/v1/searches/{s.search()['search_id']}"
    ),
    ("GET", "/api/v1/searches/{search_id}/probe"): lambda s: Call(
        f"/api/v1/searches/{s.search()['search_id']}/probe"
    ),
    ("GET", "/api/v1/searches/{search_id}/candidates/{rank}/photo"): lambda s: Call(
        f"/api/v1/searches/{s.search()['search_id']}/candidates/1/photo"
    ),
    ("POST", "/api/v1/gallery/photo"): lambda s: Call(
        "/api/v1/gallery/photo",
        {"json": {"person": "subject-0001", "reason": "checking an enrolment complaint"}},
    ),
    ("POST", "/api/v1/searches/{search_id}/adjudications"): lambda s: (
        lambda b: Call(
            f"/api/v1/searches/{b['search_id']}/adjudications",
            {
                "json": {
                    "decision": "reject",
                    "person_id": b["candidates"][0]["person_id"],
                    "reason": "ears differ",
                }
            },
        )
    )(s.search()),
    ("POST", "/api/v1/searches/{search_id}/adjudications/{adjudication_id}/second"): lambda s: (
        lambda sa: Call(
            f"/api/v1/searches/{sa[0]}/adjudications/{sa[1]}/second",
            {"json": {"decision": "disagree", "reason": "the nose differs"}},
        )
    )(s.adjudication("pending_second")),
    ("POST", "/api/v1/searches/{search_id}/adjudications/{adjudication_id}/override"): lambda s: (
        lambda sa: Call(
            f"/api/v1/searches/{sa[0]}/adjudications/{sa[1]}/override",
            {"json": {"reason": "the passport was reported stolen: its name is false"}},
        )
    )(s.adjudication("blocked_conflict")),
    ("POST", "/api/v1/verifications"): lambda s: Call(
        "/api/v1/verifications",
        {
            "files": {
                "image_a": ("a.jpg", GOOD, "image/jpeg"),
                "image_b": ("b.jpg", astronaut_path().read_bytes(), "image/jpeg"),
            },
            "data": {"purpose": "field-identification", "case_ref": "CASE-V"},
        },
    ),
    ("POST", "/api/v1/enrollments"): lambda s: Call(
        "/api/v1/enrollments",
        {
            "files": {"image": ("e.jpg", subject_images("subject-0003")[0].read_bytes(), "i/j")},
            "data": {"external_id": "subject-0003", "source": "t", "synthetic": "true"},
        },
    ),
    ("POST", "/api/v1/imports"): lambda s: Call(
        "/api/v1/imports",
        {
            "files": {"file": ("r.csv", RECORDS_CSV, "text/csv")},
            "data": {"source": "surfaces-src"},
        },
    ),
    ("GET", "/api/v1/reviews"): lambda s: Call("/api/v1/reviews"),
    ("POST", "/api/v1/review-items/{item_id}"): lambda s: Call(
        f"/api/v1/review-items/{s.review_item()}",
        {"json": {"decision": "different_people", "note": "different ears"}},
    ),
    ("POST", "/api/v1/review-items/{item_id}/merge"): lambda s: (
        lambda item: Call(
            f"/api/v1/review-items/{item}/merge",
            {"json": {"keep": _item_people(s, item)[1], "reason": "the same portrait, twice"}},
        )
    )(s.review_item()),
    ("GET", "/api/v1/review-items/{item_id}/photos/{side}"): lambda s: Call(
        f"/api/v1/review-items/{s.review_item()}/photos/matched"
    ),
    ("GET", "/api/v1/searches"): lambda s: Call("/api/v1/searches"),
    ("GET", "/api/v1/people"): lambda s: Call("/api/v1/people"),
    ("GET", "/api/v1/people/{person_id}"): lambda s: Call(f"/api/v1/people/{_person(s)[0]}"),
    ("PATCH", "/api/v1/people/{person_id}"): lambda s: Call(
        f"/api/v1/people/{_person(s)[0]}",
        {"json": {"display_name": "Corrected Name", "reason": "a typo in the name"}},
    ),
    ("DELETE", "/api/v1/people/{person_id}"): lambda s: Call(
        f"/api/v1/people/{_person(s)[0]}", {"params": {"reason": "withdrawn by the source"}}
    ),
    ("PATCH", "/api/v1/people/{person_id}/images/{image_id}"): lambda s: (
        lambda p: Call(
            f"/api/v1/people/{p[0]}/images/{p[1]}",
            {"json": {"provenance": "scanned file 12", "reason": "the source said so"}},
        )
    )(_person(s)),
    ("DELETE", "/api/v1/people/{person_id}/images/{image_id}"): lambda s: (
        lambda p: Call(
            f"/api/v1/people/{p[0]}/images/{p[1]}", {"params": {"reason": "a wrong photo"}}
        )
    )(_person(s)),
    ("POST", "/api/v1/demo/volunteers"): lambda s: Call(
        "/api/v1/demo/volunteers",
        {"files": {"image": ("me.jpg", GOOD, "image/jpeg")}, "data": {"consent": "true"}},
    ),
    ("DELETE", "/api/v1/demo/volunteers/{volunteer_id}"): lambda s: Call(
        f"/api/v1/demo/volunteers/{s.volunteer()}"
    ),
    ("POST", "/capture"): lambda s: Call("/capture", _image(**USE), form=True),
    ("GET", "/results/{search_id}"): lambda s: Call(f"/results/{s.search()['search_id']}"),
    ("POST", "/api/v1/document-checks"): lambda s: Call(
        "/api/v1/document-checks",
        {"files": {"document": ("d.jpg", specimen_page(), "image/jpeg")}, "data": USE},
    ),
    ("GET", "/api/v1/document-checks/{check_id}"): lambda s: Call(
        f"/api/v1/document-checks/{s.document_check()['check_id']}"
    ),
    ("POST", "/document"): lambda s: Call(
        "/document",
        {
            "files": {
                "document": ("d.jpg", specimen_page(), "image/jpeg"),
                "face": ("f.jpg", GOOD, "image/jpeg"),
            },
            "data": USE,
        },
        form=True,
    ),
    ("GET", "/document/{check_id}"): lambda s: Call(f"/document/{s.document_check()['check_id']}"),
    ("GET", "/receipt/document/{code}"): lambda s: Call(
        f"/receipt/document/{s.document_check()['receipt_code']}"
    ),
    ("POST", "/results/{search_id}/adjudications"): lambda s: (
        lambda b: Call(
            f"/results/{b['search_id']}/adjudications",
            {
                "data": {
                    "decision": "reject",
                    "person_id": str(b["candidates"][0]["person_id"]),
                    "reason": "ears differ",
                }
            },
            form=True,
        )
    )(s.search()),
    ("GET", "/outcome/{search_id}"): lambda s: Call(f"/outcome/{s.search()['search_id']}"),
    ("POST", "/outcome/{search_id}/adjudications/{adjudication_id}/second"): lambda s: (
        lambda sa: Call(
            f"/outcome/{sa[0]}/adjudications/{sa[1]}/second",
            {"data": {"decision": "confirm", "reason": "checked the ears too"}},
            form=True,
        )
    )(s.adjudication("pending_second")),
    ("POST", "/outcome/{search_id}/adjudications/{adjudication_id}/override"): lambda s: (
        lambda sa: Call(
            f"/outcome/{sa[0]}/adjudications/{sa[1]}/override",
            {"data": {"reason": "the passport was reported stolen: its name is false"}},
            form=True,
        )
    )(s.adjudication("blocked_conflict")),
    ("GET", "/receipt/{code}"): lambda s: Call(f"/receipt/{s.search()['receipt_code']}"),
    ("GET", "/review"): lambda s: Call("/review"),
    ("POST", "/review/items/{item_id}"): lambda s: Call(
        f"/review/items/{s.review_item()}",
        {"data": {"decision": "different_people", "note": "different ears"}},
        form=True,
    ),
    ("POST", "/review/items/{item_id}/merge"): lambda s: (
        lambda item: Call(
            f"/review/items/{item}/merge",
            {"data": {"keep": str(_item_people(s, item)[1]), "reason": "the same portrait"}},
            form=True,
        )
    )(s.review_item()),
    ("GET", "/searches"): lambda s: Call("/searches"),
    ("POST", "/demo/onboarding"): lambda s: Call(
        "/demo/onboarding",
        {"files": {"image": ("me.jpg", GOOD, "image/jpeg")}, "data": {"consent": "true"}},
        form=True,
    ),
    ("POST", "/demo/volunteers/{volunteer_id}/delete"): lambda s: Call(
        f"/demo/volunteers/{s.volunteer()}/delete", {"data": {}}, form=True
    ),
}

RECORDS_CSV = (
    b"kind,source_record_id,subject_id,event_date,location,outcome,synthetic\n"
    b"border_apprehension,SURF-1,S-1,2019-03-02,Sector 3,returned,true\n"
)


def _person(s: Scene) -> tuple[int, int]:
    """A fresh synthetic person enrolled for a gallery-management recipe: (person id, image id)."""
    from fieldid.dataset import LabelledImage

    ext = f"manage-{next(s.count)}"
    summary = s.ws.enrollment.enroll_images(
        [LabelledImage(subject_images("subject-0004")[0], ext, ext)],
        operator="system:test",
        source_name="t",
        synthetic=True,
    )
    assert summary.enrolled == 1
    pid = s.ws.gallery_admin.find(ext)
    detail = s.ws.gallery_admin.show_person(Actor("system:test", Role.ADMIN), pid)
    return detail.id, detail.image_list[0].id


def _item_people(s: Scene, item: int) -> tuple[int, int]:
    from fieldid.store.schema import ReviewItem

    with s.ws.store.read() as session:
        row = session.get(ReviewItem, item)
        assert row is not None and row.person_id and row.other_person_id
        return row.person_id, row.other_person_id


def _prepare(root: Path) -> None:
    from helpers_records import register

    set_config(root, "adjudication", 'two_person_purposes = ["evaluation"]')
    ws = Workspace.open(root)
    register(ws, "surfaces-src", "border")
    ws.close()


def send(s: Scene, method: str, call: Call, csrf: str) -> Any:
    kw = dict(call.kw)
    if method in ("GET", "HEAD"):
        pass
    elif call.form:
        kw["data"] = {**kw.get("data", {}), "csrf_token": csrf}
    else:
        kw["headers"] = {"X-CSRF-Token": csrf}
    return s.c.request(method, call.path, follow_redirects=False, **kw)


def data_routes(c: TestClient) -> dict[tuple[str, str], str]:
    """(method, path) -> action, for every route whose ``Need`` is a data action."""
    out: dict[tuple[str, str], str] = {}
    for method, path, route in routes(c):
        need = need_of(route)
        if need is not None and need.action in DATA_ACTIONS:
            out[(method, path)] = need.action
    return out


def test_every_route_that_touches_data_needs_its_role_and_is_audited(service_root, tmp_path):
    with serving(
        service_root,
        tmp_path,
        conflicts=NameConflicts(),
        configure=_prepare,
        demo_onboarding=True,
    ) as c:
        found = data_routes(c)
        assert len(found) >= 30
        missing = set(found) - set(ROUTE_RECIPES) - set(EXEMPT_ROUTES)
        assert not missing, f"routes touching data with no recipe or exemption: {missing}"
        stale = (set(ROUTE_RECIPES) | set(EXEMPT_ROUTES)) - set(found)
        assert not stale, f"recipes for routes that no longer exist: {stale}"
        s = Scene(c)
        checked = []
        for (method, path), action in sorted(found.items()):
            if (method, path) in EXEMPT_ROUTES:
                continue
            page = need_of(next(r for m, p, r in routes(c) if (m, p) == (method, path))).page  # type: ignore[union-attr]
            call = ROUTE_RECIPES[(method, path)](s)
            # Without credentials: refused.
            c.cookies.clear()
            r = send(s, method, call, "")
            if page:
                assert r.status_code == 303 and "/login" in r.headers["location"], (method, path)
            else:
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.json()["code"].startswith("access.")
            # Every role the table does not allow: refused.
            for role in Role:
                if role in PERMISSIONS[action]:
                    continue
                csrf = s.as_(role)
                r = send(s, method, call, csrf)
                assert r.status_code == 403, (method, path, role, r.status_code)
            # The allowed role: it works, and the audit log says it was this account.
            role = allowed_role(action)
            csrf = s.as_(role)
            before = s.ws.store.audit_entries()[-1].seq
            r = send(s, method, call, csrf)
            assert r.status_code in (200, 201, 204, 303), (method, path, r.status_code, r.text)
            if r.status_code == 303:
                assert "/login" not in r.headers["location"], (method, path)
            new = [e for e in s.ws.store.audit_entries() if e.seq > before]
            by_account = [e for e in new if e.operator == f"u-{role.value}"]
            assert by_account, (method, path, [(e.event, e.operator) for e in new])
            checked.append((method, path))
        assert len(checked) == len(found) - len(EXEMPT_ROUTES)


def test_images_are_served_only_through_a_use_each_audited_with_its_search(service_root, tmp_path):
    with serving(service_root, tmp_path) as c:
        s = Scene(c)
        body = s.search()
        sid = body["search_id"]
        cand = body["candidates"][0]
        for url, kind in (
            (f"/api/v1/searches/{sid}/probe", "probe"),
            (f"/api/v1/searches/{sid}/candidates/{cand['rank']}/photo", "enrolled"),
        ):
            r = c.get(url)
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert r.headers["cache-control"] == "private, no-store"
            entry = s.ws.store.audit_entries("photo_access")[-1]
            assert entry.operator == "u-officer" and entry.payload["kind"] == kind
            assert entry.payload["search_id"] == sid
            assert entry.case_ref == body["case_ref"] and entry.purpose == body["purpose"]
        assert entry.payload["person_id"] == cand["person_id"]
        # The results page links the enrolled photo through the search, never by person id.
        page = c.get(f"/results/{sid}").text
        assert f"/api/v1/searches/{sid}/candidates/1/photo" in page
        assert "/api/v1/persons/" not in page
        # Another officer's search: neither its probe nor its candidates' photos.
        from fieldid.access.accounts import Accounts
        from helpers_service import FAST_HASHER

        Accounts(s.ws.store, s.ws.clock, hasher=FAST_HASHER).add_user(
            "u-officer2", Role.OFFICER, PASSWORD, by="t"
        )
        c.cookies.clear()
        c.post("/api/v1/session", json={"name": "u-officer2", "password": PASSWORD})
        n = len(s.ws.store.audit_entries("photo_access"))
        assert c.get(f"/api/v1/searches/{sid}/candidates/1/photo").status_code == 403
        assert c.get(f"/api/v1/searches/{sid}/probe").status_code == 403
        assert len(s.ws.store.audit_entries("photo_access")) == n
        # An unguessable id: a made-up one finds nothing.
        assert c.get("/api/v1/searches/1/probe").status_code == 404
        # A template-only distractor has no photo: a clear 404, nothing served or audited.
        assert c.get(f"/api/v1/searches/{sid}/candidates/9/photo").status_code in (403, 404)
        # Outside a search: a gallery-managing role only, with a reason, audited.
        csrf = s.as_(Role.OFFICER)
        body_in = {"person": "subject-0001", "reason": "an enrolment complaint to check"}
        r = c.post("/api/v1/gallery/photo", headers={"X-CSRF-Token": csrf}, json=body_in)
        assert r.status_code == 403
        csrf = s.as_(Role.ADMIN)
        r = c.post(
            "/api/v1/gallery/photo",
            headers={"X-CSRF-Token": csrf},
            json={"person": "subject-0001", "reason": "why"},
        )
        assert r.status_code == 422 and r.json()["code"] == "photo.no_reason"
        r = c.post("/api/v1/gallery/photo", headers={"X-CSRF-Token": csrf}, json=body_in)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        entry = s.ws.store.audit_entries("photo_access")[-1]
        assert entry.operator == "u-admin" and entry.payload["kind"] == "gallery"
        assert entry.payload["reason"] == "an enrolment complaint to check"
        assert "search_id" not in entry.payload  # outside any search


# --- the command line ---------------------------------------------------------------------------


def commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every command of the tree (a group that runs without a subcommand counts too)."""
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}".strip()
        if hasattr(cmd, "commands"):
            if cmd.invoke_without_command and cmd.callback is not None:
                yield path, cmd
            yield from commands(cmd, path)
        else:
            yield path, cmd


def declared(cmd: Any) -> tuple[str | None, str | None]:
    """(action, no-account reason) a command's function declares."""
    fn = cmd.callback
    return getattr(fn, "__fieldid_action__", None), getattr(fn, "__fieldid_no_account__", None)


@dataclass
class CliScene:
    root: Path
    tmp: Path
    tok: dict[Role, str]
    ids: dict[str, Any] = field(default_factory=dict)


def _cli_scene(tmp_path: Path) -> CliScene:
    """A demo-like workspace (the astronaut, synthetic people with records), one account per
    role, and what the adjudication commands act on."""
    from rich.console import Console
    from sqlalchemy import select

    from fieldid.demo.server import prepare
    from fieldid.store.schema import Record

    root = tmp_path / "ws"
    ws, _ = prepare(root, distractors=20, console=Console(quiet=True))
    set_config(root, "adjudication", 'two_person_purposes = ["evaluation"]')
    ws.close()
    tok = tokens(root)
    ws = Workspace.open(root)
    officer = Attribution("cli-officer", "field-identification", "CASE-CLI")
    ids: dict[str, Any] = {}
    for key in ("adjudicate", "close"):
        ids[key] = ws.searches.search(GOOD, officer).search_id
    pending = ws.searches.search(GOOD, Attribution("cli-officer", "evaluation", "CASE-2P"))
    from fieldid.access import Actor

    who = Actor("cli-officer", Role.OFFICER)
    lead = pending.candidates[0].person_id
    ids["second"] = (
        pending.search_id,
        ws.adjudicator()
        .adjudicate(pending.search_id, who, "confirm", person_id=lead, reason="same")
        .id,
    )
    blocked = ws.searches.search(GOOD, officer)
    ids["override"] = (
        blocked.search_id,
        ws.adjudicator(NameConflicts())
        .adjudicate(
            blocked.search_id,
            who,
            "confirm",
            person_id=blocked.candidates[0].person_id,
            reason="same",
            documents=[{"type": "passport", "name": "Sam Sample"}],
        )
        .id,
    )
    with ws.store.read() as s:
        ids["record"] = s.scalars(
            select(Record.id).where(Record.kind == "border_apprehension")
        ).first()
    from fieldid.dataset import LabelledImage

    for ext in ("subject-0931", "subject-0932"):  # possible duplicates of the astronaut
        ws.enrollment.enroll_images(
            [LabelledImage(astronaut_path(), ext, ext)],
            operator="system:test",
            source_name="t",
            synthetic=True,
        )
    ws.enrollment.enroll_images(  # the person `fieldid person delete` deletes
        [LabelledImage(subject_images("subject-0005")[0], "subject-0941", "subject-0941")],
        operator="system:test",
        source_name="t",
        synthetic=True,
    )
    with ws.store.read() as s:
        from fieldid.store.schema import EnrollmentImage, Person

        ids["image"] = s.scalars(
            select(EnrollmentImage.id)
            .join(Person, Person.id == EnrollmentImage.person_id)
            .where(Person.external_id == "subject-0001")
        ).first()
    from fieldid.records.review import review_items

    with ws.store.read() as s:
        ids["item"] = next(
            i.id for i in review_items(s, state="open") if i.person_external_id == "subject-0932"
        )
    ws.close()
    (tmp_path / "people" / "subject-0003").mkdir(parents=True)
    (tmp_path / "people" / "subject-0003" / "a.jpg").write_bytes(
        subject_images("subject-0003")[0].read_bytes()
    )
    (tmp_path / "probe.jpg").write_bytes(GOOD)
    with (tmp_path / "rec.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["kind", "source_record_id", "subject_id", "event_date", "location", "outcome",
             "synthetic"]
        )  # fmt: skip
        w.writerow(
            ["border_apprehension", "CLI-1", "S-1", "2019-03-02", "Sector 3", "returned", "true"]
        )
    with Workspace.open(root) as ws:
        from helpers_records import register

        register(ws, "cli-src", "border")
    # A sensitive area (fieldid location): the file `location add` loads, and one to retire.
    square = [[2.24, 48.90], [2.26, 48.90], [2.26, 48.92], [2.24, 48.92], [2.24, 48.90]]
    (tmp_path / "area.geojson").write_text(json.dumps({"type": "Polygon", "coordinates": [square]}))
    with Workspace.open(root) as ws, ws.store.unit_of_work() as uow:
        from datetime import UTC, datetime

        from fieldid.location.areas import add_area

        ids["area"] = add_area(
            uow,
            Actor("system:test", Role.ADMIN),
            name="A square",
            kind="event",
            geometry={"type": "Polygon", "coordinates": [square]},
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
            ends_at=datetime(2026, 1, 2, tzinfo=UTC),
        ).id
    return CliScene(root, tmp_path, tok, ids)


#: How to run each command that acts as an operator, once it works (``{root}`` the workspace,
#: ``{tmp}`` a scratch folder, ``{n}`` a fresh number, the rest from the scene).
CLI_RECIPES: dict[str, str] = {
    "enroll": "enroll {tmp}/people -w {root}",
    "search": "search {tmp}/probe.jpg --purpose field-identification --case C-1 -w {root}",
    "verify": "verify {tmp}/probe.jpg {astronaut} --purpose field-identification --case C-1 "
    "-w {root}",
    "eval": "eval --workspace {root} --dataset {faces} --max-impostor-pairs 500 "
    "--cache {tmp}/t.npz",
    "synth": "synth --people 2 --records-per-person 1 -w {root}",
    "import": "import {tmp}/rec.csv --source cli-src -w {root}",
    "source add": "source add src-{n} --kind border --authority A --refresh daily -w {root}",
    "source list": "source list -w {root}",
    "review list": "review list -w {root}",
    "review resolve": "review resolve {item} --decision different_people --note 'different "
    "ears' -w {root}",
    "record show": "record show {record} -w {root}",
    "record correct": "record correct {record} --set 'location=Sector 9' --reason 'the source "
    "confirmed the sector' -w {root}",
    "gallery retemplate": "gallery retemplate --status -w {root}",
    "person merge": "person merge --keep subject-0001 --merge subject-0931 --reason 'the same "
    "public-domain portrait enrolled twice' -w {root}",
    "person history": "person history subject-0001 -w {root}",
    "person list": "person list -w {root}",
    "person show": "person show subject-0001 -w {root}",
    "person correct": "person correct subject-0001 --display-name 'Subject {n}' --reason 'a typo "
    "in the name' -w {root}",
    "person correct-image": "person correct-image subject-0001 {image} --provenance 'scan {n}' "
    "--reason 'the source said so' -w {root}",
    "person delete": "person delete subject-0941 --reason 'withdrawn by the source' --yes "
    "-w {root}",
    "person photo": "person photo subject-0001 --reason 'checking an enrolment complaint' "
    "--out {tmp}/p{n}.jpg -w {root}",
    "audit verify": "audit verify -w {root}",
    "audit export": "audit export --out {tmp}/a{n}.jsonl -w {root}",
    "purge": "purge -w {root}",
    "report": "report --json -w {root}",
    "redress export": "redress export --person subject-0001 -w {root}",
    "adjudicate": "adjudicate --search {adjudicate} --decision reject --person '#1' --reason "
    "'ears differ' -w {root}",
    "close": "close --search {close} --outcome inconclusive --reason 'person left' -w {root}",
    "second": "second --search {second_search} --adjudication {second} --decision disagree "
    "--reason 'the nose differs' -w {root}",
    "override": "override --search {override_search} --adjudication {override} --reason 'the "
    "passport was reported stolen' -w {root}",
    "pia": "pia -w {root}",
    "transparency": "transparency -w {root} --from 2026-01-01 --to 2026-12-31 --out "
    "{tmp}/t{n}.json",
    "db copy": "db copy --from {root} --to sqlite:///{tmp}/c{n}.db",
    "index rebuild": "index rebuild -w {root}",
    "index check": "index check -w {root}",
    "keys check": "keys check -w {root}",
    "keys rotate": "keys rotate -w {root}",
    "user add": "user add new-{n} --role officer --password-stdin -w {root}",
    "user list": "user list -w {root}",
    "user disable": "user disable u-spare -w {root}",
    "user enable": "user enable u-spare -w {root}",
    # Your own password (any account): the current one, then the new one, on stdin.
    "user passwd": "user passwd --password-stdin -w {root}",
    "token issue": "token issue u-spare -w {root}",
    "token list": "token list -w {root}",
    "token revoke": "token revoke {spare_token} -w {root}",
    # a supervisor declares an event (schools, hospitals...: admins) with its window
    "location add": "location add {tmp}/area.geojson --name 'March {n}' --kind event --starts "
    "2026-03-01T10:00:00+00:00 --ends 2026-03-01T18:00:00+00:00 -w {root}",
    "location list": "location list -w {root}",
    "location retire": "location retire {area} -w {root}",
    "location approvals": "location approvals -w {root}",
}
_n = itertools.count(1)
STDIN = {"user add": "a-new-password-1\n", "user passwd": f"{PASSWORD}\na-new-password-2\n"}


def cli_args(s: CliScene, path: str) -> list[str]:
    values = {
        "root": s.root,
        "tmp": s.tmp,
        "n": next(_n),
        "faces": FACES,
        "astronaut": astronaut_path(),
        "item": s.ids["item"],
        "record": s.ids["record"],
        "image": s.ids["image"],
        "adjudicate": s.ids["adjudicate"],
        "close": s.ids["close"],
        "second_search": s.ids["second"][0],
        "second": s.ids["second"][1],
        "override_search": s.ids["override"][0],
        "override": s.ids["override"][1],
        "spare_token": _spare_token(s) if path == "token revoke" else 0,
        "area": s.ids["area"],
    }
    return shlex.split(CLI_RECIPES[path].format(**values))


def _spare_token(s: CliScene) -> int:
    from fieldid.access.accounts import Accounts

    with Workspace.open(s.root) as ws:
        return Accounts(ws.store, ws.clock).issue_token("u-spare", by="test").id


def test_every_command_that_touches_data_needs_an_account_with_the_role_and_is_audited(
    tmp_path,
):
    tree = typer.main.get_command(cli_app)
    acting: dict[str, str] = {}
    for path, cmd in commands(tree):
        action, reason = declared(cmd)
        assert (action is None) != (reason is None), (
            f"`fieldid {path}` must declare @requires(action) or @no_account(reason)"
        )
        if action is not None:
            acting[path] = action
    assert {"search", "verify", "adjudicate", "enroll", "import", "person merge", "purge",
            "record correct", "audit export", "redress export"} <= set(acting)  # fmt: skip
    missing = set(acting) - set(CLI_RECIPES)
    assert not missing, f"commands acting as an operator with no recipe: {missing}"
    assert not set(CLI_RECIPES) - set(acting), "recipes for commands that no longer act"

    s = _cli_scene(tmp_path)
    with Workspace.open(s.root) as ws:
        from fieldid.access.accounts import Accounts
        from helpers_service import FAST_HASHER

        Accounts(ws.store, ws.clock, hasher=FAST_HASHER).add_user(
            "u-spare", Role.OFFICER, PASSWORD, by="test"
        )
    order = sorted(acting, key=lambda p: (p == "user enable", p == "token revoke", p))
    for path in order:
        action = acting[path]
        args = cli_args(s, path)
        stdin = STDIN.get(path)
        r = cli(args, None, stdin)
        assert r.exit_code == 2 and "access.unauthenticated" in r.output, (path, r.output)
        for role in Role:
            if role not in PERMISSIONS[action]:
                r = cli(args, s.tok[role], stdin)
                assert r.exit_code == 2 and "access.forbidden" in r.output, (path, role, r.output)
        role = allowed_role(action)
        with Workspace.open(s.root) as ws:
            before = ws.store.audit_entries()[-1].seq
        r = cli(args, s.tok[role], stdin)
        assert r.exit_code == 0, (path, r.output)
        with Workspace.open(s.root) as ws:
            new = [e for e in ws.store.audit_entries() if e.seq > before]
        assert any(e.operator == f"cli-{role.value}" for e in new), (
            path,
            [(e.event, e.operator) for e in new],
        )
        if path == "user disable":  # the enable recipe needs it disabled: done, in order
            continue


def test_search_without_credentials_is_refused_and_a_token_is_audited_as_its_account(tmp_path):
    s_root = tmp_path / "ws"
    r = cli(["init", str(s_root), "--generate-password"])
    assert r.exit_code == 0
    (tmp_path / "p.jpg").write_bytes(GOOD)
    args = ["search", str(tmp_path / "p.jpg"), "--purpose", "field-identification", "--case",
            "C-1", "-w", str(s_root)]  # fmt: skip
    r = cli(args)
    assert r.exit_code == 2
    assert "access.unauthenticated" in r.output and "FIELDID_TOKEN" in r.output
    assert "--token-file" in r.output
    with Workspace.open(s_root) as ws:
        assert ws.store.audit_entries("search") == []  # nothing ran
    tok = tokens(s_root)[Role.OFFICER]
    token_file = tmp_path / "officer.token"
    token_file.write_text(tok + "\n")
    r = cli([*args, "--token-file", str(token_file), "--json"])
    assert r.exit_code == 0, r.output
    with Workspace.open(s_root) as ws:
        (entry,) = ws.store.audit_entries("search")
    assert entry.operator == "cli-officer" and entry.payload["actor"]["role"] == "officer"
    # --operator and --role are gone: no one names themselves.
    r = cli([*args, "--operator", "nobody", "--role", "supervisor"], tok)
    assert r.exit_code == 2 and "No such option" in r.output
