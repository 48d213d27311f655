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
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.records.sources import RecordsError
from fieldid.store import Store, UnitOfWork
from fieldid.store.schema import Person, ReviewItem

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


def _view(s: Session, item: ReviewItem) -> ReviewView:
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
        None if item.person_id is None else ext.get(item.person_id),
        item.other_person_id,
        None if item.other_person_id is None else ext.get(item.other_person_id),
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
    store: Store, *, state: str | None = "open", actor: Actor | None = None
) -> list[ReviewView]:
    if actor is not None:
        require(actor, "review")
    with store.read() as s:
        return review_items(s, state=state)


def review_items(s: Session, *, state: str | None = "open") -> list[ReviewView]:
    """Review items (``state``: only those), oldest first, read through ``s``."""
    q = select(ReviewItem).order_by(ReviewItem.id)
    if state is not None:
        q = q.where(ReviewItem.state == state)
    return [_view(s, i) for i in s.scalars(q)]


def resolve_review_item(
    store: Store,
    item_id: int,
    *,
    decision: str,
    note: str,
    actor: Actor,
    uow: UnitOfWork | None = None,
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
    with store.using(uow) as u:
        return resolve_in(u, item_id, decision=decision, note=note, actor=actor)


def resolve_in(
    uow: UnitOfWork, item_id: int, *, decision: str, note: str, actor: Actor
) -> ReviewView:
    """Resolve an open item in ``uow`` and audit it there (``review_resolve``): a person merge
    resolves its item in the unit of work of the merge. Permission and decision are the
    caller's to check."""
    s = uow.session
    item = s.get(ReviewItem, item_id, with_for_update=True)
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
    item.resolved_at = uow.now()
    s.flush()
    view = _view(s, item)
    uow.audit(
        "review_resolve",
        operator=actor.name,
        payload={
            "review_item": view.id,
            "kind": view.kind,
            "decision": view.decision,
            "note": view.note,
        },
    )
    return view
