"""Supervisors' prior approvals for searches in sensitive areas.

A search whose cell lies in an area whose kind needs approval, with no approval for it, is
refused (``location.approval_required``) and, in the same unit of work as its audit entry, asks
for one (a ``pending`` row; a second refused try of the same operator, case and areas while one
is pending asks nothing new). A supervisor other than the operator approves or refuses it with a
written reason (:func:`decide`, audited ``location_approval`` in the same unit of work). An
approval is used by one search of the same operator and case in the same areas within
``approval_minutes`` of the decision (:func:`use`, in the search's unit of work); a request not
decided within that time expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.errors import FieldidError
from fieldid.location.areas import aware
from fieldid.location.cell import Cell
from fieldid.location.config import KIND_TEXT, MIN_REASON
from fieldid.store import UnitOfWork
from fieldid.store.schema import LocationApproval

DECISIONS = ("approve", "deny")


def _area_ids(areas: list[dict[str, Any]]) -> list[int]:
    return sorted(int(a["id"]) for a in areas)


def state_of(row: LocationApproval, now: datetime, minutes: int) -> str:
    """The approval's state now: pending and approved ones lapse after ``minutes``."""
    window = timedelta(minutes=minutes)
    if row.status == "pending":
        requested = aware(row.requested_at)
        assert requested is not None
        return "expired" if now >= requested + window else "pending"
    if row.status == "approved":
        expires = aware(row.expires_at)
        return "expired" if expires is not None and now >= expires else "approved"
    return row.status


def describe_areas(areas: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['name']} ({KIND_TEXT.get(a['kind'], a['kind'])})" for a in areas)


@dataclass(frozen=True)
class ApprovalView:
    id: int
    state: str
    operator: str
    purpose: str
    case_ref: str
    location: dict[str, Any]
    areas: list[dict[str, Any]]
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    expires_at: datetime | None
    search_id: str | None

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "approval_id": self.id,
            "state": self.state,
            "operator": self.operator,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "location": self.location,
            "areas": self.areas,
            "areas_text": describe_areas(self.areas),
            "requested_at": iso(self.requested_at),
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at),
            "reason": self.reason,
            "expires_at": iso(self.expires_at),
            "search_id": self.search_id,
        }


def view(row: LocationApproval, now: datetime, minutes: int) -> ApprovalView:
    requested = aware(row.requested_at)
    assert requested is not None
    return ApprovalView(
        row.id,
        state_of(row, now, minutes),
        row.operator,
        row.purpose,
        row.case_ref,
        dict(row.location),
        list(row.areas),
        requested,
        row.decided_by,
        aware(row.decided_at),
        row.reason,
        aware(row.expires_at),
        row.search_id,
    )


def find_usable(
    session: Session,
    operator: str,
    case_ref: str,
    areas: list[dict[str, Any]],
    now: datetime,
    minutes: int,
) -> LocationApproval | None:
    """An approval this operator may use now for a search in this case and these areas."""
    wanted = _area_ids(areas)
    rows = session.scalars(
        select(LocationApproval)
        .where(
            LocationApproval.status == "approved",
            LocationApproval.operator == operator,
            LocationApproval.case_ref == case_ref,
        )
        .order_by(LocationApproval.id)
    )
    for row in rows:
        if state_of(row, now, minutes) == "approved" and set(wanted) <= set(_area_ids(row.areas)):
            return row
    return None


def request(
    uow: UnitOfWork,
    *,
    operator: str,
    purpose: str,
    case_ref: str,
    cell: Cell,
    areas: list[dict[str, Any]],
    minutes: int,
) -> LocationApproval:
    """The pending request for this operator, case and areas (made now unless one is pending)."""
    now = uow.now()
    wanted = _area_ids(areas)
    for row in uow.session.scalars(
        select(LocationApproval).where(
            LocationApproval.status == "pending",
            LocationApproval.operator == operator,
            LocationApproval.case_ref == case_ref,
        )
    ):
        if state_of(row, now, minutes) == "pending" and _area_ids(row.areas) == wanted:
            return row
    row = LocationApproval(
        status="pending",
        operator=operator,
        purpose=purpose,
        case_ref=case_ref,
        location=cell.to_dict(),
        areas=areas,
        requested_at=now,
        request_seq=0,
    )
    uow.session.add(row)
    uow.flush()
    return row


def decide(
    uow: UnitOfWork, actor: Actor, approval_id: int, decision: str, reason: str, minutes: int
) -> ApprovalView:
    """A supervisor's decision on a pending request, with a written reason; audited
    ``location_approval`` in ``uow`` with the row it changes."""
    require(actor, "location_approve")
    if decision not in DECISIONS:
        raise FieldidError("decision must be 'approve' or 'deny'", code="location.decision")
    reason = reason.strip()
    if len(reason) < MIN_REASON or "\x00" in reason:
        raise FieldidError(
            f"give the reason for the decision (at least {MIN_REASON} characters)",
            code="location.reason",
        )
    row = uow.session.get(LocationApproval, approval_id)
    if row is None:
        raise FieldidError(f"no approval request {approval_id}", code="location.not_found")
    now = uow.now()
    state = state_of(row, now, minutes)
    if state != "pending":
        raise FieldidError(
            f"approval request {approval_id} is {state}, not waiting for a decision",
            code="location.decided",
            state=state,
        )
    if row.operator == actor.name:
        raise FieldidError(
            "a search in a sensitive area needs another person's approval: you asked for it",
            code="location.own_request",
        )
    row.status = "approved" if decision == "approve" else "denied"
    row.decided_by = actor.name
    row.decided_at = now
    row.reason = reason
    row.expires_at = now + timedelta(minutes=minutes) if decision == "approve" else None
    uow.flush()
    entry = uow.audit(
        "location_approval",
        operator=actor.name,
        purpose=row.purpose,
        case_ref=row.case_ref,
        payload={
            "approval_id": row.id,
            "decision": decision,
            "reason": reason,
            "role": actor.role.value,
            "requested_by": row.operator,
            "request_seq": row.request_seq,
            "location": dict(row.location),
            "areas": list(row.areas),
            "expires_at": None if row.expires_at is None else row.expires_at.isoformat(),
        },
    )
    row.decision_seq = entry.seq
    return view(row, now, minutes)


def use(uow: UnitOfWork, approval_id: int, search_id: str, minutes: int) -> None:
    """Mark the approval used by ``search_id`` (in the search's unit of work); refused if it
    was used or lapsed meanwhile."""
    q = select(LocationApproval).where(LocationApproval.id == approval_id).with_for_update()
    row = uow.session.scalars(q).one_or_none()
    if row is None or state_of(row, uow.now(), minutes) != "approved":
        raise FieldidError(
            "the supervisor's approval was used or lapsed meanwhile: ask again",
            code="location.approval_required",
        )
    row.status = "used"
    row.search_id = search_id


def list_approvals(
    session: Session, now: datetime, minutes: int, *, state: str | None = None, limit: int = 200
) -> list[ApprovalView]:
    """Approval requests, newest first (``state``: only those in that state now)."""
    rows = session.scalars(
        select(LocationApproval).order_by(LocationApproval.id.desc()).limit(limit)
    )
    out = [view(r, now, minutes) for r in rows]
    return [v for v in out if state is None or v.state == state]
