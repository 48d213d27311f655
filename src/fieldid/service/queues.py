"""What waits for someone: a supervisor's review queue, and an operator's own searches.

Read-only views over ``adjudications``, ``searches``, ``search_candidates``, ``review_items`` and
``persons``, through the session they are given (the request's unit of work), shaped for the
``/review`` and ``/searches`` pages and their API twins. Nothing here decides or changes
anything: the decisions themselves go through :class:`fieldid.adjudication.service.Adjudicator` and
:func:`fieldid.records.review.resolve_review_item`, which enforce and audit their rules.

Two rules are applied here because a list that offered more would mislead:

- a supervisor is never offered their own first confirmation for a second confirmation, nor
  their own blocked confirmation for an override (the adjudicator refuses both anyway); those
  are listed apart, as waiting for someone else;
- an officer's search list holds only the searches they ran; a supervisor (``review``) sees all,
  the same rule as :func:`fieldid.service.views.check_visible`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.adjudication.states import STATE_TEXT
from fieldid.records.review import review_items
from fieldid.service.auth import Principal
from fieldid.service.views import iso, links
from fieldid.store.schema import (
    AdjudicationRecord,
    EnrollmentImage,
    Person,
    ReviewItem,
    SearchCandidate,
    SearchRecord,
)

#: Adjudication states that wait for a supervisor.
WAITING_STATES = ("pending_second", "blocked_conflict")

#: How a waiting adjudication reads on screen.
WAITING_TEXT = {
    "pending_second": "a confirmation waits for a second person (two-person rule)",
    "blocked_conflict": (
        "blocked: a document the person presented conflicts with the candidate's records; "
        "waits for a supervisor's override with a written reason, or a rejection"
    ),
}

#: How a search's state reads on screen: never a verdict about the person.
STATUS_TEXT = {str(k): v for k, v in STATE_TEXT.items()}

#: Search states the list can be filtered by (``?status=``).
SEARCH_STATUSES = tuple(STATUS_TEXT)
#: Searches per page of ``/searches`` (and the API's default).
PER_PAGE = 50
MAX_PER_PAGE = 200

#: Said wherever a possible-duplicate decision is recorded: a decision changes no one's data.
NOTHING_MERGED = (
    "Recording a decision merges nothing: both people, their images and their records stay as "
    "they are. Linking two people is a separate, explicit action."
)

#: Decisions a reviewer may record on a possible duplicate, in words for the form.
DECISION_TEXT = {
    "different_people": "Different people",
    "same_person": "The same person (recorded only: nothing is merged)",
    "wrong_image": "Wrong image enrolled (recorded only: nothing is deleted)",
    "needs_more_information": "Needs more information",
}


# --- adjudications waiting for a supervisor ----------------------------------------------------


def _adjudication_row(
    r: AdjudicationRecord,
    search: SearchRecord,
    cand: SearchCandidate | None,
    person: Person | None,
) -> dict[str, Any]:
    return {
        "adjudication_id": r.id,
        "search_id": search.public_id,
        "state": r.state,
        "state_text": WAITING_TEXT.get(r.state, r.state),
        "decision": r.decision,
        "by": r.actor_name,
        "by_role": r.actor_role,
        "at": iso(r.at),
        "reason": r.reason,
        "conflicts": json.loads(r.conflicts),
        "override_by": r.override_by,
        "search_operator": search.operator,
        "purpose": search.purpose,
        "case_ref": search.case_ref,
        "training": bool(search.training),
        "candidate": None
        if r.person_id is None
        else {
            "person_id": r.person_id,
            "external_id": cand.external_id if cand else None,
            # Training candidates belong to the training gallery, not this one's persons.
            "display_name": person.display_name
            if person and not search.training
            else (cand.external_id if cand else f"person {r.person_id}"),
            "synthetic": bool(person.synthetic) if person and not search.training else None,
            "rank": cand.rank if cand else None,
            "score": None if cand is None else round(cand.score, 4),
        },
        "links": {
            "outcome": f"/outcome/{search.public_id}",
            "search": f"/api/v1/searches/{search.public_id}",
            "second": f"/api/v1/searches/{search.public_id}/adjudications/{r.id}/second",
            "override": f"/api/v1/searches/{search.public_id}/adjudications/{r.id}/override",
        },
    }


def waiting_adjudications(s: Session, actor: Actor) -> dict[str, list[dict[str, Any]]]:
    """Adjudications in ``pending_second`` or ``blocked_conflict``, newest first, split into
    ``for_you`` (someone else's, which this supervisor may act on) and ``yours`` (their own,
    waiting for someone else)."""
    rows = list(
        s.execute(
            select(AdjudicationRecord, SearchRecord)
            .join(SearchRecord, SearchRecord.id == AdjudicationRecord.search_id)
            .where(AdjudicationRecord.state.in_(WAITING_STATES))
            .order_by(AdjudicationRecord.at.desc(), AdjudicationRecord.id.desc())
        ).all()
    )
    pairs = {(a.search_id, a.person_id) for a, _ in rows if a.person_id is not None}
    cands: dict[tuple[int, int], SearchCandidate] = {}
    if pairs:
        for c in s.scalars(
            select(SearchCandidate).where(
                SearchCandidate.search_id.in_(sorted({sid for sid, _ in pairs}))
            )
        ):
            cands[(c.search_id, c.person_id)] = c
    people = {
        p.id: p
        for p in s.scalars(select(Person).where(Person.id.in_(sorted({pid for _, pid in pairs}))))
    }
    out: dict[str, list[dict[str, Any]]] = {"for_you": [], "yours": []}
    for a, search in rows:
        key = (a.search_id, a.person_id) if a.person_id is not None else None
        row = _adjudication_row(
            a,
            search,
            cands.get(key) if key else None,
            people.get(a.person_id) if a.person_id is not None else None,
        )
        out["yours" if a.actor_name == actor.name else "for_you"].append(row)
    return out


# --- possible duplicates -----------------------------------------------------------------------


def open_review_items(s: Session, actor: Actor) -> list[dict[str, Any]]:
    """Open review items, newest first, each with both people's display names, external ids
    and whether an enrolled photo is on file (served, audited, by
    ``/api/v1/review-items/{id}/photos/{side}``)."""
    require(actor, "review")
    items = review_items(s, state="open")
    ids = {i for it in items for i in (it.person_id, it.other_person_id) if i is not None}
    people = {p.id: p for p in s.scalars(select(Person).where(Person.id.in_(sorted(ids))))}
    with_photo = set(
        s.scalars(
            select(EnrollmentImage.person_id)
            .where(
                EnrollmentImage.person_id.in_(sorted(ids)),
                EnrollmentImage.thumbnail.is_not(None),
            )
            .distinct()
        )
    )

    def who(item: int, side: str, pid: int | None, external_id: str | None) -> dict[str, Any]:
        p = people.get(pid) if pid is not None else None
        return {
            "person_id": pid,
            "external_id": external_id,
            "display_name": p.display_name if p else None,
            "synthetic": bool(p.synthetic) if p else None,
            "in_gallery": p is not None,
            "has_photo": pid in with_photo,
            "photo": f"/api/v1/review-items/{item}/photos/{side}" if pid in with_photo else None,
        }

    out = []
    for it in sorted(items, key=lambda i: (i.created_at, i.id), reverse=True):
        d = it.to_dict()
        d["created_at"] = iso(it.created_at)
        d["enrolled"] = who(it.id, "enrolled", it.person_id, it.person_external_id)
        d["matched"] = who(it.id, "matched", it.other_person_id, it.other_person_external_id)
        d["links"] = {"resolve": f"/api/v1/review-items/{it.id}", "page": f"/review#item-{it.id}"}
        out.append(d)
    return out


def is_resolved(s: Session, item_id: int) -> bool:
    """Whether a review item exists and has a decision (the page says so only then)."""
    item = s.get(ReviewItem, item_id)
    return item is not None and item.state == "resolved"


def review_item_answer(view: Any) -> dict[str, Any]:
    """A resolved item as the API returns it, with the reminder that nothing was merged."""
    d: dict[str, Any] = view.to_dict()
    d["created_at"] = iso(view.created_at)
    d["resolved_at"] = iso(view.resolved_at)
    d["merged"] = False
    d["notice"] = NOTHING_MERGED
    return d


def waiting_count(s: Session, actor: Actor) -> int:
    """What ``Review (N)`` counts: adjudications this supervisor may act on, plus open review
    items. Two counts in one statement, cheap enough for every page a supervisor opens."""
    adjudications = (
        select(func.count())
        .select_from(AdjudicationRecord)
        .where(
            AdjudicationRecord.state.in_(WAITING_STATES),
            AdjudicationRecord.actor_name != actor.name,
        )
        .scalar_subquery()
    )
    items = (
        select(func.count())
        .select_from(ReviewItem)
        .where(ReviewItem.state == "open")
        .scalar_subquery()
    )
    row = s.execute(select(adjudications, items)).one()
    return int(row[0] or 0) + int(row[1] or 0)


def review_queue(s: Session, actor: Actor) -> dict[str, Any]:
    """Everything ``/review`` and ``GET /api/v1/reviews`` show."""
    adj = waiting_adjudications(s, actor)
    items = open_review_items(s, actor)
    return {
        "adjudications": adj["for_you"],
        "own_adjudications_waiting": adj["yours"],
        "review_items": items,
        "counts": {
            "adjudications": len(adj["for_you"]),
            "review_items": len(items),
            "total": len(adj["for_you"]) + len(items),
        },
        "decisions": list(DECISION_TEXT),
        "notice": NOTHING_MERGED,
    }


# --- searches ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPage:
    searches: list[dict[str, Any]]
    page: int
    per_page: int
    total: int
    #: Whose searches: the operator's own, or everyone's (supervisors).
    scope: str
    status: str | None

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {
            "searches": self.searches,
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
            "scope": self.scope,
            "status": self.status,
        }


def search_status_text(rec: SearchRecord) -> str:
    """A search's outcome and state in words (never a verdict about the person)."""
    if rec.outcome == "refused":
        return f"refused: the photo could not be searched ({rec.refusal_code or 'no reason kept'})"
    if rec.status == "open" and rec.outcome == "no_candidate_above_threshold":
        return "open: no candidate at or above the threshold; close it as no lead"
    return STATUS_TEXT.get(rec.status, rec.status)


