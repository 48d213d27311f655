"""The oversight report's content, as a plain dict (``fieldid report --json`` prints it as is).

Everything comes from the audit log, which is kept longest (183 days by default) and records every
use (searches, verifications, every photo served, every search viewed or listed, adjudications,
wiped captures, enrolments, imports, exports…), plus the latest evaluation
(``W/evaluation/latest.json``), the operator accounts and the retention state. Training searches
(audit payload ``training: true``) are left out of every statistic and only counted.

Every use is counted by kind, by operator and by day (the trend); uses by accounts that were
disabled at the time, or by names that are no account of the workspace, are listed one by one
(there should be none). Entries made by the system itself (``system:…``), by a local command that
needs no account (``local:…``, e.g. ``fieldid calibrate``), at set-up (``init:…``,
``bootstrap:…``) and failed logins are not uses.
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
    "not identified",
    "inconclusive",
    "no lead",
    "awaiting second confirmation",
    "blocked by document conflict",
    "open",
    "no candidate above threshold",
    "refused",
)
#: The search's state (``fieldid.adjudication.states``) as the report names it.
STATUS_LABELS = {
    "identified": "identified",
    "not_identified": "not identified",
    "inconclusive": "inconclusive",
    "no_lead": "no lead",
    "awaiting_second": "awaiting second confirmation",
    "blocked_conflict": "blocked by document conflict",
    "open": "open",
}
#: Uses the report counts by kind: kind -> the audit events it is made of.
USE_KINDS: dict[str, tuple[str, ...]] = {
    "searches": ("search",),
    "verifications": ("verify",),
    "photo accesses": ("photo_access",),
    "searches viewed": ("search_view",),
    "search lists viewed": ("search_list",),
    "review queue viewed": ("review_view",),
    "adjudication acts": ("adjudicate", "second_confirm", "second_disagree", "override"),
    "wiped captures": ("capture_wiped",),
    "document-first encounters": (),  # filled from DOCUMENT_FIRST_EVENTS below
    "enrolments and imports": ("enroll", "import", "synth", "volunteer_enrol"),
    # Every enrolled face computed again for another model (its start, resumptions, switch).
    "gallery re-templating": ("retemplate", "retemplate_status"),
    "records read or corrected": ("record_view", "record_correct", "merge_history_view"),
    "merges and review decisions": ("person_merge", "review_resolve"),
    "exports and reports": (
        "export",
        "redress_export",
        "db_copy",
        "evaluate",
        "audit_verify",
        "index_rebuild",
        "index_check",
    ),
}
#: Document-first encounters (a document checked before, or instead of, any face search) are
#: not recorded by this version; the stream that adds them audits them under one of these
#: events, and the report counts them here with no other change.
DOCUMENT_FIRST_EVENTS: tuple[str, ...] = ("document_check", "document_first")
#: Operator-name prefixes of entries that are not an account's use.
NOT_ACCOUNTS = ("system:", "local:", "init:", "bootstrap:")
#: Events that are not uses even when an account's name is on them.
NOT_USES = frozenset({"login", "login_failed", "logout"})
STEPS = 7


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
    """search audit seq -> the state its adjudications left it in (latest wins), as a label of
    :data:`OUTCOMES`. Entries record the search's state after each act (``search_status``);
    older entries, made before the states were named, are read as they were meant then."""
    state: dict[int, str] = {}
    for e in entries:
        p = e.payload
        seq = p.get("search_seq")
        if seq is None or p.get("outcome") == "refused":
            continue
        status = p.get("search_status")
        if isinstance(status, str) and status in STATUS_LABELS:
            state[seq] = STATUS_LABELS[status]
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
                state[seq] = "not identified"
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
    if e.seq in states:
        return states[e.seq]
    if o == "no_candidate_above_threshold":
        return "no candidate above threshold"
    return "open"


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


def encounter_counts(entries: list[AuditRecord], searches: list[AuditRecord]) -> dict[str, int]:
    """Documents first, counted (issue 12): encounters settled by a presented document with no
    gallery search, 1:N searches run (after no document, after a document that did not pass,
    and although a document passed, each with its officer's reason), and document checks that
    were refused. ``searches``: the period's search entries, training excluded."""
    checks = [e for e in entries if e.event == "document_check"]
    ran = [e for e in searches if e.payload.get("outcome") != "refused"]
    after = [e for e in ran if e.payload.get("document_check")]
    despite = [e for e in after if e.payload.get("despite_valid_document")]
    return {
        "document_checks": sum(e.payload.get("outcome") != "refused" for e in checks),
        "document_checks_refused": sum(e.payload.get("outcome") == "refused" for e in checks),
        "settled_by_document": sum(
            e.payload.get("outcome") == "settled_by_document" for e in checks
        ),
        "by_1n_search": len(ran),
        "by_1n_without_document_check": len(ran) - len(after),
        "by_1n_after_document_failed": len(after) - len(despite),
        "by_1n_despite_valid_document": len(despite),
        "searches_refused_as_settled_by_document": sum(
            e.payload.get("error", {}).get("code") == "search.document_settled" for e in searches
        ),
    }


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
        e
        for e in every
        if e.event in ("adjudicate", "second_confirm", "second_disagree", "override")
    ]
    step("audit log read")

    searches = [e for e in entries if e.event == "search"]
    training = [e for e in searches if is_training(e)]
    searches = [e for e in searches if not is_training(e)]
    by_purpose = Counter(e.purpose or "?" for e in searches)
    by_operator = Counter(e.operator for e in searches)
    # Where each probe came from (the search's audit entry; not recorded before it was).
    by_capture: Counter[str] = Counter(
        {"live": 0, "file": 0, "not recorded": 0}
        | Counter(str(e.payload.get("capture") or "not recorded") for e in searches)
    )
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

    encounters = encounter_counts(entries, searches)
    step("encounters")

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
        if e.event not in ("adjudicate", "second_confirm", "second_disagree", "override"):
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
        elif e.event == "second_disagree":
            rules["second person disagreed (search open again)"] += 1
        elif e.event == "adjudicate" and p.get("decision") == "reject":
            rules["lead ruled out (search stays open)"] += 1
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

    uses = count_uses(entries)
    accounts = account_checks(store, every, entries)
    step("every use, by account")

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
            "by_capture": dict(by_capture),
            "by_day": {d: dict(c) for d, c in sorted(by_day.items())},
        },
        "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "encounters": encounters,
        "outcomes_by_operator": {
            op: {k: c.get(k, 0) for k in OUTCOMES} for op, c in sorted(outcome_by_operator.items())
        },
        "quality": {
            "accepted_unified": sorted(accepted_q),
            "refused_unified": sorted(refused_q),
            "refusals_by_code": dict(refusal_codes.most_common()),
        },
        "adjudication_rules": dict(rules.most_common()),
        "uses": uses,
        "accounts": accounts,
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


