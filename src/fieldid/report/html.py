"""The oversight report as one self-contained HTML file: tables, and matplotlib charts inlined as
base64 PNG (no external file, script or font), so it can be mailed or archived as is."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fieldid.report.data import OUTCOMES

OUTCOME_COLOURS = {
    "identified": "#1b7837",
    "not identified": "#762a83",
    "inconclusive": "#999999",
    "no lead": "#92c5de",
    "awaiting second confirmation": "#f1a340",
    "blocked by document conflict": "#d73027",
    "open": "#c2a5cf",
    "no candidate above threshold": "#4393c3",
    "refused": "#2d2d2d",
}
PALETTE = ["#4393c3", "#f1a340", "#1b7837", "#762a83", "#d73027", "#999999", "#c2a5cf"]


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def chart_by_day(by_day: dict[str, dict[str, int]]) -> str:
    days = list(by_day)
    purposes = sorted({p for c in by_day.values() for p in c})
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    bottom = [0] * len(days)
    for i, p in enumerate(purposes):
        vals = [by_day[d].get(p, 0) for d in days]
        ax.bar(days, vals, bottom=bottom, label=p, color=PALETTE[i % len(PALETTE)])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("searches")
    ax.set_title("Searches per day, by purpose")
    ax.legend(fontsize=8, frameon=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(days) > 8:
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _img(_png(fig), "searches per day by purpose")


def chart_outcomes(outcomes: dict[str, int]) -> str:
    labels = [k for k in OUTCOMES if outcomes.get(k)]
    fig = Figure(figsize=(8, 0.5 + 0.42 * max(1, len(labels))))
    ax = fig.add_subplot()
    vals = [outcomes[k] for k in labels]
    ax.barh(labels, vals, color=[OUTCOME_COLOURS[k] for k in labels])
    ax.invert_yaxis()
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v}", va="center", fontsize=9)
    ax.set_xlabel("searches")
    ax.set_title("Outcome of each search (identified = a human's final confirmation)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max([*vals, 1]) * 1.12)
    return _img(_png(fig), "search outcomes")


def chart_uses(by_kind: dict[str, dict[str, Any]]) -> str | None:
    """Uses per day, one line per kind: the trend of every use."""
    series = {k: v["by_day"] for k, v in by_kind.items() if v["total"]}
    days = sorted({d for v in series.values() for d in v})
    if not days:
        return None
    fig = Figure(figsize=(8, 3.4))
    ax = fig.add_subplot()
    for i, (kind, by_day) in enumerate(series.items()):
        ax.plot(
            days,
            [by_day.get(d, 0) for d in days],
            marker="o",
            ms=3,
            label=kind,
            color=PALETTE[i % len(PALETTE)],
            linestyle="-" if i < len(PALETTE) else "--",
        )
    ax.set_ylabel("uses")
    ax.set_title("Uses per day, by kind")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(days) > 8:
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return _img(_png(fig), "uses per day by kind")


def chart_quality(accepted: Sequence[int], refused: Sequence[int]) -> str:
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    bins = list(range(0, 101, 10))
    ax.hist(
        [list(accepted), list(refused)],
        bins=bins,
        stacked=True,
        label=["searched", "refused at the quality gate"],
        color=["#4393c3", "#d73027"],
    )
    ax.set_xlabel("unified probe quality (0-100)")
    ax.set_ylabel("probes")
    ax.set_xticks(bins)
    ax.set_title("Probe quality")
    ax.legend(fontsize=8, frameon=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _img(_png(fig), "probe quality distribution")


def chart_det(ev: dict[str, Any]) -> str | None:
    det = ev.get("det") or {}
    fmr, fnmr = det.get("fmr") or [], det.get("fnmr") or []
    pts = [(a, b) for a, b in zip(fmr, fnmr, strict=False) if a > 0 and b > 0]
    if len(pts) < 2:
        return None
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.add_subplot()
    ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#2166ac", lw=1.8, label="DET")
    op = ev.get("operating_point") or {}
    if op.get("fmr") and op.get("fnmr"):
        ax.plot(
            [op["fmr"]],
            [op["fnmr"]],
            "o",
            color="#d73027",
            label=f"operating point (threshold {op.get('threshold', '?')})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title(f"DET curve: {ev.get('model', '?')} on {ev.get('dataset', '?')}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _img(_png(fig), "DET curve")


def chart_groups(groups: list[dict[str, Any]]) -> str | None:
    groups = [g for g in groups if "group" in g]
    if not groups:
        return None
    fig = Figure(figsize=(8, 3.4))
    axes = fig.subplots(1, 2)
    names = [str(g["group"]) for g in groups]
    for ax, key, colour in zip(axes, ("fmr", "fnmr"), ("#d73027", "#2166ac"), strict=True):
        vals = [float(g.get(key) or 0) for g in groups]
        ax.bar(names, vals, color=colour)
        ax.set_title(key.upper() + " by group")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        for x, v in enumerate(vals):
            ax.text(x, v, f"{v:.2g}", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max([*vals, 1e-09]) * 1.18)
    fig.tight_layout()
    return _img(_png(fig), "error rates by demographic group")


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;
text-align:left;font-size:.9rem}th{background:#f3f3f3}.warn{color:#b00;font-weight:bold}
.ok{color:#1b7837;font-weight:bold}.note{color:#555;font-size:.9rem}img{max-width:100%}
"""


