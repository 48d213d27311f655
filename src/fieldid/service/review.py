"""Finding the work: a supervisor's review queue and an operator's own searches (pages and API).

- ``/review`` (supervisors): confirmations waiting for a second person, confirmations blocked by
  a document conflict (both acted on at ``/outcome/{id}``, where the forms are), and open
  possible-duplicate review items with a form to record a decision.
- ``/searches``: the operator's own searches, newest first (supervisors: everyone's).

The decisions go through the same cores as every other surface (the Adjudicator, and
:func:`fieldid.records.review.resolve_review_item`), which enforce and audit their rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fieldid.errors import FieldidError
from fieldid.service import queues, schemas, views
from fieldid.service.api import ERRORS, IMAGE, NO_STORE, PROBLEM
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.db import Uow
from fieldid.service.guards import MAX_ID, as_id
from fieldid.service.problems import status_for
from fieldid.service.state import AppState
from fieldid.service.web import _when, render
from fieldid.store import UnitOfWork

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1")


def resolve_item(
    state: AppState,
    uow: UnitOfWork,
    principal: Principal,
    item_id: int,
    decision: str,
    note: str,
) -> dict[str, Any]:
    """Record a reviewer's decision on a review item (audited ``review_resolve`` by the core)."""
    from fieldid.records.review import resolve_review_item

    with state.work_lock:
        view = resolve_review_item(
            state.workspace.store,
            item_id,
            decision=decision.strip(),
            note=note.strip(),
            actor=principal.actor,
            uow=uow,
        )
    state.metrics.outcome("review_resolve", view.decision or "")
    return queues.review_item_answer(view)


def merge_item(
    state: AppState, uow: UnitOfWork, principal: Principal, item_id: int, keep: int, reason: str
) -> dict[str, Any]:
    """Merge the two people of a possible-duplicate item, keeping ``keep`` (one of the two): the
    explicit human action a "same person" decision calls for. The core
    (:func:`fieldid.records.merge.merge_people`) checks the role and the reason, moves images,
    templates, records and links, resolves the item and audits ``person_merge``."""
    from fieldid.records.merge import merge_people
    from fieldid.records.review import review_items

    ws = state.workspace
    item = next((i for i in review_items(uow.session, state=None) if i.id == item_id), None)
    if item is None:
        raise FieldidError(f"no review item {item_id}", code="review.not_found")
    pair = {item.person_id, item.other_person_id}
    if keep not in pair or None in pair:
        raise FieldidError(
            "keep one of the item's two people (both must still be in the gallery)",
            code="merge.keep",
        )
    (merge,) = pair - {keep}
    assert merge is not None
    with state.work_lock:
        result = merge_people(
            ws.store,
            ws.gallery,
            keep=keep,
            merge=merge,
            actor=principal.actor,
            reason=reason.strip(),
            review_item=item_id,
            uow=uow,
        )
    state.metrics.outcome("person_merge", "merged")
    return result.to_dict()


# --- pages ---------------------------------------------------------------------------------------


def _review_context(uow: UnitOfWork, principal: Principal, **extra: Any) -> dict[str, Any]:
    q = queues.review_queue(uow.session, principal.actor)
    for a in q["adjudications"] + q["own_adjudications_waiting"]:
        a["at_text"] = _when(a["at"])
    for it in q["review_items"]:
        it["created_at_text"] = _when(it["created_at"])
    return {
        "q": q,
        "decision_text": queues.DECISION_TEXT,
        "resolved": None,
        "merged": None,
        "error": None,
        "error_item": None,
        "form": {},
        **extra,
    }


@pages.get("/review")
def review_page(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("review", page=True))],
    resolved: str = "",
    merged: str = "",
) -> HTMLResponse:
    """What waits for a supervisor, newest first."""
    s = uow.session
    done, joined = as_id(resolved), as_id(merged)
    done = done if done is not None and queues.is_resolved(s, done) else None
    joined = joined if joined is not None and queues.is_resolved(s, joined) else None
    ctx = _review_context(uow, principal, resolved=done, merged=joined)
    _audit_queue(request, uow, principal, ctx["q"])
    return render(request, "review.html", ctx)


