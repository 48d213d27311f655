"""Signed audit exports: an outside party checks one export, and that a later one extends it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from fieldid.access import Actor, Role
from fieldid.audit.export import (
    load_public_key,
    read_export,
    verify_export,
    verify_extension,
    write_export,
)
from fieldid.audit.ops import export_audit
from fieldid.audit.verify import read_rows
from fieldid.cli.app import app
from fieldid.clock import ManualClock
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens
from helpers_storage import behind_the_back

AUDITOR = Actor("aud-1", Role.AUDITOR)


def fill(ws: Workspace, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        ws.store.append_audit("search", operator="o", purpose="p", case_ref="c", payload={"i": i})


def test_export_is_signed_verifiable_and_audited(backend, tmp_path: Path) -> None:
    ws = backend.init(tmp_path / "ws", clock=ManualClock())
    fill(ws, 10)
    res = export_audit(ws.store, ws.root, ws.clock, AUDITOR, tmp_path / "a.jsonl")
    # the private key is in the keyring (wrapped by the KEK), never a file in the workspace
    assert res.key.startswith("the workspace's keyring (audit-signing")
    assert not (tmp_path / "ws" / "keys" / "audit-ed25519.pem").exists()
    pub_file = tmp_path / "ws" / "keys" / "audit-ed25519.pub.pem"
    assert stat.S_IMODE(pub_file.stat().st_mode) == 0o600
    assert pub_file.read_bytes() == res.public_key.read_bytes()
    pub = load_public_key(res.public_key)
    check = verify_export(read_export(res.path), pub)
    assert check.ok, check.message
    last = list(ws.store.audit_entries())[-1]
    assert last.event == "export" and last.payload["head"]["hash"] == res.head["hash"]
    ws.close()


def test_later_export_extends_earlier_and_rewrite_is_caught(backend, tmp_path: Path) -> None:
    ws = backend.init(tmp_path / "ws", clock=ManualClock())
    fill(ws, 10)
    old = export_audit(ws.store, ws.root, ws.clock, AUDITOR, tmp_path / "old.jsonl")
    fill(ws, 5, 10)
    new = export_audit(ws.store, ws.root, ws.clock, AUDITOR, tmp_path / "new.jsonl")
    pub = load_public_key(old.public_key)
    ok = verify_extension(read_export(old.path), read_export(new.path), pub)
    assert ok.ok, ok.message
    # Reversed, the "new" one does not contain the other's head.
    assert not verify_extension(read_export(new.path), read_export(old.path), pub).ok

    # Someone with the database rewrites history *and every hash after it*, then exports again
    # with the real key: the chain alone verifies, but it no longer extends the old export.
    rows = read_rows(ws.store)
    from dataclasses import replace

    from fieldid.audit.log import GENESIS

    forged = []
    prev = GENESIS
    for r in rows:
        payload = '{"i":-1}' if r.seq == 4 else r.payload
        r2 = replace(r, payload=payload, prev_hash=prev)
        r2 = replace(r2, hash=r2.hash_at(r.seq))
        forged.append(r2)
        prev = r2.hash
    from fieldid.audit.export import load_or_create_key

    key, _ = load_or_create_key(ws.store)
    write_export(forged, tmp_path / "forged.jsonl", key, "now")
    assert verify_export(read_export(tmp_path / "forged.jsonl"), pub).ok
    bad = verify_extension(read_export(old.path), read_export(tmp_path / "forged.jsonl"), pub)
    assert not bad.ok and "entry 4 differs" in bad.message
    ws.close()


def test_edited_export_line_or_wrong_key_fails(backend, tmp_path: Path) -> None:
    ws = backend.init(tmp_path / "ws", clock=ManualClock())
    fill(ws, 6)
    res = export_audit(ws.store, ws.root, ws.clock, AUDITOR, tmp_path / "a.jsonl")
    lines = res.path.read_text().splitlines()
    d = json.loads(lines[3])
    d["operator"] = "nobody"
    lines[3] = json.dumps(d)
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join(lines) + "\n")
    pub = load_public_key(res.public_key)
    check = verify_export(read_export(edited), pub)
    assert not check.ok and check.chain is not None and check.chain.bad_seq == d["seq"]
    other = Ed25519PrivateKey.generate().public_key()
    assert not verify_export(read_export(res.path), other).ok
    ws.close()


def test_cli_export_and_verify_export(backend, tmp_path: Path) -> None:
    runner = CliRunner()
    ws_path = tmp_path / "ws"
    ws = backend.init(ws_path)
    fill(ws, 4)
    ws.close()
    tok = tokens(ws_path)
    args = ["audit", "export", "--workspace", str(ws_path)]
    r = cli([*args, "--out", str(tmp_path / "1.jsonl")], tok[Role.AUDITOR])
    assert r.exit_code == 0, r.output
    r = cli([*args, "--out", str(tmp_path / "x.jsonl")], tok[Role.OFFICER])
    assert r.exit_code == 2 and "access.forbidden" in r.output
    r = cli([*args, "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "access.unauthenticated" in r.output
    r = cli([*args, "--out", str(tmp_path / "2.jsonl")], tok[Role.AUDITOR])
    assert r.exit_code == 0
    pub = str(tmp_path / "1.jsonl.pub.pem")
    r = runner.invoke(
        app,
        [
            "audit",
            "verify-export",
            str(tmp_path / "1.jsonl"),
            str(tmp_path / "2.jsonl"),
            "--public-key",
            pub,
        ],
    )
    assert r.exit_code == 0 and "extends" in r.output, r.output
    r = runner.invoke(
        app, ["audit", "verify-export", str(tmp_path / "2.jsonl"), str(tmp_path / "1.jsonl")]
    )
    assert r.exit_code == 1
    # An earlier export's head catches a truncated log (also with the head row rewound).
    from sqlalchemy import text

    ws = Workspace.open(ws_path)
    with behind_the_back(ws) as s:
        s.execute(text("delete from audit_entries where seq >= 5"))
        s.execute(
            text(
                "update audit_head set seq = 4, "
                "hash = (select hash from audit_entries where seq = 4)"
            )
        )
    ws.close()
    r = cli(
        ["audit", "verify", "--workspace", str(ws_path), "--head", str(tmp_path / "2.jsonl")],
        tok[Role.AUDITOR],
    )
    assert r.exit_code == 1 and "truncated" in r.output, r.output


def test_configuration_changes_are_audited_on_open(backend, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    backend.init(root).close()
    ws = Workspace.open(root)
    changes = list(ws.store.audit_entries("config_change"))
    assert len(changes) == 1 and changes[0].payload["previous_sha256"] is None
    ws.close()
    cfg = (root / "fieldid.toml").read_text().replace('probe_images = "24h"', 'probe_images = "2h"')
    (root / "fieldid.toml").write_text(cfg)
    ws = Workspace.open(root)
    ws.close()
    ws = Workspace.open(root)  # unchanged since: nothing new
    changes = list(ws.store.audit_entries("config_change"))
    assert len(changes) == 2
    assert changes[1].payload["previous_sha256"] == changes[0].payload["sha256"]
    assert 'probe_images = "2h"' in changes[1].payload["config"]
    ws.close()
