"""What a search returns about candidates: records by source with dates, conflict flags, presented
documents first; no determination of status anywhere; dedupe; training mode; synth."""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import pytest
from sqlalchemy import select

from conftest import FACES, make_workspace, subject_images
from fieldid.access import Actor, Role
from fieldid.audit import Attribution
from fieldid.dataset import LabelledImage
from fieldid.records.api import candidate_records, person_photos, photo_thumbnail
from fieldid.records.api import presented_conflicts as api_presented_conflicts
from fieldid.records.documents import PresentedDocument
from fieldid.records.review import list_review_items, resolve_review_item
from fieldid.records.synth import synth
from fieldid.store.schema import EnrollmentImage, Record
from fieldid.workspace import Workspace
from helpers_records import register, write_csv
from helpers_storage import held

ATTR = Attribution("officer-7", "field-identification", "CASE-2026-009")
SUBJECT = "subject-0001"


def records_for_subject() -> list[dict[str, str]]:
    base = {"person_external_id": SUBJECT, "subject_id": "X-1", "synthetic": "true"}
    return [
        {
            **base,
            "kind": "border_apprehension",
            "source_record_id": "B1",
            "event_date": "2019-03-02",
            "date_of_birth": "1980-01-31",
            "nationality": "ARX",
            "location": "Sector 12",
            "outcome": "returned",
        },
        {
            **base,
            "kind": "recorded_status",
            "source_record_id": "B2",
            "event_date": "2021-06-01",
            "recorded_status": "temporary visa holder",
        },
        {
            **base,
            "kind": "identity_document",
            "source_record_id": "B3",
            "document_type": "passport",
            "document_number": "P0001",
            "issuing_country": "ARX",
            "name": "Subject 0001",
        },
    ]


def other_source_records() -> list[dict[str, str]]:
    base = {"person_external_id": SUBJECT, "subject_id": "C-77", "synthetic": "true"}
    return [
        {
            **base,
            "kind": "criminal_history",
            "source_record_id": "C1",
            "event_date": "2015-08-20",
            "date_of_birth": "1981-01-31",  # disagrees with the border source
            "charges": "trespass (synthetic)",
            "disposition": "dismissed",
        },
        {
            **base,
            "kind": "recorded_status",
            "source_record_id": "C2",
            "event_date": "2020-01-01",
            "recorded_status": "permanent resident",  # disagrees with the border source
        },
    ]


@pytest.fixture()
def with_records(enrolled: Workspace, tmp_path) -> Workspace:
    register(enrolled, "border-x", "border")
    register(enrolled, "court-y", "criminal_history")
    write_csv(tmp_path / "b.csv", records_for_subject())
    write_csv(tmp_path / "c.csv", other_source_records())
    assert not enrolled.importer.import_file("border-x", tmp_path / "b.csv", operator="t").bad_rows
    assert not enrolled.importer.import_file("court-y", tmp_path / "c.csv", operator="t").bad_rows
    return enrolled


def first_candidate(result: dict[str, Any]) -> dict[str, Any]:
    assert result["candidates"], "no candidate"
    c = result["candidates"][0]
    assert c["external_id"] == SUBJECT
    return c


def test_search_json_carries_records_with_source_and_date_and_conflicts(with_records):
    result = with_records.searches.search(subject_images(SUBJECT)[1], ATTR).to_dict()
    c = first_candidate(result)
    groups = c["records"]
    assert [g["source"] for g in groups] == ["border-x", "court-y"]  # most recent source first
    for g in groups:
        dates = [r["date"] for r in g["records"] if r["date"]]
        assert dates == sorted(dates, reverse=True)
        for r in g["records"]:
            assert r["source"] == g["source"] and "date" in r and "record_id" in r
    assert c["summary"][0]["text"].startswith("recorded status, 2021-06-01, source border-x")
    assert any(
        s["text"].startswith("border apprehension, 2019-03-02, source border-x")
        for s in c["summary"]
    )
    assert all(s["source"] and "date" in s for s in c["summary"])
    rules = {(x["rule"], x["field"]) for x in c["conflicts"]}
    assert ("sources_disagree", "date_of_birth") in rules
    assert ("sources_disagree", "recorded_status") in rules
    dob = next(x for x in c["conflicts"] if x["field"] == "date_of_birth")
    cited = {r["source"] for v in dob["values"] for r in v["records"]}
    assert cited == {"border-x", "court-y"}
    # Other candidates (no records) carry empty lists, never a missing key.
    for other in result["candidates"][1:]:
        assert other["records"] == [] and other["conflicts"] == []


