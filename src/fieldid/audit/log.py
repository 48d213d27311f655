"""The audit log: every use and change, attributable to an operator, a purpose and a case.

Entries are append-only and hash-chained: each entry's hash covers its own content and the previous
entry's hash, so an edit, deletion, insertion or reordering breaks the chain at that point.

Entries are written by the storage kernel, in the unit of work of the use they record
(``UnitOfWork.audit``; :mod:`fieldid.store.audit` holds the appender and the hash); this module
keeps the names every surface uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from fieldid.store.audit import GENESIS, AuditRecord, canonical_json, entry_hash, utcnow

__all__ = ["GENESIS", "Attribution", "AuditRecord", "canonical_json", "entry_hash", "utcnow"]


@dataclass(frozen=True)
class Attribution:
    """Who did it, why, and for which case. Required for every search and verification."""

    operator: str
    purpose: str
    case_ref: str
