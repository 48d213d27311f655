"""Configuration and policy changes in the audit log.

Policy (purposes, thresholds, retention, adjudication rules) lives in ``fieldid.toml``, which an
administrator edits by hand. Each time a workspace is opened its file is compared with the last
one the audit log recorded; a difference is recorded as a ``config_change`` entry holding the new
text and both fingerprints, so what was in force at any time can be read back from the log.

The comparison and the entry happen in one unit of work (on SQLite it holds the write lock; on
PostgreSQL the audit head is locked before the last recorded fingerprint is read), so processes
opening the same workspace at once record a change once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select

from fieldid.store import Store
from fieldid.store.audit import AuditRecord, lock_head
from fieldid.store.schema import AuditEntry

#: The operator named when a change is noticed rather than made through fieldid.
OBSERVER = "system:config-watch"


def record_config_if_changed(
    store: Store, config_path: Path, operator: str = OBSERVER
) -> AuditRecord | None:
    """Append a ``config_change`` entry if ``config_path`` differs from the last one recorded."""
    text = config_path.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with store.unit_of_work() as uow:
        lock_head(uow.session)
        previous = None
        recorded = uow.session.scalars(
            select(AuditEntry.payload)
            .where(AuditEntry.event == "config_change")
            .order_by(AuditEntry.seq.desc())
        )
        for text_ in recorded:  # the latest entry that recorded the file (not a source_add)
            previous = json.loads(text_).get("sha256")
            if previous is not None:
                break
        if previous == digest:
            return None
        return uow.audit(
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
