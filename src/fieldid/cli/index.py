"""``fieldid index rebuild`` and ``fieldid index check``: the gallery's vector index.

The database holds every template; the index (faiss-local files, a pgvector table, a Milvus
collection) is derived from it. ``rebuild`` reloads it from the database, and with
``--backend`` moves the gallery to another engine: the new engine is built first, and only then
is ``[index] backend`` (and ``uri``) written to fieldid.toml, so a failed move leaves the
workspace on the engine it had. ``check`` compares revision and count with the database and
searches a sample of templates for themselves; ``--repair`` drains a Milvus outbox, catches up
or rebuilds, then checks again. Both read every template: an admin's account
(:mod:`fieldid.cli.auth`, action ``index``), audited (``index_rebuild``, ``index_check``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from fieldid.cli.auth import operator, requires
from fieldid.cli.common import JsonOpt, WorkspaceOpt, console, fail, progress_bar
from fieldid.errors import FieldidError

index_app = typer.Typer(
    help="The gallery's vector index: rebuild it (or move it to another backend), check it.",
    no_args_is_help=True,
)

BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Move the gallery to this backend (faiss-local, pgvector, milvus): build it "
        "there, then write it to fieldid.toml. Default: the configured one.",
    ),
]
UriOpt = Annotated[
    str | None,
    typer.Option(
        "--uri",
        help="With --backend: the engine's address (milvus: http://host:19530; pgvector: "
        "empty for the workspace's own PostgreSQL database).",
    ),
]


def _open(workspace: Path, backend: str | None, uri: str | None) -> Any:
    """The workspace, with ``[index]`` replaced in memory when another backend is asked for."""
    from fieldid.config import CONFIG_NAME, WorkspaceConfig
    from fieldid.index.config import IndexConfig
    from fieldid.workspace import Workspace

    if not (workspace / CONFIG_NAME).is_file():
        raise FieldidError(
            f"{workspace} is not a fieldid workspace (no {CONFIG_NAME})",
            code="workspace.not_found",
        )
    config = WorkspaceConfig.load(workspace / CONFIG_NAME)
    if backend is not None or uri is not None:
        try:
            index = dataclasses.replace(
                config.index,
                backend=backend or config.index.backend,  # type: ignore[arg-type]
                uri=config.index.uri if uri is None else uri,
            )
        except ValueError as e:
            raise FieldidError(str(e), code="index.bad_config") from e
        config = dataclasses.replace(config, index=index)
        assert isinstance(config.index, IndexConfig)
    from fieldid.workspace import TRAINING_MARK

    return Workspace(workspace, config, training=(workspace / TRAINING_MARK).is_file())


@index_app.command("rebuild")
@requires("index")
def rebuild(
    workspace: WorkspaceOpt = Path("."),
    backend: BackendOpt = None,
    uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reload the vector index from every template in the database (with a progress bar). With
    --backend, build the gallery's index on that backend and switch the workspace to it."""
    from fieldid.config import CONFIG_NAME
    from fieldid.index.config import with_index_settings

    out: dict[str, Any] = {}
    try:
        ws = _open(workspace, backend, uri)
        try:
            who = operator(ws)
            gallery = ws.gallery
            total = gallery.size().templates
            with progress_bar() as bar:
                task = bar.add_task(f"rebuilding the {gallery.backend} index", total=max(total, 1))
                n = gallery.rebuild_index(lambda done: bar.update(task, completed=done))
                bar.update(task, completed=max(total, 1))
            report = gallery.check_index(sample=min(20, n))
            out = {
                "backend": gallery.backend,
                "templates": n,
                "check": report.describe(),
                "ok": report.ok,
            }
            if backend is not None or uri is not None:
                if report.ok:
                    path = workspace / CONFIG_NAME
                    settings = {"backend": ws.config.index.backend, "uri": ws.config.index.uri}
                    text = with_index_settings(path.read_text(encoding="utf-8"), **settings)
                    path.write_text(text, encoding="utf-8")
                out["switched"] = report.ok
            ws.store.append_audit(
                "index_rebuild",
                operator=who.name,
                payload={"role": who.role.value, **out},
            )
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        colour = "green" if out["ok"] else "bold red"
        console.print(
            f"[{colour}]{escape(out['backend'])} index rebuilt[/]: {out['templates']} templates; "
            f"{escape(out['check'])}"
        )
        if out.get("switched"):
            console.print(f"the workspace now uses the {escape(out['backend'])} backend")
        elif "switched" in out:
            console.print("[bold red]the check failed: the workspace keeps its backend[/]")
    if not out["ok"]:
        raise typer.Exit(code=1)


@index_app.command("check")
@requires("index")
def check(
    workspace: WorkspaceOpt = Path("."),
    sample: Annotated[
        int, typer.Option(help="Templates searched for themselves (0: revision and count only).")
    ] = 20,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Bring the index to the database first (drain the outbox, catch up, or "
            "rebuild), then check.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare the vector index with the database: the revision it reflects, its count, and a
    sample of templates found as their own best match. Exit 1 when it is not current."""
    out: dict[str, Any] = {}
    try:
        ws = _open(workspace, None, None)
        try:
            who = operator(ws)
            gallery = ws.gallery
            if repair:
                with progress_bar() as bar:
                    task = bar.add_task(f"repairing the {gallery.backend} index", total=None)
                    out["repair"] = gallery.repair_index()
                    bar.update(task, total=1, completed=1)
            pending = getattr(gallery.sync, "pending", None)
            with progress_bar() as bar:
                task = bar.add_task(f"checking the {gallery.backend} index", total=None)
                report = gallery.check_index(sample=max(0, sample))
                bar.update(task, total=1, completed=1)
            c = report.consistency
            out.update(
                {
                    "backend": gallery.backend,
                    "ok": report.ok,
                    "reason": c.reason,
                    "database_revision": c.expected_revision,
                    "index_revision": c.index_revision,
                    "database_templates": c.expected_count,
                    "index_templates": c.index_count,
                    "sampled": report.sampled,
                    "not_found": list(report.not_found),
                    "outbox": None if pending is None else pending(),
                    "summary": report.describe(),
                }
            )
            ws.store.append_audit(
                "index_check",
                operator=who.name,
                payload={
                    "role": who.role.value,
                    "repair": out.get("repair"),
                    "ok": report.ok,
                    "reason": c.reason,
                    "outbox": out["outbox"],
                },
            )
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        if "repair" in out:
            console.print(f"repair: {escape(str(out['repair']))}")
        colour = "green" if out["ok"] else "bold red"
        console.print(f"[{colour}]{escape(out['summary'])}[/]")
        if out["outbox"]:
            console.print(
                f"{out['outbox']} committed changes wait in the outbox: run "
                "`fieldid index check --repair`"
            )
    if not out["ok"]:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``fieldid index`` to the main app."""
    app.add_typer(index_app, name="index")
