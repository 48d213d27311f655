"""The publishable transparency report: aggregate counts only, small cells suppressed, signed.

What it counts, for a period ``[from, to]`` (UTC days, both included), from the audit log (which
outlives search records) through the oversight report's helpers (:mod:`fieldid.report.data`):

- searches by purpose and month, with the totals per purpose, per month and overall
  (training searches are counted apart and left out of every other figure);
- the outcome of each search (identified = a human's final confirmation), and refused searches
  by reason code;
- 1:1 verifications: above threshold, below, refused;
- identifications confirmed in the period, of which a redress export was made afterwards (for
  the person identified, or for the search's receipt), and of which, after that redress export,
  the identified person's records were corrected or the person merged. fieldid has no operation
  that withdraws a final identification; a correction of what it rested on is what is counted;
- purges in the period by trigger, items purged per data class, and per class whether anything
  is held past its retention period now;
- the measured error rates of the latest evaluation (``W/evaluation/latest.json``);
- where searches happened, by sensitive area and by coarse cell, and the supervisors' approvals
  asked for, given and refused (:mod:`.location`).

What it never holds: names, operator ids, case references, receipt codes, person ids, record
ids, file paths, the time of any use finer than its month. Every count goes through
:mod:`.cells`: a count under k (zero included) is shown as ``"< k"`` and further counts are
withheld until no suppressed count can be worked back from the totals (k is
``[transparency] min_cell``, default 10).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fieldid.access import Actor
from fieldid.audit.log import AuditRecord
from fieldid.errors import FieldidError, WorkspaceError
from fieldid.policy_file import read_section
from fieldid.report.data import (
    OUTCOMES,
    adjudication_states,
    entry_time,
    is_training,
    search_outcome,
)
from fieldid.transparency import evaluation
from fieldid.transparency import location as where
from fieldid.transparency.cells import Counts, min_values, protect
from fieldid.workspace import Workspace

DEFAULT_MIN_CELL = 10
PURGE_TRIGGERS = ("scheduled", "manual", "adjudication")
VERIFY_OUTCOMES = ("above threshold", "below threshold", "refused")
IDENTIFICATION_ROWS = (
    ("confirmed", "identifications confirmed (a human's final confirmation)"),
    ("redress", "of which a redress export was made afterwards"),
    ("corrected", "of which the person's records were corrected or merged after that redress"),
)


def configured_min_cell(ws: Workspace) -> int:
    """``[transparency] min_cell`` (k), default 10; at least 3."""
    section = read_section(ws.root, "transparency")
    unknown = set(section) - {"min_cell"}
    if unknown:
        raise WorkspaceError(
            f"[transparency] has unknown settings: {', '.join(sorted(unknown))}",
            code="config.invalid",
        )
    k = section.get("min_cell", DEFAULT_MIN_CELL)
    if not isinstance(k, int) or isinstance(k, bool) or k < 3:
        raise WorkspaceError(
            "[transparency] min_cell must be a whole number of at least 3", code="config.invalid"
        )
    return k


def months_between(start: datetime, end: datetime) -> list[str]:
    """``YYYY-MM`` of every month touching ``[start, end)``."""
    last = end - timedelta(microseconds=1)
    y, m = start.year, start.month
    out = []
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


class _Resolver:
    """Who a redress export, record correction or merge was about (cached lookups)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._people: dict[str, int | None] = {}
        self._records: dict[int, int | None] = {}

    def person(self, ref: str) -> int | None:
        if ref not in self._people:
            from fieldid.records.merge import find_person

            try:
                self._people[ref] = find_person(self.ws.store, ref, follow_merges=True)
            except FieldidError:
                self._people[ref] = None
        return self._people[ref]

    def record_person(self, record_id: int) -> int | None:
        if record_id not in self._records:
            from fieldid.records.api import get_record

            try:
                self._records[record_id] = int(get_record(self.ws.store, record_id)["person_id"])
            except (FieldidError, KeyError, TypeError, ValueError):
                self._records[record_id] = None
        return self._records[record_id]


