"""Merging two people after enrollment dedupe: review item -> supervisor's merge, audited, with the
index carried over, history kept and redress by the old identity still complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from conftest import subject_images
from fieldid.access import Actor, Role
from fieldid.audit import Attribution
from fieldid.audit.verify import verify_log
from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError
from fieldid.gallery.store import Gallery
from fieldid.records.merge import MIN_MERGE_REASON, merge_history, merge_people
from fieldid.records.review import list_review_items
from fieldid.store.schema import (
    EnrollmentImage,
    Person,
    PersonLink,
    PersonMerge,
    Record,
    ReviewItem,
    SearchRecord,
    TemplateRow,
)
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens
from helpers_records import register, write_csv
from helpers_storage import add_template_people, behind_the_back, delete_person, indexed

ATTR = Attribution("officer-7", "field-identification", "CASE-2026-031")
SUP = Actor("sup-1", Role.SUPERVISOR)
OFFICER = Actor("officer-7", Role.OFFICER)
AUDITOR = Actor("aud-1", Role.AUDITOR)
REASON = "both sources sent the same passport photo; same person"
KEPT, DUP = "subject-0003", "subject-9003"


def _records(ext: str, subject_id: str, prefix: str, number: str) -> list[dict[str, str]]:
    base = {"person_external_id": ext, "subject_id": subject_id, "synthetic": "true"}
    return [
        {
            **base,
            "kind": "border_apprehension",
            "source_record_id": f"{prefix}1",
            "event_date": "2019-03-02",
            "location": "Sector 4",
            "outcome": "returned",
        },
        {
            **base,
            "kind": "identity_document",
            "source_record_id": f"{prefix}2",
            "document_type": "passport",
            "document_number": number,
            "issuing_country": "ARX",
            "name": "Subject 0003",
        },
    ]


@pytest.fixture()
def dup(enrolled: Workspace, tmp_path: Path) -> Workspace:
    """subject-0003's face enrolled a second time, by a second source, as subject-9003: the same
    photo (a byte-identical duplicate) and a different photo of the same face. Each person has
    records from its own source."""
    images = subject_images(KEPT)
    summary = enrolled.enrollment.enroll_images(
        [LabelledImage(p, DUP, "Subject 9003 (synthetic)") for p in images[:2]],
        operator="admin-1",
        source_name="second source",
        synthetic=True,
    )
    assert summary.enrolled == 2 and summary.possible_duplicates
    register(enrolled, "border-x", "border")
    register(enrolled, "border-z", "border")
    write_csv(tmp_path / "x.csv", _records(KEPT, "X-3", "X", "P0003"))
    write_csv(tmp_path / "z.csv", _records(DUP, "Z-9", "Z", "P0003"))
    assert not enrolled.importer.import_file("border-x", tmp_path / "x.csv", operator="t").bad_rows
    assert not enrolled.importer.import_file("border-z", tmp_path / "z.csv", operator="t").bad_rows
    return enrolled


def _ids(ws: Workspace) -> tuple[int, int]:
    kept, merged = ws.gallery.find_person(KEPT), ws.gallery.find_person(DUP)
    assert kept is not None and merged is not None and kept != merged
    return kept, merged


def _item(ws: Workspace, kept: int, merged: int) -> int:
    items = [
        i for i in list_review_items(ws.store) if {i.person_id, i.other_person_id} == {kept, merged}
    ]
    assert items, "enrollment opened no possible-duplicate item"
    return items[0].id


def _count(ws: Workspace, model: Any, person_id: int) -> int:
    with ws.store.read() as s:
        q = select(func.count()).select_from(model).where(model.person_id == person_id)
        return int(s.scalar(q) or 0)


@pytest.mark.index_backends
def test_merge_moves_everything_and_a_search_then_shows_one_candidate(dup: Workspace, monkeypatch):
    kept, merged = _ids(dup)
    before = dup.searches.search(subject_images(KEPT)[2], ATTR)
    shown = {c.external_id for c in before.candidates}
    assert {KEPT, DUP} <= shown  # the same face under two people: two candidates
    item = _item(dup, kept, merged)
    with dup.store.read() as s:
        moved_tid = s.scalar(
            select(TemplateRow.id)
            .join(EnrollmentImage, EnrollmentImage.id == TemplateRow.image_id)
            .where(
                TemplateRow.person_id == merged,
                EnrollmentImage.sha256.notin_(
                    select(EnrollmentImage.sha256).where(EnrollmentImage.person_id == kept)
                ),
            )
        )
    assert moved_tid is not None
    size_before = dup.gallery.size()

    res = merge_people(
        dup.store, dup.gallery, keep=kept, merge=merged, actor=SUP, reason=REASON, review_item=item
    )

    assert (res.kept_person_id, res.merged_person_id) == (kept, merged)
    assert (res.images_moved, res.images_dropped) == (1, 1)  # the identical photo is held once
    assert (res.templates_moved, res.templates_dropped) == (1, 1)
    assert (res.records_moved, res.links_moved) == (2, 1)
    assert res.index_carried
    with dup.store.read() as s:
        assert s.get(Person, merged) is None
        assert s.scalar(select(TemplateRow.person_id).where(TemplateRow.id == moved_tid)) == kept
        row = s.scalars(select(PersonMerge)).one()
        assert (row.merged_external_id, row.merged_display_name, row.merged_synthetic) == (
            DUP,
            "Subject 9003 (synthetic)",
            True,
        )
        assert (row.actor_name, row.actor_role, row.review_item_id) == ("sup-1", "supervisor", item)
        assert row.detail["dropped_images"][0]["source"].endswith("subject-0003_0001.jpg")
        assert moved_tid in row.detail["moved"]["templates"]
        assert len(row.detail["moved"]["records"]) == 2
    assert _count(dup, EnrollmentImage, kept) == 2
    assert _count(dup, TemplateRow, kept) == 2
    assert _count(dup, Record, kept) == 4
    assert _count(dup, PersonLink, kept) == 2
    size = dup.gallery.size()
    assert (size.persons, size.templates) == (size_before.persons - 1, size_before.templates - 1)

    # The index was carried to the new revision, not rebuilt, and maps the moved template to the
    # kept person.
    def no_rebuild(*a, **k):
        raise AssertionError("the index was rebuilt")

    monkeypatch.setattr(Gallery, "rebuild_index", no_rebuild)
    assert indexed(dup.gallery, moved_tid)
    after = dup.searches.search(subject_images(KEPT)[2], ATTR)
    same_face = [c for c in after.candidates if c.external_id in (KEPT, DUP)]
    assert [c.person_id for c in same_face] == [kept]
    sources = {g["source"] for g in after.to_dict()["candidates"][0]["records"]}
    assert sources == {"border-x", "border-z"}  # both people's records
    hit = dup.gallery.search(dup.pipeline.process(subject_images(KEPT)[1]).template, 1)[0]
    assert (hit.person_id, hit.template_id) == (kept, moved_tid)
    # Another process opening the workspace finds the saved index current.
    again = Workspace.open(dup.root)
    try:
        assert indexed(again.gallery, moved_tid)
    finally:
        again.close()

    # Audited, with both people, the counts, the reason and the review item.
    entry = list(dup.store.audit_entries("person_merge"))[-1]
    assert entry.operator == "sup-1" and entry.seq == res.audit_seq
    p = entry.payload
    assert (p["kept_person_id"], p["merged_person_id"]) == (kept, merged)
    assert (p["kept_external_id"], p["merged_external_id"]) == (KEPT, DUP)
    assert (p["records_moved"], p["templates_moved"], p["images_dropped"]) == (2, 1, 1)
    assert p["reason"] == REASON and p["review_item"] == item and p["role"] == "supervisor"
    # The review item is resolved as same_person, pointing at the merge, and audited as such.
    with dup.store.read() as s:
        ri = s.get(ReviewItem, item)
        assert ri is not None
        assert (ri.state, ri.decision, ri.resolved_by) == ("resolved", "same_person", "sup-1")
        assert f"person merge {res.merge_id}" in (ri.note or "")
        assert ri.detail["merged_person"]["external_id"] == DUP
        assert ri.image_id is not None  # re-pointed to the kept person's identical photo
    resolved = list(dup.store.audit_entries("review_resolve"))[-1].payload
    assert (resolved["review_item"], resolved["decision"]) == (item, "same_person")
    assert verify_log(dup.store).ok

    # The old external id reaches the kept person: history, enrollment, import.
    assert dup.gallery.find_person(DUP) == kept
    hist = merge_history(dup.store, DUP, actor=AUDITOR)
    assert [h.merge_id for h in hist] == [res.merge_id]
    assert merge_history(dup.store, KEPT)[0].counts["records_moved"] == 2
    again_summary = dup.enrollment.enroll_images(
        [LabelledImage(subject_images(KEPT)[1], DUP)], operator="a", source_name="second"
    )
    assert again_summary.enrolled == 0  # already held by the kept person: not re-created
    assert dup.gallery.find_person(DUP) == kept


def test_redress_by_the_merged_persons_old_id_finds_the_earlier_searches(dup: Workspace):
    kept, merged = _ids(dup)
    before = dup.searches.search(subject_images(KEPT)[2], ATTR)
    old = {c.external_id: c for c in before.candidates}
    assert DUP in old
    merge_people(dup.store, dup.gallery, keep=kept, merge=merged, actor=SUP, reason=REASON)
    out = dup.redress.export(AUDITOR, person=DUP)
    assert out["subject"]["person_id"] == kept and out["subject"]["external_id"] == KEPT
    assert out["subject"]["merged_identities"][0]["external_id"] == DUP
    rows = [x for x in out["searches"] if x["search_id"] == before.search_id]
    recorded = {x["as_candidate"].get("recorded_as", {}).get("external_id", KEPT) for x in rows}
    assert recorded == {KEPT, DUP}  # shown twice in that search, once under each identity
    as_dup = next(x for x in rows if "recorded_as" in x["as_candidate"])
    assert as_dup["as_candidate"]["recorded_as"]["person_id"] == merged
    assert as_dup["as_candidate"]["score"] == pytest.approx(old[DUP].score, abs=1e-6)
    # The numeric old id works too; the kept id gives the same searches.
    assert len(dup.redress.export(AUDITOR, person=str(merged))["searches"]) == len(rows)
    assert len(dup.redress.export(AUDITOR, person=KEPT)["searches"]) == len(rows)
    assert {r["external_id"] for r in out["records"] if r.get("kind") == "enrollment"} == {KEPT}


def test_redress_finds_a_purged_search_of_the_merged_person_in_the_audit_log(dup: Workspace):
    kept, merged = _ids(dup)
    # The merged person holds this very photo, so with one candidate only it is shown alone.
    only = dup.searches.search(subject_images(KEPT)[1], ATTR, top_k=1)
    assert [c.person_id for c in only.candidates] == [merged]
    merge_people(dup.store, dup.gallery, keep=kept, merge=merged, actor=SUP, reason=REASON)
    with behind_the_back(dup) as s:  # as the retention purge does at the end of its period
        rec = s.scalars(select(SearchRecord).where(SearchRecord.public_id == only.search_id)).one()
        seq = rec.audit_seq
        s.execute(delete(SearchRecord).where(SearchRecord.id == rec.id))
    out = dup.redress.export(AUDITOR, person=KEPT)
    from_log = [x for x in out["searches"] if x["audit_seq"] == seq]
    assert len(from_log) == 1 and from_log[0]["source"].startswith("audit log")
    assert from_log[0]["case_ref"] == ATTR.case_ref


@pytest.mark.index_backends
def test_an_open_search_that_showed_the_merged_person_checks_the_kept_persons_records(
    dup: Workspace,
):
    kept, merged = _ids(dup)
    res = dup.searches.search(subject_images(KEPT)[2], ATTR)
    assert merged in {c.person_id for c in res.candidates}
    merge_people(dup.store, dup.gallery, keep=kept, merge=merged, actor=SUP, reason=REASON)
    # A passport that disagrees with the records the merged person brought: still a conflict.
    adj = dup.adjudicator().adjudicate(
        res.search_id,
        OFFICER,
        "confirm",
        person_id=merged,
        reason="face and scar match",
        documents=[{"type": "passport", "number": "P9999", "country": "ARX"}],
    )
    assert adj.state == "blocked_conflict" and adj.conflicts


@pytest.mark.index_backends
def test_a_search_shown_after_a_merge_shows_the_kept_persons_name_photo_and_records(
    dup: Workspace,
):
    """The candidate list is history (the id it listed), what is shown beside it is today's."""
    from fieldid.adjudication.store import get_search
    from fieldid.service.views import search_view

    kept, merged = _ids(dup)
    res = dup.searches.search(subject_images(KEPT)[2], ATTR)
    merge_people(dup.store, dup.gallery, keep=kept, merge=merged, actor=SUP, reason=REASON)
    with dup.store.read() as s:
        view = search_view(s, dup, get_search(s, res.search_id or 0))
    shown = {c["person_id"]: c for c in view["candidates"]}
    old = shown[merged]
    assert old["merged_into"] == kept and old["current_person_id"] == kept
    assert old["in_gallery"] and old["display_name"] == shown[kept]["display_name"]
    sources = {g["source"] for g in old["by_source"]}
    assert sources and sources == {g["source"] for g in shown[kept]["by_source"]}
    assert shown[kept]["merged_into"] is None


