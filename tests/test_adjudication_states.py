"""Adjudication that follows the officer's work (issue 13 item 5): the states of a search and the
acts that move it, on real searches with two leads (the same person enrolled twice under two
synthetic identities, as a gallery holding a duplicate would)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import subject_images
from fieldid.access import Actor, Role
from fieldid.adjudication.service import AdjudicationRefused, identification_of
from fieldid.adjudication.states import (
    CLOSED_STATES,
    OPEN_STATES,
    STATE_TEXT,
    TRANSITIONS,
    Act,
    SearchState,
    TransitionRefused,
    check,
)
from fieldid.dataset import LabelledImage
from fieldid.store.schema import ProbeRecord, SearchRecord
from fieldid.workspace import Workspace
from helpers_account import attr, open_copy, set_config

OFFICER = Actor("officer-7", Role.OFFICER)
SUPERVISOR = Actor("sup-1", Role.SUPERVISOR)
SUPERVISOR_2 = Actor("sup-2", Role.SUPERVISOR)


@pytest.fixture()
def ws(enrolled_template: Path, tmp_path: Path) -> Iterator[Workspace]:
    w = open_copy(enrolled_template, tmp_path)
    # A second identity holding subject-0002's face: a search for subject-0002 lists two leads.
    w.enrollment.enroll_images(
        [LabelledImage(subject_images("subject-0002")[2], "subject-0902", "Subject 0902")],
        operator="test",
        source_name="fixtures",
        synthetic=True,
    )
    yield w
    w.close()


def two_leads(ws: Workspace):  # type: ignore[no-untyped-def]
    result = ws.searches.search(subject_images("subject-0002")[1], attr())
    ids = {c.external_id for c in result.candidates}
    assert {"subject-0002", "subject-0902"} <= ids, ids
    return result


def state(ws: Workspace, search_id: str | None) -> tuple[str, bool]:
    """The search's state, and whether its probe photo is still held."""
    with ws.store.read() as s:
        rec = s.scalars(select(SearchRecord).where(SearchRecord.public_id == search_id)).one()
        probe = s.get(ProbeRecord, rec.id)
        return rec.status, probe is not None and probe.image is not None


def test_the_state_table_is_complete_and_closed_states_take_no_act() -> None:
    for st in SearchState:
        assert st in STATE_TEXT
        if st in CLOSED_STATES:
            for act in Act:
                with pytest.raises(TransitionRefused) as e:
                    check(st, act)
                code = "refused_attempt" if st == SearchState.REFUSED else "search_closed"
                assert e.value.code == f"adjudication.{code}"
    for (st, _act), targets in TRANSITIONS.items():
        assert st in OPEN_STATES and targets
    # Only a second person or an override settles a waiting confirmation; a new one waits.
    with pytest.raises(TransitionRefused) as e:
        check(SearchState.AWAITING_SECOND, Act.CONFIRM)
    assert e.value.code == "adjudication.pending"
    assert STATE_TEXT[SearchState.AWAITING_SECOND] == (
        "open: a confirmation waits for a second person"
    )


def test_rejecting_lead_1_then_confirming_lead_2(ws: Workspace) -> None:
    result = two_leads(ws)
    first, second = result.candidates[0], result.candidates[1]
    adj = ws.adjudicator()
    a = adj.adjudicate(
        result.search_id, OFFICER, "reject", person_id=first.person_id, reason="scar differs"
    )
    assert a.search_status == "open"
    assert state(ws, result.search_id) == ("open", True)  # open for lead 2, probe kept
    b = adj.adjudicate(
        result.search_id, OFFICER, "confirm", person_id=second.person_id, reason="ears agree"
    )
    assert b.is_identification and b.search_status == "identified"
    ident = identification_of(ws.store, result.search_id)
    assert ident is not None and ident.person_id == second.person_id
    assert state(ws, result.search_id) == ("identified", True)  # kept for its retention period
    events = [e.payload for e in ws.store.audit_entries("adjudicate")]
    assert [(p["decision"], p["search_status"]) for p in events[-2:]] == [
        ("reject", "open"),
        ("confirm", "identified"),
    ]