def render_html(data: dict[str, Any], progress: Callable[[str], None] | None = None) -> str:
    """The report as HTML (see the module docstring)."""

    def step(name: str) -> None:
        if progress:
            progress(name)

    s = data["searches"]
    period = data["period"]
    parts = [
        f"<h1>{html.escape(data['title'])}</h1>",
        f"<p>Period: {html.escape(period['from'] or 'start of the log')} to "
        f"{html.escape(period['to'] or 'now')}. Generated {html.escape(data['generated_at'])}."
        f" Workspace {html.escape(data['workspace'])}.</p>",
        "<p class='note'>A search gives leads, never a determination. Identified means a human "
        "adjudication confirmed a candidate; nothing else counts as one.</p>",
        _not_checked_html(data["not_checked"]),
        "<h2>Searches</h2>",
        f"<p>{s['total']} searches in the period; {s['training_excluded']} training searches "
        "are excluded from every figure.</p>",
    ]
    if s["by_day"]:
        parts.append(chart_by_day(s["by_day"]))
    step("chart: searches per day")
    parts.append(_table(list(s["by_purpose"].items()), ["purpose", "searches"]))
    parts.append(
        "<p>Where the photo of each search came from: the field app's live camera, or a file "
        "(an upload, the command line). fieldid cannot tell a photo of a photo from a live "
        "person, from a file or from the camera (see What fieldid does not check).</p>"
    )
    parts.append(
        _table(
            [[CAPTURE_LABELS.get(k, k), v] for k, v in s.get("by_capture", {}).items()],
            ["photo from", "searches"],
        )
    )
    ops = data["outcomes_by_operator"]
    parts.append(
        _table(
            [[op, s["by_operator"].get(op, 0), *[c[k] for k in OUTCOMES]] for op, c in ops.items()],
            ["operator", "searches", *OUTCOMES],
        )
    )
    parts.append("<h2>Outcomes</h2>")
    if any(data["outcomes"].values()):
        parts.append(chart_outcomes(data["outcomes"]))
    parts.append(_table(list(data["outcomes"].items()), ["outcome", "searches"]))
    step("chart: outcomes")
    enc = data.get("encounters", {})
    parts.append("<h2>Encounters: documents first</h2>")
    parts.append(
        "<p>A document the person presented that passed (read or chip verified, not expired, "
        "face matching its portrait 1:1) settles the encounter without any gallery search. "
        "1:N searches run although such a document was presented each carry the officer's "
        "written reason in the audit log.</p>"
    )
    labels = {
        "document_checks": "document checks",
        "settled_by_document": "encounters settled by a document (no 1:N search)",
        "by_1n_search": "encounters that went to a 1:N search",
        "by_1n_without_document_check": "  of which: no document checked",
        "by_1n_after_document_failed": "  of which: the document did not pass",
        "by_1n_despite_valid_document": "  of which: although a document passed (reason given)",
        "searches_refused_as_settled_by_document": "1:N searches refused: document passed",
        "document_checks_refused": "document checks refused",
    }
    parts.append(_table([[labels.get(k, k), v] for k, v in enc.items()], ["", "count"]))
    q = data["quality"]
    parts.append("<h2>Probe quality and refusals</h2>")
    if q["accepted_unified"] or q["refused_unified"]:
        parts.append(chart_quality(q["accepted_unified"], q["refused_unified"]))
    parts.append(
        _table(list(q["refusals_by_code"].items()), ["refusal code", "searches"])
        if q["refusals_by_code"]
        else "<p>No search was refused.</p>"
    )
    step("chart: quality")
    parts.append("<h2>Adjudication rules applied</h2>")
    rules = data["adjudication_rules"]
    parts.append(
        _table(list(rules.items()), ["adjudication event", "count"])
        if rules
        else "<p>No adjudication in the period.</p>"
    )
    parts.append(_matcher_html(data["matcher"]))
    parts.append(_uses_html(data["uses"]))
    parts.append(_accounts_html(data["accounts"]))
    step("chart: uses")
    parts.append(_evaluation_html(data["evaluation"]))
    step("chart: evaluation")
    parts.append(_retention_html(data["retention"]))
    chain = data["audit_chain"]
    parts.append("<h2>Audit log</h2>")
    if chain["ok"]:
        parts.append(
            f"<p class='ok'>Chain intact: {chain['checked']} entries from seq "
            f"{chain['start']['seq']} to {chain['head']['seq']}; head hash "
            f"<code>{html.escape(str(chain['head']['hash']))}</code>.</p>"
        )
    else:
        p = chain["problem"]
        parts.append(f"<p class='warn'>Chain broken: {html.escape(p['message'])}</p>")
    step("html")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(data['title'])}</title><style>{CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )


