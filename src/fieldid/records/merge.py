"""Merging two people: a supervisor's explicit, audited decision that two fieldid people are one.

Enrollment dedupe never merges: an image that matches a different person above the strict
threshold opens a possible-duplicate review item (``records/review.py``). Acting on "same person"
is this module. :func:`merge_people`:

- needs the ``review`` permission (supervisor) and a written reason (at least
  :data:`MIN_MERGE_REASON` characters, like an override);
- refuses (codes ``merge.*``) the same person twice, an unknown person, a synthetic person with a
  real one (synthetic data is never attached to a real person, nor the reverse), a merged person
  with an adjudication still waiting on a second confirmation or an override (that decision names
  the person being removed: finish it first), and a review item about other people or decided
  otherwise;
- moves the merged person's enrolled images, templates (same ids and vectors, so the vector index
  is carried over, not rebuilt), records and source links to the kept person. An image the kept
  person already holds byte for byte (same SHA-256; the usual case when two sources sent the same
  photo) is not moved but deleted with its template, its provenance kept in the merge row;
- re-points review items that named the merged person to the kept one, noting it in their detail,
  and resolves the review item it names as ``same_person`` with a note pointing at the merge, in
  the same transaction;
- deletes the merged ``persons`` row and keeps a ``person_merges`` row: the merged person's
  external id, display name and synthetic flag as they were, who, role, when, why, the review
  item and what moved;
- is audited (``person_merge``) in the same unit of work as the change, with both people's rows
  locked: the merge and its audit entry exist together or not at all.

History is not rewritten: searches keep the person ids they recorded. Whoever reads it by the old
identity follows ``person_merges`` (``store/repos/lineage.py``): the redress export by the merged
person's old external id reaches the kept person and lists searches recorded under either; the
records conflict check of an open search that showed the merged person compares with the kept
person's records; enrolling or importing under the old external id reaches the kept person.

A merge is kept in history, not undone in place: the merge row and the audit entry say who was
merged, by whom, why and what moved (the row lists the moved image, template, record and link
ids, enough to split the person again). A split command is not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.gallery.enroll import POSSIBLE_DUPLICATE
from fieldid.gallery.store import Gallery
from fieldid.records.review import resolve_in
from fieldid.records.sources import RecordsError
from fieldid.store import Store, UnitOfWork
from fieldid.store.repos import lineage
from fieldid.store.schema import (
    AdjudicationRecord,
    EnrollmentImage,
    Person,
    PersonLink,
    PersonMerge,
    Record,
    ReviewItem,
    SearchCandidate,
    TemplateRow,
)

#: The shortest reason a merge is accepted with (as for a supervisor's override).
MIN_MERGE_REASON = 15
#: Adjudication states that still wait for a person's action.
_OPEN_ADJUDICATION = ("pending_second", "blocked_conflict")


@dataclass(frozen=True)
class MergeResult:
    """What a merge did (also what ``fieldid person merge --json`` prints)."""

    merge_id: int
    kept_person_id: int
    kept_external_id: str
    merged_person_id: int
    merged_external_id: str
    merged_display_name: str
    synthetic: bool
    images_moved: int
    images_dropped: int
    templates_moved: int
    templates_dropped: int
    records_moved: int
    links_moved: int
    review_item: int | None
    review_items_repointed: list[int]
    by: str
    role: str
    at: datetime
    reason: str
    audit_seq: int
    #: False when no index was at hand to carry over; the next search rebuilds it.
    index_carried: bool

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["at"] = self.at.isoformat()
        return d


@dataclass(frozen=True)
class MergeView:
    """One row of a person's merge history."""

    merge_id: int
    kept_person_id: int
    kept_external_id: str
    merged_person_id: int
    merged_external_id: str
    merged_display_name: str
    merged_synthetic: bool
    by: str
    role: str
    at: datetime
    reason: str
    review_item: int | None
    counts: dict[str, int]
    detail: dict[str, Any]
    audit_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["at"] = self.at.isoformat()
        return d