def _final_confirmations(entries: list[AuditRecord]) -> dict[int, tuple[int, int, str | None]]:
    """search audit seq -> (entry seq, person id, external id) of its final confirmation."""
    external: dict[int, str | None] = {}
    out: dict[int, tuple[int, int, str | None]] = {}
    for e in entries:
        p = e.payload
        if p.get("outcome") == "refused" or p.get("search_seq") is None:
            continue
        if e.event == "adjudicate" and p.get("adjudication_id") is not None:
            external[int(p["adjudication_id"])] = p.get("external_id")
        final = (e.event == "adjudicate" and p.get("decision") == "confirm") or e.event in (
            "second_confirm",
            "override",
        )
        if final and p.get("state") == "final" and p.get("person_id") is not None:
            ext = external.get(int(p.get("adjudication_id") or -1))
            out[int(p["search_seq"])] = (e.seq, int(p["person_id"]), ext)
    return out


def identifications_after_redress(
    ws: Workspace, entries: list[AuditRecord], identified: list[AuditRecord]
) -> tuple[int, int]:
    """(with a redress export afterwards, corrected after that export) among ``identified``."""
    finals = _final_confirmations(entries)
    resolve = _Resolver(ws)
    redress = [e for e in entries if e.event == "redress_export"]
    changes = [e for e in entries if e.event in ("record_correct", "person_merge")]
    n_redress = n_corrected = 0
    for s in identified:
        if s.seq not in finals:
            continue
        at_seq, person, ext = finals[s.seq]
        receipt = str(s.payload.get("receipt_code") or "") or None
        names = {str(person), *([ext] if ext else [])}
        first = None
        for r in redress:
            if r.seq <= at_seq:
                continue
            q = r.payload.get("query") or {}
            if (receipt is not None and q.get("receipt") == receipt) or (
                q.get("person") is not None
                and (q["person"] in names or resolve.person(str(q["person"])) == person)
            ):
                first = r.seq
                break
        if first is None:
            continue
        n_redress += 1
        for c in changes:
            if c.seq <= first:
                continue
            p = c.payload
            if c.event == "record_correct" and p.get("record_id") is not None:
                hit = resolve.record_person(int(p["record_id"])) == person
            else:
                hit = p.get("outcome") == "merged" and person in (
                    p.get("kept_person_id"),
                    p.get("merged_person_id"),
                )
            if hit:
                n_corrected += 1
                break
    return n_redress, n_corrected


