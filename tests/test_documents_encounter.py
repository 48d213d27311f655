"""Documents first (issue 12, item 4-5): a document check recorded and audited, a passing one
settling the encounter with no gallery search, 1:N only after a document that failed or with a
written reason, the oversight report's counts, and the document data's retention.

The faces are fixture faces under neutral synthetic identities (tests/fixtures/faces); the
documents they are printed on are invented SPECIMEN pages, seen by tests only.
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from conftest import FACES
from fieldid.audit import Attribution
from fieldid.documents.chip_specimen import make_chip, make_pki, pem
from fieldid.documents.mrz import MrzData
from fieldid.documents.specimen import Degradation, photograph, render_page
from fieldid.errors import FieldidError
from fieldid.report.data import build_report
from fieldid.store.keys import DOCUMENT_IMAGE
from fieldid.store.schema import DocumentCheckRecord, SearchRecord
from fieldid.workspace import Workspace

HOLDER = FACES / "subject-0003" / "subject-0003_0001.jpg"
SAME = FACES / "subject-0003" / "subject-0003_0002.jpg"
OTHER = FACES / "subject-0004" / "subject-0004_0002.jpg"
ATTR = Attribution("officer-a", "field-identification", "CASE-9")


def specimen(expiry: str = "311231", seed: int = 3) -> tuple[bytes, list[str]]:
    """A SPECIMEN passport data page with the holder's face, photographed mildly."""
    data = MrzData(
        "TD3", "P", "UTO", "SP1234567", "SPECIMEN", "TEST PERSON", "UTO", "850315", "F", expiry
    )
    face = np.asarray(Image.open(HOLDER).convert("RGB"))
    page = render_page(data, portrait=face, seed=seed)
    rng = random.Random(seed)
    deg = Degradation().clean()
    return photograph(page, rng, deg).jpeg, page.mrz_lines


def public_id(ws: Workspace, search_id: int | None) -> str | None:
    with ws.store.read() as s:
        rec = None if search_id is None else s.get(SearchRecord, search_id)
        return None if rec is None else rec.public_id


def checks(ws: Workspace) -> list[DocumentCheckRecord]:
    with ws.store.read() as s:
        return list(s.scalars(select(DocumentCheckRecord).order_by(DocumentCheckRecord.id)))


def test_a_passing_document_settles_the_encounter_without_a_search(enrolled: Workspace) -> None:
    ws = enrolled
    page, printed = specimen()
    out = ws.documents.check(ATTR, document_image=page, live_face=SAME.read_bytes())
    assert out.check.evidence == "mrz_read", out.to_dict()
    assert out.passed and out.settled and out.failed_because == []
    d = out.to_dict()
    assert d["outcome"] == "settled_by_document" and d["search_offered"] is False
    doc = d["presented_document"]
    assert doc["evidence"] == "mrz_read" and doc["document_type"] == "passport"
    assert doc["number_hash"] and "SP1234567" not in str(doc)  # the number only hashed
    assert doc["name"] == "TEST PERSON SPECIMEN" and doc["expiry"] == "2031-12-31"
    assert d["check"]["face"]["above_threshold"] is True
    (rec,) = checks(ws)
    assert rec.status == "settled_by_document" and rec.ended_at is not None
    # the encounter ended: nothing of the document's images is kept
    assert rec.document_image is None and rec.chip_data is None
    entry = ws.store.audit_entries()[-1]
    assert entry.event == "document_check" and entry.seq == rec.audit_seq
    assert entry.payload["outcome"] == "settled_by_document"
    assert entry.payload["kept"] == {"document_image": False, "chip_data": False}
    assert printed[1][:9] not in str(entry.payload)  # no plain document number in the log

    # 1:N after it: refused (and audited) without a reason
    n_searches = len(ws.store.audit_entries())
    with pytest.raises(FieldidError) as e:
        ws.searches.search(SAME, ATTR, document_check=out.check_id)
    assert e.value.code == "search.document_settled"
    refused = ws.store.audit_entries()[-1]
    assert len(ws.store.audit_entries()) == n_searches + 1
    assert refused.event == "search" and refused.payload["outcome"] == "refused"
    with ws.store.read() as s:
        assert s.scalars(select(SearchRecord)).first() is None  # nothing searched
    with pytest.raises(FieldidError):
        ws.searches.search(SAME, ATTR, document_check=out.check_id, document_reason="too short")

    # with the officer's reason: searched, the document recorded above the face candidates
    reason = "the document's photo is twenty years old and the officer doubts it"
    res = ws.searches.search(SAME, ATTR, document_check=out.check_id, document_reason=reason)
    assert res.presented_documents[0]["evidence"] == "mrz_read"
    entry = ws.store.audit_entries()[-1]
    assert entry.payload["despite_valid_document"] is True
    assert entry.payload["document_check"]["reason"] == reason
    (rec,) = checks(ws)
    assert public_id(ws, rec.search_id) == res.search_id and rec.search_reason == reason
    # one check leads to one search
    with pytest.raises(FieldidError) as e:
        ws.searches.search(SAME, ATTR, document_check=out.check_id, document_reason=reason)
    assert e.value.code == "document.check_used"

    # the receipt code leads a redress export to the check
    from fieldid.access import Actor, Role

    exp = ws.redress.export(Actor("dpo", Role.ADMIN), receipt=out.receipt_code)
    assert exp["searches"] == [] and exp["document_checks"][0]["evidence"] == "mrz_read"
    assert exp["document_checks"][0]["outcome"] == "searched"

    report = build_report(ws.store, ws.root, ws.clock)
    enc = report["encounters"]
    assert enc["settled_by_document"] == 1 and enc["by_1n_despite_valid_document"] == 1
    assert enc["searches_refused_as_settled_by_document"] == 2
    assert enc["by_1n_after_document_failed"] == 0


