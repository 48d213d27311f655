"""``fieldid keys``: the key-encryption key that seals the workspace's biometric data.

- ``keys show``: where the key comes from, its fingerprint, what is sealed;
- ``keys init``: seal biometric data stored in the clear (a workspace made before encryption at
  rest; opening one does it too, without a progress bar), move the record-hash key into the
  keyring; resumes when interrupted;
- ``keys rotate``: re-wrap every data key under a new key-encryption key (the data is not
  encrypted again), then point ``[keys]`` at the new key; ``--resume`` finishes an interrupted
  rotation;
- ``keys check``: open every sealed value and the index on disk: proof that the workspace can be
  read with its key;
- ``keys new-key``: write a new random key file (mode 0600), to plug in as ``[keys] file``.

See docs/security.md.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fieldid.cli.auth import no_account, operator, requires
from fieldid.cli.common import (
    JsonOpt,
    WorkspaceOpt,
    console,
    err_console,
    fail,
    open_workspace,
    progress_bar,
)
from fieldid.errors import FieldidError

if TYPE_CHECKING:
    from fieldid.store.keys import Progress

keys_app = typer.Typer(
    help="The key-encryption key that seals the workspace's biometric data.",
    no_args_is_help=True,
)


def key_created_notice(path: Path, fingerprint: str) -> None:
    """Said once, when a workspace's key-encryption key is made."""
    err_console.print(
        f"[bold]A key-encryption key was made for this workspace:[/] {escape(str(path))} "
        f"(fingerprint {fingerprint}, mode 0600).\n"
        "Every face, template and probe photo of the workspace is sealed under it, and it is "
        "NOT in the workspace folder. Back it up now, somewhere other than the workspace's "
        "backups: without it the workspace's biometric data cannot be read (docs/security.md)."
    )


class _Bar:
    """A progress callback drawing one bar per column."""

    def __init__(self, bar: Any, prefix: str = "") -> None:
        self.bar = bar
        self.prefix = prefix
        self.tasks: dict[str, Any] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        name = self.prefix + label
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=max(total, 1))
        self.bar.update(self.tasks[name], completed=done if total else 1, total=max(total, 1))


def prepare(workspace: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Give a workspace's database its keyring and seal what it holds in the clear, before the
    workspace is opened (``fieldid keys init``, ``fieldid upgrade``)."""
    from fieldid.audit.export import adopt_legacy_key
    from fieldid.config import CONFIG_NAME, WorkspaceConfig
    from fieldid.index.faiss_engine import discard_plaintext
    from fieldid.records.kinds import LEGACY_KEY_FILE
    from fieldid.store import open_store
    from fieldid.store.engine import database_url
    from fieldid.store.keys import open_keys, seal_plaintext
    from fieldid.store.private import check_private, private_umask
    from fieldid.workspace import INDEX_DIR, TRAINING_DIR, Workspace

    if not (workspace / CONFIG_NAME).is_file():
        raise FieldidError(
            f"{workspace} is not a fieldid workspace (no {CONFIG_NAME})",
            code="workspace.not_found",
        )
    private_umask()
    fixed = check_private(workspace)
    config = WorkspaceConfig.load(workspace / CONFIG_NAME)
    store = open_store(database_url(workspace, config.database_url))
    try:
        keys = open_keys(store, config.keys, workspace, legacy_hash_key=workspace / LEGACY_KEY_FILE)
        if keys.created is not None:
            key_created_notice(keys.created, keys.kek_id)
        signing_moved = adopt_legacy_key(keys, workspace)
        dropped = discard_plaintext(workspace / INDEX_DIR)
        sealed = seal_plaintext(keys, progress)
        if (workspace / TRAINING_DIR / CONFIG_NAME).is_file():
            with Workspace.open(workspace) as ws:
                ws.training()  # the training gallery is sealed as it opens
        return {
            "kek": keys.kek_id,
            "source": keys.source,
            "key_created": None if keys.created is None else str(keys.created),
            "sealed_now": sealed,
            "plaintext_index_deleted": dropped,
            "signing_key_moved_into_keyring": signing_moved,
            "made_private": [str(f) for f in fixed],
        }
    finally:
        store.close()


@keys_app.command("init")
@no_account(
    "seals the biometric data stored in the clear in place, as opening the workspace does; shows "
    "no face, record or search (audited as system:keys)"
)
def init(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Seal the biometric data a workspace made before encryption at rest holds in the clear
    (in place, in batches: an interrupted run resumes), move its record-hash key and audit
    signing key into the keyring, delete an index stored in the clear. Opening the workspace
    does the same."""
    try:
        with progress_bar() as bar:
            out = prepare(workspace, _Bar(bar, "sealing "))
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(out, indent=2))
        return
    n = sum(out["sealed_now"].values())
    console.print(
        f"biometric data sealed under the key {out['kek']} ({escape(out['source'])}); "
        f"{n:,} values were stored in the clear and are sealed now"
    )


