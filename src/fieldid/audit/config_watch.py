"""Configuration and policy changes in the audit log.

Policy (purposes, thresholds, retention, adjudication rules) lives in ``fieldid.toml``, which an
administrator edits by hand. Each time a workspace is opened its file is compared with the last
one the audit log recorded; a difference is recorded as a ``config_change`` entry holding the new
text and both fingerprints, so what was in force at any time can be read back from the log.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fieldid.audit.log import AuditRecord, SqlAuditLog

#: The operator named when a change is noticed rather than made through fieldid.
OBSERVER = "system:config-watch"


def record_config_if_changed(
    audit: SqlAuditLog, config_path: Path, operator: str = OBSERVER
) -> AuditRecord | None:
    """Append a ``config_change`` entry if ``config_path`` differs from the last one recorded."""
    text = config_path.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    last: AuditRecord | None = None
    for e in audit.entries("config_change"):
        last = e
    previous = None if last is None else last.payload.get("sha256")
    if previous == digest:
        return None
    return audit.append(
        "config_change",
        operator=operator,
        payload={
            "file": config_path.name,
            "sha256": digest,
            "previous_sha256": previous,
            "observed": operator == OBSERVER,
            "config": text,
        },
    )
