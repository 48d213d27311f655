"""The oversight report's content, as a plain dict (``fieldid report --json`` prints it as is).

Everything comes from the audit log, which is kept longest (183 days by default) and records every
search, adjudication and purge, plus the latest evaluation (``W/evaluation/latest.json``) and the
retention state. Training searches (audit payload ``training: true``) are left out of every
statistic and only counted.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from fieldid.access import Actor
from fieldid.audit.log import AuditRecord
from fieldid.audit.verify import verify_log
from fieldid.clock import Clock
from fieldid.errors import FieldidError
from fieldid.not_checked import NOT_CHECKED
from fieldid.retention.purge import Retention, register_export
from fieldid.store import Store

EVALUATION_FILE = ("evaluation", "latest.json")
OUTCOMES = (
    "identified",
    "rejected",
    "inconclusive",
    "awaiting second confirmation",
    "blocked by document conflict",
    "not adjudicated",
    "no candidate above threshold",
    "refused",
)
STEPS = 6


def parse_day(text: str, *, end: bool = False) -> datetime:
    """``2026-01-31`` -> that day's start, UTC; with ``end``, the next day's start (the ``--to``
    day is included)."""
    try:
        d = date.fromisoformat(text)
    except ValueError as e:
        raise FieldidError(
            f"{text!r} is not a date: write it as YYYY-MM-DD", code="report.bad_date"
        ) from e
    dt = datetime.combine(d, time(0), tzinfo=UTC)
    return dt + timedelta(days=1) if end else dt


def entry_time(e: AuditRecord) -> datetime:
    return e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC)


def adjudication_states(entries: list[AuditRecord]) -> dict[int, str]:
    """search audit seq -> the outcome its adjudications reached (latest wins)."""
    state: dict[int, str] = {}
    for e in entries:
        p = e.payload
        seq = p.get("search_seq")
        if seq is None or p.get("outcome") == "refused":
            continue
        if e.event == "adjudicate":
            st, decision = p.get("state"), p.get("decision")
            if st == "blocked_conflict":
                state[seq] = "blocked by document conflict"
            elif st == "pending_second":
                state[seq] = "awaiting second confirmation"
            elif decision == "confirm":
                state[seq] = "identified"
            elif decision == "reject":
                state[seq] = "rejected"
            else:
                state[seq] = "inconclusive"
        elif e.event == "second_confirm":
            state[seq] = "identified"
        elif e.event == "override":
            state[seq] = (
                "identified" if p.get("state") == "final" else "awaiting second confirmation"
            )
    return state


def search_outcome(e: AuditRecord, states: dict[int, str]) -> str:
    """One of :data:`OUTCOMES` for a ``search`` entry, given :func:`adjudication_states`."""
    o = e.payload.get("outcome")
    if o == "refused":
        return "refused"
    if o == "no_candidate_above_threshold":
        return "no candidate above threshold"
    return states.get(e.seq, "not adjudicated")


def is_training(e: AuditRecord) -> bool:
    """A training search (audit payload ``training: true``): counted apart, in no statistic."""
    return e.payload.get("training") is True


def load_evaluation(root: Path) -> dict[str, Any]:
    path = root.joinpath(*EVALUATION_FILE)
    if not path.is_file():
        return {
            "available": False,
            "message": f"no evaluation has been recorded ({path.relative_to(root)} is absent): "
            "accuracy is not measured for this workspace; run `fieldid eval --workspace W`",
        }
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return {"available": False, "message": f"{path} could not be read: {e}"}
    if not isinstance(data, dict):
        return {"available": False, "message": f"{path} does not hold a JSON object"}
    return {"available": True, **data}


def matcher_section(model: Callable[[], str] | None, searches: list[AuditRecord]) -> dict[str, Any]:
    """The face model in force (with its licence and provenance) and the model each search of
    the period used, from its audit entry. ``model()`` names the model in force (None: the
    caller does not know it)."""
    from fieldid.template.bundled import model_info

    if model is None:
        return {"in_force": "not given", "about": None, "searches_by_model": _by_model(searches)}
    try:
        in_force = model()
    except FieldidError as e:  # e.g. a user's ONNX file that is gone: still report the rest
        return {
            "in_force": f"unavailable: {e}",
            "about": None,
            "searches_by_model": _by_model(searches),
        }
    return {
        "in_force": in_force,
        "about": model_info(in_force),
        "searches_by_model": _by_model(searches),
    }


def _by_model(searches: list[AuditRecord]) -> dict[str, int]:
    return dict(
        Counter(str(e.payload.get("model", "not recorded")) for e in searches).most_common()
    )


def build_report(
    store: Store,
    root: Path,
    clock: Clock,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    model: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """The report's data for ``[start, end)`` (open ends: everything held), from the store of
    the workspace at ``root`` (its evaluation and retention policy); ``model()`` names the face
    model in force (the workspace's pipeline)."""

    def step(name: str) -> None:
        if progress:
            progress(name)

    every = store.audit_entries()
    entries = [
        e
        for e in every
        if (start is None or entry_time(e) >= start) and (end is None or entry_time(e) < end)
    ]
    adjudication_events = [
        e for e in every if e.event in ("adjudicate", "second_confirm", "override")
    ]
    step("audit log read")

    searches = [e for e in entries if e.event == "search"]
    training = [e for e in searches if is_training(e)]
    searches = [e for e in searches if not is_training(e)]
    by_purpose = Counter(e.purpose or "?" for e in searches)
    by_operator = Counter(e.operator for e in searches)
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    for e in searches:
        by_day[entry_time(e).date().isoformat()][e.purpose or "?"] += 1
    states = adjudication_states(adjudication_events)
    outcomes: Counter[str] = Counter()
    outcome_by_operator: dict[str, Counter[str]] = defaultdict(Counter)
    for e in searches:
        label = search_outcome(e, states)
        outcomes[label] += 1
        outcome_by_operator[e.operator][label] += 1
    step("searches and outcomes")

    accepted_q: list[int] = []
    refused_q: list[int] = []
    refusal_codes: Counter[str] = Counter()
    for e in searches:
        p = e.payload
        if p.get("outcome") == "refused":
            err = p.get("error", {})
            refusal_codes[err.get("code", "?")] += 1
            q = err.get("quality", {}).get("unified")
            if q is not None:
                refused_q.append(int(q))
        else:
            q = p.get("probe", {}).get("quality", {}).get("unified")
            if q is not None:
                accepted_q.append(int(q))
    step("probe quality")

    rules: Counter[str] = Counter()
    for e in entries:
        if e.event not in ("adjudicate", "second_confirm", "override"):
            continue
        p = e.payload
        if p.get("outcome") == "refused":
            rules["refused: " + p.get("error", {}).get("code", "?")] += 1
        elif e.event == "adjudicate" and p.get("state") == "blocked_conflict":
            rules["blocked: adjudication.document_conflict"] += 1
        elif e.event == "override":
            rules["override by supervisor (with reason)"] += 1
        elif e.event == "second_confirm":
            rules["second confirmation"] += 1
        elif e.event == "adjudicate" and p.get("state") == "pending_second":
            rules["awaiting second confirmation (two-person rule)"] += 1
        elif e.event == "adjudicate":
            rules[f"decision recorded: {p.get('decision')}"] += 1
    step("adjudication rules")

    evaluation = load_evaluation(root)
    step("evaluation")

    retention = Retention(store, root, clock)
    policy = retention.policy()
    purges = [e for e in entries if e.event == "purge"]
    purged: Counter[str] = Counter()
    for e in purges:
        for k, v in e.payload.get("classes", {}).items():
            purged[k] += int(v)
    chain = verify_log(store)
    step("retention and audit chain")

    return {
        "title": "fieldid oversight report",
        "generated_at": clock.now().isoformat(),
        "workspace": str(root),
        "period": {
            "from": None if start is None else start.isoformat(),
            "to": None if end is None else end.isoformat(),
        },
        "searches": {
            "total": len(searches),
            "training_excluded": len(training),
            "by_purpose": dict(by_purpose.most_common()),
            "by_operator": dict(by_operator.most_common()),
            "by_day": {d: dict(c) for d, c in sorted(by_day.items())},
        },
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "outcomes_by_operator": {
            op: {k: c.get(k, 0) for k in OUTCOMES} for op, c in sorted(outcome_by_operator.items())
        },
        "quality": {
            "accepted_unified": sorted(accepted_q),
            "refused_unified": sorted(refused_q),
            "refusals_by_code": dict(refusal_codes.most_common()),
        },
        "adjudication_rules": dict(rules.most_common()),
        "evaluation": evaluation,
        "retention": {
            "policy": policy.to_dict(),
            "oldest_retained": retention.oldest_retained(policy),
            "purges_in_period": len(purges),
            "purged_in_period": dict(purged),
        },
        "audit_chain": chain.to_dict(),
        "matcher": matcher_section(model, searches),
        "not_checked": [{"what": what, "statement": text} for what, text in NOT_CHECKED],
    }


def record_report(
    store: Store, actor: Actor, data: dict[str, Any], out: Path | None, html: str | None
) -> int:
    """Audit a report (event ``export``, kind ``report``) and, with ``out``, write its HTML there
    and register it for the ``exports`` retention period, in one unit of work. Returns the
    entry's seq."""
    with store.unit_of_work() as uow:
        entry = uow.audit(
            "export",
            operator=actor.name,
            payload={
                "kind": "report",
                "role": actor.role.value,
                "path": None if out is None else str(out),
                "period": data["period"],
            },
        )
        if out is not None and html is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(html, encoding="utf-8")
            register_export(uow, "report", out, entry.seq)
    return entry.seq