def list_searches(
    s: Session,
    principal: Principal,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
    status: str | None = None,
) -> SearchPage:
    """The principal's own searches (everyone's for ``review``), newest first, one page."""
    everyone = principal.can("review")
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    where = []
    if not everyone:
        where.append(SearchRecord.operator == principal.actor.name)
    if status is not None:
        where.append(SearchRecord.status == status)
    total = int(s.scalar(select(func.count()).select_from(SearchRecord).where(*where)) or 0)
    recs = list(
        s.scalars(
            select(SearchRecord)
            .where(*where)
            .order_by(SearchRecord.started_at.desc(), SearchRecord.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    ids = [r.id for r in recs]
    counts = dict(
        s.execute(
            select(SearchCandidate.search_id, func.count())
            .where(SearchCandidate.search_id.in_(ids))
            .group_by(SearchCandidate.search_id)
        ).all()
    )
    waiting = dict(
        s.execute(
            select(AdjudicationRecord.search_id, AdjudicationRecord.state).where(
                AdjudicationRecord.search_id.in_(ids),
                AdjudicationRecord.state.in_(WAITING_STATES),
            )
        ).all()
    )
    rows = [
        {
            "search_id": r.public_id,
            "at": iso(r.started_at),
            "operator": r.operator,
            "purpose": r.purpose,
            "case_ref": r.case_ref,
            "outcome": r.outcome,
            "status": r.status,
            "waiting": waiting.get(r.id),
            "status_text": search_status_text(r),
            "candidates": int(counts.get(r.id, 0)),
            "list_kind": r.list_kind,
            "training": bool(r.training),
            "receipt_code": r.receipt_code,
            "links": links(r.public_id, r.receipt_code),
        }
        for r in recs
    ]
    return SearchPage(rows, page, per_page, total, "all" if everyone else "own", status)
