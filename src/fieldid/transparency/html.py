"""HTML for the published documents: one self-contained file (inline CSS, no script, no image),
so it can be mailed, archived and signed as is."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

CSS = """
body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222;
line-height:1.45}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid
#ccc}h3{font-size:1rem}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;
padding:.25rem .6rem;text-align:left;font-size:.9rem;vertical-align:top}th{background:#f3f3f3}
td.n{text-align:right}td.s{text-align:right;color:#555;font-style:italic}.note{color:#555;
font-size:.9rem}.warn{color:#b00;font-weight:bold}.agency{border-left:4px solid #f1a340;
padding:.2rem 1rem;background:#fff8ec}.agency .who{color:#8a5a00;font-weight:bold}
"""


def esc(v: Any) -> str:
    return html.escape(str(v))


def inline(text: str) -> str:
    """Escaped text with Markdown's inline code (`x`) and emphasis (*x*) as HTML."""
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", out)


def td(v: Any) -> str:
    """A table cell: numbers right-aligned, suppressed counts marked."""
    if isinstance(v, bool):
        return f"<td>{'yes' if v else 'no'}</td>"
    if isinstance(v, int | float):
        return f"<td class='n'>{v:,}</td>" if isinstance(v, int) else f"<td class='n'>{v:.4g}</td>"
    if v is None:
        return "<td>–</td>"
    text = str(v)
    if text.startswith("< ") or text == "withheld":
        return f"<td class='s'>{esc(text)}</td>"
    return f"<td>{esc(text)}</td>"


def table(rows: Sequence[Sequence[Any]], head: Sequence[str]) -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, parts: Sequence[str]) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