@dataclass
class _Plan:
    kept_external_id: str
    merged_external_id: str
    merged_display_name: str
    synthetic: bool
    #: merged image id -> the kept person's image with the same bytes (dropped, not moved)
    dropped_images: dict[int, int] = field(default_factory=dict)
    dropped_detail: list[dict[str, Any]] = field(default_factory=list)
    moved: dict[str, list[int]] = field(
        default_factory=lambda: {"images": [], "templates": [], "records": [], "links": []}
    )
    templates_dropped: list[int] = field(default_factory=list)
    review_items: list[int] = field(default_factory=list)
    resolve_item: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "images_moved": len(self.moved["images"]),
            "images_dropped": len(self.dropped_images),
            "templates_moved": len(self.moved["templates"]),
            "templates_dropped": len(self.templates_dropped),
            "records_moved": len(self.moved["records"]),
            "links_moved": len(self.moved["links"]),
        }


def _refuse(code: str, message: str, **details: Any) -> RecordsError:
    return RecordsError(message, code=f"merge.{code}", **details)


def _person(s: Session, person_id: int, role: str) -> Person:
    p = s.get(Person, person_id)
    if p is not None:
        return p
    gone = s.scalars(
        select(PersonMerge)
        .where(PersonMerge.merged_person_id == person_id)
        .order_by(PersonMerge.id.desc())
        .limit(1)
    ).first()
    hint = (
        ""
        if gone is None
        else f" (person {person_id}, {gone.merged_external_id}, was merged into "
        f"{gone.kept_external_id} by merge {gone.id})"
    )
    raise _refuse(
        "unknown_person", f"no person {person_id} to {role}{hint}", person_id=person_id, role=role
    )


def _plan(s: Session, keep: int, merge: int, review_item: int | None) -> _Plan:
    kept, merged = _person(s, keep, "keep"), _person(s, merge, "merge")
    if kept.synthetic != merged.synthetic:
        which = {True: "synthetic", False: "real"}
        raise _refuse(
            "synthetic_mix",
            f"{merged.external_id} is {which[merged.synthetic]} and {kept.external_id} is "
            f"{which[kept.synthetic]}: synthetic data is never attached to a real person, nor "
            "the reverse",
            keep=keep,
            merge=merge,
        )
    open_adj = s.scalars(
        select(AdjudicationRecord.id)
        .join(
            SearchCandidate,
            (SearchCandidate.search_id == AdjudicationRecord.search_id)
            & (SearchCandidate.person_id == AdjudicationRecord.person_id),
        )
        .where(
            AdjudicationRecord.person_id == merge,
            SearchCandidate.external_id == merged.external_id,
            AdjudicationRecord.state.in_(_OPEN_ADJUDICATION),
        )
        .order_by(AdjudicationRecord.id)
    ).all()
    if open_adj:
        raise _refuse(
            "open_adjudication",
            f"adjudication(s) {', '.join(map(str, open_adj))} about {merged.external_id} still "
            "wait for a second confirmation or an override; finish them before merging",
            adjudications=list(open_adj),
        )
    plan = _Plan(kept.external_id, merged.external_id, merged.display_name, merged.synthetic)
    if review_item is not None:
        item = s.get(ReviewItem, review_item)
        if item is None:
            raise _refuse("review_not_found", f"no review item {review_item}")
        if item.kind != POSSIBLE_DUPLICATE or {item.person_id, item.other_person_id} != {
            keep,
            merge,
        }:
            raise _refuse(
                "review_mismatch",
                f"review item {review_item} is not a possible duplicate of these two people",
                review_item=review_item,
            )
        if item.state != "open" and item.decision != "same_person":
            raise _refuse(
                "review_resolved",
                f"review item {review_item} was decided {item.decision}, not same_person; "
                "a merge cannot contradict it",
                review_item=review_item,
            )
        plan.resolve_item = item.state == "open"
    kept_sha = dict(
        s.execute(
            select(EnrollmentImage.sha256, EnrollmentImage.id).where(
                EnrollmentImage.person_id == keep
            )
        ).all()
    )
    for im in s.scalars(
        select(EnrollmentImage)
        .where(EnrollmentImage.person_id == merge)
        .order_by(EnrollmentImage.id)
    ):
        if im.sha256 in kept_sha:
            plan.dropped_images[im.id] = kept_sha[im.sha256]
            plan.dropped_detail.append(
                {
                    "image_id": im.id,
                    "same_as_image": kept_sha[im.sha256],
                    "sha256": im.sha256,
                    "source": im.source,
                    "provenance": im.provenance,
                    "record_id": im.record_id,
                    "enrolled_at": im.created_at.isoformat(),
                }
            )
        else:
            plan.moved["images"].append(im.id)
    for tid, image_id in s.execute(
        select(TemplateRow.id, TemplateRow.image_id)
        .where(TemplateRow.person_id == merge)
        .order_by(TemplateRow.id)
    ):
        if image_id in plan.dropped_images:
            plan.templates_dropped.append(tid)
        else:
            plan.moved["templates"].append(tid)
    for name, table in (("records", Record), ("links", PersonLink)):
        plan.moved[name] = list(
            s.scalars(select(table.id).where(table.person_id == merge).order_by(table.id))
        )
    plan.review_items = list(
        s.scalars(
            select(ReviewItem.id)
            .where((ReviewItem.person_id == merge) | (ReviewItem.other_person_id == merge))
            .order_by(ReviewItem.id)
        )
    )
    return plan


