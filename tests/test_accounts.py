"""Operator accounts: hashed passwords, throttled logins, expiring sessions and scoped tokens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from typer.testing import CliRunner

from fieldid.access import Role
from fieldid.access.accounts import (
    AccessPolicy,
    AccountError,
    Accounts,
    AuthenticationError,
    sha256_hex,
)
from fieldid.cli.app import app
from fieldid.clock import ManualClock
from fieldid.errors import AuthorisationError
from fieldid.store.schema import ApiToken, Operator, WebSession
from fieldid.workspace import Workspace

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


def test_cli_user_add_list_and_token_issue(tmp_path: Path):
    runner = CliRunner()
    root = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    r = runner.invoke(
        app,
        ["user", "add", "sam", "--role", "supervisor", "-w", str(root), "--password-stdin"],
        input="sam-password-1\n",
    )
    assert r.exit_code == 0 and "sam added (supervisor)" in r.output
    r = runner.invoke(
        app,
        ["user", "add", "tim", "--role", "officer", "-w", str(root), "--password-stdin"],
        input="short\n",
    )
    assert r.exit_code == 2 and "account.weak_password" in r.output
    r = runner.invoke(app, ["user", "list", "-w", str(root), "--json"])
    assert r.exit_code == 0 and '"role": "supervisor"' in r.output
    r = runner.invoke(app, ["token", "issue", "sam", "-w", str(root), "--scope", "review"])
    assert r.exit_code == 0
    secret = r.stdout.strip().splitlines()[-1]
    assert secret.startswith("fid_")
    with Workspace.open(root) as ws:
        assert Accounts(ws.store, ws.clock).token(secret).scopes == {"review"}
