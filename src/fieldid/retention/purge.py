"""Enforcing the retention policy: the purge, on demand and on a schedule.

Every purge is written to the audit log (event ``purge``) with the classes purged, how many items
each lost, the policy in force and the time, in the same unit of work as the deletions: a purge
that is not in the log did not happen. The audit log itself loses only entries older than its
period, and only a leading run of them, so what remains is still one unbroken chain: the purge
entry records the new *anchor* (the first seq kept and the hash it links to), and
``fieldid audit verify`` starts from that anchor. Deleting entries without such an anchor is
still detected. Export files past their period are deleted after the commit.

Documents presented at an encounter (``document_checks``): an encounter that a 1:N search followed
ends when that search is closed (adjudicated, or purged); one that nothing followed ends when its
document images reach the probe photo's period. The data page photo and chip data go
``document_images`` after the end (default at once), and never outlive ``probe_images`` from the
check; the check's record goes ``document_checks`` after the end. A probe purged at adjudication
takes the document data of its encounter with it, in the same unit of work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.clock import Clock
from fieldid.retention.policy import CLASSES, RetentionPolicy
from fieldid.store import Store, UnitOfWork
from fieldid.store.audit import lock_head
from fieldid.store.schema import (
    AuditEntry,
    DocumentCheckRecord,
    ExportRecord,
    ProbeRecord,
    SearchRecord,
)

#: The scheduled purge's operator in the audit log.
SYSTEM_OPERATOR = "system:retention"
#: How often a server should call :meth:`Retention.run_scheduled` (seconds). Probes are kept 24 h
#: by default; a quarter-hour cadence keeps any of them at most 15 minutes past its period.
SCHEDULE_INTERVAL_S = 900

#: Every state but ``identified``: searches that did not end in a human's final confirmation
#: (open ones too: retention does not wait for a decision), refused attempts included.
UNIDENTIFIED = (
    "open",
    "awaiting_second",
    "blocked_conflict",
    "not_identified",
    "inconclusive",
    "no_lead",
    "refused",
)


def as_utc(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; every time fieldid stores is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass
class PurgeReport:
    at: datetime
    trigger: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    #: First audit seq kept and the hash it links to, when audit entries were removed.
    audit_anchor: dict[str, Any] | None = None
    #: Exports past retention written outside the workspace: recorded, not deleted.
    outside_workspace: list[str] = field(default_factory=list)
    audit_seq: int | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "trigger": self.trigger,
            "counts": self.counts,
            "audit_anchor": self.audit_anchor,
            "outside_workspace": self.outside_workspace,
            "audit_seq": self.audit_seq,
        }


def _count(s: Session, stmt: Any) -> int:
    """Rows an UPDATE or DELETE touched."""
    result = cast(CursorResult[Any], s.execute(stmt))
    return int(result.rowcount)


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def register_export(uow: UnitOfWork, kind: str, path: Path, audit_seq: int | None) -> None:
    """Record a file written out (audit export, redress export, report) so retention covers it;
    in the unit of work that audits the export."""
    uow.session.add(
        ExportRecord(
            kind=kind,
            path=str(Path(path).resolve()),
            created_at=uow.now(),
            audit_seq=audit_seq,
        )
    )


def purge_probe(
    uow: UnitOfWork, search_id: int, *, operator: str, trigger: str, adjudication_id: int | None
) -> int:
    """Purge one search's probe image and template in ``uow`` (a search closed without
    identification, in the unit of work of that decision). Returns how many items were removed;
    audited when any was."""
    now = as_utc(uow.now())
    probe = uow.session.get(ProbeRecord, search_id)
    if probe is None:
        return 0
    counts = {"probe_images": 0, "probe_templates": 0}
    if probe.image is not None:
        probe.image, probe.image_purged_at = None, now
        counts["probe_images"] = 1
    if probe.template is not None:
        probe.template, probe.template_purged_at = None, now
        counts["probe_templates"] = 1
    docs = end_encounters_of_search(uow, search_id, now)
    if docs:
        counts["document_images"] = docs
    if sum(counts.values()):
        rec = uow.session.get(SearchRecord, search_id)
        uow.audit(
            "purge",
            operator=operator,
            payload={
                "trigger": trigger,
                "at": now.isoformat(),
                "classes": counts,
                "search_id": None if rec is None else rec.public_id,
                "search_seq": None if rec is None else rec.audit_seq,
                "adjudication_id": adjudication_id,
            },
        )
    return sum(counts.values())


def _purge_document_data(rec: DocumentCheckRecord, now: datetime) -> int:
    if rec.document_image is None and rec.chip_data is None:
        return 0
    rec.document_image, rec.chip_data, rec.data_purged_at = None, None, now
    return 1


def end_encounters_of_search(uow: UnitOfWork, search_id: int, now: datetime) -> int:
    """The encounter a closed search belonged to has ended: its document checks are closed and
    their document images and chip data purged (in ``uow``). Returns how many checks lost data."""
    n = 0
    for rec in uow.session.scalars(
        select(DocumentCheckRecord).where(DocumentCheckRecord.search_id == search_id)
    ):
        if rec.ended_at is None:
            rec.status, rec.ended_at = "closed", now
        n += _purge_document_data(rec, now)
    return n


class Retention:
    """The workspace's retention: its policy (``[retention]`` of ``root/fieldid.toml``, read
    at each purge so an edit takes effect without a restart) enforced on its store."""

    def __init__(self, store: Store, root: Path, clock: Clock) -> None:
        self.store = store
        self.root = root
        self.clock = clock

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy.load(self.root)

    def purge(
        self,
        now: datetime | None = None,
        *,
        actor: Actor | None = None,
        trigger: str = "manual",
        policy: RetentionPolicy | None = None,
    ) -> PurgeReport:
        """Remove everything past its retention period, in every data class, and audit it, in
        one unit of work. ``actor`` is the person running the purge (needs the ``purge``
        permission); None means the server's scheduler."""
        if actor is not None:
            require(actor, "purge")
        policy = policy or self.policy()
        now = as_utc(now or self.clock.now())
        report = PurgeReport(at=now, trigger=trigger)
        with self.store.unit_of_work() as uow:
            self._purge_data(uow, policy, now, report)
            self._purge_audit(uow, policy, now, report, actor)
        return report

    def _purge_data(
        self, uow: UnitOfWork, policy: RetentionPolicy, now: datetime, report: PurgeReport
    ) -> None:
        s, c = uow.session, report.counts
        cut = now - policy.period("probe_images")
        c["probe_images"] = _count(
            s,
            update(ProbeRecord)
            .where(ProbeRecord.image.is_not(None), ProbeRecord.captured_at < cut)
            .values(image=None, image_purged_at=now),
        )
        cut = now - policy.period("probe_templates")
        c["probe_templates"] = _count(
            s,
            update(ProbeRecord)
            .where(ProbeRecord.template.is_not(None), ProbeRecord.captured_at < cut)
            .values(template=None, template_purged_at=now),
        )
        cut = now - policy.period("unidentified_searches")
        ended = func.coalesce(SearchRecord.closed_at, SearchRecord.started_at)
        c["unidentified_searches"] = _count(
            s, delete(SearchRecord).where(SearchRecord.status.in_(UNIDENTIFIED), ended < cut)
        )
        cut = now - policy.period("confirmed_identifications")
        c["confirmed_identifications"] = _count(
            s,
            delete(SearchRecord).where(
                SearchRecord.status == "identified",
                or_(SearchRecord.closed_at < cut, SearchRecord.closed_at.is_(None)),
            ),
        )
        self._purge_documents(s, policy, now, report)
        cut = now - policy.period("exports")
        files: list[Path] = []
        for ex in s.scalars(
            select(ExportRecord).where(
                ExportRecord.purged_at.is_(None), ExportRecord.created_at < cut
            )
        ):
            path = Path(ex.path)
            if _inside(self.root, path):
                files.append(path)
                ex.purged_at = now
                c["exports"] += 1
            else:
                report.outside_workspace.append(str(path))
        if files:

            def delete_files() -> None:
                for f in files:
                    f.unlink(missing_ok=True)

            uow.after_commit(delete_files)

    def _purge_documents(
        self, s: Session, policy: RetentionPolicy, now: datetime, report: PurgeReport
    ) -> None:
        """Document checks: end the encounters that ended, purge their images and chip data,
        delete their records past ``document_checks`` (see the module)."""
        c = report.counts
        probe_cut = now - policy.period("probe_images")
        for rec in s.scalars(
            select(DocumentCheckRecord).where(DocumentCheckRecord.ended_at.is_(None))
        ):
            if rec.search_id is not None:
                search = s.get(SearchRecord, rec.search_id)
                if search is None or search.closed_at is not None:
                    closed = None if search is None else search.closed_at
                    rec.status, rec.ended_at = "closed", as_utc(closed) if closed else now
            elif as_utc(rec.checked_at) < probe_cut:
                rec.status, rec.ended_at = "closed", now
        s.flush()
        data_cut = now - policy.period("document_images")
        for rec in s.scalars(
            select(DocumentCheckRecord).where(
                or_(
                    DocumentCheckRecord.document_image.is_not(None),
                    DocumentCheckRecord.chip_data.is_not(None),
                ),
                or_(
                    DocumentCheckRecord.ended_at <= data_cut,
                    DocumentCheckRecord.checked_at < probe_cut,
                ),
            )
        ):
            c["document_images"] += _purge_document_data(rec, now)
        cut = now - policy.period("document_checks")
        c["document_checks"] = _count(
            s,
            delete(DocumentCheckRecord)
            .where(DocumentCheckRecord.ended_at < cut)
            .execution_options(synchronize_session=False),
        )

    def _purge_audit(
        self,
        uow: UnitOfWork,
        policy: RetentionPolicy,
        now: datetime,
        report: PurgeReport,
        actor: Actor | None,
    ) -> None:
        s, c = uow.session, report.counts
        head = lock_head(s)
        cut = now - policy.period("audit_entries")
        first_keep = s.scalars(
            select(AuditEntry.seq).where(AuditEntry.at >= cut).order_by(AuditEntry.seq).limit(1)
        ).first()
        first_now = s.scalars(select(func.min(AuditEntry.seq))).first()
        anchor: dict[str, Any] | None = None
        if head.seq > 0 and first_now is not None:
            if first_keep is None:  # everything is old: the purge entry itself is the anchor
                anchor = {"first_seq": head.seq + 1, "prev_hash": head.hash}
            elif first_keep > first_now:
                prev = s.scalars(
                    select(AuditEntry.prev_hash).where(AuditEntry.seq == first_keep)
                ).one()
                anchor = {"first_seq": first_keep, "prev_hash": prev}
        if anchor is not None:
            assert first_now is not None
            c["audit_entries"] = int(anchor["first_seq"]) - int(first_now)
            report.audit_anchor = anchor
        entry = uow.audit(
            "purge",
            operator=actor.name if actor else SYSTEM_OPERATOR,
            payload={
                "trigger": report.trigger,
                "at": now.isoformat(),
                "classes": dict(c),
                "policy": policy.to_dict(),
                **({"audit_anchor": anchor} if anchor else {}),
                **(
                    {"outside_workspace": report.outside_workspace}
                    if report.outside_workspace
                    else {}
                ),
                **({"role": actor.role.value} if actor else {}),
            },
        )
        report.audit_seq = entry.seq
        if anchor is not None:
            s.execute(delete(AuditEntry).where(AuditEntry.seq < anchor["first_seq"]))

    def run_scheduled(self) -> PurgeReport:
        """What the server calls every :data:`SCHEDULE_INTERVAL_S` seconds (and at start-up)."""
        return self.purge(trigger="scheduled")

    def oldest_retained(self, policy: RetentionPolicy | None = None) -> dict[str, Any]:
        """Per data class: the oldest item still held, its age and whether it is past its period
        (the report's retention-compliance table)."""
        policy = policy or self.policy()
        now = as_utc(self.clock.now())
        ended = func.coalesce(SearchRecord.closed_at, SearchRecord.started_at)
        queries: dict[str, Callable[[Any], Any]] = {
            "probe_images": lambda s: s.scalars(
                select(func.min(ProbeRecord.captured_at)).where(ProbeRecord.image.is_not(None))
            ).first(),
            "probe_templates": lambda s: s.scalars(
                select(func.min(ProbeRecord.captured_at)).where(ProbeRecord.template.is_not(None))
            ).first(),
            "unidentified_searches": lambda s: s.scalars(
                select(func.min(ended)).where(SearchRecord.status.in_(UNIDENTIFIED))
            ).first(),
            "confirmed_identifications": lambda s: s.scalars(
                select(func.min(SearchRecord.closed_at)).where(SearchRecord.status == "identified")
            ).first(),
            "audit_entries": lambda s: s.scalars(select(func.min(AuditEntry.at))).first(),
            "exports": lambda s: s.scalars(
                select(func.min(ExportRecord.created_at)).where(ExportRecord.purged_at.is_(None))
            ).first(),
            "document_images": lambda s: s.scalars(
                select(func.min(DocumentCheckRecord.ended_at)).where(
                    or_(
                        DocumentCheckRecord.document_image.is_not(None),
                        DocumentCheckRecord.chip_data.is_not(None),
                    ),
                    DocumentCheckRecord.ended_at.is_not(None),
                )
            ).first(),
            "document_checks": lambda s: s.scalars(
                select(func.min(DocumentCheckRecord.ended_at))
            ).first(),
        }
        out: dict[str, Any] = {}
        with self.store.read() as s:
            for name, q in queries.items():
                oldest = q(s)
                if isinstance(oldest, str):  # func.min over a coalesce loses the DateTime type
                    oldest = datetime.fromisoformat(oldest)
                period = policy.period(name)
                age = None if oldest is None else now - as_utc(oldest)
                out[name] = {
                    "policy": policy.texts[name],
                    "oldest": None if oldest is None else as_utc(oldest).isoformat(),
                    "age_hours": None if age is None else round(age.total_seconds() / 3600, 1),
                    "overdue": bool(age is not None and age > period),
                }
        return out


def dumps(report: PurgeReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
