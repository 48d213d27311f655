"""The states of a search under human adjudication, and the acts that move it between them.

A search gives leads; people decide. The state lives in ``searches.status`` and changes only by
the acts below, each one unit of work with its audit entry (:mod:`fieldid.adjudication.service`).

States::

    open              leads to check (or, with no candidate, a search waiting to be closed)
    awaiting_second   a confirmation waits for a second person (two-person rule)
    blocked_conflict  a confirmation is blocked: a document the person presented conflicts with
                      the lead's records; waits for a supervisor's override or a rejection
    identified        closed: a confirmation became final (a human adjudication)
    not_identified    closed by a person: no lead was confirmed
    inconclusive      closed by a person: they could not tell
    no_lead           closed: the search listed no candidate at or above the threshold
    refused           never a search: the photo was refused before any comparison

Acts (who may do each: :data:`fieldid.access.PERMISSIONS`)::

    reject(lead)      rules out one lead; the search stays open for the others. Rejecting the
                      lead whose confirmation is waiting (or blocked) withdraws it: back to open.
    confirm(lead)     open -> identified, or awaiting_second (two-person purposes), or
                      blocked_conflict (a presented document conflicts)
    second confirm    awaiting_second -> identified   (someone else, with a reason)
    disagree          awaiting_second -> open         (someone else, with a reason; shown to both)
    override          blocked_conflict -> awaiting_second or identified (a supervisor, reason)
    close(outcome)    open, awaiting_second or blocked_conflict -> not_identified or
                      inconclusive (a search with leads) or no_lead (a search without any);
                      a waiting confirmation is withdrawn

The probe photo is kept while the search is open (within the probe retention period, which the
scheduled purge enforces whatever the state) and deleted when the search closes without an
identification.
"""

from __future__ import annotations

from enum import StrEnum


class SearchState(StrEnum):
    OPEN = "open"
    AWAITING_SECOND = "awaiting_second"
    BLOCKED_CONFLICT = "blocked_conflict"
    IDENTIFIED = "identified"
    NOT_IDENTIFIED = "not_identified"
    INCONCLUSIVE = "inconclusive"
    NO_LEAD = "no_lead"
    REFUSED = "refused"


class Act(StrEnum):
    REJECT = "reject"
    CONFIRM = "confirm"
    SECOND_CONFIRM = "second_confirm"
    DISAGREE = "disagree"
    OVERRIDE = "override"
    CLOSE = "close"


S = SearchState

#: States in which people still work on the search.
OPEN_STATES = frozenset({S.OPEN, S.AWAITING_SECOND, S.BLOCKED_CONFLICT})
#: States a person's close may end a search in.
CLOSE_OUTCOMES = frozenset({S.NOT_IDENTIFIED, S.INCONCLUSIVE, S.NO_LEAD})
#: Closed states.
CLOSED_STATES = frozenset({S.IDENTIFIED, *CLOSE_OUTCOMES, S.REFUSED})

#: (state, act) -> the states the act may lead to. Anything not listed is refused.
TRANSITIONS: dict[tuple[SearchState, Act], frozenset[SearchState]] = {
    (S.OPEN, Act.REJECT): frozenset({S.OPEN}),
    (S.AWAITING_SECOND, Act.REJECT): frozenset({S.AWAITING_SECOND, S.OPEN}),
    (S.BLOCKED_CONFLICT, Act.REJECT): frozenset({S.BLOCKED_CONFLICT, S.OPEN}),
    (S.OPEN, Act.CONFIRM): frozenset({S.IDENTIFIED, S.AWAITING_SECOND, S.BLOCKED_CONFLICT}),
    (S.AWAITING_SECOND, Act.SECOND_CONFIRM): frozenset({S.IDENTIFIED}),
    (S.AWAITING_SECOND, Act.DISAGREE): frozenset({S.OPEN}),
    (S.BLOCKED_CONFLICT, Act.OVERRIDE): frozenset({S.AWAITING_SECOND, S.IDENTIFIED}),
    (S.OPEN, Act.CLOSE): CLOSE_OUTCOMES,
    (S.AWAITING_SECOND, Act.CLOSE): CLOSE_OUTCOMES,
    (S.BLOCKED_CONFLICT, Act.CLOSE): CLOSE_OUTCOMES,
}

#: How each state reads on screen: what happened and what waits; never a verdict.
STATE_TEXT: dict[SearchState, str] = {
    S.OPEN: "open: leads to check; no confirmation recorded yet",
    S.AWAITING_SECOND: "open: a confirmation waits for a second person",
    S.BLOCKED_CONFLICT: "open: a confirmation is blocked by a document conflict",
    S.IDENTIFIED: "closed: a candidate was confirmed by a person (human adjudication)",
    S.NOT_IDENTIFIED: "closed: no lead confirmed",
    S.INCONCLUSIVE: "closed: inconclusive",
    S.NO_LEAD: "closed: no lead (no candidate at or above the threshold)",
    S.REFUSED: "refused: the photo was not searched",
}


class TransitionRefused(Exception):
    """An act the search's state does not allow; ``code`` says which rule (adjudication.*)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def state_of(status: str) -> SearchState:
    try:
        return SearchState(status)
    except ValueError:
        raise TransitionRefused(
            "adjudication.bad_state", f"the search is in an unknown state {status!r}"
        ) from None


def allowed(state: SearchState, act: Act) -> frozenset[SearchState]:
    """Where ``act`` may take a search in ``state`` (empty: nowhere, it is refused)."""
    return TRANSITIONS.get((state, act), frozenset())


def check(state: SearchState, act: Act) -> None:
    """Refuse ``act`` in ``state`` with the rule that forbids it."""
    if allowed(state, act):
        return
    if state == S.REFUSED:
        raise TransitionRefused(
            "adjudication.refused_attempt",
            "this attempt was refused before any comparison: there is nothing to decide",
        )
    if state in CLOSED_STATES:
        raise TransitionRefused(
            "adjudication.search_closed", f"the search is already closed ({STATE_TEXT[state]})"
        )
    if act == Act.CONFIRM:
        raise TransitionRefused(
            "adjudication.pending",
            f"a confirmation is already waiting on this search ({STATE_TEXT[state]}): it must "
            "be confirmed, disagreed with, overridden or its lead rejected first",
        )
    if act in (Act.SECOND_CONFIRM, Act.DISAGREE):
        raise TransitionRefused(
            "adjudication.not_pending", "no confirmation on this search waits for a second person"
        )
    if act == Act.OVERRIDE:
        raise TransitionRefused(
            "adjudication.not_blocked", "no confirmation on this search is blocked by a conflict"
        )
    raise TransitionRefused(
        "adjudication.bad_state", f"{act.value} is not possible now ({STATE_TEXT[state]})"
    )


def move(state: SearchState, act: Act, to: SearchState) -> SearchState:
    """The state after ``act``, checked against :data:`TRANSITIONS` (a programming error if the
    adjudicator asks for a move the table does not hold)."""
    check(state, act)
    if to not in allowed(state, act):
        raise AssertionError(f"{state} --{act}--> {to} is not a transition")
    return to
