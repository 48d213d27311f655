"""How many SQL statements and database sessions one search costs, on both backends.

A search is a handful of reads and one write transaction (the search, its candidates, its probe
and its audit entry). Every statement is a round trip to PostgreSQL, and on a loaded server
round trips are what a request waits for; N+1 reads (a query per candidate, per source, per
record) grow with the gallery's answers. These tests count what the database is sent per
request (SQLAlchemy's ``before_cursor_execute``; connections checked out of the pool for
sessions) and fail above a bound: a regression shows as a count, never as a time.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from fieldid.demo import astronaut_path, closer_crop
from helpers_service import service_root, serving, workspace_of

__all__ = ["service_root"]  # fixtures

GOOD = closer_crop(astronaut_path())

#: Bounds per request and backend: (statements, sessions), set from the figures measured when
#: the reads of a search were made to share sessions (docs/storage.md, "Round trips per
#: search"; before: POST 18 statements in 9 sessions on PostgreSQL, GET 13 in 3, the results
#: page 15 in 4). SQLite counts its BEGINs as statements (fieldid sends them itself).
BOUNDS = {
    "postgresql": {"post_search": (15, 5), "get_search": (10, 2), "results_page": (11, 3)},
    "sqlite": {"post_search": (20, 5), "get_search": (13, 3), "results_page": (15, 4)},
}


@dataclass
class Tally:
    statements: list[str] = field(default_factory=list)
    checkouts: int = 0

    def clear(self) -> None:
        self.statements.clear()
        self.checkouts = 0


def _caller() -> str:
    """Where in fieldid a statement was sent from (the innermost frames outside the store)."""
    frames = [
        f"{Path(f.filename).stem}:{f.name}"
        for f in traceback.extract_stack()
        if "/src/fieldid/" in f.filename and "/store/" not in f.filename
    ]
    return " < ".join(reversed(frames[-3:]))


@contextmanager
def counting(engine: Engine) -> Iterator[Tally]:
    tally = Tally()

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        tally.statements.append(f"{statement.split(chr(10))[0][:90]}  <- {_caller()}")

    def on_checkout(*args: Any) -> None:
        tally.checkouts += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "checkout", on_checkout)
    try:
        yield tally
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "checkout", on_checkout)


def measure(c: TestClient, bearer: dict[str, str]) -> dict[str, Tally]:
    ws = workspace_of(c)
    out: dict[str, Tally] = {}
    fields = {"purpose": "field-identification", "case_ref": "CASE-COUNT", "notice_given": "true"}
    files = {"image": ("probe.jpg", GOOD, "image/jpeg")}
    # A first search and its reading warm what a running server holds (index loaded,
    # calibration read, the keyring's record-hash key unwrapped once per process).
    r = c.post("/api/v1/searches", headers=bearer, files=files, data=fields)
    assert r.status_code == 201, r.text
    r = c.get(f"/api/v1/searches/{r.json()['search_id']}", headers=bearer)
    assert r.status_code == 200, r.text
    with counting(ws.store.engine) as tally:
        r = c.post("/api/v1/searches", headers=bearer, files=files, data=fields)
        assert r.status_code == 201, r.text
        assert r.json()["candidates"], "the astronaut is enrolled: a search with candidates"
        out["post_search"] = Tally(list(tally.statements), tally.checkouts)
        sid = r.json()["search_id"]
        tally.clear()
        r = c.get(f"/api/v1/searches/{sid}", headers=bearer)
        assert r.status_code == 200, r.text
        out["get_search"] = Tally(list(tally.statements), tally.checkouts)
        tally.clear()
        r = c.get(f"/results/{sid}", headers=bearer)
        assert r.status_code == 200 and sid in r.text, r.text
        out["results_page"] = Tally(list(tally.statements), tally.checkouts)
    return out


@pytest.fixture()
def counted(service_root: Path, tmp_path: Path) -> dict[str, Tally]:
    with serving(service_root, tmp_path) as c:
        accounts = c.app.state.fieldid.accounts
        # The token's last use is written at most once a minute: not within these requests,
        # however slow the machine.
        accounts.policy = replace(accounts.policy, touch_every=timedelta(hours=1))
        issued = accounts.issue_token("u-supervisor", by="system:test")
        return measure(c, {"Authorization": f"Bearer {issued.secret}"})


def test_a_search_costs_a_bounded_number_of_statements(counted, backend, capsys):
    report = {k: (len(t.statements), t.checkouts) for k, t in counted.items()}
    with capsys.disabled():
        print(f"\n[{backend.name}] statements, sessions per request: {report}")
        for k, t in counted.items():
            print(f"  {k}:")
            for st in t.statements:
                print(f"    {st}")
    bounds = BOUNDS[backend.name]
    over = {
        k: (n, s, bounds[k]) for k, (n, s) in report.items() if n > bounds[k][0] or s > bounds[k][1]
    }
    assert not over, f"more statements or sessions than the bound (got, bound): {over}"
