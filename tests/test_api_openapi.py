"""The OpenAPI description an integrator builds on: security schemes per route, typed answers,
one problem+json schema for every refusal, and answers that match what is declared."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel

from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.demo import astronaut_path, closer_crop
from fieldid.service import schemas
from fieldid.service.openapi import api_routes, need_of
from helpers_service import FAST_HASHER, client, login, search, service_root

__all__ = ["client", "service_root"]  # fixtures

METHODS = ("get", "put", "post", "delete", "patch")

#: Successful answers that are not JSON (images, nothing).
NOT_JSON = {
    ("get", "/api/v1/searches/{search_id}/probe"),
    ("get", "/api/v1/searches/{search_id}/candidates/{rank}/photo"),
    ("post", "/api/v1/gallery/photo"),
    ("get", "/api/v1/review-items/{item_id}/photos/{side}"),
    ("post", "/api/v1/admin/users/{name}/password"),
    ("delete", "/api/v1/admin/tokens/{token_id}"),
    ("delete", "/api/v1/session"),
    ("post", "/api/v1/captures/wiped"),
    ("delete", "/api/v1/demo/volunteers/{volunteer_id}"),
}


def undeclared(value: Any, path: str = "$") -> list[str]:
    """Members of a validated answer that no model declares (``extra`` allows them, so a client
    keeps working when fields are added; the service itself must declare what it answers)."""
    out: list[str] = []
    if isinstance(value, BaseModel):
        if not isinstance(value, schemas.Problem):  # a problem's members depend on its code
            out += [f"{path}.{k}" for k in value.model_extra or {}]
        for name in type(value).model_fields:
            out += undeclared(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += undeclared(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            out += undeclared(v, f"{path}[{k}]")
    return out


def check(model: type[BaseModel], body: Any) -> BaseModel:
    got = model.model_validate(body)
    assert undeclared(got) == [], f"{model.__name__}: answered but not declared"
    return got


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (m, p, op) for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS
    ]


def test_every_operation_declares_its_security_from_its_route(client: TestClient):
    doc = client.app.openapi()  # type: ignore[attr-defined]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionCookie"]["in"] == "cookie"
    assert schemes["sessionCookie"]["name"] == "fieldid_session"
    assert schemes["csrfHeader"] == {**schemes["csrfHeader"], "in": "header"}
    assert schemes["csrfHeader"]["name"] == "X-CSRF-Token"
    needs = {
        (m.lower(), r.path_format): need_of(r)
        for r in api_routes(list(client.app.routes))  # type: ignore[attr-defined]
        for m in r.methods
    }
    ops = operations(doc)
    assert len(ops) >= 20
    for method, path, op in ops:
        need = needs[(method, path)]
        if need is None:
            assert op["security"] == [], (method, path)
            continue
        session = {"sessionCookie": []}
        if method != "get":
            session["csrfHeader"] = []
        assert op["security"] == [{"bearerAuth": []}, session], (method, path)
        assert op["x-fieldid-permission"] == need.action
        assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_every_refusal_is_the_one_problem_schema(client: TestClient):
    doc = client.app.openapi()  # type: ignore[attr-defined]
    schemas_ = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas_ and "ValidationError" not in schemas_
    problem = schemas_["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    refusals = 0
    for method, path, op in operations(doc):
        for status, resp in op["responses"].items():
            api_busy = status == "503" and path.startswith("/api/v1/")
            if status.isdigit() and (400 <= int(status) < 500 or api_busy):
                refusals += 1
                assert resp["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
        if "requestBody" not in op:
            assert not {"413", "415"} & set(op["responses"]), (method, path)
    assert refusals > 60
    assert "503" in doc["paths"]["/api/v1/searches"]["post"]["responses"]  # service.busy
    assert "HTTPValidationError" not in json.dumps(doc)


def test_every_json_answer_is_a_typed_model(client: TestClient):
    doc = client.app.openapi()  # type: ignore[attr-defined]
    for method, path, op in operations(doc):
        if not path.startswith("/api/v1/") or (method, path) in NOT_JSON:
            continue
        if path.startswith("/api/v1/demo/"):
            continue  # the demo's onboarding, for its own page: not an integration API
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert len(ok) == 1, (method, path)
        schema = op["responses"][ok[0]]["content"]["application/json"]["schema"]
        assert schema.get("$ref", "").startswith("#/components/schemas/"), (method, path, schema)
        # operationIds are the handlers' names: what a generated client calls.
        assert "_api_v1_" not in op["operationId"]
    search_result = doc["components"]["schemas"]["SearchResult"]
    assert {"search_id", "candidates", "quality", "receipt_code"} <= set(search_result["required"])
    enrolled = doc["components"]["schemas"]["EnrollmentResult"]
    assert "person_id" in enrolled["required"]


def test_the_description_needs_an_account(client: TestClient):
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/docs", follow_redirects=False).status_code == 303
    ws = client.app.state.fieldid.workspace  # type: ignore[attr-defined]
    tok = Accounts(ws.store, ws.clock, hasher=FAST_HASHER).issue_token("u-auditor", by="t").secret
    got = client.get("/openapi.json", headers={"Authorization": f"Bearer {tok}"})
    assert got.status_code == 200 and got.json()["info"]["title"] == "fieldid"


def test_the_docs_page_carries_the_sessions_csrf_token_for_swagger(client: TestClient):
    csrf = login(client, Role.OFFICER)
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert f'<meta name="csrf-token" content="{csrf}">' in page.text
    assert '<script src="/static/swagger-init.js">' in page.text
    js = client.get("/static/swagger-init.js")
    assert js.status_code == 200 and "requestInterceptor" in js.text
    assert '"X-CSRF-Token"' in js.text


def test_answers_match_their_models(client: TestClient):
    """Each answer validates against its model and carries nothing the model leaves out."""
    csrf = login(client, Role.OFFICER)
    h = {"X-CSRF-Token": csrf}
    probe = closer_crop(astronaut_path())
    docs = json.dumps([{"document_type": "passport", "number": "P-1", "issuing_country": "ARX"}])
    r = search(client, csrf, probe, documents=docs)
    assert r.status_code == 201
    found = check(schemas.SearchResult, r.json())
    assert isinstance(found, schemas.SearchResult) and found.candidates
    sid = found.search_id
    view = check(schemas.SearchView, client.get(f"/api/v1/searches/{sid}").json())
    assert isinstance(view, schemas.SearchView) and view.probe.state == "held"
    check(schemas.SearchPage, client.get("/api/v1/searches").json())
    # A refused attempt is recorded: its problem names it, and its view says why.
    refused = search(client, csrf, b"not an image")
    problem = check(schemas.Problem, refused.json())
    assert isinstance(problem, schemas.Problem) and problem.search_id is not None
    gone = check(schemas.SearchView, client.get(f"/api/v1/searches/{problem.search_id}").json())
    assert isinstance(gone, schemas.SearchView) and gone.refusal is not None
    assert gone.refusal.code == problem.code == "probe.not_an_image"
    # A repeated Idempotency-Key answers the first search as persisted, marked replayed.
    key = {"X-CSRF-Token": csrf, "Idempotency-Key": "replay-test-0001"}
    fields = {"purpose": "field-identification", "case_ref": "CASE-1", "notice_given": "true"}
    files = {"image": ("p.jpg", probe, "image/jpeg")}
    first = client.post("/api/v1/searches", headers=key, files=files, data=fields)
    again = client.post("/api/v1/searches", headers=key, files=files, data=fields)
    assert first.status_code == again.status_code == 201
    check(schemas.SearchResult, first.json())
    replay = check(schemas.SearchView, again.json())
    assert isinstance(replay, schemas.SearchView) and replay.replayed is True
    assert replay.search_id == first.json()["search_id"]
    check(schemas.Me, client.get("/api/v1/me").json())
    v = client.post(
        "/api/v1/verifications",
        headers=h,
        files={
            "image_a": ("a.jpg", probe, "image/jpeg"),
            "image_b": ("b.jpg", probe, "image/jpeg"),
        },
        data={"purpose": "field-identification", "case_ref": "C-1"},
    )
    check(schemas.VerificationResult, v.json())
    q = client.post("/api/v1/quality", headers=h, files={"frame": ("f.jpg", probe, "image/jpeg")})
    check(schemas.QualityCheck, q.json())
    adj = client.post(
        f"/api/v1/searches/{sid}/adjudications",
        headers=h,
        json={
            "decision": "confirm",
            "person_id": found.candidates[0].person_id,
            "reason": "same scar and ear shape; the passport agrees",
            "documents": [{"type": "passport", "number": "P-1"}],
        },
    )
    assert adj.status_code == 201, adj.text
    check(schemas.AdjudicationResult, adj.json())
    client.cookies.clear()
    csrf = login(client, Role.ADMIN)
    e = client.post(
        "/api/v1/enrollments",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("a.jpg", probe, "image/jpeg")},
        data={"external_id": "api-test-1", "source": "test", "display_name": "Test One"},
    )
    assert e.status_code == 201, e.text
    enrolled = check(schemas.EnrollmentResult, e.json())
    assert isinstance(enrolled, schemas.EnrollmentResult)
    assert enrolled.new_person and enrolled.external_id == "api-test-1"
    # The same face as subject-0001: a possible duplicate, opened for review, nothing merged.
    assert enrolled.possible_duplicates
    again = client.post(
        "/api/v1/enrollments",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("a.jpg", probe, "image/jpeg")},
        data={"external_id": "api-test-1", "source": "test"},
    )
    same = check(schemas.EnrollmentResult, again.json())
    assert isinstance(same, schemas.EnrollmentResult)
    assert same.person_id == enrolled.person_id and same.already_enrolled == 1
    assert not same.new_person
    # The supervisor's queue holds that possible duplicate; a decision on it.
    client.cookies.clear()
    csrf = login(client, Role.SUPERVISOR)
    queue = check(schemas.ReviewQueue, client.get("/api/v1/reviews").json())
    assert isinstance(queue, schemas.ReviewQueue) and queue.review_items
    item = queue.review_items[0]
    assert {item.enrolled.person_id, item.matched.person_id} >= {enrolled.person_id}
    done = client.post(
        f"/api/v1/review-items/{item.id}",
        headers={"X-CSRF-Token": csrf},
        json={"decision": "different_people", "note": "a test enrollment of the same photo"},
    )
    assert done.status_code == 200, done.text
    resolved = check(schemas.ResolvedReviewItem, done.json())
    assert isinstance(resolved, schemas.ResolvedReviewItem) and resolved.merged is False


def test_refusals_are_problems(client: TestClient):
    assert check(schemas.Problem, client.get("/api/v1/me").json()).code == "access.unauthenticated"
    csrf = login(client, Role.OFFICER)
    got = client.get("/api/v1/reviews").json()
    assert check(schemas.Problem, got).code == "access.forbidden"
    got = client.get("/api/v1/searches/424242").json()
    assert check(schemas.Problem, got).code == "search.not_found"
    bad = client.post("/api/v1/searches", headers={"X-CSRF-Token": csrf}, data={"purpose": "x"})
    p = check(schemas.Problem, bad.json())
    assert isinstance(p, schemas.Problem) and p.code == "request.invalid" and p.errors
    assert {e.field for e in p.errors} == {"image", "case_ref"}
    assert bad.headers["content-type"] == "application/problem+json"
