"""A stored assessment version as Markdown or as one self-contained HTML page.

Both show the same content in the same order: the factual sections (numbered), what changed since
the previous version, then the agency's sections, each marked "for the agency to write". In
Markdown the agency's text sits between ``<!-- fieldid:agency ID -->`` markers, so an edited
rendering can be handed back with ``fieldid pia --agency pia.md``.
"""

from __future__ import annotations

from typing import Any

from fieldid.transparency.html import esc, inline, page, table

NOT_WRITTEN = "Not yet written by the agency."


def _md_cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _md_table(t: dict[str, Any]) -> list[str]:
    head = t["head"]
    return [
        "| " + " | ".join(_md_cell(h) for h in head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t["rows"]),
        "",
    ]


def _intro(doc: dict[str, Any]) -> tuple[str, str]:
    prev = doc.get("previous")
    after = (
        "the first version"
        if prev is None
        else f"follows version {prev['version']} of {prev['generated_at']}"
    )
    head = f"{doc['title']}, version {doc['version']}"
    text = (
        f"Generated {doc['generated_at']} from the live system ({after}). Sections 1 to "
        f"{len(doc['sections'])} are written by fieldid from the configuration, the database and "
        "the latest evaluation, and state only what they hold. The sections marked *for the "
        "agency to write* need human judgement. The stored version is signed (Ed25519; "
        "`fieldid pia verify`)."
    )
    return head, text


def _change_blocks(ch: dict[str, Any]) -> list[str | dict[str, Any]]:
    """The changes section in reading order: sentences (str) and tables (head/rows)."""
    out: list[str | dict[str, Any]] = [ch["statement"]]
    if ch.get("previous_version") is None:
        return out
    if ch.get("audit_log_incomplete"):
        out.append(ch["audit_log_incomplete"])
    rows = []
    for h in ch["configuration_history"]:
        if h["changes"]:
            for c in h["changes"]:
                rows.append([h["at"], h["what"], c["setting"], c["before"], c["after"]])
        else:
            rows.append([h["at"], h["what"], "", "", ""])
    if rows:
        out.append(
            {
                "head": ["when", "what (from the audit log)", "setting", "before", "after"],
                "rows": rows,
            }
        )
    net = ch["configuration_net"]
    if net:
        out.append("The configuration now differs from the previous version's in:")
        out.append(
            {
                "head": ["setting", "previous version", "now"],
                "rows": [[c["setting"], c["before"], c["after"]] for c in net],
            }
        )
    else:
        out.append("The configuration is the same as the previous version's.")
    facts = ch["facts"]
    if facts:
        out.append("Facts stated above that differ from the previous version:")
        out.append(
            {
                "head": ["section", "fact", "previous version", "now"],
                "rows": [[f["section"], f["fact"], f["before"], f["after"]] for f in facts],
            }
        )
    else:
        out.append("No fact stated above differs from the previous version.")
    return out


def render_markdown(doc: dict[str, Any]) -> str:
    head, intro = _intro(doc)
    out = [f"# {head}", "", intro, ""]
    n = 0
    for n, s in enumerate(doc["sections"], 1):
        out += [f"## {n}. {s['title']}", ""]
        for st in s["statements"]:
            out += [st, ""]
        for t in s["tables"]:
            out += _md_table(t)
    n += 1
    out += [f"## {n}. What changed since the previous assessment", ""]
    for block in _change_blocks(doc["changes"]):
        out += [block, ""] if isinstance(block, str) else _md_table(block)
    for sid, a in doc["agency"].items():
        n += 1
        written = (
            f" Last written in version {a['written_in_version']}."
            if a.get("written_in_version")
            else ""
        )
        out += [
            f"## {n}. {a['title']} (for the agency to write)",
            "",
            f"_For the agency to write; fieldid does not judge this. {a['guidance']}{written}_",
            "",
        ]
        if not a.get("text"):
            out += [f"**{NOT_WRITTEN}**", ""]
        out += [
            f"<!-- fieldid:agency {sid} -->",
            a.get("text") or "",
            "<!-- fieldid:agency end -->",
            "",
        ]
    return "\n".join(out)


def _html_table(t: dict[str, Any]) -> str:
    return table(t["rows"], t["head"])


def render_html(doc: dict[str, Any]) -> str:
    head, intro = _intro(doc)
    parts = [f"<h1>{esc(head)}</h1>", f"<p class='note'>{inline(intro)}</p>"]
    n = 0
    for n, s in enumerate(doc["sections"], 1):
        parts.append(f"<h2>{n}. {esc(s['title'])}</h2>")
        parts += [f"<p>{inline(st)}</p>" for st in s["statements"]]
        parts += [_html_table(t) for t in s["tables"]]
    n += 1
    parts.append(f"<h2>{n}. What changed since the previous assessment</h2>")
    for block in _change_blocks(doc["changes"]):
        parts.append(f"<p>{inline(block)}</p>" if isinstance(block, str) else _html_table(block))
    for a in doc["agency"].values():
        n += 1
        text = a.get("text")
        body = (
            "".join(f"<p>{esc(p)}</p>" for p in text.split("\n\n"))
            if text
            else f"<p class='warn'>{esc(NOT_WRITTEN)}</p>"
        )
        written = (
            f" Last written in version {a['written_in_version']}."
            if a.get("written_in_version")
            else ""
        )
        parts.append(
            f"<h2>{n}. {esc(a['title'])}</h2><div class='agency'><p class='who'>For the agency "
            f"to write; fieldid does not judge this.{esc(written)}</p><p class='note'>"
            f"{esc(a['guidance'])}</p>{body}</div>"
        )
    return page(head, parts)


def render(doc: dict[str, Any], fmt: str) -> str:
    return render_html(doc) if fmt == "html" else render_markdown(doc)