def build_public_report(
    ws: Workspace, start: datetime, end: datetime, *, k: int | None = None
) -> dict[str, Any]:
    """The report's content for ``[start, end)``; every count already protected."""
    if end <= start:
        raise FieldidError("--to must not be before --from", code="transparency.bad_period")
    k = configured_min_cell(ws) if k is None else k
    entries = list(ws.store.audit_entries())
    within = [e for e in entries if start <= entry_time(e) < end]
    searches = [e for e in within if e.event == "search"]
    training = sum(1 for e in searches if is_training(e))
    searches = [e for e in searches if not is_training(e)]
    states = adjudication_states(
        [e for e in entries if e.event in ("adjudicate", "second_confirm", "override")]
    )
    months = months_between(start, end)
    purposes = list(ws.config.purposes)
    purposes += sorted({e.purpose or "?" for e in searches} - set(purposes))

    c = Counts()
    grid: Counter[tuple[str, str]] = Counter()
    outcomes: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    identified = []
    for e in searches:
        grid[(e.purpose or "?", entry_time(e).strftime("%Y-%m"))] += 1
        label = search_outcome(e, states)
        outcomes[label] += 1
        if label == "refused":
            refusals[str((e.payload.get("error") or {}).get("code", "unknown"))] += 1
        if label == "identified":
            identified.append(e)
    total = c.add("searches", len(searches))
    for p in purposes:
        for m in months:
            c.add(f"cell|{p}|{m}", grid[(p, m)])
        c.add(f"purpose|{p}", sum(grid[(p, m)] for m in months))
        c.add_sum(f"purpose|{p}", [f"cell|{p}|{m}" for m in months])
    for m in months:
        c.add(f"month|{m}", sum(grid[(p, m)] for p in purposes))
        c.add_sum(f"month|{m}", [f"cell|{p}|{m}" for p in purposes])
    c.add_sum(total, [f"purpose|{p}" for p in purposes])
    c.add_sum(total, [f"month|{m}" for m in months])
    for o in OUTCOMES:
        c.add(f"outcome|{o}", outcomes[o])
    c.add_sum(total, [f"outcome|{o}" for o in OUTCOMES])
    for code in sorted(refusals):
        c.add(f"refusal|{code}", refusals[code])
    if refusals:
        c.add_sum("outcome|refused", [f"refusal|{code}" for code in sorted(refusals)])
    c.add("training", training)

    verify: Counter[str] = Counter()
    for e in within:
        if e.event != "verify":
            continue
        vp = e.payload
        if vp.get("outcome") == "refused":
            verify["refused"] += 1
        elif float(vp.get("score", 0)) >= float(vp.get("threshold", 1)):
            verify["above threshold"] += 1
        else:
            verify["below threshold"] += 1
    for v in VERIFY_OUTCOMES:
        c.add(f"verify|{v}", verify[v])
    c.add("verify", sum(verify.values()))
    c.add_sum("verify", [f"verify|{v}" for v in VERIFY_OUTCOMES])

    n_redress, n_corrected = identifications_after_redress(ws, entries, identified)
    c.add("ident|redress", n_redress)
    c.add("ident|corrected", n_corrected)
    c.add_at_most("ident|redress", "outcome|identified")
    c.add_at_most("ident|corrected", "ident|redress")

    purges = [e for e in within if e.event == "purge"]
    triggers = Counter(str(e.payload.get("trigger", "other")) for e in purges)
    trigger_names = [*PURGE_TRIGGERS, *sorted(set(triggers) - set(PURGE_TRIGGERS))]
    for t in trigger_names:
        c.add(f"purge|{t}", triggers[t])
    c.add("purges", len(purges))
    c.add_sum("purges", [f"purge|{t}" for t in trigger_names])
    items: Counter[str] = Counter()
    for e in purges:
        for cls, n in (e.payload.get("classes") or {}).items():
            items[str(cls)] += int(n)
    retention = ws.retention.oldest_retained()
    for cls in retention:
        c.add(f"purged|{cls}", items[cls])

    located = where.add_counts(c, ws, searches, within, k)

    prot = protect(c, k)
    lab = prot.label
    return {
        "title": "fieldid transparency report",
        "format": 1,
        "generated_at": ws.clock.now().isoformat(timespec="seconds"),
        "period": {
            "from": start.date().isoformat(),
            "to": (end - timedelta(days=1)).date().isoformat(),
        },
        "coverage": _coverage(entries[0] if entries else None, start),
        "suppression": {
            "k": k,
            "small": f"< {k}",
            "withheld": "withheld",
            "rule": f"Every count under {k}, zero included, is shown as '< {k}'. Where such a "
            "count could be narrowed down from a total or another figure, further counts are "
            f"withheld until every '< {k}' count could still be any of at least {min_values(k)} "
            "values given everything this report states.",
            "small_cells": prot.counts("small"),
            "withheld_cells": prot.counts("withheld"),
        },
        "searches": {
            "total": lab(total),
            "training_excluded": lab("training"),
            "months": months,
            "purposes": purposes,
            "by_purpose_and_month": {
                p: {m: lab(f"cell|{p}|{m}") for m in months} for p in purposes
            },
            "by_purpose": {p: lab(f"purpose|{p}") for p in purposes},
            "by_month": {m: lab(f"month|{m}") for m in months},
        },
        "outcomes": {o: lab(f"outcome|{o}") for o in OUTCOMES},
        "refusals_by_reason": {code: lab(f"refusal|{code}") for code in sorted(refusals)},
        "verifications": {
            "total": lab("verify"),
            **{v: lab(f"verify|{v}") for v in VERIFY_OUTCOMES},
        },
        "identifications": {
            "confirmed": lab("outcome|identified"),
            "redress_afterwards": lab("ident|redress"),
            "corrected_after_redress": lab("ident|corrected"),
        },
        "purges": {
            "total": lab("purges"),
            "by_trigger": {t: lab(f"purge|{t}") for t in trigger_names},
            "items_purged": {cls: lab(f"purged|{cls}") for cls in retention},
        },
        "retention_now": {
            cls: {"period": v["policy"], "held_past_period": v["overdue"]}
            for cls, v in retention.items()
        },
        "error_rates": evaluation.summary(ws),
        "location": where.view(located, prot),
    }


