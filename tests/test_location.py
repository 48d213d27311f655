"""Location, coarse and accountable (issue 17.3): the grid the phone rounds to, sensitive areas,
supervisors' approvals, and a workspace with location off where nothing changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fieldid.access import Actor, Role
from fieldid.audit.ops import verify_store
from fieldid.demo import astronaut_path, closer_crop
from fieldid.errors import FieldidError
from fieldid.location import LocationConfig, areas_at, coarsen, parse_geometry, parse_location
from fieldid.location.areas import Area
from fieldid.service import schemas
from fieldid.store.schema import LocationApproval, SearchRecord
from helpers_service import login, search, service_root, serving, workspace_of
from test_api_openapi import check as typed

__all__ = ["service_root"]  # fixture

GOOD = closer_crop(astronaut_path())

# A school's grounds, about 200 m across, in lon/lat (GeoJSON order).
SCHOOL = {
    "type": "Polygon",
    "coordinates": [
        [
            [2.3500, 48.8500],
            [2.3530, 48.8500],
            [2.3530, 48.8520],
            [2.3500, 48.8520],
            [2.3500, 48.8500],
        ]
    ],
}
IN_SCHOOL = (48.8511, 2.3514)  # a phone standing in the school's yard
FAR = (48.9100, 2.2500)  # about 8 km away
REASON = "Wanted-person warrant for this case, officer on scene at the school gate."


def cell_text(lat: float, lon: float, grid: float = 0.01) -> str:
    c = coarsen(lat, lon, grid)
    return f"{c.lat},{c.lon}"


def with_location(enabled: bool, **rules: str) -> Any:
    def configure(root: Path) -> None:
        cfg = (root / "fieldid.toml").read_text()
        assert "\nenabled = false\n" in cfg
        cfg = cfg.replace("\nenabled = false\n", f"\nenabled = {'true' if enabled else 'false'}\n")
        for kind, rule in rules.items():
            cfg = cfg.replace(f'\n{kind} = "approval"\n', f'\n{kind} = "{rule}"\n')
            cfg = cfg.replace(f'\n{kind} = "refuse"\n', f'\n{kind} = "{rule}"\n')
        (root / "fieldid.toml").write_text(cfg)

    return configure


# -- the grid and the areas (no workspace) ------------------------------------------------------


def test_the_phone_rounds_to_a_grid_cell_and_the_server_refuses_a_precise_position() -> None:
    c = coarsen(48.85114, 2.35142, 0.01)
    assert (c.lat, c.lon) == (48.85, 2.35)
    assert coarsen(-33.8671, 151.2069, 0.01).to_dict() == {
        "lat": -33.87,
        "lon": 151.21,
        "grid_deg": 0.01,
    }
    assert parse_location("48.85,2.35", 0.01) == c
    # What JavaScript's toFixed prints for a rounded value is accepted too.
    assert parse_location("48.8500, 2.3500", 0.01) == c
    with pytest.raises(FieldidError) as e:
        parse_location("48.85114,2.35142", 0.01)
    assert e.value.code == "location.not_coarse"
    for bad in ("", "48.85", "a,b", "91,0", "0,181", "nan,0", "inf,0", "1,2,3"):
        with pytest.raises(FieldidError) as e:
            parse_location(bad, 0.01)
        assert e.value.code == "location.invalid", bad
    # A coarser grid: the same position, a bigger cell.
    assert coarsen(48.85114, 2.35142, 0.05).to_dict()["lat"] == 48.85
    assert coarsen(48.87600, 2.35142, 0.05).to_dict()["lat"] == 48.9


def test_configuration_is_off_by_default_and_checked() -> None:
    lc = LocationConfig.from_section({})
    assert not lc.enabled and lc.grid_deg == 0.01 and lc.rules["school"] == "approval"
    assert lc.rules["event"] == "refuse"
    on = LocationConfig.from_section({"enabled": True, "rules": {"school": "refuse"}})
    assert on.rules["school"] == "refuse" and on.rules["court"] == "approval"
    for bad in (
        {"grid_deg": 0.0001},  # finer than ~0.5 km: records where a person was
        {"grid_deg": 2},
        {"rules": {"stadium": "approval"}},
        {"rules": {"school": "maybe"}},
        {"approval_minutes": 0},
        {"enabled": "yes"},
        {"colour": "red"},
    ):
        with pytest.raises(ValueError):
            LocationConfig.from_section(bad)


def _area(geometry: dict[str, Any], kind: str = "school", **kw: Any) -> Area:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    parse_geometry(geometry)
    return Area(1, "A school", kind, geometry, kw.get("starts"), kw.get("ends"), "t", now, None)


def test_an_area_applies_to_every_cell_it_touches_holes_and_windows_included() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    school = _area(SCHOOL)
    assert areas_at([school], coarsen(*IN_SCHOOL, 0.01), now) == [school]
    assert areas_at([school], coarsen(*FAR, 0.01), now) == []
    # A small area inside a cell whose centre lies outside it: the cell still counts, because
    # the phone may have stood anywhere in it (a test of the centre alone would miss it).
    from shapely.geometry import Point, shape

    ring = [[2.3530, 48.8530], [2.3545, 48.8530], [2.3545, 48.8545], [2.3530, 48.8545]]
    small = _area({"type": "Polygon", "coordinates": [[*ring, ring[0]]]})
    cell = coarsen(48.8540, 2.3540, 0.01)
    assert (cell.lat, cell.lon) == (48.85, 2.35)
    assert not shape(small.geometry).contains(Point(cell.lon, cell.lat))
    assert areas_at([small], cell, now) == [small]
    # The next cell north does not touch it.
    assert areas_at([small], coarsen(48.8700, 2.3540, 0.01), now) == []
    # A polygon with a hole: a cell wholly inside the hole is outside the area.
    ring = [[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]
    hole = [[2.3, 48.3], [2.7, 48.3], [2.7, 48.7], [2.3, 48.7], [2.3, 48.3]]
    donut = _area({"type": "Polygon", "coordinates": [ring, hole]})
    assert areas_at([donut], coarsen(48.5, 2.5, 0.01), now) == []
    assert areas_at([donut], coarsen(48.1, 2.1, 0.01), now) == [donut]
    # An event applies only within its window.
    event = _area(SCHOOL, "event", starts=now - timedelta(hours=1), ends=now + timedelta(hours=1))
    assert areas_at([event], cell, now) == [event]
    assert areas_at([event], cell, now + timedelta(hours=2)) == []


def test_malformed_areas_are_refused() -> None:
    bow_tie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    swapped = {
        "type": "Polygon",
        "coordinates": [[[48.85, 2.35], [48.86, 2.35], [48.86, 200.0], [48.85, 2.35]]],
    }
    for bad in (
        bow_tie,
        swapped,
        {"type": "Point", "coordinates": [2.35, 48.85]},
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]},
        "not geojson",
    ):
        with pytest.raises(FieldidError) as e:
            parse_geometry(bad)
        assert e.value.code == "location.bad_geometry"
    feature = {"type": "Feature", "properties": {"name": "x"}, "geometry": SCHOOL}
    assert parse_geometry(feature).area > 0


# -- the service -------------------------------------------------------------------------------


def add_school(c: TestClient, admin_csrf: str, geometry: dict[str, Any] = SCHOOL) -> int:
    r = c.post(
        "/api/v1/location/areas",
        headers={"X-CSRF-Token": admin_csrf},
        json={"name": "Rue Example primary school", "kind": "school", "geometry": geometry},
    )
    assert r.status_code == 201, r.text
    typed(schemas.Area, r.json())
    return int(r.json()["id"])


def stored(c: TestClient, search_id: str) -> SearchRecord:
    """The search the API named by its public id."""
    with workspace_of(c).store.read() as s:
        rec = s.scalars(select(SearchRecord).where(SearchRecord.public_id == search_id)).one()
        return rec


def test_with_location_off_nothing_changes(service_root: Path, tmp_path: Path) -> None:
    with serving(service_root, tmp_path, configure=with_location(False)) as c:
        admin = login(c, Role.ADMIN)
        add_school(c, admin)  # an area may be loaded; with location off it stops nothing
        officer = login(c, Role.OFFICER)
        me = c.get("/api/v1/me").json()
        assert me["location"]["enabled"] is False
        page = c.get("/capture?purpose=field-identification&case_ref=OFF-1&notice_given=true")
        assert "location-note" not in page.text and 'name="location"' not in page.text
        # A location sent anyway (inside the school, even a precise one) is ignored.
        for where in (cell_text(*IN_SCHOOL), "48.85114,2.35142", None):
            form = {"case_ref": "OFF-1"} | ({"location": where} if where else {})
            r = search(c, officer, GOOD, **form)
            assert r.status_code == 201, r.text
            rec = stored(c, r.json()["search_id"])
            assert rec.location is None and rec.location_areas is None
            assert rec.location_approval_id is None
        ws = workspace_of(c)
        entries = [e for e in ws.store.audit_entries("search") if e.case_ref == "OFF-1"]
        assert len(entries) == 3 and all("location" not in e.payload for e in entries)
        assert ws.store.audit_entries("location_approval") == []
        with ws.store.read() as s:
            assert s.scalars(select(LocationApproval)).all() == []


def test_a_search_inside_a_school_waits_for_a_supervisors_approval(
    service_root: Path, tmp_path: Path
) -> None:
    with serving(service_root, tmp_path, configure=with_location(True)) as c:
        ws = workspace_of(c)
        admin = login(c, Role.ADMIN)
        school = add_school(c, admin)
        areas = c.get("/api/v1/location/areas").json()
        typed(schemas.AreaList, areas)
        assert areas["areas"][0]["active"] is True
        officer = login(c, Role.OFFICER)
        # Outside: the search runs as before, and only the coarse cell is kept.
        far = cell_text(*FAR)
        r = search(c, officer, GOOD, case_ref="LOC-1", location=far)
        assert r.status_code == 201, r.text
        rec = stored(c, r.json()["search_id"])
        assert rec.location == {"lat": 48.91, "lon": 2.25, "grid_deg": 0.01}
        assert rec.location_areas == [] and rec.location_approval_id is None
        # A precise position, or none, is refused and nothing of it kept.
        r = search(c, officer, GOOD, case_ref="LOC-1", location="48.91003,2.25007")
        assert r.status_code == 422 and r.json()["code"] == "location.not_coarse"
        r = search(c, officer, GOOD, case_ref="LOC-1")
        assert r.status_code == 422 and r.json()["code"] == "location.missing"
        assert "48.91003" not in json.dumps([e.payload for e in ws.store.audit_entries()])

        # Inside the school: refused, an approval asked for, the refusal audited with it.
        here = cell_text(*IN_SCHOOL)
        r = search(c, officer, GOOD, case_ref="LOC-2", location=here)
        assert r.status_code == 403, r.text
        p = r.json()
        assert p["code"] == "location.approval_required"
        assert "supervisor" in p["detail"] and "Rue Example primary school" in p["detail"]
        approval = int(p["approval_id"])
        entry = [e for e in ws.store.audit_entries("search") if e.case_ref == "LOC-2"][-1]
        assert entry.payload["outcome"] == "refused"
        assert entry.payload["location_approval"] == {"id": approval, "state": "requested"}
        assert entry.payload["location"]["areas"] == [
            {"id": school, "name": "Rue Example primary school", "kind": "school"}
        ]
        # Trying again asks nothing new while the request waits.
        r = search(c, officer, GOOD, case_ref="LOC-2", location=here)
        assert r.json()["approval_id"] == approval
        # Officers cannot approve; supervisors see it waiting.
        r = c.post(
            f"/api/v1/location/approvals/{approval}",
            headers={"X-CSRF-Token": officer},
            json={"decision": "approve", "reason": REASON},
        )
        assert r.status_code == 403
        sup = login(c, Role.SUPERVISOR)
        listed = c.get("/api/v1/location/approvals?state=pending").json()
        typed(schemas.LocationApprovalList, listed)
        waiting = listed["approvals"]
        assert [a["approval_id"] for a in waiting] == [approval]
        assert waiting[0]["operator"] == "u-officer" and waiting[0]["case_ref"] == "LOC-2"
        page = c.get("/approvals")
        assert page.status_code == 200 and "Rue Example primary school" in page.text
        r = c.post(
            f"/api/v1/location/approvals/{approval}",
            headers={"X-CSRF-Token": sup},
            json={"decision": "approve", "reason": "too short"},
        )
        assert r.status_code == 422 and r.json()["code"] == "location.reason"
        r = c.post(
            f"/api/v1/location/approvals/{approval}",
            headers={"X-CSRF-Token": sup},
            json={"decision": "approve", "reason": REASON},
        )
        assert r.status_code == 200, r.text
        typed(schemas.LocationApproval, r.json())
        assert r.json()["state"] == "approved" and r.json()["decided_by"] == "u-supervisor"
        decided = ws.store.audit_entries("location_approval")
        assert len(decided) == 1 and decided[0].payload["decision"] == "approve"
        assert decided[0].payload["reason"] == REASON
        assert decided[0].payload["requested_by"] == "u-officer"
        again = c.post(
            f"/api/v1/location/approvals/{approval}",
            headers={"X-CSRF-Token": sup},
            json={"decision": "deny", "reason": REASON},
        )
        assert again.status_code == 409 and again.json()["code"] == "location.decided"

        # The officer's search now runs on the approval, which it uses up.
        officer = login(c, Role.OFFICER)
        r = search(c, officer, GOOD, case_ref="LOC-2", location=here)
        assert r.status_code == 201, r.text
        rec = stored(c, r.json()["search_id"])
        assert rec.location == {"lat": 48.85, "lon": 2.35, "grid_deg": 0.01}
        assert rec.location_approval_id == approval
        view = c.get(f"/api/v1/searches/{rec.public_id}").json()
        typed(schemas.SearchView, view)
        assert view["location"]["approval_id"] == approval
        typed(schemas.Me, c.get("/api/v1/me").json())
        ran = [e for e in ws.store.audit_entries("search") if e.case_ref == "LOC-2"][-1]
        assert ran.payload["location"]["approval_id"] == approval
        with ws.store.read() as s:
            row = s.get(LocationApproval, approval)
            assert row is not None and row.status == "used" and row.search_id == rec.public_id
            # The request, the decision and the search each sit with their audit entry.
            assert row.request_seq == entry.seq and row.decision_seq == decided[0].seq
            assert rec.audit_seq == ran.seq
        # Another case, or a second search, needs another approval.
        r = search(c, officer, GOOD, case_ref="LOC-2", location=here)
        assert r.status_code == 403 and r.json()["approval_id"] != approval
        second = int(r.json()["approval_id"])

        # A refusal by a supervisor is audited; the search stays refused.
        sup = login(c, Role.SUPERVISOR)
        form = c.post(
            f"/approvals/{second}",
            data={
                "csrf_token": sup,
                "decision": "deny",
                "reason": "No urgency: wait until the school day ends.",
            },
            follow_redirects=False,
        )
        assert form.status_code == 303
        assert ws.store.audit_entries("location_approval")[-1].payload["decision"] == "deny"
        officer = login(c, Role.OFFICER)
        r = search(c, officer, GOOD, case_ref="LOC-2", location=here)
        assert r.status_code == 403 and r.json()["code"] == "location.approval_required"
        assert verify_store(ws.store).ok


def test_a_declared_event_refuses_searches_within_its_window(
    service_root: Path, tmp_path: Path
) -> None:
    with serving(service_root, tmp_path, configure=with_location(True)) as c:
        ws = workspace_of(c)
        sup = login(c, Role.SUPERVISOR)
        now = ws.clock.now()
        square = {
            "type": "Polygon",
            "coordinates": [
                [[2.24, 48.90], [2.26, 48.90], [2.26, 48.92], [2.24, 48.92], [2.24, 48.90]]
            ],
        }

        def declare(start: datetime, end: datetime) -> Any:
            return c.post(
                "/api/v1/location/areas",
                headers={"X-CSRF-Token": sup},
                json={
                    "name": "Demonstration, Place Example",
                    "kind": "event",
                    "geometry": square,
                    "starts_at": start.isoformat(),
                    "ends_at": end.isoformat(),
                },
            )

        # Supervisors declare events, not schools; an event needs its window.
        r = c.post(
            "/api/v1/location/areas",
            headers={"X-CSRF-Token": sup},
            json={"name": "A school", "kind": "school", "geometry": SCHOOL},
        )
        assert r.status_code == 403
        past = declare(now - timedelta(days=2), now - timedelta(days=1))
        assert past.status_code == 201
        r = search(c, sup, GOOD, case_ref="EV-1", location=cell_text(*FAR))
        assert r.status_code == 201, r.text  # the event is over
        assert declare(now - timedelta(hours=1), now + timedelta(hours=3)).status_code == 201
        r = search(c, sup, GOOD, case_ref="EV-1", location=cell_text(*FAR))
        assert r.status_code == 403 and r.json()["code"] == "location.refused"
        refusal = [e for e in ws.store.audit_entries("search") if e.case_ref == "EV-1"][-1]
        assert refusal.payload["error"]["code"] == "location.refused"
        assert refusal.payload["location"]["areas"][0]["kind"] == "event"
        areas = ws.store.audit_entries("location_area")
        assert [a.payload["action"] for a in areas] == ["add", "add"]


def test_the_transparency_report_and_the_pia_state_where_searches_happen(
    service_root: Path, tmp_path: Path
) -> None:
    from fieldid.transparency.pia_facts import location
    from fieldid.transparency.public_report import build_public_report

    with serving(service_root, tmp_path, configure=with_location(True)) as c:
        ws = workspace_of(c)
        admin = login(c, Role.ADMIN)
        add_school(c, admin)
        officer = login(c, Role.OFFICER)
        for _ in range(3):
            assert (
                search(c, officer, GOOD, case_ref="TR-1", location=cell_text(*FAR)).status_code
                == 201
            )
        assert (
            search(c, officer, GOOD, case_ref="TR-2", location=cell_text(*IN_SCHOOL)).status_code
            == 403
        )
        now = ws.clock.now()
        start = datetime(now.year, now.month, now.day, tzinfo=UTC)
        data = build_public_report(ws, start, start + timedelta(days=1), k=3)
        loc = data["location"]
        assert loc["searches_by_area"] == {"Rue Example primary school (school)": "< 3"}
        assert loc["searches_outside_every_area"] == 3
        assert loc["approvals"]["requested"] == "< 3"
        # The only cell with searches is named; "other cells" holds none, so showing both the
        # cell and the total would give the "< 3" away: suppression withholds them.
        assert loc["searches_by_cell"] == {"48.9,2.3": "withheld", "other cells": "< 3"}
        assert loc["searches_with_location"] == "withheld"
        text = json.dumps(data)
        assert "TR-1" not in text and "u-officer" not in text
        section = location(ws)
        said = " ".join(section["statements"])
        assert "Location is on" in said and "0.01°" in said
        assert section["data"]["enabled"] is True and section["data"]["rules"]["event"] == "refuse"
        assert section["data"]["areas"] == ["school: Rue Example primary school"]


def test_the_cli_loads_and_lists_areas(tmp_path: Path, backend: Any) -> None:
    from helpers_cli import cli, tokens
    from helpers_storage import active

    root = tmp_path / "ws"
    active().init(root).close()
    tok = tokens(root)
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "Court A", "kind": "court"},
                "geometry": SCHOOL,
            },
            {
                "type": "Feature",
                "properties": {"name": "Hospital B", "kind": "hospital"},
                "geometry": SCHOOL,
            },
        ],
    }
    f = tmp_path / "areas.geojson"
    f.write_text(json.dumps(doc))
    r = cli(["location", "add", f, "-w", root], token=tok[Role.OFFICER])
    assert r.exit_code == 2 and "access.forbidden" in r.output
    r = cli(["location", "add", f, "-w", root], token=tok[Role.SUPERVISOR])  # events only
    assert r.exit_code == 2 and "access.forbidden" in r.output
    r = cli(["location", "add", f, "-w", root])
    assert r.exit_code == 2 and "access.unauthenticated" in r.output
    r = cli(["location", "add", f, "-w", root], token=tok[Role.ADMIN])
    assert r.exit_code == 0, r.output
    assert "added area 1: Court A" in r.output and "enabled = false" in r.output
    r = cli(["location", "list", "-w", root, "--json"], token=tok[Role.ADMIN])
    listed = json.loads(r.output)
    assert [(a["name"], a["kind"]) for a in listed["areas"]] == [
        ("Court A", "court"),
        ("Hospital B", "hospital"),
    ]
    assert listed["enabled"] is False
    r = cli(["location", "retire", "1", "-w", root], token=tok[Role.ADMIN])
    assert r.exit_code == 0, r.output
    r = cli(["location", "list", "-w", root, "--json"], token=tok[Role.ADMIN])
    assert [a["name"] for a in json.loads(r.output)["areas"]] == ["Hospital B"]
    from fieldid.workspace import Workspace

    ws = Workspace.open(root)
    try:
        entries = ws.store.audit_entries("location_area")
        assert [e.payload["action"] for e in entries] == ["add", "add", "retire"]
        assert {e.operator for e in entries} == {"cli-admin"}
        assert Actor("x", Role.ADMIN).can("location_areas")
    finally:
        ws.close()
