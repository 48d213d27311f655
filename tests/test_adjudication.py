"""Persisted searches and the adjudication rules: an identification exists only as a human's
final confirmation, under the role, two-person, conflict and score-floor rules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conftest import subject_images
from fieldid.access import Actor, Role
from fieldid.adjudication.service import (
    AdjudicationRefused,
    identification_of,
)
from fieldid.adjudication.store import find_by_receipt
from fieldid.errors import AuthorisationError, QualityRefused
from fieldid.probe import decode_probe
from fieldid.store.keys import PROBE_IMAGE, PROBE_TEMPLATE
from fieldid.store.schema import ProbeRecord, SearchCandidate, SearchRecord
from fieldid.workspace import Workspace
from helpers_account import attr, open_copy, search, set_config
from helpers_storage import held

OFFICER = Actor("officer-7", Role.OFFICER)
OFFICER_2 = Actor("officer-9", Role.OFFICER)
SUPERVISOR = Actor("sup-1", Role.SUPERVISOR)
AUDITOR = Actor("aud-1", Role.AUDITOR)


class FakeConflicts:
    """Reports a conflict for one person, as the records stream's checker would."""

    def __init__(self, person_id: int) -> None:
        self.person_id = person_id
        self.calls: list[tuple[int, int, list[dict[str, Any]]]] = []

    def conflicts(
        self, search_id: int, person_id: int, documents: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        self.calls.append((search_id, person_id, [dict(d) for d in documents]))
        if person_id == self.person_id and documents:
            return ["passport X1 names another person than the candidate's record"]
        return []


@pytest.fixture()
def ws(enrolled_template: Path, tmp_path: Path) -> Iterator[Workspace]:
    w = open_copy(enrolled_template, tmp_path)
    yield w
    w.close()


def last(ws: Workspace, event: str) -> Any:
    return list(ws.store.audit_entries(event))[-1]


def test_search_is_persisted_with_probe_candidates_and_receipt(ws: Workspace) -> None:
    probe = subject_images("subject-0002")[1]
    result = search(ws, "subject-0002")
    d = result.to_dict()
    assert d["search_id"] == result.search_id and d["receipt_code"] == result.receipt_code
    assert len(result.receipt_code or "") == 9 and result.receipt_code[4] == "-"
    assert all("identified" not in c for c in d["candidates"])
    rec = held(ws, find_by_receipt, (result.receipt_code or "").lower().replace("-", " "))
    assert rec.public_id == result.search_id and rec.audit_seq == result.audit_seq
    assert len(rec.public_id) >= 22 and not rec.public_id.isdigit()
    assert rec.status == "open" and rec.outcome == "candidates"
    assert last(ws, "search").payload["receipt_code"] == result.receipt_code
    with ws.store.read() as s:
        probe_row = s.get(ProbeRecord, rec.id)
        cands = s.scalars(select(SearchCandidate).where(SearchCandidate.search_id == rec.id)).all()
    assert probe_row is not None and probe_row.image is not None
    assert probe_row.template is not None
    # sealed at rest (fieldid.store.keys), bound to this search: they open to the probe,
    # kept re-encoded from its pixels (no EXIF, nothing appended), never verbatim
    assert probe_row.image[:4] == b"FIDE" and probe_row.template[:4] == b"FIDE"
    image = ws.keys.open(PROBE_IMAGE, rec.id, probe_row.image)
    assert image[:3] == b"\xff\xd8\xff" and image != probe.read_bytes()
    kept = decode_probe(image)
    assert (kept.width, kept.height) == decode_probe(probe).original_size
    template = ws.keys.open(PROBE_TEMPLATE, rec.id, probe_row.template)
    assert len(template) == ws.pipeline.embedder.dim * 4  # float32 vector
    assert [c.person_id for c in cands] == [c.person_id for c in result.candidates]
    # A search alone identifies no one.
    assert identification_of(ws.store, rec.id) is None


def test_refused_search_is_recorded_without_its_probe(ws: Workspace) -> None:
    strict = ws.config.gate.__class__(min_inter_eye_px=200)
    object.__setattr__(ws.config, "gate", strict)
    with pytest.raises(QualityRefused) as e:
        ws.searches.search(subject_images("subject-0001")[1], attr())
    code = e.value.details["receipt_code"]
    rec = held(ws, find_by_receipt, code)
    assert rec.outcome == "refused" and rec.refusal_code == "quality.too_far"
    assert rec.status == "refused"
    with ws.store.read() as s:
        assert s.get(ProbeRecord, rec.id) is None


def test_only_a_human_with_the_role_records_an_identification(ws: Workspace) -> None:
    result = search(ws, "subject-0002")
    pid = result.candidates[0].person_id
    adj = ws.adjudicator()
    with pytest.raises(AuthorisationError) as e:
        adj.adjudicate(result.search_id, AUDITOR, "confirm", person_id=pid, reason="looks alike")
    assert e.value.code == "access.forbidden"
    refused = last(ws, "adjudicate")
    assert refused.payload["outcome"] == "refused"
    assert refused.payload["error"]["code"] == "access.forbidden"
    # An officer adjudicates only their own searches.
    with pytest.raises(AdjudicationRefused) as e2:
        adj.adjudicate(result.search_id, OFFICER_2, "confirm", person_id=pid, reason="same face")
    assert e2.value.code == "adjudication.not_own_search"
    with pytest.raises(AdjudicationRefused) as e3:
        adj.adjudicate(result.search_id, OFFICER, "confirm", person_id=pid, reason=" ")
    assert e3.value.code == "adjudication.no_reason"
    assert identification_of(ws.store, result.search_id) is None

    a = adj.adjudicate(
        result.search_id,
        OFFICER,
        "confirm",
        person_id=pid,
        reason="face and presented ID card agree",
        documents=[{"type": "id-card", "number": "D-77"}],
    )
    assert a.state == "final" and a.is_identification
    ident = identification_of(ws.store, result.search_id)
    assert ident is not None and ident.actor == "officer-7"
    rec = held(ws, find_by_receipt, result.receipt_code or "")
    assert rec.status == "identified" and rec.closed_at is not None
    entry = last(ws, "adjudicate")
    assert entry.payload["state"] == "final" and entry.payload["person_id"] == pid
    assert entry.payload["documents"] == [{"type": "id-card", "number": "D-77"}]
    assert entry.payload["search_seq"] == result.audit_seq
    assert entry.payload["search_id"] == result.search_id
    assert entry.payload["search_status"] == "identified"
    # Identified searches keep their probe (until the probe's own retention ends).
    with ws.store.read() as s:
        assert s.get(ProbeRecord, rec.id).image is not None  # type: ignore[union-attr]
    with pytest.raises(AdjudicationRefused) as e4:
        adj.adjudicate(result.search_id, SUPERVISOR, "reject", reason="second thoughts")
    assert e4.value.code == "adjudication.search_closed"


def test_only_listed_candidates_at_or_above_the_floor_can_be_confirmed(ws: Workspace) -> None:
    result = search(ws, "subject-0002")
    top = result.candidates[0]
    with ws.store.read() as s:
        stranger = s.scalars(
            select(SearchCandidate.person_id).where(SearchCandidate.person_id != top.person_id)
        ).first()
    outsider = 999 if stranger is None else stranger + 1000
    adj = ws.adjudicator()
    with pytest.raises(AdjudicationRefused) as e:
        adj.adjudicate(result.search_id, OFFICER, "confirm", person_id=outsider, reason="hunch")
    assert e.value.code == "adjudication.not_a_candidate"
    set_config(ws.root, "adjudication", f"min_confirm_score = {min(top.score + 0.01, 1.0)}")
    strict = ws.adjudicator()
    for who in (OFFICER, SUPERVISOR):
        with pytest.raises(AdjudicationRefused) as e2:
            strict.adjudicate(
                result.search_id, who, "confirm", person_id=top.person_id, reason="same face"
            )
        assert e2.value.code == "adjudication.below_min_score"
        entry = last(ws, "adjudicate")
        assert entry.payload["error"]["code"] == "adjudication.below_min_score"
        assert entry.operator == who.name
    assert identification_of(ws.store, result.search_id) is None


def test_two_person_rule(ws: Workspace) -> None:
    set_config(ws.root, "adjudication", 'two_person_purposes = ["field-identification"]')
    result = search(ws, "subject-0002")
    pid = result.candidates[0].person_id
    adj = ws.adjudicator()
    a = adj.adjudicate(result.search_id, OFFICER, "confirm", person_id=pid, reason="same face")
    assert a.state == "pending_second" and not a.is_identification
    assert identification_of(ws.store, result.search_id) is None
    assert held(ws, find_by_receipt, result.receipt_code or "").status == "awaiting_second"
    with pytest.raises(AuthorisationError):
        adj.second_confirm(a.id, OFFICER_2, "checked")  # a second person is a supervisor
    with pytest.raises(AuthorisationError):
        adj.second_confirm(a.id, AUDITOR, "checked")
    with pytest.raises(AdjudicationRefused) as e1:
        adj.second_confirm(a.id, SUPERVISOR, " ")
    assert e1.value.code == "adjudication.no_reason"
    with pytest.raises(AdjudicationRefused) as e2:
        adj.adjudicate(result.search_id, SUPERVISOR, "confirm", person_id=pid, reason="also me")
    assert e2.value.code == "adjudication.pending"
    b = adj.second_confirm(a.id, SUPERVISOR, "ears, scar and document agree")
    assert b.state == "final" and b.is_identification and b.search_status == "identified"
    assert identification_of(ws.store, result.search_id) is not None
    entry = last(ws, "second_confirm")
    assert entry.operator == SUPERVISOR.name and entry.payload["first_by"] == "officer-7"
    with pytest.raises(AdjudicationRefused) as e3:
        adj.second_confirm(a.id, Actor("sup-2", Role.SUPERVISOR), "me too")
    assert e3.value.code == "adjudication.not_pending"
    # Nobody confirms their own identification a second time.
    again = search(ws, "subject-0002", image=2)
    first = adj.adjudicate(
        again.search_id, SUPERVISOR, "confirm", person_id=pid, reason="same face again"
    )
    with pytest.raises(AdjudicationRefused) as e:
        adj.second_confirm(first.id, SUPERVISOR, "my own, again")
    assert e.value.code == "adjudication.same_person"


def test_document_conflict_blocks_until_a_supervisor_overrides_with_a_reason(
    ws: Workspace,
) -> None:
    result = search(ws, "subject-0002")
    pid = result.candidates[0].person_id
    checker = FakeConflicts(pid)
    adj = ws.adjudicator(conflicts=checker)
    docs = [{"type": "passport", "number": "X1", "name": "Subject 9999"}]
    a = adj.adjudicate(
        result.search_id, OFFICER, "confirm", person_id=pid, reason="same face", documents=docs
    )
    rec = held(ws, find_by_receipt, result.receipt_code or "")
    assert checker.calls == [(rec.id, pid, docs)]
    assert rec.status == "blocked_conflict"
    assert a.state == "blocked_conflict" and a.conflicts and not a.is_identification
    entry = last(ws, "adjudicate")
    assert entry.payload["outcome"] == "blocked"
    assert entry.payload["rules"]["rule"] == "adjudication.document_conflict"
    assert identification_of(ws.store, result.search_id) is None

    with pytest.raises(AuthorisationError):
        adj.override(a.id, OFFICER_2, "I am sure it is the same person, really")
    with pytest.raises(AdjudicationRefused) as e:
        adj.override(a.id, SUPERVISOR, "ok")
    assert e.value.code == "adjudication.override_needs_reason"
    assert last(ws, "override").payload["error"]["code"] == "adjudication.override_needs_reason"
    assert identification_of(ws.store, result.search_id) is None

    reason = "passport is the person's brother's; fingerprint check at the station matched"
    b = adj.override(a.id, SUPERVISOR, reason)
    assert b.state == "final" and b.is_identification
    entry = last(ws, "override")
    assert entry.operator == "sup-1" and entry.payload["reason"] == reason
    assert entry.payload["conflicts"] == a.conflicts


def test_supervisor_cannot_override_own_blocked_confirmation(ws: Workspace) -> None:
    result = search(ws, "subject-0002", operator="sup-1")
    pid = result.candidates[0].person_id
    adj = ws.adjudicator(conflicts=FakeConflicts(pid))
    a = adj.adjudicate(
        result.search_id,
        SUPERVISOR,
        "confirm",
        person_id=pid,
        reason="same face",
        documents=[{"type": "passport", "number": "X1"}],
    )
    with pytest.raises(AdjudicationRefused) as e:
        adj.override(a.id, SUPERVISOR, "a long enough reason, but my own confirmation")
    assert e.value.code == "adjudication.same_person"


def test_a_reject_rules_out_one_lead_and_closing_purges_the_probe(ws: Workspace) -> None:
    result = search(ws, "subject-0002")
    lead = result.candidates[0].person_id
    adj = ws.adjudicator()
    with pytest.raises(AdjudicationRefused) as e:
        adj.adjudicate(result.search_id, OFFICER, "reject", reason="not this one")
    assert e.value.code == "adjudication.not_a_candidate"  # a reject names its lead
    a = adj.adjudicate(
        result.search_id, OFFICER, "reject", person_id=lead, reason="ears and jaw differ"
    )
    assert a.state == "final" and not a.is_identification and a.search_status == "open"
    rec = held(ws, find_by_receipt, result.receipt_code or "")
    assert rec.status == "open" and rec.closed_at is None
    with ws.store.read() as s:
        probe = s.get(ProbeRecord, rec.id)
        assert probe is not None and probe.image is not None  # kept while the search is open
    with pytest.raises(AdjudicationRefused) as e2:
        adj.adjudicate(result.search_id, OFFICER, "confirm", person_id=lead, reason="after all")
    assert e2.value.code == "adjudication.lead_ruled_out"
    with pytest.raises(AdjudicationRefused) as e3:
        adj.close(result.search_id, OFFICER, "no_lead")
    assert e3.value.code == "adjudication.has_leads"
    c = adj.close(result.search_id, OFFICER, "not_identified", reason="documents show another")
    assert c.search_status == "not_identified" and c.person_id is None
    rec = held(ws, find_by_receipt, result.receipt_code or "")
    assert rec.status == "not_identified" and rec.closed_at is not None
    with ws.store.read() as s:
        probe = s.get(ProbeRecord, rec.id)
        assert probe is not None and probe.image is None and probe.template is None
        assert s.get(SearchRecord, rec.id) is not None
    purge = last(ws, "purge")
    assert purge.payload["trigger"] == "adjudication"
    assert purge.payload["classes"] == {"probe_images": 1, "probe_templates": 1}
    assert purge.payload["search_id"] == result.search_id