def _evaluation_html(ev: dict[str, Any]) -> str:
    out = ["<h2>Measured accuracy</h2>"]
    if not ev.get("available"):
        out.append(f"<p class='warn'>{html.escape(ev.get('message', 'not available'))}</p>")
        return "".join(out)
    op = ev.get("operating_point") or {}
    out.append(
        _table(
            [
                ["measured at", ev.get("at", "?")],
                ["model", ev.get("model", "?")],
                ["dataset", ev.get("dataset", "?")],
                [
                    "images / identities",
                    f"{ev.get('n_images', '?')} / {ev.get('n_identities', '?')}",
                ],
                ["failure to acquire", _num(ev.get("fta", "?"))],
                ["threshold", _num(op.get("threshold", "?"))],
                ["FMR at threshold", _num(op.get("fmr", "?"))],
                ["FNMR at threshold", _num(op.get("fnmr", "?"))],
                ["FPIR / FNIR", f"{_num(op.get('fpir'))} / {_num(op.get('fnir'))}"],
                ["gallery size", op.get("gallery_size", "?")],
            ],
            ["measure", "value"],
        )
    )
    det = chart_det(ev)
    out.append(det or "<p>The evaluation holds no DET curve.</p>")
    groups = ev.get("groups") or []
    out.append("<h3>Differences between demographic groups</h3>")
    chart = chart_groups(groups)
    if chart:
        out.append(chart)
        out.append(
            _table(
                [[g["group"], g.get("n_images"), g.get("fmr"), g.get("fnmr")] for g in groups],
                ["group", "images", "FMR", "FNMR"],
            )
        )
        ratios = ev.get("group_ratios") or {}
        if ratios:
            out.append(
                f"<p>Worst-to-best ratio: FMR {ratios.get('fmr_worst_to_best')}, FNMR "
                f"{ratios.get('fnmr_worst_to_best')}.</p>"
            )
    else:
        out.append("<p>The evaluation set carries no group labels: differences not measured.</p>")
    cc = ev.get("calibration_check")
    out.append("<h3>Calibration</h3>")
    if not cc:
        out.append("<p>No calibration check in the evaluation.</p>")
    else:
        rows = cc.get("rows") or []
        judged = [r for r in rows if r.get("enough_data")]
        cal = html.escape(str(cc.get("calibration", "")))
        if cc.get("drifted"):
            out.append(
                f"<p class='warn'>Calibration has drifted (largest factor between measured and "
                f"predicted {_num(cc.get('max_ratio'))}; {cal}): the false-match rates shown with "
                "candidates are not reliable until the model is recalibrated.</p>"
            )
        elif not judged:
            out.append(
                f"<p class='warn'>Calibration not judged: no check had enough trials on people the "
                f"calibration never saw ({cal}). Evaluate on a larger labelled set.</p>"
            )
        else:
            out.append(
                f"<p class='ok'>Calibration holds within a factor of two on {len(judged)} of "
                f"{len(rows)} checks with enough trials (largest factor "
                f"{_num(cc.get('max_ratio'))}; {cal}).</p>"
            )
        if rows:
            out.append(
                _table(
                    [
                        [
                            str(r.get("kind", "")).upper()
                            + (f" at {r['gallery_size']:,}" if r.get("gallery_size") else "")
                            + (f" ({r['band']})" if r.get("band") not in (None, "all") else ""),
                            _num(r.get("predicted")),
                            _num(r.get("measured")),
                            _num(r.get("ratio")),
                            "judged"
                            if r.get("enough_data")
                            else str(r.get("not_judged") or "too few trials to judge"),
                        ]
                        for r in rows
                    ],
                    ["check", "predicted", "measured", "measured / predicted", "judged"],
                )
            )
    return "".join(out)