def merge_people(
    store: Store,
    gallery: Gallery,
    *,
    keep: int,
    merge: int,
    actor: Actor,
    reason: str,
    review_item: int | None = None,
    uow: UnitOfWork | None = None,
) -> MergeResult:
    """Merge person ``merge`` into person ``keep`` (see the module doc for what moves and why),
    in one unit of work with its audit entry (``uow``: the caller's); the gallery's index is
    carried over after the commit."""
    require(actor, "review")
    reason = reason.strip()
    if len(reason) < MIN_MERGE_REASON:
        raise _refuse(
            "reason",
            f"a merge needs a reason of at least {MIN_MERGE_REASON} characters saying why these "
            "are one person",
        )
    if keep == merge:
        raise _refuse("same_person", f"person {keep} cannot be merged into itself")
    with store.using(uow) as u:
        s = u.session
        # Both people locked for the merge: a concurrent enrollment or merge of either waits.
        s.execute(select(Person.id).where(Person.id.in_((keep, merge))).with_for_update()).all()
        plan = _plan(s, keep, merge, review_item)
        row = _apply(u, plan, keep, merge, actor, reason, review_item)
        change = gallery.change(u, remove=plan.templates_dropped, from_disk=True)
        counts = plan.counts()
        entry = u.audit(
            "person_merge",
            operator=actor.name,
            payload={
                "outcome": "merged",
                "role": actor.role.value,
                "merge_id": row.id,
                "kept_person_id": keep,
                "kept_external_id": plan.kept_external_id,
                "merged_person_id": merge,
                "merged_external_id": plan.merged_external_id,
                "synthetic": plan.synthetic,
                **counts,
                "reason": reason,
                "review_item": review_item,
                "review_items_repointed": plan.review_items,
            },
        )
        row.audit_seq = entry.seq
        merge_id, at = row.id, lineage.as_utc(row.at)
    return MergeResult(
        merge_id=merge_id,
        kept_person_id=keep,
        kept_external_id=plan.kept_external_id,
        merged_person_id=merge,
        merged_external_id=plan.merged_external_id,
        merged_display_name=plan.merged_display_name,
        synthetic=plan.synthetic,
        review_item=review_item,
        review_items_repointed=plan.review_items,
        by=actor.name,
        role=actor.role.value,
        at=at,
        reason=reason,
        audit_seq=entry.seq,
        index_carried=bool(change.followed),
        **counts,
    )


