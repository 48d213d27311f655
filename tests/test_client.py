"""The Python client (``fieldid.client``) and clients generated from ``/openapi.json``, against a
real server: ``fieldid serve`` on an ephemeral port, in a subprocess.

- every client method's route, fields and answer model are checked against the server's OpenAPI
  description, and every API operation has a client method (drift fails here);
- search, verify, adjudicate, enroll and reviews work over HTTP, refusals raise ``ApiError``
  with the problem's code;
- pydantic models generated from the description (datamodel-code-generator) type-check a search
  round trip under ``mypy --strict`` and run it against the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import subject_images
from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.client import ROUTES, ApiError, Client
from fieldid.demo import astronaut_path, closer_crop
from fieldid.service import schemas
from helpers_service import FAST_HASHER, service_root
from helpers_storage import Backend

__all__ = ["service_root"]  # fixture

#: API operations the client leaves out on purpose: a browser's login and logout, the phone
#: app's report of a capture it wiped unsent, the demo's onboarding.
NOT_IN_CLIENT = {
    ("POST", "/api/v1/session"),
    ("POST", "/api/v1/captures/wiped"),
    ("DELETE", "/api/v1/session"),
    ("POST", "/api/v1/demo/volunteers"),
    ("DELETE", "/api/v1/demo/volunteers/{volunteer_id}"),
}


@dataclass
class Live:
    url: str
    tokens: dict[Role, str]
    root: Path

    def client(self, role: Role) -> Client:
        return Client(self.url, self.tokens[role])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(
    service_root: Path, tmp_path_factory: pytest.TempPathFactory, backend_kind: Backend
) -> Iterator[Live]:
    """``fieldid serve`` on a copy of the service workspace, with a token per role."""
    from fieldid.workspace import Workspace

    root = tmp_path_factory.mktemp("live") / "ws"
    backend_kind.copy(service_root, root, keep=True)  # on PostgreSQL: a database of its own
    ws = Workspace.open(root)
    accounts = Accounts(ws.store, ws.clock, hasher=FAST_HASHER)
    tokens = {r: accounts.issue_token(f"u-{r.value}", by="test").secret for r in Role}
    ws.close()
    port = _free_port()
    log = (root.parent / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from fieldid.cli.app import main; main()",
            "serve",
            "--workspace",
            str(root),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                log.flush()
                raise RuntimeError(
                    f"fieldid serve exited {proc.returncode}: "
                    + (root.parent / "server.log").read_text(errors="replace")[-2000:]
                )
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("fieldid serve did not become ready in 180 s")
            time.sleep(0.25)
        yield Live(url, tokens, root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --- the client and the description agree ------------------------------------------------------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    out: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return out


def test_every_client_method_matches_the_servers_description(live: Live):
    with live.client(Role.OFFICER) as api:
        doc = api.openapi()
    operations = {
        (m.upper(), p): op
        for p, item in doc["paths"].items()
        for m, op in item.items()
        if m in ("get", "post", "put", "patch", "delete")
    }
    for name, route in ROUTES.items():
        where = f"Client.{name} ({route.method} {route.path})"
        op = operations.get((route.method, route.path))
        assert op is not None, f"{where}: no such operation in /openapi.json"
        method = getattr(Client, name)
        hints = typing.get_type_hints(method)
        ok = next(s for s in op["responses"] if s.startswith("2"))
        content = op["responses"][ok].get("content", {})
        if route.answer is None:
            assert "application/json" not in content, f"{where}: the API answers JSON now"
        else:
            ref = content["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{route.answer.__name__}", where
            assert hints["return"] is route.answer, f"{where}: returns {hints['return']}"
            # The very model the service declares (same fields, same types).
            declared = doc["components"]["schemas"][route.answer.__name__]
            assert set(declared["properties"]) == set(route.answer.model_fields), where
        # Path parameters, query parameters and body fields.
        params = op.get("parameters", [])
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == {f for f in route.path.split("{")[1:] for f in [f.split("}")[0]]}
        in_query = {p["name"] for p in params if p["in"] == "query"}
        assert set(route.query) <= in_query, f"{where}: unknown query {route.query}"
        body = op.get("requestBody")
        if route.body == "none":
            assert body is None, f"{where}: the API now takes a body"
            continue
        media = "multipart/form-data" if route.body == "multipart" else "application/json"
        assert body is not None and media in body["content"], f"{where}: not {media}"
        schema = _resolve(doc, body["content"][media]["schema"])
        fields = set(schema["properties"])
        assert set(route.fields) <= fields, f"{where}: sends {set(route.fields) - fields}"
        required = set(schema.get("required", []))
        assert required <= set(route.fields), f"{where}: never sends {required - set(route.fields)}"
    covered = {(r.method, r.path) for r in ROUTES.values()}
    missing = {
        k for k in operations if k[1].startswith("/api/v1/") and k not in covered | NOT_IN_CLIENT
    }
    assert not missing, (
        f"API operations without a method in fieldid.client: {sorted(missing)}; add one "
        "(and its ROUTES entry), or list the operation in NOT_IN_CLIENT with the reason"
    )


# --- the client against the server --------------------------------------------------------------


def test_search_verify_adjudicate_over_http(live: Live):
    probe = closer_crop(astronaut_path())
    with live.client(Role.OFFICER) as api:
        me = api.me()
        assert me.operator == "u-officer" and me.via == "token"
        found = api.search(
            probe,
            purpose="field-identification",
            case_ref="CLIENT-1",
            notice_given=True,
            documents=[{"document_type": "passport", "number": "P-9", "issuing_country": "ARX"}],
        )
        assert isinstance(found, schemas.SearchResult)
        assert found.notice == "possible match: a lead, not an identification"
        lead = found.candidates[0]
        assert lead.display_name == "Subject 0001 (synthetic)" and lead.score > found.threshold
        assert found.presented_documents[0].number_hash is not None
        view = api.get_search(found.search_id)
        assert view.candidates[0].person_id == lead.person_id and view.status == "open"
        assert api.probe_photo(found.search_id)[:2] == b"\xff\xd8"  # a JPEG
        assert api.candidate_photo(found.search_id, lead.rank)[:2] == b"\xff\xd8"
        assert found.search_id in {s.search_id for s in api.searches().searches}
        v = api.verify(probe, probe, purpose="field-identification", case_ref="CLIENT-1")
        assert isinstance(v, schemas.VerificationResult) and v.above_threshold
        with pytest.raises(ApiError) as refused:
            api.adjudicate(found.search_id, "confirm", person_id=lead.person_id, reason="")
        assert refused.value.code.startswith("adjudication.") and refused.value.status == 422
        done = api.adjudicate(
            found.search_id,
            "confirm",
            person_id=lead.person_id,
            reason="the same scar above the left eyebrow",
            documents=[{"type": "passport", "number": "P-9"}],
        )
        assert isinstance(done, schemas.AdjudicationResult)
        assert done.adjudication.summary == "confirmed by u-officer (human adjudication)"
        assert done.search.status == "identified"


def test_refusals_raise_api_error_with_the_problem(live: Live):
    with live.client(Role.OFFICER) as api:
        with pytest.raises(ApiError) as e:
            api.search(
                b"not an image", purpose="field-identification", case_ref="C", notice_given=True
            )
        assert e.value.code == "probe.not_an_image" and e.value.status == 415
        assert e.value.problem.receipt_code  # the person still gets a receipt
        with pytest.raises(ApiError) as e:
            api.reviews()
        assert e.value.code == "access.forbidden"
    with Client(live.url, "fid_not-a-token") as anon, pytest.raises(ApiError) as e:
        anon.me()
    assert e.value.code == "access.token_invalid" and e.value.status == 401


def test_the_access_lifecycle_over_http(live: Live):
    with live.client(Role.ADMIN) as admin:
        made = admin.add_user("client-officer-2", role="officer", password="a-long-password-1")
        assert isinstance(made, schemas.OperatorAccount) and made.role == "officer"
        assert "client-officer-2" in {u.name for u in admin.users().users}
        tok = admin.issue_token("client-officer-2", scopes=["verify"], days=1, label="test")
        assert isinstance(tok, schemas.IssuedToken) and tok.secret and tok.scopes == ["verify"]
        listed = admin.tokens(operator="client-officer-2").tokens
        assert [(t.id, t.state) for t in listed] == [(tok.id, "active")]
        with Client(live.url, tok.secret) as officer:
            assert officer.me().operator == "client-officer-2"
            with pytest.raises(ApiError) as e:  # the token's scopes hold
                officer.searches()
            assert e.value.code == "access.scope"
        admin.revoke_token(tok.id)
        with Client(live.url, tok.secret) as officer, pytest.raises(ApiError) as e:
            officer.me()
        assert e.value.status == 401
        gone = admin.disable_user("client-officer-2")
        assert gone.disabled and admin.enable_user("client-officer-2").disabled is False
        admin.reset_password("client-officer-2", password="another-long-password-2")


def test_enroll_and_review_over_http(live: Live):
    probe = closer_crop(astronaut_path())
    with live.client(Role.ADMIN) as admin:
        got = admin.enroll(probe, external_id="client-enrol-1", source="test", synthetic=True)
        assert isinstance(got, schemas.EnrollmentResult) and got.new_person
        assert got.possible_duplicates  # the same face as subject-0001
        again = admin.enroll(probe, external_id="client-enrol-1", source="test", synthetic=True)
        assert again.person_id == got.person_id and again.already_enrolled == 1
    with live.client(Role.SUPERVISOR) as sup:
        queue = sup.reviews()
        item = next(i for i in queue.review_items if i.id in got.possible_duplicates)
        resolved = sup.resolve_review_item(
            item.id, decision="different_people", note="a test enrolment of the same photo"
        )
        assert resolved.merged is False and resolved.decision == "different_people"


def _enlarged(path: Path, factor: float = 2.0) -> bytes:
    import io

    from PIL import Image

    img = Image.open(path).convert("RGB")
    img = img.resize((int(img.width * factor), int(img.height * factor)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def test_people_list_show_correct_delete_over_http(live: Live):
    """Gallery management end to end: an admin enrols, finds, corrects and deletes a person;
    an officer's search finds them before and never after; each act is audited."""
    first, second = subject_images("subject-0003")[:2]
    with live.client(Role.ADMIN) as admin, live.client(Role.OFFICER) as officer:
        got = admin.enroll(first, external_id="client-people-1", source="test", synthetic=True)
        pid = got.person_id
        page = admin.people(q="client-people")
        assert isinstance(page, schemas.PeoplePage) and page.total == 1
        assert [(p.id, p.images, p.templates) for p in page.people] == [(pid, 1, 1)]
        assert admin.people(synthetic=False).total == 0  # every person here is synthetic
        detail = admin.person(pid)
        assert isinstance(detail, schemas.PersonDetail) and detail.external_id == "client-people-1"
        (image,) = detail.image_list
        assert image.has_photo and image.templates == 1
        fixed = admin.correct_person(pid, display_name="Client Person", reason="a typo in the name")
        assert fixed.display_name == "Client Person"
        info = admin.correct_image(
            pid, image.id, capture_date=date(2020, 1, 2), reason="the source's stated date"
        )
        assert isinstance(info, schemas.EnrolledImage) and info.capture_date == "2020-01-02"
        assert info.provenance == image.provenance  # left out: unchanged

        use = {"purpose": "field-identification", "case_ref": "PEOPLE-1", "notice_given": True}
        probe = _enlarged(second)  # the gate wants 60 px between the eyes: this photo has 39
        before = officer.search(probe, **use)
        assert before.candidates and before.candidates[0].person_id == pid
        with pytest.raises(ApiError) as e:
            officer.people()
        assert e.value.code == "access.forbidden" and e.value.status == 403
        with pytest.raises(ApiError) as e:
            officer.delete_person(pid, reason="an officer may not do this")
        assert e.value.status == 403
        with pytest.raises(ApiError) as e:
            admin.delete_person(pid, reason="short")
        assert e.value.code == "person.no_reason" and e.value.status == 422

        gone = admin.delete_person(pid, reason="enrolled by the client test; withdrawn")
        assert isinstance(gone, schemas.GalleryDeletion)
        assert (gone.person_id, gone.images_removed, gone.templates_removed) == (pid, 1, 1)
        after = officer.search(probe, **use)
        assert all(
            c.person_id != pid and c.external_id != "client-people-1" for c in after.candidates
        )
        with pytest.raises(ApiError) as e:
            admin.person(pid)
        assert e.value.code == "person.not_found" and e.value.status == 404
        with pytest.raises(ApiError) as e:
            admin.delete_image(pid, image.id, reason="the image is already gone")
        assert e.value.status == 404
    from fieldid.workspace import Workspace

    ws = Workspace.open(live.root)
    try:
        (entry,) = [
            e for e in ws.store.audit_entries("person_delete") if e.payload["person_id"] == pid
        ]
        assert entry.seq == gone.audit_seq and entry.operator == "u-admin"
        events = {e.event for e in ws.store.audit_entries() if e.operator == "u-admin"}
        assert {"gallery_read", "person_correct", "image_correct", "person_delete"} <= events
    finally:
        ws.close()


