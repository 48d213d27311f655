"""Documents first over HTTP: the API (``/api/v1/document-checks``, ``document_check`` on
``/api/v1/searches``) and the field app's pages (start → document → result → receipt, or on to
the 1:N capture page).

SPECIMEN documents carrying fixture faces under neutral synthetic identities; tests only.
"""

from __future__ import annotations

import base64
import re

from fastapi.testclient import TestClient

from fieldid.access import Role
from fieldid.demo import astronaut_path, closer_crop
from fieldid.documents.chip_specimen import make_chip, make_pki
from fieldid.service import schemas
from helpers_service import client, login, search, service_root, workspace_of  # noqa: F401
from test_api_openapi import check as typed
from test_documents_encounter import HOLDER, OTHER, SAME, specimen

USE = {"purpose": "field-identification", "case_ref": "CASE-DOC", "notice_given": "true"}


def check(c: TestClient, csrf: str, page: bytes | None, face: bytes | None, **form: str) -> object:
    files = {}
    if page is not None:
        files["document"] = ("page.jpg", page, "image/jpeg")
    if face is not None:
        files["face"] = ("face.jpg", face, "image/jpeg")
    return c.post(
        "/api/v1/document-checks",
        headers={"X-CSRF-Token": csrf},
        files=files or None,
        data={**USE, **form},
    )


def test_api_document_first_then_search_only_with_a_reason(client) -> None:  # noqa: F811 (the module fixture)
    csrf = login(client, Role.OFFICER)
    page, _ = specimen()
    r = check(client, csrf, page, SAME.read_bytes())
    assert r.status_code == 201, r.text
    body = r.json()
    typed(schemas.DocumentCheckResult, body)  # what the API declares, and nothing more
    assert body["settled"] is True and body["evidence"] == "mrz_read"
    assert body["search_offered"] is False and body["presented_document"]["evidence"] == "mrz_read"
    assert body["check"]["mrz"]["valid"] is True
    assert body["check"]["face"]["above_threshold"] is True
    got = client.get(body["links"]["self"])
    assert got.status_code == 200 and got.json()["held"]["document_image"] is False
    # the receipt says no gallery search was made
    receipt = client.get(body["links"]["receipt"])
    assert receipt.status_code == 200
    assert "your photo was not searched against any gallery" in receipt.text

    r = search(client, csrf, SAME.read_bytes(), document_check=str(body["check_id"]))
    assert r.status_code == 409 and r.json()["code"] == "search.document_settled"
    reason = "officer doubts the document is the person's own"
    # (the probe: the demo's portrait, which passes the service's default quality gate; the
    # fixture faces are news photos below it)
    probe = closer_crop(astronaut_path())
    r = search(client, csrf, probe, document_check=str(body["check_id"]), document_reason=reason)
    assert r.status_code == 201, r.text
    assert r.json()["presented_documents"][0]["evidence"] == "mrz_read"
    typed(schemas.SearchResult, r.json())
    got = client.get(body["links"]["self"]).json()
    typed(schemas.DocumentCheckView, got)
    assert got["search_id"] == r.json()["search_id"] and got["search_reason"] == reason
    typed(schemas.SearchView, client.get(f"/api/v1/searches/{got['search_id']}").json())
    # the results page shows the document, with its evidence level, above the candidates
    html = client.get(r.json()["links"]["page"]).text
    assert "Evidence: MRZ read, check digits valid" in html
    assert html.index("presented-at-search") < html.index('data-testid="candidate"')
    # an auditor may not check documents
    client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
    auditor = login(client, Role.AUDITOR)
    assert check(client, auditor, page, SAME.read_bytes()).status_code == 403


def test_api_a_verified_chip_in_base64(client) -> None:  # noqa: F811 (the module fixture)
    csrf = login(client, Role.OFFICER)
    ws = workspace_of(client)
    _page, printed = specimen(seed=8)
    pki = make_pki(ws.clock.now())
    chip = make_chip(printed, HOLDER.read_bytes(), pki)
    b64 = {
        "chip_sod": base64.b64encode(chip.sod).decode(),
        "chip_dg1": base64.b64encode(chip.data_groups[1]).decode(),
        "chip_dg2": base64.b64encode(chip.data_groups[2]).decode(),
    }
    # no CSCA configured in this workspace: the chip is not verified, and says why
    r = check(client, csrf, None, SAME.read_bytes(), **b64)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["check"]["chip"]["verified"] is False and body["settled"] is False
    assert "document.chip_not_verified" in body["failed_because"]
    assert check(client, csrf, None, None, chip_sod="not base64!").json()["code"] == "chip.base64"
    r = check(client, csrf, None, None)
    assert r.status_code == 422 and r.json()["code"] == "document.nothing_given"


def test_field_app_pages_document_then_face(client) -> None:  # noqa: F811 (the module fixture)
    csrf = login(client, Role.OFFICER)
    r = client.get("/start")
    assert 'data-testid="has-document"' in r.text
    r = client.get("/document", params=USE)
    assert r.status_code == 200 and 'data-testid="document-frame"' in r.text
    page, printed = specimen(seed=9)
    r = client.post(
        "/document",
        data={**USE, "csrf_token": csrf},
        files={
            "document": ("page.jpg", page, "image/jpeg"),
            "face": ("face.jpg", OTHER.read_bytes(), "image/jpeg"),
        },
    )
    assert r.status_code == 200, r.text
    assert "Document did not settle the encounter" in r.text
    assert printed[1][:9] in r.text  # the number, shown once on the answer
    link = re.search(r'href="/capture\?([^"]+)"', r.text)
    assert link is not None and "document_check=" in link.group(1)
    check_id = re.search(r"document_check=(\d+)", link.group(1))
    assert check_id is not None
    # read back: the number is not stored
    again = client.get(f"/document/{check_id.group(1)}")
    assert again.status_code == 200 and printed[1][:9] not in again.text
    assert "kept only as a keyed hash" in again.text
    cap = client.get("/capture?" + link.group(1).replace("&amp;", "&"))
    assert cap.status_code == 200 and 'data-testid="after-document"' in cap.text
    assert 'name="document_check"' in cap.text
