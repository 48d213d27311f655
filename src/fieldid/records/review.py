"""Review items: things a person must decide, never decided by fieldid.

A *possible duplicate* is opened when an image enrolled for one person matches a different person
at or above the strict enrollment dedupe threshold. The image is enrolled as asked; nothing is
merged, relinked or dropped. A supervisor records a decision (``fieldid review resolve``), which is
audited (``review_resolve``); linking two people is a separate, explicit human action
(``fieldid person merge``, ``records/merge.py``), which resolves the item it names as
``same_person``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fieldid.access import Actor, require
from fieldid.gallery.schema import Person
from fieldid.records.schema import ReviewItem
from fieldid.records.sources import RecordsError
from fieldid.workspace import Workspace

POSSIBLE_DUPLICATE = "possible_duplicate"
#: Decisions a reviewer may record.
DECISIONS = ("different_people", "same_person", "wrong_image", "needs_more_information")


@dataclass(frozen=True)
class ReviewView:
    id: int
    kind: str
    state: str
    person_id: int | None
    person_external_id: str | None
    other_person_id: int | None
    other_person_external_id: str | None
    image_id: int | None
    score: float | None
    detail: dict[str, Any]
    created_at: datetime
    decision: str | None
    note: str | None
    resolved_by: str | None
    resolved_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"] = self.created_at.isoformat()
        d["resolved_at"] = None if self.resolved_at is None else self.resolved_at.isoformat()
        d["score"] = None if self.score is None else round(self.score, 4)
        return d


def open_duplicate_item(
    ws: Workspace,
    *,
    person_id: int,
    other_person_id: int,
    image_id: int,
    score: float,
    threshold: float,
    operator: str,
) -> int:
    """Open a possible-duplicate item and audit it (event ``enroll``, outcome noted)."""
    with ws.sessions.begin() as s:
        item = ReviewItem(
            kind=POSSIBLE_DUPLICATE,
            state="open",
            person_id=person_id,
            other_person_id=other_person_id,
            image_id=image_id,
            score=score,
            detail={"threshold": threshold, "model": str(ws.pipeline.model)},
            created_at=ws.clock.now(),
        )
        s.add(item)
        s.flush()
        item_id = item.id
    ws.audit.append(
        "enroll",
        operator=operator,
        payload={
            "outcome": "possible_duplicate_opened",
            "review_item": item_id,
            "person_id": person_id,
            "other_person_id": other_person_id,
            "image_id": image_id,
            "score": round(score, 6),
            "threshold": threshold,
        },
    )
    return item_id


def _view(s: Any, item: ReviewItem) -> ReviewView:
    ext = {
        p.id: p.external_id
        for p in s.scalars(
            select(Person).where(Person.id.in_([item.person_id, item.other_person_id]))
        )
    }
    return ReviewView(
        item.id,
        item.kind,
        item.state,
        item.person_id,
        ext.get(item.person_id),
        item.other_person_id,
        ext.get(item.other_person_id),
        item.image_id,
        item.score,
        dict(item.detail),
        item.created_at,
        item.decision,
        item.note,
        item.resolved_by,
        item.resolved_at,
    )


def list_review_items(
    ws: Workspace, *, state: str | None = "open", actor: Actor | None = None
) -> list[ReviewView]:
    if actor is not None:
        require(actor, "review")
    with ws.sessions() as s:
        q = select(ReviewItem).order_by(ReviewItem.id)
        if state is not None:
            q = q.where(ReviewItem.state == state)
        return [_view(s, i) for i in s.scalars(q)]


def resolve_review_item(
    ws: Workspace, item_id: int, *, decision: str, note: str, actor: Actor
) -> ReviewView:
    """Record a reviewer's decision. Nothing else changes: no person is merged or relinked."""
    require(actor, "review")
    if decision not in DECISIONS:
        raise RecordsError(
            f"unknown decision {decision!r}; choose one of {', '.join(DECISIONS)}",
            code="review.decision",
        )
    if not note.strip():
        raise RecordsError("a decision needs a note saying why", code="review.no_note")
    with ws.sessions.begin() as s:
        view = resolve_in_session(ws, s, item_id, decision=decision, note=note, actor=actor)
    audit_resolution(ws, view, actor)
    return view


def resolve_in_session(
    ws: Workspace, s: Any, item_id: int, *, decision: str, note: str, actor: Actor
) -> ReviewView:
    """Resolve an open item inside the caller's transaction (a person merge resolves its item in
    the same transaction as the merge); the caller audits it with :func:`audit_resolution` after
    the commit. Permission and decision are the caller's to check."""
    item = s.get(ReviewItem, item_id)
    if item is None:
        raise RecordsError(f"no review item {item_id}", code="review.not_found")
    if item.state != "open":
        raise RecordsError(
            f"review item {item_id} was resolved already ({item.decision})",
            code="review.resolved",
        )
    item.state = "resolved"
    item.decision = decision
    item.note = note
    item.resolved_by = actor.name
    item.resolved_at = ws.clock.now()
    s.flush()
    return _view(s, item)


def audit_resolution(ws: Workspace, view: ReviewView, actor: Actor) -> None:
    """The ``review_resolve`` audit entry of a resolved item."""
    ws.audit.append(
        "review_resolve",
        operator=actor.name,
        payload={
            "review_item": view.id,
            "kind": view.kind,
            "decision": view.decision,
            "note": view.note,
        },
    )
