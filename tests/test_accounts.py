"""Operator accounts: hashed passwords, throttled logins, expiring sessions and scoped tokens."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from fieldid.access import Role
from fieldid.access.accounts import (
    AccessPolicy,
    AccountError,
    Accounts,
    AuthenticationError,
    sha256_hex,
)
from fieldid.clock import ManualClock
from fieldid.errors import AuthorisationError
from fieldid.store.schema import ApiToken, Operator, WebSession
from fieldid.workspace import Workspace
from helpers_cli import cli

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture()
def accounts(backend, tmp_path: Path):
    clock = ManualClock()
    ws = backend.init(tmp_path / "ws", clock=clock)
    acc = Accounts(ws.store, ws.clock, hasher=FAST)
    acc.add_user("olive", Role.OFFICER, "olive-password", by="root")
    yield acc, clock
    ws.close()


def test_passwords_are_argon2_hashed_and_names_checked(accounts):
    acc, _ = accounts
    with acc.store.read() as s:
        op = s.scalar(select(Operator).where(Operator.name == "olive"))
        assert op is not None and op.password_hash.startswith("$argon2id$")
        assert "olive-password" not in op.password_hash
    for name, pw, code in [
        ("olive", "another-password", "account.exists"),
        ("bad name", "long-enough-pw", "account.bad_name"),
        ("short", "short", "account.weak_password"),
    ]:
        with pytest.raises(AccountError) as e:
            acc.add_user(name, Role.OFFICER, pw, by="root")
        assert e.value.code == code
    with pytest.raises(AccountError) as e:
        acc.add_user("x", "chief", "long-enough-pw", by="root")
    assert e.value.code == "account.bad_role"
    assert [u.name for u in acc.list_users()] == ["olive"]
    assert [e.event for e in acc.store.audit_entries("user_add")] == ["user_add"]


def test_login_and_one_answer_for_wrong_name_or_password(accounts):
    acc, _ = accounts
    assert acc.authenticate("olive", "olive-password", client="10.0.0.1").role is Role.OFFICER
    for name, pw in [("olive", "nope-nope-nope"), ("nobody", "olive-password")]:
        with pytest.raises(AuthenticationError) as e:
            acc.authenticate(name, pw, client="10.0.0.1")
        assert e.value.code == "access.bad_credentials"
        assert e.value.message == "wrong operator name or password"
    failed = list(acc.store.audit_entries("login_failed"))
    assert [f.operator for f in failed] == ["olive", "nobody"]


def test_repeated_failures_back_off_per_account(accounts):
    acc, clock = accounts
    for _ in range(acc.policy.free_failures_account):
        with pytest.raises(AuthenticationError):
            acc.authenticate("olive", "wrong-password", client="10.0.0.2")
        clock.advance(seconds=0.5)
    # Now even the right password waits: 2 s after the last failure, then 4 s, 8 s ...
    with pytest.raises(AuthenticationError) as e:
        acc.authenticate("olive", "olive-password", client="10.0.0.3")
    assert e.value.code == "access.throttled" and e.value.details["retry_after"] == 2
    clock.advance(seconds=2.1)
    assert acc.authenticate("olive", "olive-password", client="10.0.0.3").name == "olive"
    # Success clears the account's count.
    assert acc.throttle_wait("olive", "10.0.0.9") == timedelta(0)
    throttled = [e for e in acc.store.audit_entries("login_failed") if "retry_after" in e.payload]
    assert len(throttled) == 1


def test_one_client_guessing_many_names_is_throttled_by_address(accounts):
    acc, clock = accounts
    for i in range(acc.policy.free_failures_address + 1):
        with pytest.raises(AuthenticationError):
            acc.authenticate(f"guess{i}", "wrong-password", client="203.0.113.7")
        clock.advance(seconds=0.1)
    with pytest.raises(AuthenticationError) as e:
        acc.authenticate("olive", "olive-password", client="203.0.113.7")
    assert e.value.code == "access.throttled"
    assert acc.authenticate("olive", "olive-password", client="198.51.100.1").name == "olive"


def test_sessions_expire_when_idle_and_at_their_lifetime(accounts):
    acc, clock = accounts
    actor = acc.authenticate("olive", "olive-password", client="c")
    secret, grant = acc.open_session(actor, client="c")
    with acc.store.read() as s:
        assert s.get(WebSession, sha256_hex(secret)) is not None  # stored hashed
        assert s.get(WebSession, secret) is None
    clock.advance(minutes=29)
    assert acc.session(secret).csrf_token == grant.csrf_token
    clock.advance(minutes=31)
    with pytest.raises(AuthenticationError) as e:
        acc.session(secret)
    assert e.value.code == "access.session_expired"
    with pytest.raises(AuthenticationError) as e:
        acc.session(secret)
    assert e.value.code == "access.no_session"  # and it is gone
    # Kept busy, a session still ends at its lifetime.
    secret, _ = acc.open_session(actor, client="c")
    for _ in range(12 * 3):
        clock.advance(minutes=20)
        try:
            acc.session(secret)
        except AuthenticationError as err:
            assert err.code == "access.session_expired"
            break
    else:
        pytest.fail("the session outlived its lifetime")
    secret, _ = acc.open_session(actor, client="c")
    acc.close_session(secret)
    with pytest.raises(AuthenticationError):
        acc.session(secret)
    assert [e.event for e in acc.store.audit_entries("logout")] == ["logout"]


def test_disabled_operator_cannot_log_in_and_loses_sessions(accounts):
    acc, _ = accounts
    actor = acc.authenticate("olive", "olive-password", client="c")
    secret, _ = acc.open_session(actor, client="c")
    acc.set_disabled("olive", True, by="root")
    with pytest.raises(AuthenticationError):
        acc.session(secret)
    with pytest.raises(AuthenticationError) as e:
        acc.authenticate("olive", "olive-password", client="c")
    assert e.value.code == "access.bad_credentials"


def test_tokens_are_hashed_scoped_and_expire(accounts):
    acc, clock = accounts
    tok = acc.issue_token("olive", scopes=["search"], lifetime=timedelta(days=1), by="root")
    with acc.store.read() as s:
        row = s.scalar(select(ApiToken))
        assert row is not None and row.token_hash == sha256_hex(tok.secret)
        assert tok.secret not in row.token_hash
    grant = acc.token(tok.secret)
    assert grant.actor.name == "olive" and grant.scopes == {"search"}
    everything = acc.issue_token("olive", by="root")
    assert set(everything.scopes) == {
        "search",
        "verify",
        "adjudicate",
        "record_read",
        "account_self",
    }
    with pytest.raises(AuthorisationError) as e:
        acc.issue_token("olive", scopes=["enroll"], by="root")
    assert e.value.code == "access.forbidden"
    with pytest.raises(AccountError) as e2:
        acc.issue_token("olive", scopes=["fly"], by="root")
    assert e2.value.code == "account.bad_scope"
    clock.advance(days=1, seconds=1)
    with pytest.raises(AuthenticationError) as e3:
        acc.token(tok.secret)
    assert e3.value.code == "access.token_expired"
    acc.revoke_token(everything.id, by="root")
    with pytest.raises(AuthenticationError) as e4:
        acc.token(everything.secret)
    assert e4.value.code == "access.token_invalid"
    issued = list(acc.store.audit_entries("token_issue"))
    assert len(issued) == 2 and tok.secret not in str(issued[0].payload)


def test_policy_is_configurable(backend, tmp_path: Path):
    ws = backend.init(tmp_path / "ws", clock=ManualClock())
    acc = Accounts(ws.store, ws.clock, AccessPolicy(free_failures_account=1), hasher=FAST)
    acc.add_user("x", Role.ADMIN, "x-password-1", by="root")
    with pytest.raises(AuthenticationError):
        acc.authenticate("x", "bad-password", client="c")
    with pytest.raises(AuthenticationError) as e:
        acc.authenticate("x", "x-password-1", client="c")
    assert e.value.code == "access.throttled"
    ws.close()


def test_cli_access_lifecycle(tmp_path: Path) -> None:
    """init makes the first admin (with a token for scripts); the admin adds operators, issues,
    lists and revokes tokens, disables and enables accounts, resets passwords; each act is
    audited under the admin's account; a revoked token and a disabled account's token stop
    working at once."""
    root, token_file = tmp_path / "ws", tmp_path / "admin.token"
    r = cli(["init", str(root), "--password-stdin", "--token-out", str(token_file)],
            stdin="admin-password-1\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "admin account: admin" in r.output and oct(token_file.stat().st_mode)[-3:] == "600"
    admin = token_file.read_text().strip()
    w = ["-w", str(root)]
    add = ["user", "add", "sam", "--role", "supervisor", *w, "--password-stdin"]
    r = cli(add, stdin="sam-password-1\n")
    assert r.exit_code == 2 and "access.unauthenticated" in r.output  # an admin exists now
    r = cli(add, admin, stdin="sam-password-1\n")
    assert r.exit_code == 0 and "sam added (supervisor)" in r.output
    r = cli(["user", "add", "tim", "--role", "officer", *w, "--password-stdin"], admin,
            stdin="short\n")  # fmt: skip
    assert r.exit_code == 2 and "account.weak_password" in r.output
    r = cli(["user", "list", *w, "--json"], admin)
    assert r.exit_code == 0 and '"role": "supervisor"' in r.output
    r = cli(["token", "issue", "sam", *w, "--scope", "review"], admin)
    assert r.exit_code == 0
    secret = r.stdout.strip().splitlines()[-1]
    assert secret.startswith("fid_")
    with Workspace.open(root) as ws:
        assert Accounts(ws.store, ws.clock).token(secret).scopes == {"review"}
    r = cli(["token", "list", *w, "--json"], admin)
    listed = {t["operator"]: t for t in json.loads(r.stdout)}
    assert listed["sam"]["state"] == "active" and secret not in r.stdout
    # sam's token works for what it is scoped for, not beyond, and not for user management.
    assert cli(["review", "list", *w], secret).exit_code == 0
    r = cli(["user", "list", *w], secret)
    assert r.exit_code == 2 and "access.forbidden" in r.output
    r = cli(["token", "revoke", str(listed["sam"]["id"]), *w], admin)
    assert r.exit_code == 0
    r = cli(["review", "list", *w], secret)
    assert r.exit_code == 2 and "access.token_invalid" in r.output
    # Disabling revokes every token and ends every session at once; enabling revives none.
    r = cli(["token", "issue", "sam", *w], admin)
    second = r.stdout.strip().splitlines()[-1]
    assert cli(["review", "list", *w], second).exit_code == 0
    r = cli(["user", "disable", "sam", *w], admin)
    assert r.exit_code == 0 and "1 token(s) revoked" in r.output
    assert "access.token_invalid" in cli(["review", "list", *w], second).output
    assert cli(["user", "enable", "sam", *w], admin).exit_code == 0
    assert "access.token_invalid" in cli(["review", "list", *w], second).output
    r = cli(["user", "passwd", "sam", *w, "--password-stdin"], admin, stdin="sam-password-2\n")
    assert r.exit_code == 0, r.output
    # The last active admin cannot be disabled.
    r = cli(["user", "disable", "admin", *w], admin)
    assert r.exit_code == 2 and "account.last_admin" in r.output
    with Workspace.open(root) as ws:
        acts = [
            (e.event, e.operator)
            for e in ws.store.audit_entries()
            if e.event.startswith(("user_", "token_"))
        ]
        assert (
            Accounts(ws.store, ws.clock).authenticate("sam", "sam-password-2", client="test").name
            == "sam"
        )
    assert ("user_add", "admin") in acts and ("token_revoke", "admin") in acts
    assert ("user_disable", "admin") in acts and ("user_enable", "admin") in acts
    assert ("user_password_reset", "admin") in acts


def test_cli_bootstraps_an_admin_only_where_there_is_none(backend, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    backend.init(root).close()  # a workspace made before accounts were required
    w = ["-w", str(root), "--password-stdin"]
    r = cli(["user", "add", "o", "--role", "officer", *w], stdin="o-password-12\n")
    assert r.exit_code == 2 and "account.no_admin" in r.output
    r = cli(["user", "add", "root", "--role", "admin", *w], stdin="root-password-1\n")
    assert r.exit_code == 0, r.output
    with Workspace.open(root) as ws:
        entry = ws.store.audit_entries("user_add")[-1]
    assert entry.operator.startswith("bootstrap:local:")
    r = cli(["user", "add", "root2", "--role", "admin", *w], stdin="root-password-2\n")
    assert r.exit_code == 2 and "access.unauthenticated" in r.output


def test_cli_asks_for_name_and_password_at_a_terminal(
    backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a token, at a terminal: the operator's name and password, checked like a web
    login (a wrong password is audited and refused)."""
    from fieldid.cli import auth

    root = tmp_path / "ws"
    ws = backend.init(root)
    Accounts(ws.store, ws.clock, hasher=FAST).add_user(
        "ann", Role.AUDITOR, "ann-password-1", by="t"
    )
    ws.close()
    monkeypatch.setattr(auth, "_interactive", lambda: True)
    typed = iter(["ann-password-1", "wrong-password", "ann-password-1"])
    monkeypatch.setattr(auth.getpass, "getpass", lambda prompt="": next(typed))
    args = ["audit", "verify", "-w", str(root), "--user", "ann"]
    r = cli(args)
    assert r.exit_code == 0 and "intact" in r.output, r.output
    r = cli(args)
    assert r.exit_code == 2 and "access.bad_credentials" in r.output
    r = cli(["audit", "verify", "-w", str(root)], stdin="ann\n")  # the name asked too
    assert r.exit_code == 0, r.output
    with Workspace.open(root) as ws:
        entries = ws.store.audit_entries()
    assert [e.operator for e in entries if e.event == "audit_verify"] == ["ann", "ann"]
    failed = [e for e in entries if e.event == "login_failed"]
    assert failed and failed[-1].payload["client"].startswith("cli:")