async def _review_form(
    request: Request,
    uow: UnitOfWork,
    principal: Principal,
    item_id: int,
    act: Callable[[AppState, dict[str, str]], object],
    done: str,
) -> Response:
    """Run a review form's action through the core; on a refusal show the queue again with the
    reason and what was entered (401/403/404 go to the error page)."""
    state = app_state(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        await run_in_threadpool(act, state, form)
    except FieldidError as e:
        if status_for(e.code) in (401, 403, 404):
            raise
        err = e
        ctx = await run_in_threadpool(
            lambda: _review_context(uow, principal, error=err, error_item=item_id, form=form)
        )
        return render(request, "review.html", ctx, status=status_for(e.code))
    return RedirectResponse(f"/review?{done}={item_id}", status_code=303)


@pages.post("/review/items/{item_id}")
async def review_item_form(
    item_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("review", page=True))],
) -> Response:
    """The web form's decision on a possible duplicate: same core, same audit as the API."""

    def act(state: AppState, form: dict[str, str]) -> object:
        decision, note = form.get("decision", ""), form.get("note", "")
        return resolve_item(state, uow, principal, item_id, decision, note)

    return await _review_form(request, uow, principal, item_id, act, "resolved")


@pages.post("/review/items/{item_id}/merge")
async def review_item_merge_form(
    item_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("review", page=True))],
) -> Response:
    """The web form's merge of a possible duplicate's two people (supervisors, with a reason)."""

    def act(state: AppState, form: dict[str, str]) -> object:
        keep = form.get("keep", "")
        kept = as_id(keep)
        if kept is None:
            raise FieldidError("choose which person to keep", code="merge.keep")
        return merge_item(state, uow, principal, item_id, kept, form.get("reason", ""))

    return await _review_form(request, uow, principal, item_id, act, "merged")


def _page_number(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 9 and int(raw) else 1


@pages.get("/searches")
def searches_page(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    page: str = "1",
    status: str = "",
) -> HTMLResponse:
    """The operator's own searches, newest first (supervisors: everyone's), 50 a page."""
    wanted = status if status in queues.SEARCH_STATUSES else None
    got = queues.list_searches(uow.session, principal, page=_page_number(page), status=wanted)
    _audit_list(request, uow, principal, got)
    for r in got.searches:
        r["at_text"] = _when(r["at"])
    return render(request, "searches.html", {"p": got, "status": wanted})


# --- API -----------------------------------------------------------------------------------------


class ReviewDecisionIn(BaseModel):
    decision: str = Field(
        max_length=40,
        description="different_people | same_person | wrong_image | needs_more_information",
    )
    note: str = Field(max_length=4000, description="Why: every decision needs a note.")


@api.get("/reviews", tags=["review"], response_model=schemas.ReviewQueue, responses=ERRORS)
def get_reviews(
    request: Request, uow: Uow, principal: Annotated[Principal, Depends(Need("review"))]
) -> dict[str, Any]:
    """What waits for this supervisor, newest first: ``adjudications`` (confirmations waiting
    for a second person, or blocked by a document conflict; act on them with
    ``POST /api/v1/searches/{id}/adjudications/{n}/second`` or ``.../override``), their own
    confirmations waiting for someone else (``own_adjudications_waiting``), and open
    possible-duplicate ``review_items`` (resolve with ``POST /api/v1/review-items/{id}``).
    Audited (``review_view``)."""
    q = queues.review_queue(uow.session, principal.actor)
    _audit_queue(request, uow, principal, q)
    return q


@api.post(
    "/review-items/{item_id}",
    tags=["review"],
    response_model=schemas.ResolvedReviewItem,
    responses={**ERRORS, 404: PROBLEM, 409: PROBLEM},
)
def post_review_item(
    item_id: int,
    body: ReviewDecisionIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("review"))],
) -> dict[str, Any]:
    """Record a decision on a review item, with a note; audited (``review_resolve``). Nothing
    is merged, relinked or deleted: the answer says ``merged: false``. Refusals: 422
    ``review.decision`` / ``review.no_note``, 404 ``review.not_found``, 409 ``review.resolved``."""
    return resolve_item(app_state(request), uow, principal, item_id, body.decision, body.note)


class MergeIn(BaseModel):
    keep: int = Field(
        ge=1, le=MAX_ID, description="The person to keep: one of the item's two person ids."
    )
    reason: str = Field(max_length=4000, description="Why they are one person (15+ characters).")


