"""Human adjudication of a search: the only way an identification comes to exist.

The search's states and the acts that move it are in :mod:`fieldid.adjudication.states` (and
``docs/accountability.md``). Rules, enforced here so that every surface (CLI, API, web) obeys
them, each refusal audited with its rule code:

- ``access.forbidden``: only a person whose role carries ``adjudicate`` (``second_confirm``,
  ``override_conflict``) may act; an officer adjudicates only their own searches
  (``adjudication.not_own_search``); supervisors may adjudicate any.
- ``adjudication.no_reason``: every decision has a written reason (closing a search that listed
  no candidate as ``no_lead`` excepted: nothing is judged there).
- ``adjudication.search_closed`` / ``adjudication.pending`` / ``adjudication.not_pending`` /
  ``adjudication.not_blocked``: the act is not possible in the search's state.
- ``adjudication.not_a_candidate``: only a lead the search listed can be confirmed or rejected;
  ``adjudication.lead_ruled_out``: a rejected lead is not confirmed or rejected again.
- ``adjudication.below_min_score``: no one confirms a candidate scoring below
  ``[adjudication] min_confirm_score`` (default: the search's threshold). This binds supervisors
  too: the floor stands for a measured error rate, which no one's confidence changes.
- ``adjudication.document_conflict``: a confirmation whose presented documents conflict with the
  candidate's records is *blocked* (state ``blocked_conflict``); only a supervisor other than
  the adjudicator can :meth:`Adjudicator.override` it, with a written reason.
- two-person rule: for purposes in ``[adjudication] two_person_purposes`` a confirmation waits
  (``awaiting_second``) for a different person (``adjudication.same_person``), who confirms or
  disagrees (:meth:`Adjudicator.second`), each with a reason. A disagreement returns the search
  to open, and both people see it on the search's pages.
- ``adjudication.has_leads`` / ``adjudication.no_leads``: a search that listed leads closes as
  ``not_identified`` or ``inconclusive``; one that listed none closes as ``no_lead``.

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
from fieldid.adjudication.states import (
    CLOSE_OUTCOMES,
    Act,
    SearchState,
    TransitionRefused,
    move,
    state_of,
)
from fieldid.adjudication.store import SearchNotFound, SearchRef, search_where
from fieldid.errors import AuthorisationError, FieldidError
from fieldid.retention.policy import RetentionPolicy
from fieldid.retention.purge import purge_probe
from fieldid.store import Store, UnitOfWork
from fieldid.store.schema import AdjudicationRecord, SearchCandidate, SearchRecord

#: Decisions on one lead.
LEAD_DECISIONS = ("confirm", "reject")
#: Decisions that close the whole search (no lead named).
CLOSE_DECISIONS = ("not_identified", "inconclusive", "no_lead")
DECISIONS = LEAD_DECISIONS + CLOSE_DECISIONS
#: The second person's answers under the two-person rule.
SECOND_DECISIONS = ("confirm", "disagree")
#: Shortest written reason a supervisor's override accepts (a word or two is not a reason).
MIN_OVERRIDE_REASON = 15
#: Adjudication states that wait for someone.
WAITING = ("pending_second", "blocked_conflict")
#: The reason recorded for closing a search that listed no candidate, when none is given.
NO_LEAD_REASON = "no candidate at or above the threshold"


class AdjudicationRefused(FieldidError):
    """An adjudication, second answer or override broke a rule. Codes ``adjudication.*``."""

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
    #: The search's id (its public id: the one the API, pages and command line show).
    search_id: str
    person_id: int | None
    decision: str
    state: str
    actor: str
    reason: str
    conflicts: list[str] = field(default_factory=list)
    audit_seq: int = 0
    #: The search's state after the act (:class:`fieldid.adjudication.states.SearchState`).
    search_status: str = "open"

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
            "search_status": self.search_status,
        }


def _view(r: AdjudicationRecord, search: SearchRecord) -> Adjudication:
    return Adjudication(
        r.id,
        search.public_id,
        r.person_id,
        r.decision,
        r.state,
        r.actor_name,
        r.reason,
        json.loads(r.conflicts),
        r.audit_seq,
        search.status,
    )


@dataclass(frozen=True)
class _SearchRef:
    """What an audit entry says about the search it concerns."""

    public_id: str
    audit_seq: int
    purpose: str
    case_ref: str

    @classmethod
    def of(cls, rec: SearchRecord) -> _SearchRef:
        return cls(rec.public_id, rec.audit_seq, rec.purpose, rec.case_ref)


def _locked_search(s: Session, search: SearchRef) -> SearchRecord:
    rec = s.scalars(select(SearchRecord).where(search_where(search)).with_for_update()).first()
    if rec is None:
        raise SearchNotFound(
            f"no search {search} is held (never made, or purged under the retention policy)",
            search_id=search,
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
                **(
                    {"search_id": search.public_id, "search_seq": search.audit_seq}
                    if search
                    else {}
                ),
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

    def _move(
        self,
        uow: UnitOfWork,
        event: str,
        actor: Actor,
        search: SearchRecord,
        act: Act,
        to: SearchState | None,
        **payload: Any,
    ) -> None:
        """Check ``act`` against the state table (``to``: where it leads; None: only check);
        a refused move is audited with its rule code."""
        try:
            state = state_of(search.status)
            if to is None:
                from fieldid.adjudication.states import check

                check(state, act)
            else:
                search.status = move(state, act, to).value
        except TransitionRefused as t:
            err = AdjudicationRefused(t.message, code=t.code, search_status=search.status)
            raise self._refuse(uow, event, actor, search, err, **payload) from None

    @staticmethod
    def _waiting(s: Session, search_id: int) -> list[AdjudicationRecord]:
        return list(
            s.scalars(
                select(AdjudicationRecord).where(
                    AdjudicationRecord.search_id == search_id,
                    AdjudicationRecord.state.in_(WAITING),
                )
            )
        )

    @staticmethod
    def _ruled_out(s: Session, search_id: int) -> set[int]:
        return {
            pid
            for pid in s.scalars(
                select(AdjudicationRecord.person_id).where(
                    AdjudicationRecord.search_id == search_id,
                    AdjudicationRecord.decision == "reject",
                    AdjudicationRecord.state == "final",
                )
            )
            if pid is not None
        }

    # -- a decision on a lead, or on the whole search ---------------------------------------------

    def adjudicate(
        self,
        search_id: SearchRef,
        actor: Actor,
        decision: str,
        *,
        person_id: int | None = None,
        reason: str,
        documents: Sequence[Mapping[str, Any]] = (),
        uow: UnitOfWork | None = None,
    ) -> Adjudication:
        """Record a human decision: ``confirm`` or ``reject`` one lead (``person_id``), or close
        the search as ``not_identified``, ``inconclusive`` or ``no_lead``. ``search_id``: the
        search's public id (or its row id). See the module docstring for the rules."""
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
                    f"{actor.name} may adjudicate only their own searches; this search was made "
                    f"by {search.operator} (a supervisor may adjudicate it)",
                )
            if decision == "no_lead" and not reason.strip():
                reason = NO_LEAD_REASON
            if not reason.strip():
                raise refuse("adjudication.no_reason", "a decision needs a written reason")
            if decision in CLOSE_DECISIONS:
                return self._close(u, search, actor, decision, reason, docs, refuse, ctx)
            act = Act.CONFIRM if decision == "confirm" else Act.REJECT
            self._move(u, "adjudicate", actor, search, act, None, **ctx)
            cands = {
                c.person_id: c
                for c in s.scalars(
                    select(SearchCandidate).where(SearchCandidate.search_id == search.id)
                )
            }
            cand = None if person_id is None else cands.get(person_id)
            if cand is None:
                which = "confirmed" if decision == "confirm" else "ruled out"
                raise refuse(
                    "adjudication.not_a_candidate",
                    f"name the lead to be {which}: only a candidate this search listed can be"
                    + ("" if person_id is None else f"; person {person_id} was not one")
                    + (
                        ""
                        if decision == "confirm"
                        else " (to close the whole search, decide not_identified or inconclusive)"
                    ),
                )
            assert person_id is not None
            if person_id in self._ruled_out(s, search.id):
                raise refuse(
                    "adjudication.lead_ruled_out",
                    f"candidate {cand.rank} was already ruled out on this search",
                )
            waiting = self._waiting(s, search.id)
            if decision == "reject":
                return self._reject(u, search, actor, cand, reason, docs, waiting)
            return self._confirm(u, search, actor, cand, reason, docs, refuse)

    def _record(
        self,
        u: UnitOfWork,
        search: SearchRecord,
        actor: Actor,
        decision: str,
        person_id: int | None,
        reason: str,
        docs: list[dict[str, Any]],
        state: str,
        conflicts: Sequence[str] = (),
    ) -> AdjudicationRecord:
        rec = AdjudicationRecord(
            search_id=search.id,
            person_id=person_id,
            decision=decision,
            reason=reason,
            actor_name=actor.name,
            actor_role=actor.role.value,
            at=u.now(),
            documents=json.dumps(docs, sort_keys=True, default=str),
            conflicts=json.dumps(list(conflicts)),
            state=state,
            audit_seq=0,
        )
        u.session.add(rec)
        u.session.flush()
        return rec

    def _reject(
        self,
        u: UnitOfWork,
        search: SearchRecord,
        actor: Actor,
        cand: SearchCandidate,
        reason: str,
        docs: list[dict[str, Any]],
        waiting: list[AdjudicationRecord],
    ) -> Adjudication:
        """Rule out one lead. The search stays open for the others; a waiting confirmation of
        this lead is withdrawn (the search goes back to open)."""
        withdrawn = [w for w in waiting if w.person_id == cand.person_id]
        for w in withdrawn:
            w.state = "withdrawn"
        before = state_of(search.status)
        to = SearchState.OPEN if withdrawn else before
        self._move(u, "adjudicate", actor, search, Act.REJECT, to)
        rec = self._record(u, search, actor, "reject", cand.person_id, reason, docs, "final")
        rec.audit_seq = self._audit(
            u,
            "adjudicate",
            actor,
            search,
            {
                "outcome": "recorded",
                "adjudication_id": rec.id,
                "decision": "reject",
                "person_id": cand.person_id,
                "external_id": cand.external_id,
                "rank": cand.rank,
                "reason": reason,
                "documents": docs,
                "conflicts": [],
                "state": "final",
                "search_status": search.status,
                **({"withdrawn": [w.id for w in withdrawn]} if withdrawn else {}),
            },
        )
        return _view(rec, search)

    def _confirm(
        self,
        u: UnitOfWork,
        search: SearchRecord,
        actor: Actor,
        cand: SearchCandidate,
        reason: str,
        docs: list[dict[str, Any]],
        refuse: Any,
    ) -> Adjudication:
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
        conflicts = list(self.checker.conflicts(search.id, cand.person_id, docs))
        two_person = search.purpose in self.rules.two_person_purposes
        if conflicts:
            state, to = "blocked_conflict", SearchState.BLOCKED_CONFLICT
        elif two_person:
            state, to = "pending_second", SearchState.AWAITING_SECOND
        else:
            state, to = "final", SearchState.IDENTIFIED
        self._move(u, "adjudicate", actor, search, Act.CONFIRM, to)
        rec = self._record(
            u, search, actor, "confirm", cand.person_id, reason, docs, state, conflicts
        )
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
                "decision": "confirm",
                "person_id": cand.person_id,
                "external_id": cand.external_id,
                "rank": cand.rank,
                "reason": reason,
                "documents": docs,
                "conflicts": conflicts,
                "state": state,
                "search_status": search.status,
                "rules": {
                    "two_person": two_person,
                    **({"rule": "adjudication.document_conflict"} if conflicts else {}),
                    **score_info,
                },
            },
        )
        if state == "final":
            self._identified(u, search)
        return _view(rec, search)

    def _close(
        self,
        u: UnitOfWork,
        search: SearchRecord,
        actor: Actor,
        decision: str,
        reason: str,
        docs: list[dict[str, Any]],
        refuse: Any,
        ctx: dict[str, Any],
    ) -> Adjudication:
        """Close the search without an identification; a waiting confirmation is withdrawn and
        the probe purged (when the retention policy says so, the default)."""
        s = u.session
        self._move(u, "adjudicate", actor, search, Act.CLOSE, None, **ctx)
        if ctx.get("person_id") is not None:
            raise refuse(
                "adjudication.close_names_no_lead",
                f"{decision} closes the whole search: name no candidate (to rule out one lead, "
                "decide reject)",
            )
        leads = s.scalar(
            select(SearchCandidate.id).where(SearchCandidate.search_id == search.id).limit(1)
        )
        if leads is not None and decision == "no_lead":
            raise refuse(
                "adjudication.has_leads",
                "this search listed leads: close it as not_identified (no lead is the person) "
                "or inconclusive (cannot tell)",
            )
        if leads is None and decision != "no_lead":
            raise refuse(
                "adjudication.no_leads",
                "this search listed no candidate at or above the threshold: close it as no_lead",
            )
        withdrawn = self._waiting(s, search.id)
        for w in withdrawn:
            w.state = "withdrawn"
        to = SearchState(decision)
        assert to in CLOSE_OUTCOMES
        self._move(u, "adjudicate", actor, search, Act.CLOSE, to)
        rec = self._record(u, search, actor, decision, None, reason, docs, "final")
        rec.audit_seq = self._audit(
            u,
            "adjudicate",
            actor,
            search,
            {
                "outcome": "recorded",
                "adjudication_id": rec.id,
                "decision": decision,
                "person_id": None,
                "reason": reason,
                "documents": docs,
                "conflicts": [],
                "state": "final",
                "search_status": search.status,
                **({"withdrawn": [w.id for w in withdrawn]} if withdrawn else {}),
            },
        )
        search.closed_at = u.now()
        if self.retention.purge_probe_at_adjudication:
            purge_probe(
                u, search.id, operator=actor.name, trigger="adjudication", adjudication_id=rec.id
            )
        return _view(rec, search)

    def close(
        self,
        search_id: SearchRef,
        actor: Actor,
        outcome: str,
        *,
        reason: str = "",
        documents: Sequence[Mapping[str, Any]] = (),
        uow: UnitOfWork | None = None,
    ) -> Adjudication:
        """Close a search without an identification: ``not_identified``, ``inconclusive`` or
        (a search that listed no candidate) ``no_lead``."""
        return self.adjudicate(
            search_id, actor, outcome, reason=reason, documents=documents, uow=uow
        )

    # -- the second person ------------------------------------------------------------------------

    def second(
        self,
        adjudication_id: int,
        actor: Actor,
        decision: str,
        reason: str,
        *,
        search_id: SearchRef | None = None,
        uow: UnitOfWork | None = None,
    ) -> Adjudication:
        """The second person's answer to a confirmation waiting under the two-person rule:
        ``confirm`` (it becomes final: the search is identified) or ``disagree`` (the
        confirmation does not stand: the search is open again, for the first person and
        anyone else to see, with the reason). Someone other than the first person, with a
        reason. ``search_id``: the search the caller reached it through (checked)."""
        event = "second_confirm" if decision == "confirm" else "second_disagree"
        ctx = {"adjudication_id": adjudication_id, "decision": decision, "reason": reason}
        with self.store.using(uow) as u:
            rec, search = self._adjudication(u.session, adjudication_id, search_id)
            self._check_role(u, event, actor, "second_confirm", search, **ctx)

            def refuse(code: str, message: str) -> FieldidError:
                err = AdjudicationRefused(message, code=code)
                return self._refuse(u, event, actor, search, err, **ctx)

            if decision not in SECOND_DECISIONS:
                raise refuse(
                    "adjudication.bad_decision",
                    f"the second person confirms or disagrees, not {decision!r}",
                )
            if rec.state != "pending_second":
                raise refuse(
                    "adjudication.not_pending",
                    f"adjudication {adjudication_id} is not waiting for a second person "
                    f"(state {rec.state})",
                )
            if actor.name == rec.actor_name:
                raise refuse(
                    "adjudication.same_person",
                    f"the second person must be someone other than {rec.actor_name}",
                )
            if not reason.strip():
                raise refuse(
                    "adjudication.no_reason",
                    "say why you confirm or disagree: the first person and the audit read it",
                )
            to = SearchState.IDENTIFIED if decision == "confirm" else SearchState.OPEN
            act = Act.SECOND_CONFIRM if decision == "confirm" else Act.DISAGREE
            self._move(u, event, actor, search, act, to, **ctx)
            rec.state = "final" if decision == "confirm" else "disagreed"
            rec.second_by, rec.second_at = actor.name, u.now()
            rec.second_decision, rec.second_reason = decision, reason
            self._audit(
                u,
                event,
                actor,
                search,
                {
                    "outcome": "recorded",
                    **ctx,
                    "first_by": rec.actor_name,
                    "first_reason": rec.reason,
                    "person_id": rec.person_id,
                    "state": rec.state,
                    "search_status": search.status,
                },
            )
            if decision == "confirm":
                self._identified(u, search)
            view = _view(rec, search)
        return view

    def second_confirm(
        self,
        adjudication_id: int,
        actor: Actor,
        reason: str,
        *,
        uow: UnitOfWork | None = None,
    ) -> Adjudication:
        """The second person's confirmation (:meth:`second` with ``confirm``)."""
        return self.second(adjudication_id, actor, "confirm", reason, uow=uow)

    def disagree(
        self,
        adjudication_id: int,
        actor: Actor,
        reason: str,
        *,
        uow: UnitOfWork | None = None,
    ) -> Adjudication:
        """The second person disagrees (:meth:`second` with ``disagree``)."""
        return self.second(adjudication_id, actor, "disagree", reason, uow=uow)

    def override(
        self,
        adjudication_id: int,
        actor: Actor,
        reason: str,
        *,
        search_id: SearchRef | None = None,
        uow: UnitOfWork | None = None,
    ) -> Adjudication:
        """A supervisor lifts a document-conflict block, with a written reason."""
        ctx = {"adjudication_id": adjudication_id, "reason": reason}
        with self.store.using(uow) as u:
            rec, search = self._adjudication(u.session, adjudication_id, search_id)
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
            to = SearchState.AWAITING_SECOND if two_person else SearchState.IDENTIFIED
            self._move(u, "override", actor, search, Act.OVERRIDE, to, **ctx)
            rec.state = state
            rec.override_by, rec.override_reason, rec.override_at = actor.name, reason, u.now()
            self._audit(
                u,
                "override",
                actor,
                search,
                {
                    "outcome": "recorded",
                    **ctx,
                    "rule": "adjudication.document_conflict",
                    "conflicts": json.loads(rec.conflicts),
                    "first_by": rec.actor_name,
                    "person_id": rec.person_id,
                    "state": state,
                    "search_status": search.status,
                },
            )
            if state == "final":
                self._identified(u, search)
            view = _view(rec, search)
        return view

    # -- closing -----------------------------------------------------------------------------------

    @staticmethod
    def _adjudication(
        s: Session, adjudication_id: int, search_id: SearchRef | None
    ) -> tuple[AdjudicationRecord, SearchRecord]:
        rec = s.get(AdjudicationRecord, adjudication_id)
        if rec is None:
            raise AdjudicationRefused(
                f"no adjudication {adjudication_id}", code="adjudication.not_found"
            )
        search = _locked_search(s, rec.search_id)
        if search_id is not None and search_id not in (search.public_id, search.id):
            raise AdjudicationRefused(
                f"no adjudication {adjudication_id} on this search", code="adjudication.not_found"
            )
        s.refresh(rec)  # as of the lock: a concurrent act on it is seen
        return rec, search

    @staticmethod
    def _identified(uow: UnitOfWork, search: SearchRecord) -> None:
        """A confirmation became final: the search is closed as identified. Its probe is kept
        for the probe retention period (the scheduled purge removes it)."""
        search.closed_at = uow.now()


def adjudications_of(store: Store, search_id: SearchRef) -> list[Adjudication]:
    with store.read() as s:
        search = s.scalars(select(SearchRecord).where(search_where(search_id))).first()
        if search is None:
            return []
        return [
            _view(r, search)
            for r in s.scalars(
                select(AdjudicationRecord)
                .where(AdjudicationRecord.search_id == search.id)
                .order_by(AdjudicationRecord.id)
            )
        ]


def identification_of(store: Store, search_id: SearchRef) -> Adjudication | None:
    """The final, human-confirmed identification of a search, if there is one."""
    for a in adjudications_of(store, search_id):
        if a.is_identification:
            return a
    return None