def test_merge_refusals(dup: Workspace):
    kept, merged = _ids(dup)

    def refused(code: str, **kw) -> None:
        args = {"keep": kept, "merge": merged, "actor": SUP, "reason": REASON, **kw}
        with pytest.raises(FieldidError) as e:
            merge_people(dup.store, dup.gallery, **args)
        assert e.value.code == code, e.value.message

    refused("access.forbidden", actor=OFFICER)
    refused("merge.reason", reason="same guy")
    assert len("x" * MIN_MERGE_REASON) == 15
    refused("merge.same_person", merge=kept)
    refused("merge.unknown_person", merge=999_999)
    real = add_template_people(
        dup,
        [("template-only-real", "Template only")],
        np.eye(1, dup.gallery.dim, dtype=np.float32),
        synthetic=False,
    )
    with dup.store.read() as s:
        real_pid = s.scalar(select(TemplateRow.person_id).where(TemplateRow.id == real[0]))
    refused("merge.synthetic_mix", merge=real_pid)
    refused("merge.synthetic_mix", keep=real_pid, merge=kept)
    other = dup.gallery.find_person("subject-0004")
    item = _item(dup, kept, merged)
    refused("merge.review_mismatch", merge=other, review_item=item)
    refused("merge.review_not_found", review_item=424242)
    # An adjudication about the merged person still waiting for an override blocks the merge.
    res = dup.searches.search(subject_images(KEPT)[2], ATTR)
    blocked = dup.adjudicator().adjudicate(
        res.search_id,
        OFFICER,
        "confirm",
        person_id=merged,
        reason="looks like him",
        documents=[{"type": "passport", "number": "P9999", "country": "ARX"}],
    )
    assert blocked.state == "blocked_conflict"
    refused("merge.open_adjudication")
    # Nothing changed: both people are still there, no merge row, no merge audit entry.
    assert _ids(dup) == (kept, merged)
    with dup.store.read() as s:
        assert s.scalar(select(func.count(PersonMerge.id))) == 0
    assert list(dup.store.audit_entries("person_merge")) == []


