"""Audit operations every surface shares: verify, and export with a signed head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldid.access import Actor, require
from fieldid.audit.export import export_log, pub_path
from fieldid.audit.verify import VerifyResult, verify_log
from fieldid.clock import Clock
from fieldid.retention.purge import register_export
from fieldid.store import Store

EXPORT_DIR = "exports"


def verify_store(store: Store, known_head: tuple[int, str] | None = None) -> VerifyResult:
    """Check a database's audit log; read-only (it may be run on a copy)."""
    return verify_log(store, known_head=known_head)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    public_key: Path
    #: Where the signing key is kept (the workspace's keyring, or the file given), in words.
    key: str
    head: dict[str, Any]
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "public_key": str(self.public_key),
            "key": str(self.key),
            "head": self.head,
            "audit_seq": self.audit_seq,
        }


def default_export_path(root: Path, clock: Clock) -> Path:
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    return root / EXPORT_DIR / f"audit-{stamp}.jsonl"


def export_audit(
    store: Store,
    root: Path,
    clock: Clock,
    actor: Actor,
    out: Path | None = None,
    key: Path | None = None,
) -> ExportResult:
    """Export the audit log with a signed head (``root``: the workspace, where the default
    export folder is; the signing key is in its keyring unless ``key`` names a file); the
    export is itself audited (event ``export``) and covered by the ``exports`` retention period,
    both in one unit of work."""
    require(actor, "audit_read")
    out = out or default_export_path(root, clock)
    head, key_path = export_log(root, store, out, clock.now().isoformat(), key)
    with store.unit_of_work() as uow:
        entry = uow.audit(
            "export",
            operator=actor.name,
            payload={
                "kind": "audit",
                "role": actor.role.value,
                "path": str(out),
                "head": {"seq": head["seq"], "hash": head["hash"], "key_id": head["key_id"]},
                "count": head["count"],
            },
        )
        register_export(uow, "audit", out, entry.seq)
    return ExportResult(out, pub_path(out), key_path, head, entry.seq)
