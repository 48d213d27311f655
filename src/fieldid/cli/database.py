"""Database commands: ``fieldid upgrade`` and ``fieldid db copy``.

``fieldid init W --database-url URL`` (in ``app.py``) keeps a new workspace's data in
PostgreSQL; ``fieldid upgrade`` brings a workspace's database to the current schema;
``fieldid db copy --from W --to URL`` moves an embedded workspace into PostgreSQL and proves the
copy (each table's rows counted on both sides, the audit chain verified on the copy). See
docs/deploy-postgresql.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fieldid.cli.auth import no_account, operator, requires
from fieldid.cli.common import JsonOpt, WorkspaceOpt, console, fail, progress_bar
from fieldid.errors import FieldidError

db_app = typer.Typer(help="The workspace's database: copy it to another one.", no_args_is_help=True)


@no_account("brings the database's schema to the current migration; reads no face or record")
def upgrade(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Bring the workspace's database to the current schema (Alembic migrations, SQLite or
    PostgreSQL). Opening a workspace does it too; run it on its own before a new version of
    fieldid serves a shared PostgreSQL database."""
    from fieldid.config import CONFIG_NAME, WorkspaceConfig
    from fieldid.store import Store
    from fieldid.store.engine import database_url

    try:
        if not (workspace / CONFIG_NAME).is_file():
            raise FieldidError(
                f"{workspace} is not a fieldid workspace (no {CONFIG_NAME})",
                code="workspace.not_found",
            )
        config = WorkspaceConfig.load(workspace / CONFIG_NAME)
        store = Store(database_url(workspace, config.database_url))
        try:
            before = store.revision()
            store.migrate()
            after = store.revision()
            where = store.shown_url
        finally:
            store.close()
        from fieldid.cli.keys import _Bar, prepare

        with progress_bar() as bar:  # biometric data stored in the clear is sealed now
            prepare(workspace, _Bar(bar, "sealing "))
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps({"database": where, "from": before, "to": after}, indent=2))
    elif before == after:
        console.print(f"{escape(where)} is at the current schema ({after})")
    else:
        console.print(f"{escape(where)} upgraded from {before or 'empty'} to {after}")


@db_app.command("copy")
@requires("db_copy")
def db_copy(
    source: Annotated[Path, typer.Option("--from", help="The workspace whose database is copied.")],
    target: Annotated[str, typer.Option("--to", help="Database URL to copy into (new and empty).")],
    switch: Annotated[
        bool,
        typer.Option(
            "--switch",
            help="After a proven copy, point the workspace at the copy ([database] url); the "
            "old database is left as it was.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a workspace's database (people, templates, records, searches, accounts, audit) into
    another, then prove it: rows counted in every table on both sides, the audit chain verified
    on the copy. Exit 1 when the proof fails."""
    from fieldid.audit.verify import verify_log
    from fieldid.store import open_store
    from fieldid.store.copy import copy_database
    from fieldid.store.engine import parse_url, shown
    from fieldid.workspace import Workspace

    proof: dict[str, Any] = {}
    try:
        ws = Workspace.open(source)
        try:
            who = operator(ws)
            dst_url = parse_url(target)
            # Audited before the copy, so the copy holds its own record and both heads match.
            ws.store.append_audit(
                "db_copy",
                operator=who.name,
                payload={"role": who.role.value, "to": shown(dst_url), "switch": switch},
            )
            dst = open_store(dst_url, pool=False)
            try:
                with progress_bar() as bar:
                    tasks: dict[str, Any] = {}

                    def progress(table: str, done: int, total: int) -> None:
                        if table not in tasks:
                            tasks[table] = bar.add_task(table, total=max(total, 1))
                        bar.update(tasks[table], completed=done if total else 1)

                    report = copy_database(ws.store, dst, progress=progress)
                chain = verify_log(dst)
                source_chain = verify_log(ws.store)
            finally:
                dst.close()
            heads_match = (chain.head_seq, chain.head_hash) == (
                source_chain.head_seq,
                source_chain.head_hash,
            )
            proof = {
                **report.to_dict(),
                "audit": {"copy": chain.to_dict(), "heads_match": heads_match},
                "proven": report.ok and chain.ok and heads_match,
            }
            if switch and proof["proven"]:
                _switch(source, dst_url.render_as_string(hide_password=False))
                proof["switched"] = True
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(proof, indent=2, default=str))
    else:
        t = Table(title=f"copied into {escape(proof['target'])}", title_justify="left")
        for col in ("table", "rows in the source", "rows in the copy", ""):
            t.add_column(col, justify="left" if col == "table" else "right")
        for name, c in proof["tables"].items():
            same = "[green]same[/]" if c["source"] == c["target"] else "[bold red]DIFFERENT[/]"
            t.add_row(name, f"{c['source']:,}", f"{c['target']:,}", same)
        console.print(t)
        chain = proof["audit"]["copy"]
        if chain["ok"] and proof["audit"]["heads_match"]:
            console.print(
                f"[green]audit log of the copy intact[/]: {chain['checked']} entries, ending at "
                f"the source's head (seq {chain['head']['seq']})"
            )
        else:
            console.print("[bold red]the audit log of the copy does not verify[/]")
        if proof.get("switched"):
            console.print(f"{source}/fieldid.toml now points at the copy")
    if not proof["proven"]:
        raise typer.Exit(code=1)


def _switch(root: Path, url: str) -> None:
    """Write ``[database] url`` into the workspace's fieldid.toml."""
    from fieldid.config import CONFIG_NAME, with_database_url

    path = root / CONFIG_NAME
    path.write_text(with_database_url(path.read_text(encoding="utf-8"), url), encoding="utf-8")


def register(app: typer.Typer) -> None:
    """Add ``fieldid upgrade`` and ``fieldid db`` to the main app."""
    app.command("upgrade")(upgrade)
    app.add_typer(db_app, name="db")
