"""The command line as operators use it: accounts with API tokens, and a runner that passes one.

``tokens(root)`` gives a workspace one account per role (``cli-officer``, ``cli-supervisor``…)
and returns their tokens; ``cli(args, token=…)`` runs ``fieldid`` with ``FIELDID_TOKEN`` set (or
unset: no credentials), on a stdin that is no terminal, as in a script."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.cli.app import app
from fieldid.workspace import Workspace
from helpers_service import FAST_HASHER, PASSWORD

runner = CliRunner()


def tokens(root: Path, prefix: str = "cli") -> dict[Role, str]:
    """One account per role in the workspace at ``root`` (closed), each with an API token."""
    out: dict[Role, str] = {}
    with Workspace.open(root) as ws:
        acc = Accounts(ws.store, ws.clock, hasher=FAST_HASHER)
        for role in Role:
            name = f"{prefix}-{role.value}"
            if acc.get_user(name) is None:
                acc.add_user(name, role, PASSWORD, by="system:test-setup")
            out[role] = acc.issue_token(name, by="system:test-setup").secret
    return out


def cli(args: list[str], token: str | None = None, stdin: str | None = None) -> Result:
    env = {"FIELDID_TOKEN": token or "", "FIELDID_USER": ""}
    return runner.invoke(app, [str(a) for a in args], env=env, input=stdin)