def _coverage(first: AuditRecord | None, start: datetime) -> dict[str, Any]:
    if first is None:
        return {"complete": True, "statement": "The audit log holds no entry: nothing was used."}
    held = entry_time(first).astimezone(UTC)
    if held <= start:
        return {"complete": True, "statement": "The audit log covers the whole period."}
    day = held.date().isoformat()
    if first.seq == 1:
        return {
            "complete": True,
            "log_starts": day,
            "statement": f"The audit log begins on {day}, the system's first recorded use: "
            "nothing was used before it.",
        }
    return {
        "complete": False,
        "log_starts": day,
        "statement": f"The audit log now starts on {day}: entries before it were purged under "
        "the retention policy, so uses before that day are not counted.",
    }


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def overlapping_reports(ws: Workspace, period: dict[str, str]) -> list[dict[str, str]]:
    """Earlier transparency reports (from the audit log) whose period overlaps ``period`` without
    being the same: the difference of two such reports is not protected by suppression."""
    out = []
    for e in ws.store.audit_entries("export"):
        p = (e.payload or {}).get("period") or {}
        if (e.payload or {}).get("kind") != "transparency" or not p.get("from"):
            continue
        if p == period or p in out:
            continue
        if p["from"] <= period["to"] and period["from"] <= p["to"]:
            out.append({"from": p["from"], "to": p["to"]})
    return out