def _apply(
    uow: UnitOfWork,
    plan: _Plan,
    keep: int,
    merge: int,
    actor: Actor,
    reason: str,
    review_item: int | None,
) -> PersonMerge:
    """The merge's changes in ``uow``; returns the merge row."""
    s = uow.session
    row = PersonMerge(
        kept_person_id=keep,
        kept_external_id=plan.kept_external_id,
        merged_person_id=merge,
        merged_external_id=plan.merged_external_id,
        merged_display_name=plan.merged_display_name,
        merged_synthetic=plan.synthetic,
        actor_name=actor.name,
        actor_role=actor.role.value,
        at=uow.now(),
        reason=reason,
        review_item_id=review_item,
        detail={
            "moved": plan.moved,
            "dropped_images": plan.dropped_detail,
            "review_items": plan.review_items,
        },
        **plan.counts(),
    )
    s.add(row)
    s.flush()
    merge_id = row.id
    for image_id, same_as in plan.dropped_images.items():
        s.execute(
            update(ReviewItem).where(ReviewItem.image_id == image_id).values(image_id=same_as)
        )
    if plan.dropped_images:
        dropped = list(plan.dropped_images)
        s.execute(delete(TemplateRow).where(TemplateRow.image_id.in_(dropped)))
        s.execute(delete(EnrollmentImage).where(EnrollmentImage.id.in_(dropped)))
    for table in (TemplateRow, EnrollmentImage, Record, PersonLink):
        s.execute(update(table).where(table.person_id == merge).values(person_id=keep))
    note = {
        "person_id": merge,
        "external_id": plan.merged_external_id,
        "merged_into": keep,
        "merge_id": merge_id,
    }
    for item in s.scalars(select(ReviewItem).where(ReviewItem.id.in_(plan.review_items))):
        fields: list[str] = []
        if item.person_id == merge:
            item.person_id, fields = keep, [*fields, "person_id"]
        if item.other_person_id == merge:
            item.other_person_id, fields = keep, [*fields, "other_person_id"]
        item.detail = {**item.detail, "merged_person": {**note, "fields": fields}}
    if review_item is not None and plan.resolve_item:
        resolve_in(
            uow,
            review_item,
            decision="same_person",
            note=f"merged {plan.merged_external_id} into {plan.kept_external_id} "
            f"(person merge {merge_id}): {reason}",
            actor=actor,
        )
    s.execute(delete(Person).where(Person.id == merge))
    return row


def _view(r: PersonMerge) -> MergeView:
    return MergeView(
        r.id,
        r.kept_person_id,
        r.kept_external_id,
        r.merged_person_id,
        r.merged_external_id,
        r.merged_display_name,
        r.merged_synthetic,
        r.actor_name,
        r.actor_role,
        lineage.as_utc(r.at),
        r.reason,
        r.review_item_id,
        {
            "images_moved": r.images_moved,
            "images_dropped": r.images_dropped,
            "templates_moved": r.templates_moved,
            "templates_dropped": r.templates_dropped,
            "records_moved": r.records_moved,
            "links_moved": r.links_moved,
        },
        dict(r.detail),
        r.audit_seq,
    )


def find_person(store: Store, ref: str, *, follow_merges: bool = False) -> int:
    """A person by external id (what people are shown) or numeric id.

    With ``follow_merges``, an external or numeric id of a merged person gives the person it was
    merged into; without, it is refused with where it went (a merge names live people only)."""
    with store.read() as s:
        pid = s.scalar(select(Person.id).where(Person.external_id == ref))
        if pid is None and ref.isdigit() and s.get(Person, int(ref)) is not None:
            pid = int(ref)
        if pid is not None:
            return int(pid)
        row = s.scalars(
            select(PersonMerge)
            .where(
                (PersonMerge.merged_external_id == ref)
                | (PersonMerge.merged_person_id == (int(ref) if ref.isdigit() else -1))
            )
            .order_by(PersonMerge.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            live = lineage.live_person(s, row.merged_external_id)
            if follow_merges and live is not None:
                return live
            raise _refuse(
                "unknown_person",
                f"{ref} was merged into {row.kept_external_id} (merge {row.id}); name the live "
                "person",
                merge_id=row.id,
            )
    raise _refuse("unknown_person", f"no person {ref!r} in the gallery", person=ref)


def merge_history(store: Store, ref: str, *, actor: Actor | None = None) -> list[MergeView]:
    """The merges behind a live person (``ref`` may be an old, merged identity), oldest first."""
    if actor is not None:
        require(actor, "record_read")
    pid = find_person(store, ref, follow_merges=True)
    with store.read() as s:
        return [_view(r) for r in lineage.merges_of(s, pid)]
