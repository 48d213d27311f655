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
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from fieldid.access import Actor, Role, require
from fieldid.adjudication.rules import AdjudicationRules
from fieldid.adjudication.schema import AdjudicationRecord, SearchCandidate, SearchRecord
from fieldid.adjudication.store import SearchNotFound
from fieldid.errors import AuthorisationError, FieldidError
from fieldid.retention.policy import RetentionPolicy
from fieldid.retention.purge import purge_probe
from fieldid.workspace import Workspace

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


def default_conflict_checker(ws: Workspace) -> DocumentConflicts:
    """The checker used when none is given: presented documents against the candidate's records."""
    from fieldid.records.checks import RecordsConflictChecker

    return RecordsConflictChecker(ws)


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


class Adjudicator:
    def __init__(
        self,
        ws: Workspace,
        *,
        conflicts: DocumentConflicts | None = None,
        rules: AdjudicationRules | None = None,
        retention: RetentionPolicy | None = None,
    ) -> None:
        self.ws = ws
        self.checker = conflicts or default_conflict_checker(ws)
        self.rules = rules or AdjudicationRules.load(ws)
        self.retention = retention or RetentionPolicy.load(ws)

    # -- helpers ---------------------------------------------------------------------------------

    def _search(self, search_id: int) -> SearchRecord:
        with self.ws.sessions() as s:
            rec = s.get(SearchRecord, search_id)
        if rec is None:
            raise SearchNotFound(
                f"no search {search_id} is held (never made, or purged under the retention policy)",
                search_id=search_id,
            )
        return rec

    def _audit(
        self, event: str, actor: Actor, search: SearchRecord | None, payload: dict[str, Any]
    ) -> int:
        entry = self.ws.audit.append(
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
        event: str,
        actor: Actor,
        search: SearchRecord | None,
        err: FieldidError,
        **payload: Any,
    ) -> FieldidError:
        self._audit(event, actor, search, {"outcome": "refused", "error": err.to_dict(), **payload})
        return err

    def _check_role(
        self, event: str, actor: Actor, action: str, search: SearchRecord | None, **payload: Any
    ) -> None:
        try:
            require(actor, action)
        except AuthorisationError as err:
            raise self._refuse(event, actor, search, err, **payload) from None

    def _set_seq(self, rec: AdjudicationRecord, seq: int) -> None:
        """Link the adjudication to the audit entry written after its row was committed (the
        audit log writes in its own transaction; SQLite allows one writer at a time)."""
        with self.ws.sessions.begin() as s:
            row = s.get(AdjudicationRecord, rec.id)
            assert row is not None
            row.audit_seq = rec.audit_seq = seq

    def _close(self, search_id: int, status: str) -> None:
        with self.ws.sessions.begin() as s:
            rec = s.get(SearchRecord, search_id)
            assert rec is not None
            rec.status = status
            rec.closed_at = self.ws.clock.now()

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
    ) -> Adjudication:
        """Record a human decision on a search. See the module docstring for the rules."""
        search = self._search(search_id)
        docs = [dict(d) for d in documents]
        ctx = {"decision": decision, "person_id": person_id, "documents": docs}
        self._check_role("adjudicate", actor, "adjudicate", search, **ctx)

        def refuse(code: str, message: str, **details: Any) -> FieldidError:
            err = AdjudicationRefused(message, code=code, **details)
            return self._refuse("adjudicate", actor, search, err, **ctx)

        if decision not in DECISIONS:
            raise refuse(
                "adjudication.bad_decision",
                f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}",
            )
        if actor.role == Role.OFFICER and actor.name != search.operator:
            raise refuse(
                "adjudication.not_own_search",
                f"{actor.name} may adjudicate only their own searches; search {search_id} was "
                f"made by {search.operator} (a supervisor may adjudicate it)",
            )
        if not reason.strip():
            raise refuse("adjudication.no_reason", "a decision needs a written reason")
        if search.status != "open":
            raise refuse(
                "adjudication.search_closed",
                f"search {search_id} is already closed ({search.status})",
            )
        with self.ws.sessions() as s:
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
                    f"(adjudication {pending[0].id}, {pending[0].state}); resolve it, or reject",
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
        now = self.ws.clock.now()
        with self.ws.sessions.begin() as s:
            rec = AdjudicationRecord(
                search_id=search_id,
                person_id=person_id,
                decision=decision,
                reason=reason,
                actor_name=actor.name,
                actor_role=actor.role.value,
                at=now,
                documents=json.dumps(docs, sort_keys=True, default=str),
                conflicts=json.dumps(conflicts),
                state=state,
                audit_seq=0,
            )
            s.add(rec)
            s.flush()
            withdrawn = []
            for p in pending:  # a reject/inconclusive closes the search: pending ones lapse
                row = s.get(AdjudicationRecord, p.id)
                assert row is not None
                row.state = "withdrawn"
                withdrawn.append(p.id)
        self._set_seq(
            rec,
            self._audit(
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
            ),
        )
        view = _view(rec)
        if state == "final":
            self._finish(view, actor)
        return view

    def second_confirm(self, adjudication_id: int, actor: Actor) -> Adjudication:
        """The second person's confirmation under the two-person rule."""
        rec, search = self._adjudication(adjudication_id)
        ctx = {"adjudication_id": adjudication_id}
        self._check_role("second_confirm", actor, "second_confirm", search, **ctx)
        if rec.state != "pending_second":
            raise self._refuse(
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
                "second_confirm",
                actor,
                search,
                AdjudicationRefused(
                    f"the second confirmation must come from someone other than {rec.actor_name}",
                    code="adjudication.same_person",
                ),
                **ctx,
            )
        now = self.ws.clock.now()
        with self.ws.sessions.begin() as s:
            row = s.get(AdjudicationRecord, adjudication_id)
            assert row is not None
            row.state, row.second_by, row.second_at = "final", actor.name, now
            view = _view(row)
        self._audit(
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
        self._finish(view, actor)
        return view

    def override(self, adjudication_id: int, actor: Actor, reason: str) -> Adjudication:
        """A supervisor lifts a document-conflict block, with a written reason."""
        rec, search = self._adjudication(adjudication_id)
        ctx = {"adjudication_id": adjudication_id, "reason": reason}
        self._check_role("override", actor, "override_conflict", search, **ctx)

        def refuse(code: str, message: str) -> FieldidError:
            return self._refuse(
                "override", actor, search, AdjudicationRefused(message, code=code), **ctx
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
                "a blocked confirmation is overridden by a supervisor other than the person who "
                "made it",
            )
        if len(reason.strip()) < MIN_OVERRIDE_REASON:
            raise refuse(
                "adjudication.override_needs_reason",
                f"an override needs a written reason (at least {MIN_OVERRIDE_REASON} characters) "
                "saying why the conflicting document does not outweigh the match",
            )
        two_person = search.purpose in self.rules.two_person_purposes
        state = "pending_second" if two_person else "final"
        now = self.ws.clock.now()
        with self.ws.sessions.begin() as s:
            row = s.get(AdjudicationRecord, adjudication_id)
            assert row is not None
            row.state = state
            row.override_by, row.override_reason, row.override_at = actor.name, reason, now
            view = _view(row)
        self._audit(
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
            self._finish(view, actor)
        return view

    # -- closing -----------------------------------------------------------------------------------

    def _adjudication(self, adjudication_id: int) -> tuple[AdjudicationRecord, SearchRecord]:
        with self.ws.sessions() as s:
            rec = s.get(AdjudicationRecord, adjudication_id)
        if rec is None:
            raise AdjudicationRefused(
                f"no adjudication {adjudication_id}", code="adjudication.not_found"
            )
        return rec, self._search(rec.search_id)

    def _finish(self, adj: Adjudication, actor: Actor) -> None:
        status = {"confirm": "identified", "reject": "not_identified"}.get(
            adj.decision, "inconclusive"
        )
        self._close(adj.search_id, status)
        if status != "identified" and self.retention.purge_probe_at_adjudication:
            purge_probe(
                self.ws,
                adj.search_id,
                operator=actor.name,
                trigger="adjudication",
                adjudication_id=adj.id,
            )


def adjudications_of(ws: Workspace, search_id: int) -> list[Adjudication]:
    with ws.sessions() as s:
        return [
            _view(r)
            for r in s.scalars(
                select(AdjudicationRecord)
                .where(AdjudicationRecord.search_id == search_id)
                .order_by(AdjudicationRecord.id)
            )
        ]


def identification_of(ws: Workspace, search_id: int) -> Adjudication | None:
    """The final, human-confirmed identification of a search, if there is one."""
    for a in adjudications_of(ws, search_id):
        if a.is_identification:
            return a
    return None