def is_account_use(e: AuditRecord) -> bool:
    """An entry an account made as a use (not the system's, a local command's, or a login)."""
    return e.event not in NOT_USES and not e.operator.startswith(NOT_ACCOUNTS)


def _series(items: list[AuditRecord]) -> dict[str, Any]:
    by_day: Counter[str] = Counter(entry_time(e).date().isoformat() for e in items)
    by_operator: Counter[str] = Counter(e.operator for e in items)
    return {
        "total": len(items),
        "by_day": dict(sorted(by_day.items())),
        "by_operator": dict(by_operator.most_common()),
    }


def count_uses(entries: list[AuditRecord]) -> dict[str, Any]:
    """Every use in the period by kind (:data:`USE_KINDS`), each with its total, its trend
    (per day) and who; and the details oversight asks for: verifications by result, photo
    accesses by kind (with every reason given outside a search), investigation lists by
    operator, wiped captures, document-first encounters."""
    kinds = {**USE_KINDS, "document-first encounters": DOCUMENT_FIRST_EVENTS}
    by_kind: dict[str, Any] = {}
    for kind, events in kinds.items():
        items = [e for e in entries if e.event in events and not is_training(e)]
        by_kind[kind] = _series(items)
    known = {ev for events in kinds.values() for ev in events}
    other = [e for e in entries if is_account_use(e) and e.event not in known]
    by_kind["other account actions"] = {
        **_series(other),
        "events": dict(Counter(e.event for e in other).most_common()),
    }

    verifications = [e for e in entries if e.event == "verify"]
    verify_results: Counter[str] = Counter()
    for e in verifications:
        p = e.payload
        if p.get("outcome") == "refused":
            verify_results["refused"] += 1
        elif p.get("score") is not None and p.get("threshold") is not None:
            above = float(p["score"]) >= float(p["threshold"])
            verify_results["at or above threshold" if above else "below threshold"] += 1
    photos = [e for e in entries if e.event == "photo_access"]
    investigations = [
        e
        for e in entries
        if e.event == "search"
        and e.payload.get("list_kind") == "investigation"
        and not is_training(e)
    ]
    wiped = [e for e in entries if e.event == "capture_wiped"]
    document_first = [e for e in entries if e.event in DOCUMENT_FIRST_EVENTS]
    return {
        "by_kind": by_kind,
        "verifications": {
            **_series(verifications),
            "results": dict(verify_results.most_common()),
        },
        "photo_accesses": {
            **_series(photos),
            "by_kind": dict(Counter(str(e.payload.get("kind", "?")) for e in photos).most_common()),
            "outside_a_search": [
                {
                    "seq": e.seq,
                    "at": entry_time(e).isoformat(),
                    "operator": e.operator,
                    "kind": e.payload.get("kind"),
                    "person_id": e.payload.get("person_id"),
                    "reason": e.payload.get("reason"),
                }
                for e in photos
                if e.payload.get("search_id") is None
            ],
        },
        "investigation_lists": {
            **_series(investigations),
            "low_quality": sum(1 for e in investigations if e.payload.get("below_gate")),
            "refused": sum(1 for e in investigations if e.payload.get("outcome") == "refused"),
        },
        "capture_wiped": {
            **_series(wiped),
            "maybe_sent": sum(1 for e in wiped if e.payload.get("maybe_sent")),
        },
        "document_first": {
            **_series(document_first),
            "recorded": bool(document_first),
            "note": "document-first encounters are not recorded by this version of fieldid; "
            f"once they are (audit events {', '.join(DOCUMENT_FIRST_EVENTS)}) they are counted "
            "here",
        },
    }


