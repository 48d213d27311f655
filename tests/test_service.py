"""The HTTP service: every route's authentication and role, bad uploads, the search answer."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fieldid.access import PERMISSIONS, Role
from fieldid.access.accounts import Accounts
from fieldid.demo import astronaut_path, closer_crop
from helpers_service import (
    FAST_HASHER,
    PASSWORD,
    client,
    login,
    need_of,
    routes,
    search,
    service_root,
)

__all__ = ["client", "service_root"]  # fixtures

#: Routes anyone may call: the login page and form, health, readiness, the PWA files, static files.
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/api/v1/session"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/manifest.webmanifest"),
    ("GET", "/sw.js"),
}


def concrete(path: str) -> str:
    for name in ("{search_id}", "{person_id}", "{adjudication_id}", "{rank}", "{item_id}"):
        path = path.replace(name, "1")
    path = path.replace("{side}", "enrolled").replace("{name}", "nobody")
    path = path.replace("{token_id}", "1")
    return path.replace("{code}", "K7QM-3HXA").replace("{volunteer_id}", "1")


def call(c: TestClient, method: str, path: str, **kw: Any) -> Any:
    return c.request(method, concrete(path), follow_redirects=False, **kw)


def test_every_route_declares_authentication_and_a_role(client):
    found = routes(client)
    assert len(found) >= 20
    for method, path, route in found:
        need = need_of(route)
        if (method, path) in PUBLIC:
            assert need is None, f"{method} {path} is public but declares {need}"
        else:
            assert need is not None, f"{method} {path} has no Need(...) dependency"
            assert need.action is None or need.action in PERMISSIONS


def test_every_protected_route_refuses_the_unauthenticated(client):
    for method, path, route in routes(client):
        if (method, path) in PUBLIC:
            continue
        r = call(client, method, path)
        need = need_of(route)
        assert need is not None
        if need.page:
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), (
                method,
                path,
                r.status_code,
            )
        else:
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"].startswith("access.")


def test_every_protected_route_refuses_the_wrong_role_and_admits_the_right_one(client):
    for role in Role:
        client.cookies.clear()
        csrf = login(client, role)
        for method, path, route in routes(client):
            need = need_of(route)
            if (method, path) in PUBLIC or need is None or path == "/logout":
                continue
            if method == "DELETE" and path == "/api/v1/session":
                continue  # would end this session; covered in test_logout_ends_the_session
            r = call(client, method, path, headers={"X-CSRF-Token": csrf})
            allowed = need.action is None or role in PERMISSIONS[need.action]
            if allowed:
                assert r.status_code not in (401, 403), (role, method, path, r.text)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code)
                if not need.page:
                    assert r.json()["code"] == "access.forbidden"


def test_state_changing_requests_need_the_csrf_token(client):
    login(client, Role.OFFICER)
    r = client.post(
        "/api/v1/quality", files={"frame": ("f.jpg", closer_crop(astronaut_path()), "image/jpeg")}
    )
    assert r.status_code == 403 and r.json()["code"] == "access.csrf"


def test_logout_ends_the_session(client):
    csrf = login(client, Role.OFFICER)
    assert client.get("/api/v1/me").status_code == 200
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/me").status_code == 401


def test_session_cookie_flags(client):
    r = client.post("/api/v1/session", json={"name": "u-officer", "password": PASSWORD})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http on loopback: see ServiceSettings.cookie_secure


def test_bearer_token_is_scoped(client):
    ws = client.app.state.fieldid.workspace  # type: ignore[attr-defined]
    tok = Accounts(ws.store, ws.clock, hasher=FAST_HASHER).issue_token(
        "u-officer", scopes=["verify"], by="t"
    )
    h = {"Authorization": f"Bearer {tok.secret}"}
    assert client.get("/api/v1/me", headers=h).json()["may"] == ["verify"]
    r = client.post(
        "/api/v1/searches",
        headers=h,
        files={"image": ("a.jpg", closer_crop(astronaut_path()), "image/jpeg")},
        data={"purpose": "field-identification", "case_ref": "C", "notice_given": "true"},
    )
    assert r.status_code == 403 and r.json()["code"] == "access.scope"
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer fid_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "access.token_invalid"


def test_a_token_without_the_investigation_scope_gets_no_investigation_list(client):
    """A supervisor's role permits investigation lists; a token of theirs scoped to searches
    alone does not, and asking for one runs nothing."""
    ws = client.app.state.fieldid.workspace  # type: ignore[attr-defined]
    tok = Accounts(ws.store, ws.clock, hasher=FAST_HASHER).issue_token(
        "u-supervisor", scopes=["search"], by="t"
    )
    before = len(ws.store.audit_entries("search"))
    r = client.post(
        "/api/v1/searches",
        headers={"Authorization": f"Bearer {tok.secret}"},
        files={"image": ("a.jpg", closer_crop(astronaut_path()), "image/jpeg")},
        data={
            "purpose": "field-identification",
            "case_ref": "C",
            "notice_given": "true",
            "investigation": "true",
        },
    )
    assert r.status_code == 403 and r.json()["code"] == "access.scope", r.text
    assert len(ws.store.audit_entries("search")) == before


def test_search_returns_leads_with_quality_and_is_kept_for_its_officer(client):
    csrf = login(client, Role.OFFICER)
    r = search(client, csrf, closer_crop(astronaut_path()))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["notice"] == "possible match: a lead, not an identification"
    assert body["candidates"][0]["display_name"] == "Subject 0001 (synthetic)"
    assert body["quality"]["band"] in {"good", "fair"}
    assert body["operator"] == "u-officer" and body["case_ref"] == "CASE-1"
    ref = body["search_id"]
    assert r.headers["location"] == f"/api/v1/searches/{ref}"
    assert body["links"]["receipt"] == f"/receipt/{body['receipt_code']}"
    # What GET answers is read back from the database (no in-memory copy).
    got = client.get(f"/api/v1/searches/{ref}").json()
    assert got["candidates"][0]["person_id"] == body["candidates"][0]["person_id"]
    assert got["notice_given"] is True and got["status"] == "open"
    assert got["probe"]["available"] and got["quality"]["unified"] == body["quality"]["unified"]
    probe = client.get(f"/api/v1/searches/{ref}/probe")
    assert probe.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(probe.content)).size) <= 480
    # Another officer may not see it; a supervisor (review) may.
    ws = client.app.state.fieldid.workspace  # type: ignore[attr-defined]
    Accounts(ws.store, ws.clock, hasher=FAST_HASHER).add_user(
        "u-officer2", Role.OFFICER, PASSWORD, by="t"
    )
    client.cookies.clear()
    client.post("/api/v1/session", json={"name": "u-officer2", "password": PASSWORD})
    assert client.get(f"/api/v1/searches/{ref}").status_code == 403
    client.cookies.clear()
    login(client, Role.SUPERVISOR)
    assert client.get(f"/api/v1/searches/{ref}").status_code == 200
    entries = list(ws.store.audit_entries("search"))
    assert entries[-1].operator == "u-officer" and entries[-1].case_ref == "CASE-1"
    assert entries[-1].payload["notice_given"] is True


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("not_an_image", 415, "probe.not_an_image"),
        ("pdf", 415, "probe.unsupported_format"),
        ("truncated", 422, "probe.truncated"),
        ("too_large", 413, "probe.too_large_bytes"),
        ("no_face", 422, "acquire.no_face"),
        ("empty", 400, "probe.empty"),
        ("small_face", 422, "quality.too_far"),
    ],
)
def test_bad_uploads_get_clear_problems(client, name, status, code):
    csrf = login(client, Role.OFFICER)
    good = closer_crop(astronaut_path())
    data = {
        "not_an_image": b"just some text, not a photo\n" * 10,
        "pdf": b"%PDF-1.7 this is a document, not a photo" * 10,
        "truncated": good[: len(good) // 2],
        "too_large": b"\xff\xd8\xff" + b"\0" * (2 * 1024 * 1024 + 10),
        "no_face": _jpeg(Image.new("RGB", (640, 480), (120, 130, 140))),
        "empty": b"",
        "small_face": _jpeg(Image.open(astronaut_path()).resize((200, 200))),
    }[name]
    r = search(client, csrf, data)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code and body["status"] == status
    assert body["detail"] and body["title"] and body["type"].endswith(code)
    if code.startswith("quality."):
        # An API upload is a supplied file: told what is wrong with the photo.
        assert body["guidance"][0]["message"].startswith("the face is too small in this photo")
        assert body["capture"] == "file"


def test_oversized_request_is_refused_before_parsing(client):
    csrf = login(client, Role.OFFICER)
    r = client.post(
        "/api/v1/searches",
        headers={"X-CSRF-Token": csrf, "Content-Type": "multipart/form-data; boundary=x"},
        content=b"x" * (6 * 1024 * 1024),
    )
    assert r.status_code == 413 and r.json()["code"] == "probe.too_large_bytes"


def test_use_without_case_or_notice_is_refused(client):
    csrf = login(client, Role.OFFICER)
    good = closer_crop(astronaut_path())
    r = search(client, csrf, good, case_ref="  ")
    assert r.status_code == 422 and r.json()["code"] == "use.no_case"
    r = search(client, csrf, good, notice_given="false")
    assert r.status_code == 422 and r.json()["code"] == "use.no_notice"
    r = search(client, csrf, good, purpose="curiosity")
    assert r.status_code == 422 and r.json()["code"] == "use.purpose_not_permitted"


def test_quality_check_guides_without_searching_or_auditing(client):
    csrf = login(client, Role.OFFICER)
    ws = client.app.state.fieldid.workspace  # type: ignore[attr-defined]
    before = len(list(ws.store.audit_entries()))
    full = Image.open(io.BytesIO(closer_crop(astronaut_path())))
    half = full.resize((full.width // 2, full.height // 2))
    r = client.post(
        "/api/v1/quality",
        headers={"X-CSRF-Token": csrf},
        files={"frame": ("f.jpg", _jpeg(half), "image/jpeg")},
        data={"scale": "2"},
    )
    body = r.json()
    assert r.status_code == 200 and body["passes"], body
    # The eye distance is reported at capture scale (the gate's minimum is set for it).
    assert body["face"]["inter_eye_px_at_capture"] > 80
    small = _jpeg(Image.open(astronaut_path()).resize((160, 160)))
    r = client.post(
        "/api/v1/quality",
        headers={"X-CSRF-Token": csrf},
        files={"frame": ("f.jpg", small, "image/jpeg")},
        data={"scale": "2"},
    )
    assert not r.json()["passes"] and r.json()["guidance"][0]["code"] == "quality.too_far"
    blank = _jpeg(Image.new("RGB", (320, 240), (90, 90, 90)))
    r = client.post(
        "/api/v1/quality",
        headers={"X-CSRF-Token": csrf},
        files={"frame": ("f.jpg", blank, "image/jpeg")},
    )
    assert r.json()["face"] is None and r.json()["guidance"][0]["code"] == "acquire.no_face"
    assert len(list(ws.store.audit_entries())) == before  # not a search: nothing audited


def test_health_readiness_metrics_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    assert client.get("/metrics").status_code == 401
    login(client, Role.AUDITOR)
    text = client.get("/metrics").text
    assert "fieldid_gallery_persons 51" in text and "fieldid_http_requests_total" in text
    spec = client.get("/openapi.json").json()
    assert "/api/v1/searches" in spec["paths"]
    docs = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_admin_enrols_over_the_api(client):
    csrf = login(client, Role.ADMIN)
    img = _jpeg(Image.open(io.BytesIO(closer_crop(astronaut_path()))).rotate(3))
    r = client.post(
        "/api/v1/enrollments",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("e.jpg", img, "image/jpeg")},
        data={"external_id": "subject-0002", "source": "test", "synthetic": "true"},
    )
    assert r.status_code == 201 and r.json()["enrolled"] == 1
    r = client.post(
        "/api/v1/enrollments",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("e.jpg", b"not an image at all", "image/jpeg")},
        data={"external_id": "subject-0003", "source": "test"},
    )
    assert r.status_code == 415 and r.json()["code"] == "probe.not_an_image"


def test_no_gallery_photo_by_person_id_and_search_ids_are_opaque(client):
    """The old ``/api/v1/persons/{id}/photo`` is gone: a face is served only through a use
    (tests/test_accountable_service.py). A search is known by one opaque id."""
    csrf = login(client, Role.OFFICER)
    assert client.get("/api/v1/persons/2/photo").status_code == 404
    body = search(client, csrf, closer_crop(astronaut_path())).json()
    sid = body["search_id"]
    assert isinstance(sid, str) and len(sid) >= 22 and not sid.isdigit()
    assert isinstance(body["audit_seq"], int) and "search_ref" not in body
    assert all(sid in link for k, link in body["links"].items() if k != "receipt")