def test_presented_document_conflicts_are_recorded_and_listed_first(with_records):
    doc = PresentedDocument(
        "passport", number="P0002", issuing_country="ARX", date_of_birth=None, name="Subject 0001"
    )
    res = with_records.searches.search(subject_images(SUBJECT)[1], ATTR, presented=[doc])
    out = res.to_dict()
    keys = list(out)
    assert keys.index("presented_documents") < keys.index("candidates")
    pd = out["presented_documents"][0]
    assert pd["number_hash"].startswith("hmac-sha256:") and "P0002" not in json.dumps(out)
    assert pd["conflicts_with_ranks"] == [1]
    c = first_candidate(out)
    assert list(c).index("presented_document_conflicts") < list(c).index("records")
    fields = {x["field"] for x in c["presented_document_conflicts"]}
    assert fields == {"document_number"}
    assert {x["field"] for x in c["presented_document_agreements"]} == {"name"}
    audit = list(with_records.store.audit_entries("search"))[-1].payload
    assert audit["presented"][0]["number_hash"] == pd["number_hash"]
    assert "P0002" not in json.dumps(audit)
    # The same document number agrees; a different date of birth conflicts.
    same = PresentedDocument("passport", number="p 0001", issuing_country="ARX", date_of_birth=None)
    from datetime import date

    dob = PresentedDocument("national id", date_of_birth=date(1979, 5, 5))
    pid = c["person_id"]
    agree = api_presented_conflicts(with_records.store, with_records.root, pid, [same])
    assert agree["conflicts"] == [] and agree["agreements"][0]["field"] == "document_number"
    differ = api_presented_conflicts(with_records.store, with_records.root, pid, [dob])
    assert differ["conflicts"][0]["field"] == "date_of_birth"
    assert {r["value"] for r in differ["conflicts"][0]["records"]} == {"1980-01-31", "1981-01-31"}


FORBIDDEN_KEY = re.compile(
    r"(determination|verdict|identified|^is_|illegal|removable|deportable|unlawful|"
    r"(?<!recorded_)status(?!_)$|^status)",
    re.IGNORECASE,
)
FORBIDDEN_VALUE = re.compile(
    r"\b(determination|verdict|identified|illegal|removable|deportable|unlawful)\b", re.IGNORECASE
)


