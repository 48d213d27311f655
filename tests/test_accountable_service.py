"""Issue 13 over HTTP and in the reports: the access lifecycle through the API (each act
audited, a disabled account's sessions and tokens stop at once), every problem of a request in
one answer, the oversight report counting every use, redress exports in aware UTC times."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from fieldid.access import Role
from fieldid.demo import astronaut_path, closer_crop
from fieldid.report import build_report
from helpers_service import (
    PASSWORD,
    client,
    login,
    search,
    service_root,
    serving,
    workspace_of,
)

__all__ = ["client", "service_root"]  # fixtures

GOOD = closer_crop(astronaut_path())


def _as(c: TestClient, role: Role | str, password: str = PASSWORD) -> str:
    c.cookies.clear()
    if isinstance(role, Role):
        return login(c, role)
    r = c.post("/api/v1/session", json={"name": role, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def test_the_access_lifecycle_over_the_api(client):
    csrf = _as(client, Role.ADMIN)
    h = {"X-CSRF-Token": csrf}
    r = client.post(
        "/api/v1/admin/users",
        headers=h,
        json={"name": "olga", "role": "officer", "password": "olga-password-1"},
    )
    assert r.status_code == 201 and r.json()["role"] == "officer"
    r = client.post("/api/v1/admin/tokens", headers=h, json={"operator": "olga", "days": 30})
    assert r.status_code == 201
    secret, token_id = r.json()["secret"], r.json()["id"]
    bearer = {"Authorization": f"Bearer {secret}"}
    listed = client.get("/api/v1/admin/tokens", params={"operator": "olga"}).json()["tokens"]
    assert [t["id"] for t in listed] == [token_id] and secret not in str(listed)
    users = {u["name"]: u for u in client.get("/api/v1/admin/users").json()["users"]}
    assert users["olga"]["disabled"] is False and users["olga"]["created_by"] == "u-admin"

    # olga works, with a browser session and with her token.
    other = TestClient(client.app)
    olga_csrf = _as(other, "olga", "olga-password-1")
    assert other.get("/api/v1/me").json()["operator"] == "olga"
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    # Disabled: her session and her token stop at once (the next request is refused).
    r = client.post("/api/v1/admin/users/olga/disable", headers=h)
    assert (
        r.status_code == 200 and r.json()["disabled"] and r.json()["tokens_revoked"] == [token_id]
    )
    assert other.get("/api/v1/me").status_code == 401
    r = search(other, olga_csrf, GOOD)
    assert r.status_code == 401
    assert client.get("/api/v1/me", headers=bearer).json()["code"] == "access.token_invalid"
    login_again = other.post(
        "/api/v1/session", json={"name": "olga", "password": "olga-password-1"}
    )
    assert login_again.status_code == 401
    # Enabled again: she logs in; the revoked token stays revoked.
    assert client.post("/api/v1/admin/users/olga/enable", headers=h).status_code == 200
    assert client.get("/api/v1/me", headers=bearer).status_code == 401
    assert _as(other, "olga", "olga-password-1")
    # A password reset ends her sessions.
    r = client.post(
        "/api/v1/admin/users/olga/password", headers=h, json={"password": "olga-password-2"}
    )
    assert r.status_code == 204
    assert other.get("/api/v1/me").status_code == 401
    # Revoking a token.
    tok = client.post("/api/v1/admin/tokens", headers=h, json={"operator": "olga"}).json()
    assert client.delete(f"/api/v1/admin/tokens/{tok['id']}", headers=h).status_code == 204
    again = client.delete(f"/api/v1/admin/tokens/{tok['id']}", headers=h)
    assert again.status_code == 409 and again.json()["code"] == "account.token_revoked"
    assert client.delete("/api/v1/admin/tokens/99999", headers=h).status_code == 404
    # The last active admin cannot be disabled; unknown operators are 404.
    r = client.post("/api/v1/admin/users/u-admin/disable", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "account.last_admin"
    assert client.post("/api/v1/admin/users/nobody/disable", headers=h).status_code == 404
    # Every act is audited under the admin.
    ws = workspace_of(client)
    acts = [(e.event, e.operator) for e in ws.store.audit_entries()]
    for event in (
        "user_add",
        "token_issue",
        "token_list",
        "account_list",
        "user_disable",
        "user_enable",
        "user_password_reset",
        "token_revoke",
    ):
        assert (event, "u-admin") in acts, event
    disable = ws.store.audit_entries("user_disable")[-1].payload
    assert disable["user"] == "olga" and disable["tokens_revoked"] == [token_id]
    assert disable["sessions_ended"] == 1
    # Only admins manage access.
    sup = _as(client, Role.SUPERVISOR)
    r = client.post("/api/v1/admin/users/olga/disable", headers={"X-CSRF-Token": sup})
    assert r.status_code == 403 and r.json()["code"] == "access.forbidden"


def test_every_problem_of_a_search_request_comes_in_one_answer(client):
    csrf = login(client, Role.OFFICER)
    r = search(
        client,
        csrf,
        GOOD,
        purpose="curiosity",
        case_ref=" ",
        notice_given="false",
        documents="[not json",
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "request.several"
    assert {p["code"] for p in body["problems"]} == {
        "use.purpose_not_permitted",
        "use.no_case",
        "use.no_notice",
        "document.syntax",
    }
    assert body["detail"].startswith("4 problems:")
    r = search(client, csrf, GOOD, purpose="curiosity", case_ref=" ")
    assert r.json()["code"] == "use.several" and len(r.json()["problems"]) == 2
    one = search(client, csrf, GOOD, case_ref=" ")
    assert one.json()["code"] == "use.no_case"
    assert [p["code"] for p in one.json()["problems"]] == ["use.no_case"]
    # Nothing was searched.
    assert workspace_of(client).store.audit_entries("search") == []


def _all_times(obj: Any, out: list[str]) -> list[str]:
    """Every string in ``obj`` that is a date-time."""
    if isinstance(obj, dict):
        for v in obj.values():
            _all_times(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _all_times(v, out)
    elif isinstance(obj, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d.*", obj):
        out.append(obj)
    return out


def test_the_report_counts_every_use_and_redress_times_are_aware(service_root, tmp_path):
    with serving(service_root, tmp_path) as c:
        ws = workspace_of(c)
        csrf = _as(c, Role.OFFICER)
        body = search(c, csrf, GOOD).json()
        sid = body["search_id"]
        assert c.get(f"/api/v1/searches/{sid}/probe").status_code == 200
        assert c.get(f"/api/v1/searches/{sid}/candidates/1/photo").status_code == 200
        assert c.get(f"/results/{sid}").status_code == 200
        r = c.post(
            "/api/v1/verifications",
            headers={"X-CSRF-Token": csrf},
            files={
                "image_a": ("a.jpg", GOOD, "image/jpeg"),
                "image_b": ("b.jpg", astronaut_path().read_bytes(), "image/jpeg"),
            },
            data={"purpose": "field-identification", "case_ref": "CASE-V"},
        )
        assert r.status_code == 200, r.text
        wiped = {
            "captured_at": "2026-01-01T10:00:00Z",
            "wiped_at": "2026-01-01T10:30:00Z",
            "purpose": "field-identification",
            "case_ref": "CASE-W",
        }
        assert (
            c.post("/api/v1/captures/wiped", headers={"X-CSRF-Token": csrf}, json=wiped).status_code
            == 204
        )
        sup = _as(c, Role.SUPERVISOR)
        r = search(c, sup, GOOD, investigation="true")
        assert r.status_code == 201 and r.json()["list_kind"] == "investigation"
        # A use under a name that is no account, and one by an account while disabled.
        ws.store.append_audit("search", operator="ghost", payload={"outcome": "candidates"})
        ws.store.append_audit("user_disable", operator="u-admin", payload={"user": "u-auditor"})
        ws.store.append_audit("verify", operator="u-auditor", payload={"score": 0.1})
        ws.store.append_audit("user_enable", operator="u-admin", payload={"user": "u-auditor"})
        ws.store.append_audit("calibrate", operator="local:root@host", payload={})

        data = build_report(ws.store, ws.root, ws.clock)
        u = data["uses"]
        assert u["verifications"]["total"] == 2
        assert u["verifications"]["by_operator"]["u-officer"] == 1
        assert u["verifications"]["results"]["at or above threshold"] == 1
        photos = u["photo_accesses"]
        assert photos["by_kind"]["probe"] >= 1 and photos["by_kind"]["enrolled"] >= 1
        assert u["investigation_lists"]["by_operator"] == {"u-supervisor": 1}
        assert u["capture_wiped"]["total"] == 1 and u["capture_wiped"]["by_operator"] == {
            "u-officer": 1
        }
        assert u["by_kind"]["searches viewed"]["by_operator"]["u-officer"] >= 1
        today = ws.clock.now().date().isoformat()
        assert u["by_kind"]["searches"]["by_day"][today] >= 2  # the trend, per day
        assert (
            u["document_first"]["recorded"] is False
            and "document_check" in u["document_first"]["note"]
        )
        acc = data["accounts"]
        assert acc["by_unknown_accounts"]["names"] == {"ghost": 1}
        assert acc["by_disabled_accounts"]["names"] == {"u-auditor": 1}
        assert "local:root@host" not in acc["uses_by_operator"]  # a local command, no account
        assert "u-officer" in acc["uses_by_operator"]
        from fieldid.report import render_html

        html = render_html(data)
        assert "Every use" in html and "1:1 verifications" in html
        assert "ghost (1)" in html and "No use by names" not in html
        assert "Document-first encounters" in html

        # A redress export: every time in it is timezone-aware (UTC).
        from fieldid.access import Actor

        out = ws.redress.export(Actor("aud", Role.AUDITOR), person="subject-0001")
        times = _all_times(out, [])
        assert len(times) >= 5
        for t in times:
            assert datetime.fromisoformat(t.replace("Z", "+00:00")).tzinfo is not None, t
        receipt = ws.redress.export(Actor("aud", Role.AUDITOR), receipt=body["receipt_code"])
        for t in _all_times(receipt, []):
            assert datetime.fromisoformat(t.replace("Z", "+00:00")).tzinfo is not None, t
        assert receipt["searches"][0]["search_id"] == sid
