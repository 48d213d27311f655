"""Where searches happened, for the public report (issue 17.3): aggregate counts only.

From the audit entries of the period (each search entry records its coarse cell and the
sensitive areas it lay in, when ``[location]`` was on):

- searches run, by sensitive area (every area configured, retired ones included, shown by name
  and kind: areas are places, not people), outside every area, and with no location recorded;
- searches run, by cell of ``[location] report_grid_deg`` (default 0.1°, about 11 km): only
  cells holding at least k searches are named; the rest are one count, "other cells", so a
  cell with few searches is not even named;
- supervisors' approvals asked for, given and refused, searches that ran on one, and searches
  refused because their area's kind refuses them.

Every figure goes through :mod:`.cells` with the rest of the report.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fieldid.audit.log import AuditRecord
from fieldid.location.areas import list_areas
from fieldid.location.cell import snap
from fieldid.transparency.cells import Counts, Protection
from fieldid.workspace import Workspace

APPROVAL_ROWS = (
    ("requested", "searches held for a supervisor's approval (approval asked for)"),
    ("approved", "approvals given by a supervisor"),
    ("denied", "approvals refused by a supervisor"),
    ("used", "searches run on an approval"),
    ("refused_area", "searches refused: the area's kind permits none"),
)


def _where(e: AuditRecord) -> dict[str, Any] | None:
    loc = (e.payload or {}).get("location")
    return loc if isinstance(loc, dict) else None


def add_counts(
    c: Counts, ws: Workspace, searches: list[AuditRecord], within: list[AuditRecord], k: int
) -> dict[str, Any]:
    """Add the location figures to ``c``; returns what :func:`view` needs to label them."""
    lc = ws.location
    with ws.store.read() as s:
        areas = list_areas(s, include_retired=True)
    ran = [e for e in searches if (e.payload or {}).get("outcome") != "refused"]
    by_area: Counter[int] = Counter()
    cells: Counter[str] = Counter()
    outside = none = 0
    for e in ran:
        where = _where(e)
        cell = None if where is None else where.get("cell")
        if not cell:
            none += 1
            continue
        ids = {int(a["id"]) for a in where.get("areas") or [] if "id" in a}  # type: ignore[union-attr]
        if ids:
            by_area.update(ids)
        else:
            outside += 1
        g = lc.report_grid_deg
        cells[f"{snap(float(cell['lat']), g)},{snap(float(cell['lon']), g)}"] += 1
    names = {a.id: f"{a.name} ({a.kind.replace('_', ' ')})" for a in areas}
    for i in sorted(set(names) | set(by_area)):
        c.add(f"loc|area|{i}", by_area[i])
    c.add("loc|outside", outside)
    c.add("loc|none", none)
    named = sorted(x for x, n in cells.items() if n >= k)
    for x in named:
        c.add(f"loc|cell|{x}", cells[x])
    c.add("loc|cell|other", sum(n for x, n in cells.items() if x not in named))
    c.add("loc|located", sum(cells.values()))
    c.add_sum("loc|located", [*(f"loc|cell|{x}" for x in named), "loc|cell|other"])

    approvals: Counter[str] = Counter()
    for e in searches:
        p = e.payload or {}
        code = str((p.get("error") or {}).get("code", ""))
        if p.get("outcome") == "refused" and code == "location.approval_required":
            approvals["requested"] += 1
        elif p.get("outcome") == "refused" and code == "location.refused":
            approvals["refused_area"] += 1
        elif p.get("outcome") != "refused" and (_where(e) or {}).get("approval_id") is not None:
            approvals["used"] += 1
    for e in within:
        if e.event == "location_approval":
            d = (e.payload or {}).get("decision")
            approvals["approved" if d == "approve" else "denied"] += 1
    for key, _ in APPROVAL_ROWS:
        c.add(f"loc|approval|{key}", approvals[key])
    return {
        "enabled": lc.enabled,
        "areas": {i: names.get(i, f"area {i}") for i in sorted(set(names) | set(by_area))},
        "cells": named,
        "report_grid_deg": lc.report_grid_deg,
        "grid_deg": lc.grid_deg,
    }


def view(spec: dict[str, Any], prot: Protection) -> dict[str, Any]:
    lab = prot.label
    return {
        "enabled_now": spec["enabled"],
        "cell_size_deg": spec["grid_deg"],
        "searches_by_area": {name: lab(f"loc|area|{i}") for i, name in spec["areas"].items()},
        "searches_outside_every_area": lab("loc|outside"),
        "searches_without_location": lab("loc|none"),
        "report_cell_deg": spec["report_grid_deg"],
        "searches_by_cell": {
            **{x: lab(f"loc|cell|{x}") for x in spec["cells"]},
            "other cells": lab("loc|cell|other"),
        },
        "searches_with_location": lab("loc|located"),
        "approvals": {key: lab(f"loc|approval|{key}") for key, _ in APPROVAL_ROWS},
    }


def render_html(loc: dict[str, Any]) -> list[str]:
    from fieldid.transparency.html import esc, table

    out = [
        "<h2>Where searches happened</h2>",
        "<p class='note'>Locations are recorded only as the phone rounded them (cells of "
        f"{esc(loc['cell_size_deg'])}°, about {esc(round(loc['cell_size_deg'] * 111.32, 1))} km). "
        "Searches that ran are counted in every sensitive area their cell touched. "
        + ("Location is on now." if loc["enabled_now"] else "Location is off now.")
        + "</p>",
        table(
            [[name, v] for name, v in loc["searches_by_area"].items()]
            + [
                ["outside every sensitive area", loc["searches_outside_every_area"]],
                ["no location recorded", loc["searches_without_location"]],
            ],
            ["where", "searches run"],
        ),
        f"<p>By cell of {esc(loc['report_cell_deg'])}° (cell centre, latitude,longitude); a cell "
        "with fewer searches than the smallest count shown is not named but counted in "
        "“other cells”.</p>",
        table(
            [[x, v] for x, v in loc["searches_by_cell"].items()]
            + [["all cells", loc["searches_with_location"]]],
            ["cell", "searches run"],
        ),
        table(
            [[label, loc["approvals"][key]] for key, label in APPROVAL_ROWS],
            ["sensitive-area rules", "count"],
        ),
    ]
    return out