#: The report's words for where a probe came from.
CAPTURE_LABELS = {"live": "the live camera", "file": "a file", "not recorded": "not recorded"}


def _not_checked_html(items: list[dict[str, str]]) -> str:
    out = ["<h2>What fieldid does not check</h2>"]
    for item in items:
        out.append(
            f"<p class='warn'>{html.escape(item['what'].capitalize())}: "
            f"{html.escape(item['statement'])}</p>"
        )
    return "".join(out)


def _matcher_html(m: dict[str, Any]) -> str:
    about = m.get("about") or {}
    prov = about.get("provenance") or {}
    rows = [["model in force (id@version)", m["in_force"]]]
    if about:
        rows += [
            ["weights", about.get("weights", "?")],
            ["licence", about.get("licence", "?")],
            [
                "source",
                # As text, not a link: the report loads nothing from outside itself.
                " at commit ".join(
                    str(prov[k]).removeprefix("https://") for k in ("source", "commit") if k in prov
                ),
            ],
            ["training data", prov.get("training_data", "not stated")],
        ]
        if prov.get("conversion"):
            rows.append(["conversion", f"{prov['conversion']}; {prov.get('verified', '')}"])
        if about.get("sha256"):
            rows.append(["SHA-256 (checked at load)", about["sha256"]])
    else:
        rows.append(
            ["about", "not bundled with fieldid: its licence and provenance are not recorded here"]
        )
    by_model = m.get("searches_by_model") or {}
    return (
        "<h2>Face model</h2>"
        + _table(rows, ["", ""])
        + (
            _table(list(by_model.items()), ["model of the search (audit entry)", "searches"])
            if by_model
            else "<p>No search in the period.</p>"
        )
    )


def _num(v: Any) -> str:
    """Numbers as people read them: 4 significant digits; absent values as a dash."""
    if v is None or v == "?":
        return "–"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return html.escape(str(v))
    return f"{v:.4g}"


def _retention_html(r: dict[str, Any]) -> str:
    rows = []
    for name, v in r["oldest_retained"].items():
        status = "past its period" if v["overdue"] else "within policy"
        age = "" if v["age_hours"] is None else v["age_hours"]
        rows.append([name, v["policy"], v["oldest"] or "none held", age, status])
    overdue = [n for n, v in r["oldest_retained"].items() if v["overdue"]]
    note = (
        f"<p class='warn'>Held past retention: {', '.join(overdue)} (run `fieldid purge`).</p>"
        if overdue
        else "<p class='ok'>Nothing is held past its retention period.</p>"
    )
    purged = ", ".join(f"{k}: {v}" for k, v in r["purged_in_period"].items() if v) or "nothing"
    return (
        "<h2>Retention compliance</h2>"
        + note
        + _table(rows, ["data class", "policy", "oldest held", "age (hours)", "status"])
        + f"<p>{r['purges_in_period']} purges in the period removed {html.escape(purged)}.</p>"
    )


def _by_operator(series: dict[str, Any]) -> str:
    rows = list(series["by_operator"].items())
    return _table(rows, ["operator", "count"]) if rows else ""