def test_two_person_rule_with_a_disagreement_returns_the_search_to_open(ws: Workspace) -> None:
    set_config(ws.root, "adjudication", 'two_person_purposes = ["field-identification"]')
    result = two_leads(ws)
    lead = result.candidates[0]
    adj = ws.adjudicator()
    a = adj.adjudicate(
        result.search_id, OFFICER, "confirm", person_id=lead.person_id, reason="same face"
    )
    assert a.state == "pending_second" and a.search_status == "awaiting_second"
    assert state(ws, result.search_id) == ("awaiting_second", True)
    with pytest.raises(AdjudicationRefused) as e:
        adj.adjudicate(
            result.search_id,
            OFFICER,
            "confirm",
            person_id=result.candidates[1].person_id,
            reason="or this one",
        )
    assert e.value.code == "adjudication.pending"
    with pytest.raises(AdjudicationRefused) as e2:
        adj.disagree(a.id, SUPERVISOR, "")
    assert e2.value.code == "adjudication.no_reason"
    d = adj.disagree(a.id, SUPERVISOR, "the enrolled photo shows a different nose")
    assert d.state == "disagreed" and d.search_status == "open" and not d.is_identification
    assert state(ws, result.search_id) == ("open", True)
    entry = ws.store.audit_entries("second_disagree")[-1]
    assert entry.operator == "sup-1" and entry.payload["first_by"] == "officer-7"
    assert entry.payload["reason"] == "the enrolled photo shows a different nose"
    assert entry.payload["first_reason"] == "same face"
    # Open again: the officer decides again; the second confirmation then stands.
    b = adj.adjudicate(
        result.search_id, OFFICER, "confirm", person_id=lead.person_id, reason="checked again"
    )
    assert b.search_status == "awaiting_second"
    c = adj.second_confirm(b.id, SUPERVISOR_2, "documents and face agree")
    assert c.is_identification and c.search_status == "identified"
    with pytest.raises(AdjudicationRefused) as e3:
        adj.disagree(b.id, SUPERVISOR, "too late")
    assert e3.value.code == "adjudication.not_pending"


def test_rejecting_the_lead_whose_confirmation_waits_withdraws_it(ws: Workspace) -> None:
    set_config(ws.root, "adjudication", 'two_person_purposes = ["field-identification"]')
    result = two_leads(ws)
    lead = result.candidates[0]
    adj = ws.adjudicator()
    a = adj.adjudicate(
        result.search_id, OFFICER, "confirm", person_id=lead.person_id, reason="same face"
    )
    other = adj.adjudicate(
        result.search_id,
        OFFICER,
        "reject",
        person_id=result.candidates[1].person_id,
        reason="other lead: different ears",
    )
    assert other.search_status == "awaiting_second"  # rejecting another lead changes nothing
    r = adj.adjudicate(
        result.search_id, OFFICER, "reject", person_id=lead.person_id, reason="changed my mind"
    )
    assert r.search_status == "open"
    with pytest.raises(AdjudicationRefused) as e:
        adj.second_confirm(a.id, SUPERVISOR, "late")
    assert e.value.code == "adjudication.not_pending"
    # Every lead ruled out: the officer closes it; the probe goes with the close.
    assert state(ws, result.search_id) == ("open", True)
    c = adj.close(result.search_id, OFFICER, "not_identified", reason="no lead is the person")
    assert c.search_status == "not_identified"
    assert state(ws, result.search_id) == ("not_identified", False)


def test_closing_withdraws_a_waiting_confirmation_and_purges_the_probe(ws: Workspace) -> None:
    set_config(ws.root, "adjudication", 'two_person_purposes = ["field-identification"]')
    result = two_leads(ws)
    adj = ws.adjudicator()
    a = adj.adjudicate(
        result.search_id,
        OFFICER,
        "confirm",
        person_id=result.candidates[0].person_id,
        reason="same face",
    )
    c = adj.close(result.search_id, OFFICER, "inconclusive", reason="person left")
    assert c.search_status == "inconclusive"
    assert state(ws, result.search_id) == ("inconclusive", False)
    entry = ws.store.audit_entries("adjudicate")[-1]
    assert entry.payload["withdrawn"] == [a.id]
    with pytest.raises(AdjudicationRefused) as e:
        adj.second_confirm(a.id, SUPERVISOR, "checked")
    assert e.value.code == "adjudication.not_pending"


def test_a_search_with_no_candidate_closes_as_no_lead(ws: Workspace) -> None:
    from fieldid.demo import astronaut_path, closer_crop

    # The astronaut is in no fixture gallery: nothing scores at or above the threshold.
    result = ws.searches.search(closer_crop(astronaut_path()), attr())
    assert result.candidates == []
    adj = ws.adjudicator()
    assert state(ws, result.search_id) == ("open", True)
    for decision in ("inconclusive", "not_identified"):
        with pytest.raises(AdjudicationRefused) as e:
            adj.close(result.search_id, OFFICER, decision, reason="nothing to check")
        assert e.value.code == "adjudication.no_leads"
    c = adj.close(result.search_id, OFFICER, "no_lead")  # nothing judged: no reason needed
    assert c.search_status == "no_lead" and c.reason == "no candidate at or above the threshold"
    assert state(ws, result.search_id) == ("no_lead", False)


def test_a_refused_attempt_is_never_decided(ws: Workspace) -> None:
    from fieldid.errors import QualityRefused

    gate = ws.config.gate
    object.__setattr__(ws.config, "gate", gate.__class__(min_inter_eye_px=200))
    with pytest.raises(QualityRefused) as e:
        ws.searches.search(subject_images("subject-0002")[1], attr())
    object.__setattr__(ws.config, "gate", gate)
    sid = e.value.details["search_id"]
    assert state(ws, sid) == ("refused", False)
    with pytest.raises(AdjudicationRefused) as e2:
        ws.adjudicator().close(sid, OFFICER, "no_lead")
    assert e2.value.code == "adjudication.refused_attempt"