def test_a_failing_document_offers_1n_and_its_images_go_when_the_encounter_ends(
    enrolled: Workspace,
) -> None:
    ws = enrolled
    page, _ = specimen(seed=5)
    # the face is another person's: the document is read, but does not settle the encounter
    out = ws.documents.check(ATTR, document_image=page, live_face=OTHER.read_bytes())
    assert out.check.evidence == "mrz_read"
    assert not out.passed and out.failed_because == ["face.below_threshold"]
    assert out.to_dict()["search_offered"] is True
    (rec,) = checks(ws)
    assert rec.status == "open" and rec.document_image is not None  # held while open
    # sealed at rest like every biometric value (the holder's portrait is on the page)
    assert rec.document_image[:2] != b"\xff\xd8"
    kept = ws.keys.open(DOCUMENT_IMAGE, rec.id, rec.document_image)
    assert kept[:2] == b"\xff\xd8"  # re-encoded JPEG, not the upload
    assert kept != page

    res = ws.searches.search(OTHER, ATTR, document_check=out.check_id)
    entry = ws.store.audit_entries()[-1]
    assert entry.payload["despite_valid_document"] is False
    assert res.presented_documents[0]["evidence"] == "mrz_read"
    (rec,) = checks(ws)
    assert rec.status == "searched" and public_id(ws, rec.search_id) == res.search_id

    # the search is open: the encounter too; a purge keeps the images
    rep = ws.retention.purge()
    assert rep.counts["document_images"] == 0
    # the search closes: the encounter ends, the images go (document_images = 0m)
    with ws.store.unit_of_work() as u:
        srec = u.session.get(SearchRecord, rec.search_id)
        assert srec is not None
        srec.status, srec.closed_at = "not_identified", u.now()
    rep = ws.retention.purge()
    assert rep.counts["document_images"] == 1
    (rec,) = checks(ws)
    assert rec.status == "closed" and rec.document_image is None and rec.data_purged_at
    # the record of the check goes after document_checks (30 days)
    rep = ws.retention.purge(ws.clock.now() + timedelta(days=31))
    assert rep.counts["document_checks"] == 1 and checks(ws) == []

    enc = build_report(ws.store, ws.root, ws.clock)["encounters"]
    assert enc["by_1n_after_document_failed"] == 1 and enc["settled_by_document"] == 0


def test_an_expired_or_unreadable_document_does_not_pass(enrolled: Workspace) -> None:
    ws = enrolled
    page, _ = specimen(expiry="200101", seed=6)
    out = ws.documents.check(ATTR, document_image=page, live_face=SAME.read_bytes())
    assert out.check.evidence == "mrz_read" and out.failed_because == ["document.expired"]
    blank = np.full((400, 600, 3), 200, np.uint8)
    import cv2

    _ok, enc = cv2.imencode(".jpg", blank)
    out = ws.documents.check(ATTR, document_image=bytes(enc), live_face=None)
    assert not out.passed
    assert "document.not_read" in out.failed_because and "face.not_compared" in out.failed_because
    assert out.document is None
    # nothing to check: refused and audited
    with pytest.raises(FieldidError) as e:
        ws.documents.check(ATTR, document_image=None, live_face=SAME.read_bytes())
    assert e.value.code == "document.nothing_given"
    last = ws.store.audit_entries()[-1]
    assert last.event == "document_check" and last.payload["outcome"] == "refused"
    # an open document check with no search: its images never outlive the probe period
    rep = ws.retention.purge(ws.clock.now() + timedelta(hours=25))
    assert rep.counts["document_images"] == 1
    assert all(r.document_image is None for r in checks(ws))


def test_a_verified_chip_settles_with_the_chip_evidence(
    enrolled: Workspace, tmp_path: Path
) -> None:
    ws = enrolled
    page, printed = specimen(seed=7)
    pki = make_pki(ws.clock.now())
    (ws.root / "csca").mkdir()
    (ws.root / "csca" / "ca.pem").write_bytes(pem(pki.csca))
    ws.__dict__.pop("documents", None)  # the CSCA folder is looked for when the service is built
    chip = make_chip(printed, HOLDER.read_bytes(), pki)
    out = ws.documents.check(ATTR, document_image=page, live_face=SAME.read_bytes(), chip=chip)
    assert out.check.evidence == "chip_verified", out.to_dict()["check"]["chip"]
    assert out.passed and out.document is not None
    assert out.document["evidence"] == "chip_verified"
    assert out.check.match is not None and out.check.match.portrait_source == "chip"