def account_checks(
    store: Store, every: list[AuditRecord], entries: list[AuditRecord]
) -> dict[str, Any]:
    """Uses by accounts disabled at the time, and by names that are no account of the
    workspace: each listed (there should be none). Disabled periods come from the audit log
    (``user_disable`` / ``user_enable``)."""
    from sqlalchemy import select

    from fieldid.store.schema import Operator

    with store.read() as s:
        accounts = {op.name: op for op in s.scalars(select(Operator))}
    disabled_since: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    for e in every:
        user = e.payload.get("user")
        if not isinstance(user, str):
            continue
        if e.event == "user_disable":
            disabled_since[user].append((e.seq, None))
        elif e.event == "user_enable" and disabled_since[user]:
            start, _ = disabled_since[user][-1]
            disabled_since[user][-1] = (start, e.seq)

    def was_disabled(name: str, seq: int) -> bool:
        return any(
            start < seq and (end is None or seq < end) for start, end in disabled_since[name]
        )

    def row(e: AuditRecord) -> dict[str, Any]:
        return {
            "seq": e.seq,
            "at": entry_time(e).isoformat(),
            "operator": e.operator,
            "event": e.event,
        }

    uses = [e for e in entries if is_account_use(e)]
    unknown = [e for e in uses if e.operator not in accounts]
    disabled = [e for e in uses if e.operator in accounts and was_disabled(e.operator, e.seq)]
    return {
        "accounts": len(accounts),
        "active": sum(1 for a in accounts.values() if not a.disabled),
        "disabled_now": sorted(a.name for a in accounts.values() if a.disabled),
        "uses": len(uses),
        "uses_by_operator": dict(Counter(e.operator for e in uses).most_common()),
        "by_unknown_accounts": {
            "count": len(unknown),
            "names": dict(Counter(e.operator for e in unknown).most_common()),
            "entries": [row(e) for e in unknown[:200]],
        },
        "by_disabled_accounts": {
            "count": len(disabled),
            "names": dict(Counter(e.operator for e in disabled).most_common()),
            "entries": [row(e) for e in disabled[:200]],
        },
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
