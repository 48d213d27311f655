"""Workspace-level audit operations every surface shares: verify, and export with a signed head."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fieldid.access import Actor, require
from fieldid.audit.export import export_log, pub_path
from fieldid.audit.verify import VerifyResult, verify_log

if TYPE_CHECKING:
    from fieldid.workspace import Workspace

EXPORT_DIR = "exports"


def verify_workspace(ws: Workspace, known_head: tuple[int, str] | None = None) -> VerifyResult:
    """Check the workspace's audit log; read-only (it may be run on a copy)."""
    return verify_log(ws.sessions, known_head=known_head)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    public_key: Path
    key: Path
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


def default_export_path(ws: Workspace) -> Path:
    stamp = ws.clock.now().strftime("%Y%m%dT%H%M%SZ")
    return ws.root / EXPORT_DIR / f"audit-{stamp}.jsonl"


def export_workspace(
    ws: Workspace, actor: Actor, out: Path | None = None, key: Path | None = None
) -> ExportResult:
    """Export the audit log with a signed head; the export is itself audited (event ``export``)
    and covered by the ``exports`` retention period."""
    from fieldid.retention.purge import register_export

    require(actor, "audit_read")
    out = out or default_export_path(ws)
    head, key_path = export_log(ws.root, ws.sessions, out, ws.clock.now().isoformat(), key)
    entry = ws.audit.append(
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
    register_export(ws, "audit", out, entry.seq)
    return ExportResult(out, pub_path(out), key_path, head, entry.seq)
