"""Human adjudication of a search: the only way an identification comes to exist.

Rules, enforced here so that every surface (CLI, API, web) obeys them, each refusal audited with
its rule code:

- ``access.forbidden``: only a person whose role carries ``adjudicate`` (``second_confirm``,
  ``override_conflict``) may act; an officer adjudicates only their own searches
  (``adjudication.not_own_search``); supervisors may adjudicate any.
- ``adjudication.no_reason``: every decision has a written reason.
- ``adjudication.search_closed``: a closed search is not adjudicated again.
- ``adjudication.not_a_candidate``: only a candidate the search returned can be confirmed.
- ``adjudication.below_min_score``: no one confirms a candidate scoring below
  ``[adjudication] min_confirm_score`` (default: the search's threshold). This binds supervisors
  too: the floor stands for a measured error rate, which no one's confidence changes.
- ``adjudication.document_conflict``: a confirmation whose presented documents conflict with the
  candidate's records is *blocked* (recorded, state ``blocked_conflict``); only a supervisor other
  than the adjudicator can :meth:`Adjudicator.override` it, with a written reason.
- two-person rule: for purposes in ``[adjudication] two_person_purposes`` a confirmation waits
  (``pending_second``) for :meth:`Adjudicator.second_confirm` by a different person
  (``adjudication.same_person``).

A reject or inconclusive closes the search at once; its probe is purged at that moment when the
retention policy says so (the default).

Each act is one unit of work: the decision's row, the search's new state, the probe purge it
triggers and their audit entries are committed together, with the search's row locked so two
people deciding at once are taken one after the other. A refusal is audited in its own small unit
of work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.access import Actor, Role, require
from fieldid.adjudication.rules import AdjudicationRules
from fieldid.adjudication.store import SearchNotFound
from fieldid.errors import AuthorisationError, FieldidError
from fieldid.retention.policy import RetentionPolicy
from fieldid.retention.purge import purge_probe
from fieldid.store import Store, UnitOfWork
from fieldid.store.schema import AdjudicationRecord, SearchCandidate, SearchRecord

DECISIONS = ("confirm", "reject", "inconclusive")
#: Shortest written reason a supervisor's override accepts (a word or two is not a reason).
MIN_OVERRIDE_REASON = 15


class AdjudicationRefused(FieldidError):
    """An adjudication, second confirmation or override broke a rule. Codes ``adjudication.*``."""

    code = "adjudication.refused"


class DocumentConflicts(Protocol):
    """Compares the documents a person presented with a candidate's records."""

    def conflicts(
        self, search_id: int, person_id: int, documents: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """One human-readable line per conflict (empty: none)."""
        ...


class NoConflictChecker:
    """The default until a records source is wired in: there is nothing to compare against."""

    def conflicts(
        self, search_id: int, person_id: int, documents: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        return []


@dataclass(frozen=True)
class Adjudication:
    id: int
    search_id: int
    person_id: int | None
    decision: str
    state: str
    actor: str
    reason: str
    conflicts: list[str] = field(default_factory=list)
    audit_seq: int = 0

    @property
    def is_identification(self) -> bool:
        """True only for a final, human-confirmed candidate."""
        return self.decision == "confirm" and self.state == "final"

    def to_dict(self) -> dict[str, Any]:
        return {
            "adjudication_id": self.id,
            "search_id": self.search_id,
            "person_id": self.person_id,
            "decision": self.decision,
            "state": self.state,
            "actor": self.actor,
            "reason": self.reason,
            "conflicts": self.conflicts,
            "audit_seq": self.audit_seq,
        }


def _view(r: AdjudicationRecord) -> Adjudication:
    return Adjudication(
        r.id,
        r.search_id,
        r.person_id,
        r.decision,
        r.state,
        r.actor_name,
        r.reason,
        json.loads(r.conflicts),
        r.audit_seq,
    )


@dataclass(frozen=True)
class _SearchRef:
    """What an audit entry says about the search it concerns."""

    id: int
    audit_seq: int
    purpose: str
    case_ref: str

    @classmethod
    def of(cls, rec: SearchRecord) -> _SearchRef:
        return cls(rec.id, rec.audit_seq, rec.purpose, rec.case_ref)


def _locked_search(s: Session, search_id: int) -> SearchRecord:
    rec = s.scalars(
        select(SearchRecord).where(SearchRecord.id == search_id).with_for_update()
    ).first()
    if rec is None:
        raise SearchNotFound(
            f"no search {search_id} is held (never made, or purged under the retention policy)",
            search_id=search_id,
        )
    return rec


class Adjudicator:
    """Adjudication over one store. ``conflicts``: how presented documents are compared with a
    candidate's records (``Workspace`` wires the records checker; tests give a fake);
    ``rules`` and ``retention``: the workspace's ``[adjudication]`` and ``[retention]``."""

    def __init__(
        self,
        store: Store,
        *,
        conflicts: DocumentConflicts | None = None,
        rules: AdjudicationRules | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.store = store
        self.checker = conflicts or NoConflictChecker()
        self.rules = rules or AdjudicationRules()
        self.retention = retention or RetentionPolicy.default()

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _audit(
        uow: UnitOfWork,
        event: str,
        actor: Actor,
        search: SearchRecord | _SearchRef | None,
        payload: dict[str, Any],
    ) -> int:
        entry = uow.audit(
            event,
            operator=actor.name,
            purpose=search.purpose if search else None,
            case_ref=search.case_ref if search else None,
            payload={
                "role": actor.role.value,
                **({"search_id": search.id, "search_seq": search.audit_seq} if search else {}),
                **payload,
            },
        )
        return entry.seq

    def _refuse(
        self,
        uow: UnitOfWork,
        event: str,
        actor: Actor,
        search: SearchRecord | None,
        err: FieldidError,
        **payload: Any,
    ) -> FieldidError:
        """Roll back the act and audit the refusal in its own small unit of work."""
        ref = None if search is None else _SearchRef.of(search)  # read before the rollback
        uow.rollback()
        with self.store.unit_of_work() as own:
            self._audit(
                own, event, actor, ref, {"outcome": "refused", "error": err.to_dict(), **payload}
            )
        return err

    def _check_role(
        self,
        uow: UnitOfWork,
        event: str,
        actor: Actor,
        action: str,
        search: SearchRecord | None,
        **payload: Any,
    ) -> None:
        try:
            require(actor, action)
        except AuthorisationError as err:
            raise self._refuse(uow, event, actor, search, err, **payload) from None

    # -- the three acts ----------------------------------------------------------------------------

    def adjudicate(
        self,
        search_id: int,
        actor: Actor,
        decision: str,
        *,
        person_id: int | None = None,
        reason: str,
        documents: Sequence[Mapping[str, Any]] = (),
        uow: UnitOfWork | None = None,
    ) -> Adjudication:
        """Record a human decision on a search. See the module docstring for the rules."""
        docs = [dict(d) for d in documents]
        ctx = {"decision": decision, "person_id": person_id, "documents": docs}
        with self.store.using(uow) as u:
            s = u.session
            search = _locked_search(s, search_id)
            self._check_role(u, "adjudicate", actor, "adjudicate", search, **ctx)

            def refuse(code: str, message: str, **details: Any) -> FieldidError:
                err = AdjudicationRefused(message, code=code, **details)
                return self._refuse(u, "adjudicate", actor, search, err, **ctx)

            if decision not in DECISIONS:
                raise refuse(
                    "adjudication.bad_decision",
                    f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}",
                )
            if actor.role == Role.OFFICER and actor.name != search.operator:
                raise refuse(
                    "adjudication.not_own_search",
                    f"{actor.name} may adjudicate only their own searches; search {search_id} "
                    f"was made by {search.operator} (a supervisor may adjudicate it)",
                )
            if not reason.strip():
                raise refuse("adjudication.no_reason", "a decision needs a written reason")
            if search.status != "open":
                raise refuse(
                    "adjudication.search_closed",
                    f"search {search_id} is already closed ({search.status})",
                )
            pending = list(
                s.scalars(
                    select(AdjudicationRecord).where(
                        AdjudicationRecord.search_id == search_id,
                        AdjudicationRecord.state.in_(("pending_second", "blocked_conflict")),
                    )
                )
            )
            cand = None
            if person_id is not None:
                cand = s.scalars(
                    select(SearchCandidate).where(
                        SearchCandidate.search_id == search_id,
                        SearchCandidate.person_id == person_id,
                    )
                ).first()
            score_info: dict[str, Any] = {}
            conflicts: list[str] = []
            if decision == "confirm":
                if pending:
                    raise refuse(
                        "adjudication.pending",
                        f"search {search_id} already has a confirmation waiting "
                        f"(adjudication {pending[0].id}, {pending[0].state}); resolve it, or "
                        "reject",
                    )
                if person_id is None or cand is None:
                    raise refuse(
                        "adjudication.not_a_candidate",
                        "only a candidate this search returned can be confirmed"
                        + ("" if person_id is None else f"; person {person_id} was not one"),
                    )
                floor = (
                    self.rules.min_confirm_score
                    if self.rules.min_confirm_score is not None
                    else search.threshold
                )
                score_info = {"score": cand.score, "min_confirm_score": floor}
                if cand.score < floor:
                    raise refuse(
                        "adjudication.below_min_score",
                        f"candidate score {cand.score:.4f} is below the minimum for confirmation "
                        f"({floor:.4f}); it cannot be confirmed",
                        **score_info,
                    )
                conflicts = list(self.checker.conflicts(search_id, person_id, docs))
            if conflicts:
                state = "blocked_conflict"
            elif decision == "confirm" and search.purpose in self.rules.two_person_purposes:
                state = "pending_second"
            else:
                state = "final"
            rec = AdjudicationRecord(
                search_id=search_id,
                person_id=person_id,
                decision=decision,
                reason=reason,
                actor_name=actor.name,
                actor_role=actor.role.value,
                at=u.now(),
                documents=json.dumps(docs, sort_keys=True, default=str),
                conflicts=json.dumps(conflicts),
                state=state,
                audit_seq=0,
            )
            s.add(rec)
            s.flush()
            withdrawn = []
            for row in pending:  # a reject/inconclusive closes the search: pending ones lapse
                row.state = "withdrawn"
                withdrawn.append(row.id)
            rec.audit_seq = self._audit(
                u,
                "adjudicate",
                actor,
                search,
                {
                    "outcome": {
                        "blocked_conflict": "blocked",
                        "pending_second": "pending_second",
                        "final": "recorded",
                    }[state],
                    "adjudication_id": rec.id,
                    "decision": decision,
                    "person_id": person_id,
                    "external_id": cand.external_id if cand else None,
                    "reason": reason,
                    "documents": docs,
                    "conflicts": conflicts,
                    "state": state,
                    "rules": {
                        "two_person": search.purpose in self.rules.two_person_purposes,
                        **({"rule": "adjudication.document_conflict"} if conflicts else {}),
                        **score_info,
                    },
                    **({"withdrawn": withdrawn} if withdrawn else {}),
                },
            )
            view = _view(rec)
            if state == "final":
                self._finish(u, search, view, actor)
        return view

    def second_confirm(
        self, adjudication_id: int, actor: Actor, *, uow: UnitOfWork | None = None
    ) -> Adjudication:
        """The second person's confirmation under the two-person rule."""
        ctx = {"adjudication_id": adjudication_id}
        with self.store.using(uow) as u:
            rec, search = self._adjudication(u.session, adjudication_id)
            self._check_role(u, "second_confirm", actor, "second_confirm", search, **ctx)
            if rec.state != "pending_second":
                raise self._refuse(
                    u,
                    "second_confirm",
                    actor,
                    search,
                    AdjudicationRefused(
                        f"adjudication {adjudication_id} is not waiting for a second confirmation "
                        f"(state {rec.state})",
                        code="adjudication.not_pending",
                    ),
                    **ctx,
                )
            if actor.name == rec.actor_name:
                raise self._refuse(
                    u,
                    "second_confirm",
                    actor,
                    search,
                    AdjudicationRefused(
                        f"the second confirmation must come from someone other than "
                        f"{rec.actor_name}",
                        code="adjudication.same_person",
                    ),
                    **ctx,
                )
            rec.state, rec.second_by, rec.second_at = "final", actor.name, u.now()
            view = _view(rec)
            self._audit(
                u,
                "second_confirm",
                actor,
                search,
                {
                    "outcome": "recorded",
                    **ctx,
                    "first_by": rec.actor_name,
                    "person_id": rec.person_id,
                    "state": "final",
                },
            )
            self._finish(u, search, view, actor)
        return view

    def override(
        self, adjudication_id: int, actor: Actor, reason: str, *, uow: UnitOfWork | None = None
    ) -> Adjudication:
        """A supervisor lifts a document-conflict block, with a written reason."""
        ctx = {"adjudication_id": adjudication_id, "reason": reason}
        with self.store.using(uow) as u:
            rec, search = self._adjudication(u.session, adjudication_id)
            self._check_role(u, "override", actor, "override_conflict", search, **ctx)

            def refuse(code: str, message: str) -> FieldidError:
                return self._refuse(
                    u, "override", actor, search, AdjudicationRefused(message, code=code), **ctx
                )

            if rec.state != "blocked_conflict":
                raise refuse(
                    "adjudication.not_blocked",
                    f"adjudication {adjudication_id} is not blocked by a document conflict "
                    f"(state {rec.state})",
                )
            if actor.name == rec.actor_name:
                raise refuse(
                    "adjudication.same_person",
                    "a blocked confirmation is overridden by a supervisor other than the person "
                    "who made it",
                )
            if len(reason.strip()) < MIN_OVERRIDE_REASON:
                raise refuse(
                    "adjudication.override_needs_reason",
                    f"an override needs a written reason (at least {MIN_OVERRIDE_REASON} "
                    "characters) saying why the conflicting document does not outweigh the match",
                )
            two_person = search.purpose in self.rules.two_person_purposes
            state = "pending_second" if two_person else "final"
            rec.state = state
            rec.override_by, rec.override_reason, rec.override_at = actor.name, reason, u.now()
            view = _view(rec)
            self._audit(
                u,
                "override",
                actor,
                search,
                {
                    "outcome": "recorded",
                    **ctx,
                    "rule": "adjudication.document_conflict",
                    "conflicts": view.conflicts,
                    "first_by": rec.actor_name,
                    "person_id": rec.person_id,
                    "state": state,
                },
            )
            if state == "final":
                self._finish(u, search, view, actor)
        return view

    # -- closing -----------------------------------------------------------------------------------

    @staticmethod
    def _adjudication(s: Session, adjudication_id: int) -> tuple[AdjudicationRecord, SearchRecord]:
        rec = s.get(AdjudicationRecord, adjudication_id)
        if rec is None:
            raise AdjudicationRefused(
                f"no adjudication {adjudication_id}", code="adjudication.not_found"
            )
        search = _locked_search(s, rec.search_id)
        s.refresh(rec)  # as of the lock: a concurrent act on it is seen
        return rec, search

    def _finish(
        self, uow: UnitOfWork, search: SearchRecord, adj: Adjudication, actor: Actor
    ) -> None:
        status = {"confirm": "identified", "reject": "not_identified"}.get(
            adj.decision, "inconclusive"
        )
        search.status = status
        search.closed_at = uow.now()
        if status != "identified" and self.retention.purge_probe_at_adjudication:
            purge_probe(
                uow,
                adj.search_id,
                operator=actor.name,
                trigger="adjudication",
                adjudication_id=adj.id,
            )


def adjudications_of(store: Store, search_id: int) -> list[Adjudication]:
    with store.read() as s:
        return [
            _view(r)
            for r in s.scalars(
                select(AdjudicationRecord)
                .where(AdjudicationRecord.search_id == search_id)
                .order_by(AdjudicationRecord.id)
            )
        ]


def identification_of(store: Store, search_id: int) -> Adjudication | None:
    """The final, human-confirmed identification of a search, if there is one."""
    for a in adjudications_of(store, search_id):
        if a.is_identification:
            return a
    return None
