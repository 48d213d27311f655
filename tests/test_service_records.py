"""What the field app shows about each candidate: records by source with dates, disagreements,
documents presented at the search (listed first when they conflict), the calibrated meaning of the
score, and investigation lists for the roles that may ask for them.

An LFW test face is enrolled under a neutral synthetic identity with synthetic records (allowed in
tests; never shown in the demo or screenshots)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import subject_images
from fieldid.access import Role
from fieldid.dataset import LabelledImage
from fieldid.workspace import Workspace
from helpers_account import set_config
from helpers_records import register, write_csv
from helpers_service import login, search, service_root, serving

__all__ = ["service_root"]  # fixture

SUBJECT = "subject-0001"  # the fixture folder of the LFW test face
ENROLLED_AS = "subject-0421"  # its neutral synthetic identity here (the demo's is subject-0001)
GATE = """min_inter_eye_px = 30.0
max_abs_yaw_deg = 60.0
max_abs_pitch_deg = 45.0
max_abs_roll_deg = 30.0
min_sharpness_score = 20
min_luminance = 50.0
max_luminance = 215.0
max_clipped_fraction = 0.15
max_faces = 3
min_unified = 30"""


def with_records(root: Path) -> None:
    set_config(root, "quality_gate", GATE)
    ws = Workspace.open(root)
    try:
        first = subject_images(SUBJECT)[0]
        item = LabelledImage(first, ENROLLED_AS, "Subject 0421 (synthetic)")
        assert ws.enrollment.enroll_images(
            [item], operator="t", source_name="t", synthetic=True
        ).enrolled
        register(ws, "border-x", "border")
        register(ws, "court-y", "criminal_history")
        base = {"person_external_id": ENROLLED_AS, "synthetic": "true"}
        rows_b = [
            {
                **base,
                "subject_id": "B-1",
                "kind": "border_apprehension",
                "source_record_id": "B1",
                "event_date": "2019-03-02",
                "date_of_birth": "1980-01-31",
                "location": "Sector 12",
                "outcome": "returned",
            },
            {
                **base,
                "subject_id": "B-1",
                "kind": "identity_document",
                "source_record_id": "B2",
                "document_type": "passport",
                "document_number": "P0001",
                "issuing_country": "ARX",
            },
        ]
        rows_c = [
            {
                **base,
                "subject_id": "C-1",
                "kind": "criminal_history",
                "source_record_id": "C1",
                "event_date": "2015-08-20",
                "date_of_birth": "1981-01-31",
                "charges": "trespass (synthetic)",
                "disposition": "dismissed",
            }
        ]
        write_csv(root / "b.csv", rows_b)
        write_csv(root / "c.csv", rows_c)
        assert not ws.importer.import_file("border-x", root / "b.csv", operator="t").bad_rows
        assert not ws.importer.import_file("court-y", root / "c.csv", operator="t").bad_rows
    finally:
        ws.close()


def test_search_json_and_page_carry_records_conflicts_documents_and_meaning(service_root, tmp_path):
    probe = subject_images(SUBJECT)[1].read_bytes()
    doc = [{"type": "passport", "number": "P0002", "country": "ARX"}]
    with serving(service_root, tmp_path, configure=with_records) as c:
        csrf = login(c, Role.OFFICER)
        r = search(c, csrf, probe, documents=json.dumps(doc))
        assert r.status_code == 201, r.text
        body = r.json()
        assert "P0002" not in r.text  # the number is kept only as a keyed hash
        top = body["candidates"][0]
        assert top["external_id"] == ENROLLED_AS
        assert [g["source"] for g in top["records"]] == ["border-x", "court-y"]
        assert body["presented_documents"][0]["conflicts_with_ranks"] == [1]
        assert top["meaning"] and top["fmr"] is not None
        # The persisted view (what the results page reads) says the same.
        sid = body["search_id"]
        view = c.get(f"/api/v1/searches/{sid}").json()
        cand = view["candidates"][0]
        assert cand["rate_text"] == top["meaning"]
        assert {g["source"] for g in cand["by_source"]} == {"border-x", "court-y"}
        assert any("sources disagree on date of birth" in t for t in cand["conflict_texts"])
        assert any("source border-x" in t for t in cand["document_conflict_texts"])
        assert view["documents_at_search"][0]["conflicts_with_ranks"] == [1]
        page = c.get(f"/results/{sid}").text
        assert page.index('data-testid="presented-at-search"') < page.index(
            'data-testid="candidate"'
        )
        assert "border apprehension, 2019-03-02, source border-x" in page
        assert "The records disagree" in page and top["meaning"] in page  # the score's meaning
        # A malformed documents field is a clear 422, and nothing is searched.
        bad = search(c, csrf, probe, documents="[{")
        assert bad.status_code == 422 and bad.json()["code"] == "document.syntax"


def test_investigation_lists_are_for_supervisors_and_labelled(service_root, tmp_path):
    probe = subject_images(SUBJECT)[1].read_bytes()
    with serving(service_root, tmp_path, configure=with_records) as c:
        csrf = login(c, Role.OFFICER)
        r = search(c, csrf, probe, investigation="true")
        assert r.status_code == 403 and r.json()["code"] == "access.forbidden"
        c.cookies.clear()
        csrf = login(c, Role.SUPERVISOR)
        r = search(c, csrf, probe, investigation="true")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["list_kind"] == "investigation" and "INVESTIGATION LIST" in body["list_label"]
        assert len(body["candidates"]) > 1
        assert any(not x["above_threshold"] for x in body["candidates"])
        page = c.get(f"/results/{body['search_id']}").text
        assert "INVESTIGATION LIST" in page and "below the threshold in force" in page


def test_admin_imports_records_over_the_api_with_bad_rows_reported(service_root, tmp_path):
    rows = [
        {
            "kind": "border_apprehension",
            "source_record_id": "A1",
            "subject_id": "S-1",
            "event_date": "2019-03-02",
            "location": "Sector 3",
            "outcome": "returned",
            "synthetic": "true",
        },
        {  # bad: no date for an event that needs one
            "kind": "border_apprehension",
            "source_record_id": "A2",
            "subject_id": "S-2",
            "location": "Sector 4",
            "outcome": "returned",
            "synthetic": "true",
        },
    ]

    def source(root: Path) -> None:
        ws = Workspace.open(root)
        register(ws, "border-api", "border")
        ws.close()

    path = write_csv(tmp_path / "rows.csv", rows)
    with serving(service_root, tmp_path, configure=source) as c:
        csrf = login(c, Role.OFFICER)
        files = {"file": ("rows.csv", path.read_bytes(), "text/csv")}
        r = c.post(
            "/api/v1/imports", headers={"X-CSRF-Token": csrf}, files=files, data={"source": "x"}
        )
        assert r.status_code == 403  # officers do not import
        c.cookies.clear()
        csrf = login(c, Role.ADMIN)
        r = c.post(
            "/api/v1/imports",
            headers={"X-CSRF-Token": csrf},
            files=files,
            data={"source": "border-api"},
        )
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["inserted"] == 1
        assert report["bad_rows"] == 1
        assert [b["line"] for b in report["bad_row_details"]] == [3]  # header is line 1
        assert report["bad_row_details"][0]["reason"]
        again = c.post(
            "/api/v1/imports",
            headers={"X-CSRF-Token": csrf},
            files=files,
            data={"source": "border-api"},
        ).json()
        assert again["inserted"] == 0 and again["unchanged"] == 1
        wrong = c.post(
            "/api/v1/imports",
            headers={"X-CSRF-Token": csrf},
            files={"file": ("rows.txt", b"x", "text/plain")},
            data={"source": "border-api"},
        )
        assert wrong.status_code == 415 and wrong.json()["code"] == "import.format"