@keys_app.command("show")
@no_account(
    "says where the key comes from, its fingerprint and how many values are sealed (what "
    "fieldid.toml and the keyring's row say); reads no face, record or search"
)
def show(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Where the workspace's key-encryption key comes from, its fingerprint, and how many
    values of each biometric column are sealed."""
    from fieldid.store.keys import count_sealed, facts, plaintext_counts

    try:
        ws = open_workspace(workspace)
        try:
            known = facts(ws.store) or {}
            out: dict[str, Any] = {
                "workspace_id": ws.keys.workspace_id,
                "kek": ws.keys.kek_id,
                "source": ws.keys.source,
                "rotation": known.get("rotation"),
                "sealed": count_sealed(ws.store),
                "in_the_clear": plaintext_counts(ws.store),
                "sealed_at": known.get("sealed_at"),
                "rotated_at": known.get("rotated_at"),
            }
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(out, indent=2, default=str))
        return
    console.print(f"workspace id      {out['workspace_id']}")
    console.print(f"key (fingerprint) {out['kek']}")
    console.print(f"key comes from    {escape(out['source'])}")
    if out["rotation"]:
        console.print(
            f"[yellow]rotation to {out['rotation']['kek_id']} under way[/]: finish it with "
            "`fieldid keys rotate --resume`"
        )
    t = Table(title="biometric columns", title_justify="left")
    for col in ("column", "sealed", "in the clear"):
        t.add_column(col, justify="left" if col == "column" else "right")
    for label, n in out["sealed"].items():
        t.add_row(label, f"{n:,}", f"{out['in_the_clear'][label]:,}")
    console.print(t)


@keys_app.command("check")
@requires("keys")
def check(
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Open every sealed value (templates, face crops, probe photos and templates, the keyring's
    keys) and the vector index on disk, with the key in use: exit 1 if any does not open."""
    from fieldid.store.keys import check as check_all
    from fieldid.workspace import TRAINING_DIR

    try:
        ws = open_workspace(workspace)
        results: dict[str, Any] = {}
        try:
            who = operator(ws)
            with progress_bar() as bar:
                galleries = [("", ws)]
                if (ws.root / TRAINING_DIR / "fieldid.toml").is_file():
                    galleries.append(("training: ", ws.training()))
                for prefix, w in galleries:
                    report = check_all(w.keys, _Bar(bar, prefix), operator=who.name)
                    results[prefix.rstrip(": ") or "workspace"] = {
                        **report.to_dict(),
                        "index_on_disk": _check_index(w),
                    }
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    ok = all(
        r["ok"]
        and (r["index_on_disk"] in ("opens", "none") or r["index_on_disk"].startswith("on "))
        for r in results.values()
    )
    if as_json:
        print(json.dumps({"ok": ok, **results}, indent=2, default=str))
    else:
        for name, r in results.items():
            total = sum(r["checked"].values())
            state = "[green]all open[/]" if r["ok"] else f"[bold red]{r['failed']} do not open[/]"
            console.print(f"{name}: {total:,} sealed values checked, {state}")
            for f in r["failures"][:20]:
                console.print(f"  {f['column']} {f['key']}: {f['code']}")
            if r["other_kek"]:
                console.print(
                    f"  [yellow]{r['other_kek']:,} are under another key[/]: a rotation is not "
                    "finished (`fieldid keys rotate --resume`)"
                )
            console.print(f"  index on disk: {r['index_on_disk']}")
    if not ok:
        raise typer.Exit(code=1)


def _check_index(ws: Any) -> str:
    from fieldid.index.faiss_engine import MANIFEST, FaissIndex, IndexStale
    from fieldid.workspace import INDEX_DIR

    backend = ws.config.index.backend
    if backend != "faiss-local":  # an engine cannot search ciphertext: docs/security.md
        return f"on the {backend} server, not sealed by fieldid"
    d = ws.root / INDEX_DIR
    if not (d / MANIFEST).is_file():
        return "none"
    try:
        m = json.loads((d / MANIFEST).read_text())
        FaissIndex.load(d, m.get("revision"), keyring=ws.keys.keyring, strict=True)
    except IndexStale as e:
        return f"does not open ({e.details.get('reason')}: {e.message})"
    except ValueError as e:
        return f"does not open ({e})"
    return "opens"


@keys_app.command("rotate")
@requires("keys")
def rotate(
    workspace: WorkspaceOpt = Path("."),
    to_file: Annotated[
        Path | None, typer.Option("--to-file", help="The new key: a key file (yours, mode 0600).")
    ] = None,
    to_env: Annotated[
        str | None, typer.Option("--to-env", help="The new key: this environment variable.")
    ] = None,
    to_command: Annotated[
        str | None, typer.Option("--to-command", help="The new key: what this command prints.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish a rotation that was interrupted.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-wrap every data key of the workspace under a new key-encryption key; the data is not
    encrypted again. Without --to-*, a new key file is made beside the default one. Then the
    keys section of fieldid.toml names the new key; keep the old one as long as backups made
    before the rotation exist."""
    from fieldid.config import CONFIG_NAME, with_keys_source
    from fieldid.keys import CommandKek, EnvKek, FileKek, KekSource, fingerprint
    from fieldid.keys.sources import ENV_COMMAND, ENV_FILE, ENV_KEY, inside, key_dir
    from fieldid.store.keys import (
        begin_rotation,
        facts,
        source_from_record,
        source_record,
    )
    from fieldid.store.keys import rotate as rotate_all
    from fieldid.store.private import write_private
    from fieldid.workspace import TRAINING_DIR

    out: dict[str, Any] = {}
    try:
        given = [x for x in (to_file, to_env, to_command) if x]
        if len(given) > 1:
            raise FieldidError("give one of --to-file, --to-env, --to-command", code="keys.usage")
        ws = open_workspace(workspace)
        try:
            who = operator(ws)
            known = facts(ws.store) or {}
            under_way = known.get("rotation")
            source: KekSource
            if to_file:
                source = FileKek(to_file)
            elif to_env:
                source = EnvKek(to_env)
            elif to_command:
                source = CommandKek(to_command)
            elif under_way:
                found = source_from_record(under_way.get("source"))
                if found is None:
                    raise FieldidError("the rotation's key is not recorded", code="keys.rotation")
                source = found
            else:
                if resume:
                    raise FieldidError("no rotation is under way", code="keys.rotation")
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                made = FileKek(key_dir() / f"{ws.keys.workspace_id}-{stamp}.key")
                made.create()
                key_created_notice(made.path, fingerprint(made.load()))
                source = made
            if isinstance(source, FileKek):
                inside(source.path, ws.root)
            new = source.load()
            if under_way and fingerprint(new) != under_way["kek_id"]:
                raise FieldidError(
                    f"a rotation to the key {under_way['kek_id']} is under way and this key is "
                    f"{fingerprint(new)}: finish it with `fieldid keys rotate --resume`",
                    code="keys.rotation",
                )
            old_source = ws.keys.source
            galleries = [("", ws)]
            if (ws.root / TRAINING_DIR / CONFIG_NAME).is_file():
                galleries.append(("training: ", ws.training()))
            with progress_bar() as bar:
                reports = {}
                for prefix, w in galleries:
                    begin_rotation(w.keys, new, source)
                    report = rotate_all(
                        w.keys, _Bar(bar, prefix + "re-wrapping "), operator=who.name
                    )
                    w.gallery.reseal_index()
                    reports[prefix.rstrip(": ") or "workspace"] = {
                        "rewrapped": report.rewrapped,
                        "named_keys": report.named_keys,
                    }
            rec = source_record(source)
            cfg = ws.root / CONFIG_NAME
            write_private(cfg, with_keys_source(cfg.read_text(encoding="utf-8"), *rec.values()))
            out = {
                "from": report.old,
                "to": report.new,
                "new_source": source.describe(),
                "old_source": old_source,
                "galleries": reports,
                "config": str(cfg),
                "overridden_by_environment": [
                    v for v in (ENV_KEY, ENV_FILE, ENV_COMMAND) if os.environ.get(v)
                ],
            }
        finally:
            ws.close()
    except FieldidError as e:
        fail(e, as_json)
    if as_json:
        print(json.dumps(out, indent=2))
        return
    n = sum(sum(g["rewrapped"].values()) for g in out["galleries"].values())
    console.print(
        f"rotated: {n:,} data keys re-wrapped from {out['from']} to {out['to']} (no data "
        f"encrypted again); the vector index re-sealed; {escape(out['config'])} names "
        f"{escape(out['new_source'])}"
    )
    console.print(
        f"The old key ({escape(out['old_source'])}) is no longer used by the database, but "
        "backups made before now still need it: keep it as long as they are kept, then destroy "
        "it."
    )
    for v in out["overridden_by_environment"]:
        err_console.print(
            f"[yellow]{v} is set and overrides [keys]: point it at the new key before the next "
            "start[/]"
        )


@keys_app.command("new-key")
@no_account("writes a new random key to a file; opens no workspace")
def new_key(
    out: Annotated[Path, typer.Option("--out", help="Key file to write (must not exist).")],
) -> None:
    """Write a new random key-encryption key (32 bytes, base64) to a file, mode 0600."""
    from fieldid.keys import FileKek, fingerprint

    try:
        made = FileKek(out)
        if made.path.exists():
            raise FieldidError(f"{out} exists: choose a new file", code="keys.exists")
        made.create()
    except FieldidError as e:
        fail(e)
    except OSError as e:
        fail(FieldidError(f"cannot write {out}: {e.strerror}", code="keys.unreadable"))
    console.print(
        f"new key written to {escape(str(made.path))} (fingerprint {fingerprint(made.load())})"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
