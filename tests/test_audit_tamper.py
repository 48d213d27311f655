"""Tampering with the audit log is detected and located: edit, delete, insert, reorder, truncate,
each at random positions, several times.

These tests exercise the verifier over the rows as stored; the tampering is done with SQLite's
own tool, as someone holding the database file would, so they run on SQLite only (the rows are
read the same way from PostgreSQL: ``read_rows`` through the store)."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from fieldid.access import Role
from fieldid.audit.log import canonical_json, entry_hash
from fieldid.audit.ops import verify_store
from fieldid.audit.verify import read_rows, verify_entries
from fieldid.clock import ManualClock
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens

N = 40
TRIALS = 8


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tamper") / "ws"
    clock = ManualClock()
    ws = Workspace.init(root, clock=clock)
    rng = random.Random(7)
    while ws.store.audit_entries() and len(list(ws.store.audit_entries())) < N:
        clock.advance(minutes=rng.randint(1, 90))
        ws.store.append_audit(
            rng.choice(["search", "adjudicate", "enroll", "export"]),
            operator=f"officer-{rng.randint(1, 5)}",
            purpose="field-identification",
            case_ref=f"C-{rng.randint(1, 99)}",
            payload={"n": rng.random(), "candidates": [{"person_id": rng.randint(1, 20)}]},
        )
    ws.close()
    return root


def copy(base: Path, tmp_path: Path) -> Path:
    root = tmp_path / f"ws{random.random():.12f}"
    shutil.copytree(base, root)
    return root


def verify(root: Path):  # type: ignore[no-untyped-def]
    ws = Workspace.open(root)
    try:
        return verify_store(ws.store)
    finally:
        ws.close()


def sql(root: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    con = sqlite3.connect(root / "fieldid.db")
    with con:
        for q, args in statements:
            con.execute(q, args)
    con.close()


def row(root: Path, seq: int) -> tuple[object, ...]:
    con = sqlite3.connect(root / "fieldid.db")
    r = con.execute(
        "select seq, at, event, operator, purpose, case_ref, payload, prev_hash, hash "
        "from audit_entries where seq = ?",
        (seq,),
    ).fetchone()
    con.close()
    return tuple(r)


def last_seq(root: Path) -> int:
    con = sqlite3.connect(root / "fieldid.db")
    n = con.execute("select max(seq) from audit_entries").fetchone()[0]
    con.close()
    return int(n)


def test_untouched_log_verifies(base: Path) -> None:
    r = verify(base)
    assert r.ok and r.checked >= N and r.start_seq == 1


@pytest.mark.parametrize("trial", range(TRIALS))
def test_edited_content_is_located(base: Path, tmp_path: Path, trial: int) -> None:
    root = copy(base, tmp_path)
    seq = random.Random(trial).randint(1, last_seq(root))
    field = random.Random(trial).choice(["payload", "operator", "case_ref", "at", "hash"])
    value = {
        "payload": '{"n":0.5}',
        "operator": "someone-else",
        "case_ref": "C-0",
        "at": "2020-01-01 00:00:00.000000",
        "hash": "f" * 64,
    }[field]
    sql(root, (f"update audit_entries set {field} = ? where seq = ?", (value, seq)))
    r = verify(root)
    assert not r.ok and r.kind == "edited" and r.bad_seq == seq, (field, r)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_edited_and_rehashed_entry_is_located(base: Path, tmp_path: Path, trial: int) -> None:
    """The forger recomputes the edited entry's own hash; the next entry's link gives it away."""
    root = copy(base, tmp_path)
    seq = random.Random(trial).randint(1, last_seq(root) - 1)
    s, at, event, op, purpose, case, _payload, prev, _h = row(root, seq)
    payload = canonical_json({"candidates": []})
    from datetime import datetime

    h = entry_hash(
        str(prev),
        int(s),
        datetime.fromisoformat(str(at) + "+00:00"),
        str(event),
        str(op),
        purpose,
        case,
        payload,  # type: ignore[arg-type]
    )
    sql(root, ("update audit_entries set payload = ?, hash = ? where seq = ?", (payload, h, seq)))
    r = verify(root)
    assert not r.ok and r.kind == "edited" and r.bad_seq == seq, r


@pytest.mark.parametrize("trial", range(TRIALS))
def test_deleted_entry_is_located(base: Path, tmp_path: Path, trial: int) -> None:
    root = copy(base, tmp_path)
    rng = random.Random(100 + trial)
    seq = rng.randint(1, last_seq(root) - 1)
    renumber = trial % 2 == 1
    stmts: list[tuple[str, tuple[object, ...]]] = [
        ("delete from audit_entries where seq = ?", (seq,))
    ]
    if renumber:  # close the gap so the sequence looks continuous
        stmts.append(("update audit_entries set seq = -(seq - 1) where seq > ?", (seq,)))
        stmts.append(("update audit_entries set seq = -seq where seq < 0", ()))
    sql(root, *stmts)
    r = verify(root)
    assert not r.ok and r.kind == "deleted", r
    assert r.bad_seq == (seq if renumber else seq + 1)
    assert r.details and r.details["missing_seqs"] == [seq, seq]


def test_deleted_run_at_the_start_without_anchor_is_detected(base: Path, tmp_path: Path) -> None:
    root = copy(base, tmp_path)
    sql(root, ("delete from audit_entries where seq <= 5", ()))
    r = verify(root)
    assert not r.ok and r.kind == "deleted" and r.bad_seq == 6
    assert r.details and r.details["missing_seqs"] == [1, 5]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_inserted_entry_is_located(base: Path, tmp_path: Path, trial: int) -> None:
    root = copy(base, tmp_path)
    rng = random.Random(200 + trial)
    seq = rng.randint(2, last_seq(root) - 1)
    prev_row = row(root, seq - 1)
    forged_hash = trial % 2 == 1
    at = str(row(root, seq)[1])
    payload = canonical_json({"note": "added later"})
    if forged_hash:  # a forger who knows the hash function and links to the real predecessor
        from datetime import datetime

        h = entry_hash(
            str(prev_row[8]),
            seq,
            datetime.fromisoformat(at + "+00:00"),
            "search",
            "ghost",
            "field-identification",
            "C-1",
            payload,
        )
    else:
        h = hashlib.sha256(b"forged").hexdigest()
    sql(
        root,
        ("update audit_entries set seq = -(seq + 1) where seq >= ?", (seq,)),
        ("update audit_entries set seq = -seq where seq < 0", ()),
        (
            "insert into audit_entries (seq, at, event, operator, purpose, case_ref, payload, "
            "prev_hash, hash) values (?, ?, 'search', 'ghost', 'field-identification', 'C-1', ?, "
            "?, ?)",
            (seq, at, payload, prev_row[8], h),
        ),
    )
    r = verify(root)
    assert not r.ok and r.kind == "inserted" and r.bad_seq == seq, (forged_hash, r)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_reordered_entries_are_located(base: Path, tmp_path: Path, trial: int) -> None:
    root = copy(base, tmp_path)
    rng = random.Random(300 + trial)
    n = last_seq(root)
    a = rng.randint(1, n - 1)
    b = a + 1 if trial % 2 == 0 else rng.randint(a + 1, n)
    sql(
        root,
        ("update audit_entries set seq = -1 where seq = ?", (a,)),
        ("update audit_entries set seq = ? where seq = ?", (a, b)),
        ("update audit_entries set seq = ? where seq = -1", (b,)),
    )
    r = verify(root)
    assert not r.ok and r.kind == "reordered" and r.bad_seq == a, (a, b, r)
    assert r.details and r.details["written_at_seq"] == b


def test_truncated_tail_is_detected_against_a_known_head(base: Path, tmp_path: Path) -> None:
    root = copy(base, tmp_path)
    n = last_seq(root)
    head = row(root, n)
    sql(root, ("delete from audit_entries where seq >= ?", (n - 2,)))
    r = verify(root)  # the database's own head row still says where the log ended
    assert not r.ok and r.kind == "truncated" and r.bad_seq == n - 2, r
    prev = row(root, n - 3)
    sql(root, ("update audit_head set seq = ?, hash = ?", (n - 3, prev[8])))
    assert verify(root).ok  # head rewound too: alone, a shorter chain is still a chain
    ws = Workspace.open(root)
    r = verify_entries(read_rows(ws.store), known_head=(n, str(head[8])))
    ws.close()
    assert not r.ok and r.kind == "truncated" and r.bad_seq == n - 2


def test_cli_verify_names_the_first_bad_entry(base: Path, tmp_path: Path) -> None:
    root = copy(base, tmp_path)
    auditor = tokens(root)[Role.AUDITOR]
    sql(root, ("update audit_entries set operator = 'x' where seq = 17", ()))
    res = cli(["audit", "verify", "--workspace", str(root), "--json"], auditor)
    assert res.exit_code == 1
    problem = json.loads(res.stdout)["problem"]
    assert problem["kind"] == "edited" and problem["first_bad_seq"] == 17
    intact = copy(base, tmp_path)
    ok = cli(["audit", "verify", "--workspace", str(intact)], tokens(intact)[Role.AUDITOR])
    assert ok.exit_code == 0 and "intact" in ok.stdout
    # Reading the log is a use too: audited under the auditor's account.
    with Workspace.open(intact) as ws:
        entry = ws.store.audit_entries("audit_verify")[-1]
    assert entry.operator == "cli-auditor" and entry.payload["ok"] is True
