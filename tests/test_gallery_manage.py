"""Gallery management (``gallery/manage.py``): list, show, correct and delete people and their
images; admin only, every act audited with its change, deletion purging templates, images,
records and index entries so that no search afterwards returns them. Both storage backends."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import FACES, subject_images
from fieldid.access import Actor, Role
from fieldid.audit import Attribution
from fieldid.audit.ops import verify_store
from fieldid.dataset import LabelledImage
from fieldid.errors import AuthorisationError
from fieldid.gallery.manage import GalleryError
from fieldid.store.schema import EnrollmentImage, Person, PersonLink, Record, TemplateRow
from fieldid.workspace import Workspace
from helpers_records import register, write_csv

ADMIN = Actor("admin-1", Role.ADMIN)
ATTR = Attribution("officer-7", "field-identification", "CASE-MANAGE-1")
WHY = "the source withdrew this enrollment (ticket 4411)"


def _pid(ws: Workspace, external_id: str) -> int:
    pid = ws.gallery.find_person(external_id)
    assert pid is not None
    return pid


def _add_image(ws: Workspace, path: Path, external_id: str, *, synthetic: bool = True) -> None:
    summary = ws.enrollment.enroll_images(
        [LabelledImage(path, external_id, None)],
        operator="test",
        source_name="fixtures",
        synthetic=synthetic,
    )
    assert summary.enrolled == 1, summary


def _rows(ws: Workspace, table: type, person_id: int) -> int:
    with ws.store.read() as s:
        return s.scalar(select(func.count()).where(table.person_id == person_id)) or 0  # type: ignore[attr-defined]


def test_only_an_admin_manages_the_gallery(enrolled: Workspace):
    admin = enrolled.gallery_admin
    pid = _pid(enrolled, "subject-0001")
    for role in (Role.OFFICER, Role.SUPERVISOR, Role.AUDITOR):
        who = Actor("someone", role)
        with pytest.raises(AuthorisationError) as e:
            admin.list_people(who)
        assert e.value.code == "access.forbidden"
        with pytest.raises(AuthorisationError):
            admin.delete_person(who, pid, reason=WHY)
    assert _rows(enrolled, TemplateRow, pid) == 1


def test_list_and_show_are_audited_reads(enrolled: Workspace):
    admin = enrolled.gallery_admin
    page = admin.list_people(ADMIN, limit=5)
    assert page.total == 20 and len(page.people) == 5 and page.offset == 0
    assert [p.external_id for p in page.people] == [f"subject-{i:04d}" for i in range(1, 6)]
    assert all(p.images == 1 and p.templates == 1 and p.synthetic for p in page.people)
    nxt = admin.list_people(ADMIN, offset=5, limit=5)
    assert nxt.people[0].external_id == "subject-0006"
    found = admin.list_people(ADMIN, query="SUBJECT-0012")
    assert [p.external_id for p in found.people] == ["subject-0012"] and found.total == 1
    assert admin.list_people(ADMIN, synthetic=False).total == 0
    with pytest.raises(GalleryError) as e:
        admin.list_people(ADMIN, limit=0)
    assert e.value.code == "request.invalid"

    pid = _pid(enrolled, "subject-0006")
    _add_image(enrolled, subject_images("subject-0006")[1], "subject-0006")
    detail = admin.show_person(ADMIN, pid)
    assert (detail.id, detail.external_id, detail.images, detail.templates) == (
        pid,
        "subject-0006",
        2,
        2,
    )
    assert [i.templates for i in detail.image_list] == [1, 1]
    assert all(i.person_id == pid and len(i.sha256) == 64 for i in detail.image_list)
    assert "image_list" in detail.to_dict() and detail.to_dict()["image_list"][0]["id"]
    with pytest.raises(GalleryError) as e:
        admin.show_person(ADMIN, 999_999)
    assert e.value.code == "person.not_found"

    reads = enrolled.store.audit_entries("gallery_read")
    assert [r.payload["action"] for r in reads] == ["list", "list", "list", "list", "show"]
    assert reads[2].payload["query"] == "SUBJECT-0012" and reads[2].payload["total"] == 1
    assert reads[-1].payload["person_id"] == pid
    assert {r.operator for r in reads} == {"admin-1"}


@pytest.mark.index_backends
def test_deleting_a_person_purges_them_and_no_search_returns_them(enrolled: Workspace, tmp_path):
    ext = "subject-0006"
    probe = subject_images(ext)[2]
    assert enrolled.searches.search(probe, ATTR).candidates[0].external_id == ext
    pid = _pid(enrolled, ext)
    _add_image(enrolled, subject_images(ext)[1], ext)
    register(enrolled)
    csv = write_csv(
        tmp_path / "b.csv",
        [
            {
                "kind": "border_apprehension",
                "source_record_id": "R1",
                "subject_id": "B-6",
                "person_external_id": ext,
                "event_date": "2019-03-02",
                "name": "Synthetic Person",
                "location": "Sector 12",
                "outcome": "returned",
                "synthetic": "true",
            }
        ],
    )
    report = enrolled.importer.import_file("border-test", csv, operator="t")
    assert report.inserted == 1 and not report.bad_rows
    size = enrolled.gallery.size()
    assert _rows(enrolled, Record, pid) == 1 and _rows(enrolled, PersonLink, pid) == 1

    with pytest.raises(GalleryError) as e:
        enrolled.gallery_admin.delete_person(ADMIN, pid, reason="because")
    assert e.value.code == "person.no_reason"
    gone = enrolled.gallery_admin.delete_person(ADMIN, pid, reason=WHY)
    assert (gone.images_removed, gone.templates_removed) == (2, 2)
    assert (gone.records_removed, gone.links_removed) == (1, 1)
    for table in (TemplateRow, EnrollmentImage, Record, PersonLink):
        assert _rows(enrolled, table, pid) == 0, table
    with enrolled.store.read() as s:
        assert s.get(Person, pid) is None
    assert enrolled.gallery.size().persons == size.persons - 1
    assert enrolled.gallery.size().templates == size.templates - 2
    # The index in this process followed, and one opened afresh (another process) too.
    assert enrolled.gallery.index().count() == size.templates - 2
    for img in subject_images(ext):
        result = enrolled.searches.search(img, ATTR, top_k=20)
        assert all(c.external_id != ext and c.person_id != pid for c in result.candidates)
    enrolled.close()
    other = Workspace.open(enrolled.root)
    try:
        assert other.gallery.index().count() == size.templates - 2
        result = other.searches.search(probe, ATTR, top_k=20)
        assert all(c.external_id != ext for c in result.candidates)
        (entry,) = other.store.audit_entries("person_delete")
        assert entry.seq == gone.audit_seq and entry.operator == "admin-1"
        assert entry.payload == {
            "person_id": pid,
            "external_id": ext,
            "images_removed": 2,
            "templates_removed": 2,
            "records_removed": 1,
            "links_removed": 1,
            "reason": WHY,
        }
        assert verify_store(other.store).ok
        # The search made before the deletion still says who it showed (history kept).
        first = other.store.audit_entries("search")[0]
        assert first.payload["search_id"]
    finally:
        other.close()


@pytest.mark.index_backends
def test_a_deletion_and_its_audit_entry_commit_together(
    enrolled: Workspace, monkeypatch: pytest.MonkeyPatch
):
    from fieldid.store.uow import UnitOfWork

    pid = _pid(enrolled, "subject-0004")

    def broken(self: UnitOfWork, *a: object, **kw: object) -> None:
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(UnitOfWork, "audit", broken)
    with pytest.raises(RuntimeError):
        enrolled.gallery_admin.delete_person(ADMIN, pid, reason=WHY)
    monkeypatch.undo()
    assert _rows(enrolled, TemplateRow, pid) == 1
    result = enrolled.searches.search(subject_images("subject-0004")[1], ATTR)
    assert result.candidates[0].external_id == "subject-0004"
    assert not enrolled.store.audit_entries("person_delete")


@pytest.mark.index_backends
def test_deleting_one_image_keeps_the_person(enrolled: Workspace):
    ext = "subject-0002"
    pid = _pid(enrolled, ext)
    _add_image(enrolled, subject_images(ext)[1], ext)
    detail = enrolled.gallery_admin.show_person(ADMIN, pid)
    first, second = detail.image_list
    gone = enrolled.gallery_admin.delete_image(ADMIN, pid, first.id, reason=WHY)
    assert (gone.image_id, gone.templates_removed, gone.person_id) == (first.id, 1, pid)
    assert gone.person is not None and [i.id for i in gone.person.image_list] == [second.id]
    with enrolled.store.read() as s:
        assert s.get(EnrollmentImage, first.id) is None
        assert s.scalar(select(TemplateRow.id).where(TemplateRow.image_id == first.id)) is None
    (entry,) = enrolled.store.audit_entries("image_delete")
    assert entry.payload["image_id"] == first.id and entry.payload["sha256"] == first.sha256
    # The other photo still finds the person; the deleted one's template is out of the index.
    assert enrolled.gallery.index().count() == 20
    with pytest.raises(GalleryError) as e:
        enrolled.gallery_admin.delete_image(ADMIN, pid, first.id, reason=WHY)
    assert e.value.code == "person.image_not_found"
    other = _pid(enrolled, "subject-0003")
    with pytest.raises(GalleryError) as e:  # an image is named under its own person only
        enrolled.gallery_admin.delete_image(ADMIN, other, second.id, reason=WHY)
    assert e.value.code == "person.image_not_found"


def test_corrections_keep_old_and_new_values_in_the_audit(enrolled: Workspace):
    admin = enrolled.gallery_admin
    pid = _pid(enrolled, "subject-0005")
    detail = admin.correct_person(ADMIN, pid, display_name="Subject Five (synthetic)", reason=WHY)
    assert detail.display_name == "Subject Five (synthetic)"
    with pytest.raises(GalleryError) as e:
        admin.correct_person(ADMIN, pid, display_name="Subject Five (synthetic)", reason=WHY)
    assert e.value.code == "person.no_change"
    for bad in ({"display_name": "Five\x00"}, {"display_name": "Five", "reason": WHY + "\x00"}):
        with pytest.raises(GalleryError) as e:  # a NUL cannot be stored in PostgreSQL text
            admin.correct_person(ADMIN, pid, **{"reason": WHY, **bad})
        assert e.value.code == "person.bad_text"
    with pytest.raises(GalleryError) as e:
        admin.list_people(ADMIN, query="sub\x00ject")
    assert e.value.code == "person.bad_text"
    (entry,) = enrolled.store.audit_entries("person_correct")
    assert entry.payload["changed"] == {
        "display_name": {"old": "subject-0005", "new": "Subject Five (synthetic)"}
    }
    image = detail.image_list[0]
    info = admin.correct_image(
        ADMIN,
        pid,
        image.id,
        capture_date=date(2019, 5, 1),
        provenance="scan of file 12",
        reason=WHY,
    )
    assert info.capture_date == date(2019, 5, 1) and info.provenance == "scan of file 12"
    info = admin.correct_image(ADMIN, pid, image.id, provenance=None, reason=WHY)
    assert info.provenance is None and info.capture_date == date(2019, 5, 1)
    entries = enrolled.store.audit_entries("image_correct")
    assert entries[0].payload["changed"]["capture_date"] == {"old": None, "new": "2019-05-01"}
    assert entries[1].payload["changed"] == {"provenance": {"old": "scan of file 12", "new": None}}
    with pytest.raises(GalleryError) as e:
        admin.correct_image(ADMIN, pid, image.id, provenance=None, reason=WHY)
    assert e.value.code == "person.no_change"


@pytest.mark.index_backends
def test_a_misfiled_image_moves_to_the_person_it_shows(enrolled: Workspace):
    admin = enrolled.gallery_admin
    # subject-0007's second photo enrolled under subject-0008 by mistake.
    wrong, right = _pid(enrolled, "subject-0008"), _pid(enrolled, "subject-0007")
    _add_image(enrolled, subject_images("subject-0007")[1], "subject-0008")
    misfiled = admin.show_person(ADMIN, wrong).image_list[-1]
    info = admin.correct_image(ADMIN, wrong, misfiled.id, move_to=right, reason=WHY)
    assert info.person_id == right and info.templates == 1
    assert admin.show_person(ADMIN, right).templates == 2
    assert admin.show_person(ADMIN, wrong).templates == 1
    result = enrolled.searches.search(subject_images("subject-0007")[1], ATTR, top_k=3)
    assert result.candidates[0].external_id == "subject-0007"
    assert all(c.external_id != "subject-0008" for c in result.candidates[:1])
    # Moving onto a person holding the same bytes, or across synthetic and real, is refused.
    _add_image(enrolled, subject_images("subject-0007")[1], "subject-0008")
    again = admin.show_person(ADMIN, wrong).image_list[-1]
    with pytest.raises(GalleryError) as e:
        admin.correct_image(ADMIN, wrong, again.id, move_to=right, reason=WHY)
    assert e.value.code == "person.image_held"
    _add_image(
        enrolled, FACES / "subject-0011" / "subject-0011_0001.jpg", "real-1", synthetic=False
    )
    real = _pid(enrolled, "real-1")
    with pytest.raises(GalleryError) as e:
        admin.correct_image(ADMIN, wrong, again.id, move_to=real, reason=WHY)
    assert e.value.code == "person.synthetic_mix"
    assert [e.payload["changed"] for e in enrolled.store.audit_entries("image_correct")] == [
        {"person_id": {"old": wrong, "new": right}}
    ]


def test_the_command_line_lists_shows_corrects_and_deletes(enrolled: Workspace):
    import json

    from helpers_cli import cli, tokens

    root = enrolled.root
    pid = _pid(enrolled, "subject-0009")
    enrolled.close()
    tok = tokens(root)
    admin = tok[Role.ADMIN]
    w = ["-w", str(root)]

    out = cli(["person", "list", "-q", "0009", *w, "--json"], token=admin)
    assert out.exit_code == 0, out.output
    assert [p["id"] for p in json.loads(out.output)["people"]] == [pid]
    out = cli(["person", "list", "--limit", "3", *w], token=admin)
    assert out.exit_code == 0 and "1–3 of 20 people" in out.output
    out = cli(["person", "show", "subject-0009", *w], token=admin)
    assert out.exit_code == 0 and f"person {pid}: subject-0009" in out.output
    out = cli(["person", "list", *w], token=tok[Role.OFFICER])
    assert out.exit_code == 2 and "access.forbidden" in out.output
    out = cli(["person", "list", *w])
    assert out.exit_code == 2 and "access.unauthenticated" in out.output
    fix = ["person", "correct", str(pid), "--display-name", "Nine", "--reason", WHY]
    out = cli([*fix, *w], token=admin)
    assert out.exit_code == 0 and "Nine" in out.output
    shown = cli(["person", "show", str(pid), *w, "--json"], token=admin)
    image = json.loads(shown.output)["image_list"][0]["id"]
    fix = ["person", "correct-image", str(pid), str(image), "--capture-date", "2018-04-03"]
    out = cli([*fix, "--reason", WHY, *w], token=admin)
    assert out.exit_code == 0 and "captured 2018-04-03" in out.output
    # Deleting asks first; "no" deletes nothing.
    out = cli(["person", "delete", str(pid), "--reason", WHY, *w], token=admin, stdin="n\n")
    assert out.exit_code == 1
    out = cli(["person", "delete", str(pid), "--reason", WHY, "--yes", *w], token=admin)
    assert out.exit_code == 0 and "1 templates" in out.output, out.output
    out = cli(["person", "show", str(pid), *w], token=admin)
    assert out.exit_code == 2 and "person.not_found" in out.output
    ws = Workspace.open(root)
    try:
        events = [e.event for e in ws.store.audit_entries() if e.operator == "cli-admin"]
        assert [e for e in events if e not in ("token_issue", "user_add")] == [
            "gallery_read",
            "gallery_read",
            "gallery_read",
            "person_correct",
            "gallery_read",
            "image_correct",
            "person_delete",
        ]
        result = ws.searches.search(subject_images("subject-0009")[1], ATTR, top_k=20)
        assert all(c.external_id != "subject-0009" for c in result.candidates)
    finally:
        ws.close()


def test_a_person_whose_confirmation_waits_cannot_be_deleted(enrolled: Workspace):
    from helpers_account import set_config

    set_config(enrolled.root, "adjudication", 'two_person_purposes = ["field-identification"]')
    result = enrolled.searches.search(subject_images("subject-0010")[1], ATTR)
    pid = result.candidates[0].person_id
    waiting = enrolled.adjudicator().adjudicate(
        result.search_id,
        Actor("officer-7", Role.OFFICER),
        "confirm",
        person_id=pid,
        reason="same face, same scar",
    )
    assert waiting.state == "pending_second"
    with pytest.raises(GalleryError) as e:
        enrolled.gallery_admin.delete_person(ADMIN, pid, reason=WHY)
    assert e.value.code == "person.open_adjudication"
    assert e.value.details["adjudication_id"] == waiting.id
    assert _rows(enrolled, TemplateRow, pid) == 1
    assert not enrolled.store.audit_entries("person_delete")