def test_person_merge_and_history_on_the_command_line(dup: Workspace):
    kept, merged = _ids(dup)
    item = _item(dup, kept, merged)
    root = str(dup.root)
    dup.close()
    tok = tokens(Path(root))
    sup = tok[Role.SUPERVISOR]
    base = ["-w", root]
    r = cli(["person", "merge", "--keep", KEPT, "--merge", DUP, "--reason", "short", *base], sup)
    assert r.exit_code == 2 and "merge.reason" in r.output
    r = cli(
        ["person", "merge", "--keep", KEPT, "--merge", DUP, "--reason", REASON, *base],
        tok[Role.OFFICER],
    )
    assert r.exit_code == 2 and "access.forbidden" in r.output
    r = cli(
        ["person", "merge", "--keep", str(kept), "--merge", DUP, "--reason", REASON,
         "--review-item", str(item), "--json", *base],
        sup,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["kept_external_id"], out["merged_external_id"]) == (KEPT, DUP)
    assert out["review_item"] == item and out["records_moved"] == 2
    r = cli(["person", "history", DUP, "--json", *base], sup)
    assert r.exit_code == 0, r.output
    hist = json.loads(r.output)
    assert [h["merged_external_id"] for h in hist] == [DUP]
    assert hist[0]["by"] == "cli-supervisor" and hist[0]["reason"] == REASON
    r = cli(["person", "history", KEPT, *base], sup)
    assert r.exit_code == 0 and DUP in r.output
    # A merged person cannot be merged again; the refusal says where it went.
    r = cli(
        ["person", "merge", "--keep", "subject-0004", "--merge", DUP, "--reason", REASON, *base],
        sup,
    )
    assert r.exit_code == 2 and "merge.unknown_person" in r.output and KEPT in r.output


@pytest.mark.index_backends
def test_deleting_the_kept_person_deletes_its_merge_history(dup: Workspace):
    kept, merged = _ids(dup)
    merge_people(dup.store, dup.gallery, keep=kept, merge=merged, actor=SUP, reason=REASON)
    delete_person(dup, kept)
    with dup.store.read() as s:
        assert s.scalar(select(func.count(PersonMerge.id))) == 0
    assert dup.gallery.find_person(DUP) is None


def test_migration_0006_downgrades_and_upgrades(backend, tmp_path):
    from helpers_migrations import round_trip

    round_trip(backend, tmp_path, "0005", "person_merges")