def _uses_html(u: dict[str, Any]) -> str:
    out = ["<h2>Every use</h2>"]
    kinds = u["by_kind"]
    out.append(
        "<p class='note'>Every use is in the audit log: each search, verification, photo "
        "served, search viewed or listed, adjudication act, wiped capture, enrolment, import, "
        "record read and export. Counted by kind, with the trend per day.</p>"
    )
    chart = chart_uses(kinds)
    if chart:
        out.append(chart)
    rows = []
    for kind, v in kinds.items():
        days = v["by_day"]
        busiest = max(days.items(), key=lambda kv: kv[1]) if days else None
        rows.append(
            [
                kind,
                v["total"],
                len(days),
                "" if busiest is None else f"{busiest[0]} ({busiest[1]})",
                ", ".join(f"{k} {n}" for k, n in list(v["by_operator"].items())[:5]),
            ]
        )
    out.append(_table(rows, ["use", "count", "days with uses", "busiest day", "by operator"]))

    v = u["verifications"]
    out.append("<h3>1:1 verifications</h3>")
    res = ", ".join(f"{k}: {n}" for k, n in v["results"].items()) or "none"
    out.append(f"<p>{v['total']} verifications ({html.escape(res)}).</p>")
    out.append(_by_operator(v))

    p = u["photo_accesses"]
    out.append("<h3>Face photos served</h3>")
    kinds_text = ", ".join(f"{k}: {n}" for k, n in p["by_kind"].items()) or "none"
    out.append(
        f"<p>{p['total']} photos served, each audited with its search or a reason "
        f"({html.escape(kinds_text)}; probe = the photo taken, enrolled = a candidate's "
        "enrolled photo in a search).</p>"
    )
    out.append(_by_operator(p))
    outside = p["outside_a_search"]
    if outside:
        out.append("<p>Enrolled photos served outside a search, each with its reason:</p>")
        out.append(
            _table(
                [[r["at"], r["operator"], r["kind"], r["person_id"], r["reason"]] for r in outside],
                ["when", "operator", "kind", "person", "reason"],
            )
        )
    i = u["investigation_lists"]
    out.append("<h3>Investigation lists</h3>")
    out.append(
        f"<p>{i['total']} investigation lists (ranked regardless of the threshold), "
        f"{i['low_quality']} of them on photos below the quality gate.</p>"
    )
    out.append(_by_operator(i))
    w = u["capture_wiped"]
    out.append("<h3>Captures wiped unsent</h3>")
    out.append(
        f"<p>{w['total']} photos taken in the field were wiped on the phone unsent after waiting "
        f"past the queue limit ({w['maybe_sent']} may have been sent before the wipe).</p>"
    )
    out.append(_by_operator(w))
    d = u["document_first"]
    out.append("<h3>Document-first encounters</h3>")
    if d["recorded"]:
        out.append(f"<p>{d['total']} document-first encounters.</p>")
        out.append(_by_operator(d))
    else:
        out.append(f"<p class='note'>{html.escape(d['note'])}.</p>")
    return "".join(out)


def _accounts_html(a: dict[str, Any]) -> str:
    out = ["<h2>Accounts behind the uses</h2>"]
    out.append(
        f"<p>{a['uses']} uses by {len(a['uses_by_operator'])} operators; {a['accounts']} "
        f"accounts, {a['active']} active"
        + (f", disabled: {html.escape(', '.join(a['disabled_now']))}" if a["disabled_now"] else "")
        + ".</p>"
    )
    for key, what in (
        ("by_unknown_accounts", "by names that are no account of this workspace"),
        ("by_disabled_accounts", "by accounts that were disabled at the time"),
    ):
        found = a[key]
        if not found["count"]:
            out.append(f"<p class='ok'>No use {what}.</p>")
            continue
        names = ", ".join(f"{k} ({n})" for k, n in found["names"].items())
        out.append(f"<p class='warn'>{found['count']} uses {what}: {html.escape(names)}.</p>")
        out.append(
            _table(
                [[r["seq"], r["at"], r["operator"], r["event"]] for r in found["entries"]],
                ["audit seq", "when", "operator", "event"],
            )
        )
    return "".join(out)