def walk(node: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if FORBIDDEN_KEY.search(k) and k != "recorded_status":
                found.append(f"key {path}/{k}")
            found += walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += walk(v, f"{path}[{i}]")
    elif isinstance(node, str) and FORBIDDEN_VALUE.search(node):
        found.append(f"value {path}: {node!r}")
    return found


def test_no_field_names_or_shows_a_determination_of_status(with_records):
    doc = PresentedDocument("passport", number="P0009", issuing_country="ARX")
    service = with_records.searches
    out = service.search(subject_images(SUBJECT)[1], ATTR, presented=[doc]).to_dict()
    assert first_candidate(out)["records"]
    assert walk(out) == []
    pid = first_candidate(out)["person_id"]
    assert walk(candidate_records(with_records.store, pid)) == []
    assert walk(list(with_records.store.audit_entries("search"))[-1].payload) == []
    # The walker itself catches what it must.
    assert walk({"is_removable": True, "x": {"status": "y"}, "v": "verdict: identified"})


def test_synthetic_data_reads_clean_too(backend, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    synth(ws, people=300, records_per_person=8, seed=5)
    with ws.store.read() as s:
        pids = list(s.scalars(select(Record.person_id).distinct().limit(300)))
    from fieldid.records.assemble import assemble

    views = held(ws, assemble, pids)
    assert walk([v.to_dict() for v in views.values()]) == []
    assert sum(bool(v.conflicts) for v in views.values()) > 10  # deliberate conflicts exist
    ws.close()


@pytest.mark.index_backends
def test_the_same_face_under_two_people_raises_a_duplicate_item(enrolled: Workspace):
    image = subject_images("subject-0003")[0]
    summary = enrolled.enrollment.enroll_images(
        [LabelledImage(image, "subject-9003", "Subject 9003 (synthetic)")],
        operator="admin-1",
        source_name="second source",
        synthetic=True,
    )
    assert summary.enrolled == 1  # enrolled as asked, nothing dropped
    assert len(summary.possible_duplicates) == 1
    items = list_review_items(enrolled.store)
    assert len(items) == 1
    item = items[0]
    assert item.kind == "possible_duplicate" and item.state == "open"
    assert {item.person_external_id, item.other_person_external_id} == {
        "subject-9003",
        "subject-0003",
    }
    assert item.score is not None and item.score > 0.99
    audit = [e for e in enrolled.store.audit_entries("enroll") if e.payload.get("review_item")]
    assert audit and audit[-1].payload["review_item"] == item.id
    # Both people still exist separately; a decision is recorded, nothing merged.
    assert enrolled.gallery.find_person("subject-9003") != enrolled.gallery.find_person(
        "subject-0003"
    )
    with pytest.raises(Exception) as e:
        resolve_review_item(
            enrolled.store,
            item.id,
            decision="same_person",
            note="x",
            actor=Actor("o", Role.OFFICER),
        )
    assert getattr(e.value, "code", "") == "access.forbidden"
    done = resolve_review_item(
        enrolled.store,
        item.id,
        decision="same_person",
        note="same capture sent by two sources",
        actor=Actor("sup", Role.SUPERVISOR),
    )
    assert done.state == "resolved" and done.resolved_by == "sup"
    assert (
        list(enrolled.store.audit_entries("review_resolve"))[-1].payload["decision"]
        == "same_person"
    )
    assert list_review_items(enrolled.store) == []


def test_another_image_of_the_same_person_raises_no_item(enrolled: Workspace):
    images = subject_images("subject-0001")[1:3]
    enrolled.enrollment.enroll_images(
        [LabelledImage(p, "subject-0001") for p in images],
        operator="a",
        source_name="more",
        synthetic=True,
    )
    assert list_review_items(enrolled.store) == []


def test_enrolled_photos_have_thumbnails_and_provenance(enrolled: Workspace):
    from io import BytesIO

    from PIL import Image

    pid = enrolled.gallery.find_person("subject-0002")
    assert pid is not None
    photos = person_photos(enrolled.store, pid)
    assert len(photos) == 1 and photos[0].has_thumbnail
    assert photos[0].provenance == "enrolled from fixtures"
    thumb = photo_thumbnail(enrolled.store, photos[0].image_id)
    assert thumb is not None
    img = Image.open(BytesIO(thumb))
    assert img.format == "JPEG" and max(img.size) <= 160


@pytest.mark.index_backends
def test_import_enrols_referenced_photos_and_reports_refusals(backend, tmp_path):
    ws = make_workspace(tmp_path / "ws")
    register(ws, "poe", "port_of_entry")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(subject_images("subject-0004")[0], photos / "a.jpg")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    rows = [
        {
            "kind": "border_apprehension",
            "source_record_id": f"R{i}",
            "subject_id": "S-1",
            "event_date": "2020-01-01",
            "location": "L",
            "outcome": "processed",
            "photo": photo,
            "synthetic": "true",
        }
        for i, photo in enumerate(["photos/a.jpg", "photos/broken.jpg", "photos/missing.jpg"])
    ]
    path = write_csv(tmp_path / "poe.csv", rows)
    report = ws.importer.import_file("poe", path, operator="t")
    assert report.inserted == 3 and report.photos_enrolled == 1
    assert [(p.line, p.code) for p in report.photo_refusals] == [
        (3, "probe.not_an_image"),
        (4, "probe.not_found"),
    ]
    with ws.store.read() as s:
        img = s.scalar(select(EnrollmentImage))
        assert img is not None and img.record_id is not None
        assert img.provenance.startswith("source poe, record R0")
        assert str(img.capture_date) == "2020-01-01"
    again = ws.importer.import_file("poe", path, operator="t")
    assert again.photos_enrolled == 0 and again.photos_already_enrolled == 1
    ws.close()


@pytest.mark.index_backends
def test_a_training_search_cannot_return_a_real_gallery_candidate(with_records, tmp_path):
    probe = subject_images(SUBJECT)[1]
    real = with_records.searches.search(probe, ATTR)
    assert real.candidates[0].external_id == SUBJECT and not real.training
    synth(
        with_records.training(create=True),
        audit=with_records.store,
        people=50,
        records_per_person=4,
        distractors=200,
        seed=9,
        training=True,
    )
    # A public test face under a neutral synthetic identity in the training gallery only.
    tws = with_records.training()
    tws.enrollment.enroll_images(
        [LabelledImage(subject_images(SUBJECT)[0], "training-0421", "Subject 0421 (synthetic)")],
        operator="trainer",
        source_name="training fixtures",
        synthetic=True,
    )
    service = with_records.searches
    result = service.search(probe, ATTR, training=True)
    assert result.training and result.to_dict()["training"] is True
    ext = [c.external_id for c in result.candidates]
    assert ext and ext[0] == "training-0421"
    assert SUBJECT not in ext
    assert all(c.records == [] or c.synthetic for c in result.candidates)
    assert result.gallery_persons == 50 + 200 + 1  # the training gallery's size, not the real one
    entry = list(with_records.store.audit_entries("search"))[-1]
    assert entry.payload["training"] is True
    # The real gallery did not change and a real search never sees training people.
    again = with_records.searches.search(probe, ATTR)
    assert "training-0421" not in [c.external_id for c in again.candidates]
    assert list(with_records.store.audit_entries("search"))[-1].payload["training"] is False
    # Training candidates' ids belong to the training gallery: a real person's redress export
    # never lists the training search, even where the ids coincide.

    tid = result.candidates[0].person_id
    out = with_records.redress.export(Actor("aud", Role.AUDITOR), person=str(tid))
    assert all(not s.get("training") for s in out["searches"])
    assert result.search_id not in [s.get("search_id") for s in out["searches"]]


def test_a_training_search_without_a_training_gallery_is_refused(enrolled):
    with pytest.raises(Exception) as e:
        enrolled.searches.search(subject_images(SUBJECT)[1], ATTR, training=True)
    assert getattr(e.value, "code", "") == "training.absent"
    assert list(enrolled.store.audit_entries("search"))[-1].payload["outcome"] == "refused"


def test_synth_is_reproducible_and_marked_synthetic(backend, tmp_path):
    outs = []
    for n in (1, 2):
        ws = make_workspace(tmp_path / f"ws{n}")
        synth(ws, people=120, records_per_person=5, distractors=30, seed=11)
        again = synth(ws, people=120, records_per_person=5, distractors=30, seed=11)
        assert again.people_added == 0 and again.distractors_added == 0
        assert all(s["inserted"] == 0 for s in again.sources.values())
        with ws.store.read() as s:
            recs = list(s.scalars(select(Record).order_by(Record.source_record_id)))
            from fieldid.store.schema import Person

            people = list(s.scalars(select(Person)))
        assert len(recs) == 600 and all(r.synthetic for r in recs)
        assert all(p.synthetic and "(synthetic)" in p.display_name for p in people)
        assert ws.gallery.size().persons == 150
        outs.append([(r.source_record_id, r.fields, r.event_date) for r in recs])
        ws.close()
    # Document-number hashes use each workspace's own key; everything else is identical.
    strip = [
        [(i, {k: v for k, v in f.items() if k != "document_number_hash"}, d) for i, f, d in o]
        for o in outs
    ]
    assert strip[0] == strip[1]


def test_migration_0002_downgrades_and_upgrades(backend, tmp_path):

    from fieldid.store import migrate
    from fieldid.store.engine import make_engine

    engine = make_engine(backend.database_url() or f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine)
    migrate.downgrade(engine, "0001")
    assert migrate.current_revision(engine) == "0001"
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()
    assert FACES.is_dir()


def test_a_presented_document_conflict_blocks_confirmation_until_a_supervisor_overrides(
    with_records,
):
    """The records' conflict check is what the adjudication rules use by default."""
    from fieldid.errors import AuthorisationError

    doc = PresentedDocument("passport", number="P0002", issuing_country="ARX")
    res = with_records.searches.search(subject_images(SUBJECT)[1], ATTR, presented=[doc])
    c = res.candidates[0]
    officer = Actor("officer-7", Role.OFFICER)
    adj = with_records.adjudicator()
    blocked = adj.adjudicate(
        res.search_id, officer, "confirm", person_id=c.person_id, reason="looks alike"
    )
    assert blocked.state == "blocked_conflict" and not blocked.is_identification
    assert "document number" in blocked.conflicts[0] and "source border-x" in blocked.conflicts[0]
    with pytest.raises(AuthorisationError):
        adj.override(blocked.id, officer, "an officer cannot lift this block")
    done = adj.override(
        blocked.id, Actor("sup-1", Role.SUPERVISOR), "passport re-issued in 2024, checked by phone"
    )
    assert done.is_identification
    # A document given only at adjudication is compared as well; a matching one passes.
    res2 = with_records.searches.search(subject_images(SUBJECT)[1], ATTR)
    same = {"document_type": "passport", "number": "P0001", "issuing_country": "ARX"}
    ok = adj.adjudicate(
        res2.search_id,
        officer,
        "confirm",
        person_id=res2.candidates[0].person_id,
        reason="passport matches",
        documents=[same],
    )
    assert ok.state == "final" and ok.conflicts == []


def test_redress_export_lists_the_persons_records_with_their_sources(with_records):

    res = with_records.searches.search(subject_images(SUBJECT)[1], ATTR)
    pid = res.candidates[0].person_id
    out = with_records.redress.export(Actor("aud", Role.AUDITOR), person=str(pid))
    assert any(s["search_id"] == res.search_id for s in out["searches"])
    sources = {g["source"] for g in out["records"] if g["kind"] == "source_records"}
    assert sources == {"border-x", "court-y"}
    assert any(g["kind"] == "record_conflicts" for g in out["records"])


def test_the_search_audit_names_the_gallery_and_record_sources_searched(with_records):
    with_records.searches.search(subject_images(SUBJECT)[1], ATTR)
    payload = list(with_records.store.audit_entries("search"))[-1].payload
    assert payload["searched"]["gallery"] == "main"
    names = {x["name"] for x in payload["searched"]["record_sources"]}
    assert names == {"border-x", "court-y"}
    assert all(x["refreshed_at"] for x in payload["searched"]["record_sources"])