# --- a client generated from the description -----------------------------------------------------

ROUND_TRIP = '''\
"""A search round trip with models generated from fieldid's /openapi.json."""

import os
import sys

import httpx

from fieldid_models import Candidate, Problem, SearchResult, SearchView


def main() -> int:
    base, token = os.environ["FIELDID_URL"], os.environ["FIELDID_TOKEN"]
    with open(sys.argv[1], "rb") as f:
        image = f.read()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        r = http.post(
            "/api/v1/searches",
            files={"image": ("probe.jpg", image, "image/jpeg")},
            data={"purpose": "field-identification", "case_ref": "GEN-1", "notice_given": "true"},
            timeout=60,
        )
        if r.status_code != 201:
            problem: Problem = Problem.model_validate_json(r.content)
            print(problem.code, problem.detail)
            return 1
        result: SearchResult = SearchResult.model_validate_json(r.content)
        lead: Candidate = result.candidates[0]
        score: float = lead.score
        band: str = result.quality.band
        got = http.get(f"/api/v1/searches/{result.search_id}")
        view = SearchView.model_validate_json(got.content)
        same: bool = view.candidates[0].person_id == lead.person_id
        print(result.search_id, lead.external_id, f"{score:.4f}", band, same)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

#: Must fail to type-check: proves mypy reads the generated models' types.
WRONG = """\
from fieldid_models import SearchResult


def lead_score(r: SearchResult) -> str:
    score: str = r.candidates[0].score
    return score + r.receipt_codes
"""


def test_generated_models_type_check_a_search_round_trip(live: Live, tmp_path: Path):
    with live.client(Role.OFFICER) as api:
        (tmp_path / "openapi.json").write_text(__import__("json").dumps(api.openapi()))
    gen = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamodel_code_generator",
            "--input",
            "openapi.json",
            "--input-file-type",
            "openapi",
            "--output",
            "fieldid_models.py",
            "--output-model-type",
            "pydantic_v2.BaseModel",
            "--target-python-version",
            "3.11",
            "--use-annotated",
            "--field-constraints",
            "--disable-timestamp",
            "--formatters",
            "builtin",
            "--enum-field-as-literal",
            "all",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert gen.returncode == 0, gen.stderr
    (tmp_path / "roundtrip.py").write_text(ROUND_TRIP)
    (tmp_path / "wrong.py").write_text(WRONG)
    mypy = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "roundtrip.py",
            "wrong.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    errors = [line for line in mypy.stdout.splitlines() if ": error:" in line]
    # The round trip type-checks; the wrong script does not, for exactly its two mistakes.
    assert all(line.startswith("wrong.py:") for line in errors), mypy.stdout
    assert any("incompatible types in assignment" in e.lower() for e in errors), mypy.stdout
    assert any('no attribute "receipt_codes"' in e for e in errors), mypy.stdout
    photo = tmp_path / "probe.jpg"
    photo.write_bytes(closer_crop(astronaut_path()))
    env = {**os.environ, "FIELDID_URL": live.url, "FIELDID_TOKEN": live.tokens[Role.OFFICER]}
    run = subprocess.run(
        [sys.executable, "roundtrip.py", str(photo)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    search_id, external_id, score, band, same = run.stdout.split()
    # The astronaut: subject-0001, or the same photo enrolled by the test above.
    assert external_id in {"subject-0001", "client-enrol-1"}
    assert float(score) > 0.9 and same == "True"
    assert band in {"good", "fair"} and len(search_id) >= 16  # an opaque public id