def render_html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (tables only)."""
    from fieldid.transparency.html import esc, page, table

    s = data["searches"]
    sup = data["suppression"]
    months = s["months"]
    parts = [
        f"<h1>{esc(data['title'])}</h1>",
        f"<p>Period: {esc(data['period']['from'])} to {esc(data['period']['to'])} (UTC, both "
        f"days included). Generated {esc(data['generated_at'])}.</p>",
        f"<p class='note'>{esc(data['coverage']['statement'])}</p>",
        *([f"<p class='warn'>{esc(data['warning'])}</p>"] if data.get("warning") else []),
        "<p class='note'>A search gives leads, never a determination. <em>Identified</em> means a "
        "person reviewed the candidates and confirmed one; nothing else counts as an "
        "identification. This report holds aggregate counts only: no names, operator ids, case "
        "references or receipt codes.</p>",
        f"<p class='note'>Small numbers: {esc(sup['rule'])}</p>",
        "<h2>Searches by purpose and month</h2>",
        table(
            [
                [p, *[s["by_purpose_and_month"][p][m] for m in months], s["by_purpose"][p]]
                for p in s["purposes"]
            ]
            + [["all purposes", *[s["by_month"][m] for m in months], s["total"]]],
            ["purpose", *months, "period"],
        ),
        f"<p>Training searches, counted apart and in no other figure: "
        f"{esc(s['training_excluded'])}.</p>",
        "<h2>Outcome of each search</h2>",
        table(
            [[k, v] for k, v in data["outcomes"].items()] + [["all", s["total"]]],
            ["outcome", "searches"],
        ),
        "<h2>Refused searches by reason</h2>",
        table(
            [[k, v] for k, v in data["refusals_by_reason"].items()]
            + [["all refused", data["outcomes"]["refused"]]],
            ["reason code", "searches"],
        )
        if data["refusals_by_reason"]
        else "<p>No search was refused.</p>",
        "<h2>1:1 verifications</h2>",
        table(
            [[k, v] for k, v in data["verifications"].items() if k != "total"]
            + [["all", data["verifications"]["total"]]],
            ["result", "verifications"],
        ),
        "<h2>Identifications and redress</h2>",
        table(
            [
                [label, data["identifications"][key]]
                for key, label in (
                    ("confirmed", IDENTIFICATION_ROWS[0][1]),
                    ("redress_afterwards", IDENTIFICATION_ROWS[1][1]),
                    ("corrected_after_redress", IDENTIFICATION_ROWS[2][1]),
                )
            ],
            ["", "searches"],
        ),
        "<p class='note'>fieldid has no operation that withdraws a final identification; what "
        "is counted as corrected is a correction of the identified person's records, or a merge "
        "of that person with another, made after a redress export about them (up to the day "
        "this report was generated).</p>",
        "<h2>Retention: purges and what is held</h2>",
        table(
            [[t, v] for t, v in data["purges"]["by_trigger"].items()]
            + [["all purges", data["purges"]["total"]]],
            ["purge trigger", "purges"],
        ),
        table(
            [
                [cls, r["period"], data["purges"]["items_purged"][cls], r["held_past_period"]]
                for cls, r in data["retention_now"].items()
            ],
            [
                "data class",
                "retention period",
                "items purged in the period",
                "anything held past its period now",
            ],
        ),
        *where.render_html(data["location"]),
        _rates_html(data["error_rates"]),
    ]
    return page(data["title"], parts)


def _rates_html(ev: dict[str, Any]) -> str:
    from fieldid.transparency.html import esc, table

    out = ["<h2>Measured error rates</h2>"]
    if not ev.get("available"):
        out.append(f"<p class='warn'>{esc(evaluation.NOT_MEASURED)}</p>")
        return "".join(out)
    out.append(
        f"<p>Latest evaluation, {esc(str(ev['at'])[:10])}: model {esc(ev['model'])} on the "
        f"labelled set {esc(ev['dataset'])} ({esc(ev['images'])} images of "
        f"{esc(ev['identities'])} people).</p>"
    )
    out.append(table(evaluation.rate_rows(ev), ["measure", "value"]))
    if ev["groups"]:
        out.append(table(evaluation.group_rows(ev), evaluation.GROUP_HEAD))
    out += [f"<p>{esc(x)}</p>" for x in evaluation.statements(ev)]
    return "".join(out)


def publish(
    ws: Workspace,
    actor: Actor,
    start: datetime,
    end: datetime,
    out: Path,
    *,
    key: Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build, write (``.html`` or ``.json`` by ``out``'s suffix) and sign the report; audit it
    (event ``export``, kind ``transparency``). Returns (data, signature)."""
    from fieldid.access import require
    from fieldid.audit.export import load_or_create_key
    from fieldid.retention.purge import register_export
    from fieldid.transparency.signing import sign_file

    require(actor, "report")
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".json"):
        raise FieldidError(
            f"{out.name}: write the report to a .html or a .json file",
            code="transparency.bad_output",
        )
    data = build_public_report(ws, start, end)
    overlaps = overlapping_reports(ws, data["period"])
    if overlaps:
        data["warning"] = (
            "Reports for overlapping periods were published before ("
            + "; ".join(f"{p['from']} to {p['to']}" for p in overlaps)
            + "): subtracting one from the other can reveal counts each suppresses. Publish "
            "periods that do not overlap."
        )
    text = dumps(data) if suffix == ".json" else render_html(data)
    private, _ = load_or_create_key(ws.store, key, root=ws.root)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    sig = sign_file(out, private, kind="transparency-report", signed_at=data["generated_at"])
    with ws.store.unit_of_work() as uow:  # the entry and the export's registration together
        entry = uow.audit(
            "export",
            operator=actor.name,
            payload={
                "kind": "transparency",
                "role": actor.role.value,
                "path": str(out),
                "period": data["period"],
                "k": data["suppression"]["k"],
                "sha256": sig["sha256"],
                "key_id": sig["key_id"],
            },
        )
        register_export(uow, "transparency", out, entry.seq)
    return data, sig