@api.post(
    "/review-items/{item_id}/merge",
    tags=["review"],
    response_model=schemas.MergeResult,
    responses={**ERRORS, 404: PROBLEM, 409: PROBLEM},
)
def post_review_item_merge(
    item_id: int,
    body: MergeIn,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("review"))],
) -> dict[str, Any]:
    """Merge the two people of a possible-duplicate item into ``keep``: their images, templates,
    records and links move, the other person is removed, the history is kept (``person_merges``),
    the item is resolved as ``same_person`` and ``person_merge`` is audited. Refusals: 422
    ``merge.*`` (short reason, synthetic and real mixed, an open confirmation naming the person),
    404 ``review.not_found``."""
    return merge_item(app_state(request), uow, principal, item_id, body.keep, body.reason)


@api.get("/searches", tags=["search"], response_model=schemas.SearchPage, responses=ERRORS)
def get_searches(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
    page: Annotated[int, Query(ge=1, le=2**31)] = 1,
    per_page: Annotated[int, Query(ge=1, le=queues.MAX_PER_PAGE)] = queues.PER_PAGE,
    status: Annotated[
        Literal[
            "open",
            "awaiting_second",
            "blocked_conflict",
            "identified",
            "not_identified",
            "inconclusive",
            "no_lead",
            "refused",
        ]
        | None,
        Query(description="Only searches in this state (e.g. open)."),
    ] = None,
) -> dict[str, Any]:
    """The operator's own searches, newest first; a supervisor (``review``) sees everyone's.
    Each with its state in words, candidate count, receipt code and links."""
    got = queues.list_searches(uow.session, principal, page=page, per_page=per_page, status=status)
    _audit_list(request, uow, principal, got)
    return got.to_dict()


def _audit_list(request: Request, uow: UnitOfWork, principal: Principal, got: Any) -> None:
    """Listing searches shows who searched, for which case and purpose: audited
    (``search_list``) with the searches shown."""
    views.audit_access(
        uow,
        app_state(request).workspace.store,
        principal,
        "search_list",
        None,
        {
            "scope": got.scope,
            "page": got.page,
            "status": got.status,
            "searches": [r["search_id"] for r in got.searches],
        },
    )


def _audit_queue(
    request: Request, uow: UnitOfWork, principal: Principal, q: dict[str, Any]
) -> None:
    """The review queue shows leads (names, scores) and possible duplicates: audited
    (``review_view``) with what was shown."""
    views.audit_access(
        uow,
        app_state(request).workspace.store,
        principal,
        "review_view",
        None,
        {
            "adjudications": [a["adjudication_id"] for a in q["adjudications"]],
            "own_adjudications_waiting": [
                a["adjudication_id"] for a in q["own_adjudications_waiting"]
            ],
            "review_items": [i["id"] for i in q["review_items"]],
        },
    )


@api.get(
    "/review-items/{item_id}/photos/{side}",
    tags=["review"],
    responses=IMAGE,
    response_class=Response,
)
def review_item_photo(
    item_id: int,
    side: Literal["enrolled", "matched"],
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("review"))],
) -> Response:
    """The enrolled photo of one of a possible-duplicate item's two people (``enrolled``: the
    person enrolled; ``matched``: the person their image matched), for the supervisor deciding
    it: audited (``photo_access``, kind ``review_item``, with the item as the reason)."""
    from fieldid.store.schema import ReviewItem

    state = app_state(request)
    item = uow.session.get(ReviewItem, item_id)
    if item is None:
        raise FieldidError(f"no review item {item_id}", code="review.not_found")
    person = item.person_id if side == "enrolled" else item.other_person_id
    if person is None:
        raise FieldidError("that person is no longer in the gallery", code="person.not_found")
    data = views.person_photo(uow.session, person)
    views.audit_access(
        uow,
        state.workspace.store,
        principal,
        "photo_access",
        None,
        {
            "kind": "review_item",
            "review_item": item_id,
            "side": side,
            "person_id": person,
            "reason": f"deciding possible-duplicate review item {item_id}",
        },
    )
    return Response(views._jpeg(data), media_type="image/jpeg", headers=NO_STORE)
