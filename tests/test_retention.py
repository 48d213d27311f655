"""Retention on a controllable clock: nothing past its period is left in any data class, audit
entries stay as long as the policy says, and every purge is audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from fieldid.access import Actor, Role
from fieldid.audit.ops import export_audit, verify_store
from fieldid.audit.verify import verify_log
from fieldid.clock import ManualClock
from fieldid.errors import AuthorisationError, WorkspaceError
from fieldid.retention import (
    RetentionPolicy,
)
from fieldid.retention.purge import as_utc
from fieldid.store.schema import AuditEntry, ProbeRecord, SearchRecord
from fieldid.workspace import Workspace
from helpers_account import T0, open_copy, search, set_config
from helpers_storage import behind_the_back

OFFICER = Actor("officer-7", Role.OFFICER)
ADMIN = Actor("adm-1", Role.ADMIN)


@pytest.fixture()
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture()
def ws(enrolled_template: Path, tmp_path: Path, clock: ManualClock) -> Iterator[Workspace]:
    w = open_copy(enrolled_template, tmp_path, clock)
    yield w
    w.close()


def row_id(ws: Workspace, search_id: str | None) -> int | None:
    with ws.store.read() as s:
        rec = s.scalars(select(SearchRecord).where(SearchRecord.public_id == search_id)).first()
        return None if rec is None else rec.id


def probe(ws: Workspace, search_id: str | None) -> ProbeRecord:
    with ws.store.read() as s:
        rec = s.scalars(select(SearchRecord).where(SearchRecord.public_id == search_id)).first()
        assert rec is not None
        p = s.get(ProbeRecord, rec.id)
    assert p is not None
    return p


def search_exists(ws: Workspace, search_id: str | None) -> bool:
    return row_id(ws, search_id) is not None


def nothing_overdue(ws: Workspace) -> None:
    status = ws.retention.oldest_retained()
    assert not [k for k, v in status.items() if v["overdue"]], status


@pytest.mark.index_backends
def test_unadjudicated_probe_goes_after_24_hours(ws: Workspace, clock: ManualClock) -> None:
    r = search(ws, "subject-0002")
    clock.advance(hours=23, minutes=59)
    rep = ws.retention.purge()
    assert rep.counts["probe_images"] == 0 and probe(ws, r.search_id).image is not None
    clock.advance(minutes=2)
    assert ws.retention.oldest_retained()["probe_images"]["overdue"]
    rep = ws.retention.run_scheduled()
    p = probe(ws, r.search_id)
    assert p.image is None and p.template is None and p.image_purged_at is not None
    assert rep.counts["probe_images"] == 1 and rep.counts["probe_templates"] == 1
    entry = list(ws.store.audit_entries("purge"))[-1]
    assert entry.operator == "system:retention" and entry.payload["trigger"] == "scheduled"
    assert entry.payload["classes"]["probe_images"] == 1
    assert entry.payload["policy"]["probe_images"] == "24h"
    assert search_exists(ws, r.search_id)  # the record of the search stays longer
    nothing_overdue(ws)


@pytest.mark.index_backends
def test_every_class_is_emptied_past_its_period(
    ws: Workspace, clock: ManualClock, tmp_path: Path
) -> None:
    rejected = search(ws, "subject-0002")
    ws.adjudicator().close(rejected.search_id, OFFICER, "not_identified", reason="not this person")
    confirmed = search(ws, "subject-0003")
    ws.adjudicator().adjudicate(
        confirmed.search_id,
        OFFICER,
        "confirm",
        person_id=confirmed.candidates[0].person_id,
        reason="face and ID card agree",
    )
    open_search = search(ws, "subject-0004")
    export = export_audit(ws.store, ws.root, ws.clock, Actor("aud", Role.AUDITOR))
    assert export.path.is_file() and export.path.is_relative_to(ws.root)

    clock.advance(days=31)
    rep = ws.retention.purge(actor=ADMIN)
    assert rep.counts["unidentified_searches"] == 2  # the rejected and the never-adjudicated
    assert rep.counts["exports"] == 1 and not export.path.exists()
    assert rep.counts["probe_images"] == 2  # the open and the confirmed search's photos
    assert not search_exists(ws, rejected.search_id)
    assert not search_exists(ws, open_search.search_id)
    assert search_exists(ws, confirmed.search_id)
    nothing_overdue(ws)

    clock.advance(days=365)
    rep = ws.retention.purge(actor=ADMIN)
    assert rep.counts["confirmed_identifications"] == 1
    assert not search_exists(ws, confirmed.search_id)
    nothing_overdue(ws)
    # Every purge is audited with its classes and counts, and the chain still verifies.
    purges = list(ws.store.audit_entries("purge"))
    assert purges[-1].payload["classes"]["confirmed_identifications"] == 1
    assert purges[-1].operator == "adm-1"
    assert verify_store(ws.store).ok


def test_audit_entries_stay_their_full_period_then_go_keeping_the_chain_verifiable(
    ws: Workspace, clock: ManualClock
) -> None:
    search(ws, "subject-0002")
    with ws.store.read() as s:
        first_count = s.scalar(select(func.count()).select_from(AuditEntry))
    clock.advance(days=182, hours=23)
    first_purge = ws.retention.purge()
    assert first_purge.counts["audit_entries"] == 0 and first_purge.audit_anchor is None
    with ws.store.read() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == first_count + 1
    later = search(ws, "subject-0003")
    clock.advance(hours=2)  # the first entries are now older than 183 days; the purge's is not
    rep = ws.retention.purge()
    assert rep.counts["audit_entries"] == first_count
    assert rep.audit_anchor is not None
    entries = list(ws.store.audit_entries())
    assert entries[0].seq == rep.audit_anchor["first_seq"] == first_purge.audit_seq
    assert later.audit_seq in [e.seq for e in entries]
    assert all(as_utc(e.at) >= clock.now() - timedelta(days=183) for e in entries)
    result = verify_store(ws.store)
    assert result.ok and result.start_seq == first_purge.audit_seq, result
    assert verify_log(ws.store).ok  # the log's own check knows the anchor too
    # An export after the purge is still valid (it starts at the anchor).
    from fieldid.audit.export import load_public_key, read_export, verify_export

    ex = export_audit(ws.store, ws.root, ws.clock, Actor("aud", Role.AUDITOR))
    assert verify_export(read_export(ex.path), load_public_key(ex.public_key)).ok
    # Deleting more entries at the start, without a purge's anchor, is still detected.
    with behind_the_back(ws) as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == first_purge.audit_seq))
    bad = verify_store(ws.store)
    assert not bad.ok and bad.kind == "deleted"
    assert not verify_log(ws.store).ok


def test_everything_old_still_leaves_a_verifiable_log(ws: Workspace, clock: ManualClock) -> None:
    search(ws, "subject-0002")
    clock.advance(days=400)
    rep = ws.retention.purge()
    assert rep.audit_anchor is not None
    entries = list(ws.store.audit_entries())
    assert [e.event for e in entries] == ["purge"]
    assert verify_store(ws.store).ok


def test_policy_refuses_short_audit_retention_and_bad_durations(ws: Workspace) -> None:
    set_config(ws.root, "retention", 'audit_entries = "90d"')
    with pytest.raises(WorkspaceError) as e:
        RetentionPolicy.load(ws.root)
    assert e.value.code == "config.retention_audit_too_short"
    with pytest.raises(WorkspaceError):
        ws.retention.purge()
    set_config(ws.root, "retention", 'probe_images = "a day"')
    with pytest.raises(WorkspaceError) as e2:
        RetentionPolicy.load(ws.root)
    assert e2.value.code == "config.retention" and "probe_images" in e2.value.message
    set_config(ws.root, "retention", 'probe_images = "2h"\naudit_entries = "365d"')
    p = RetentionPolicy.load(ws.root)
    assert p.period("probe_images") == timedelta(hours=2)
    assert p.period("audit_entries") == timedelta(days=365)
    assert p.period("exports") == timedelta(days=30)


def test_purge_needs_the_role(ws: Workspace) -> None:
    with pytest.raises(AuthorisationError):
        ws.retention.purge(actor=OFFICER)


def test_configured_longer_audit_retention_is_honoured(ws: Workspace, clock: ManualClock) -> None:
    set_config(ws.root, "retention", 'audit_entries = "400d"')
    search(ws, "subject-0002")
    n = len(list(ws.store.audit_entries()))
    clock.advance(days=399)
    assert ws.retention.purge().counts["audit_entries"] == 0
    assert len(list(ws.store.audit_entries())) == n + 1
