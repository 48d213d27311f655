"""Audit: every use attributable (operator, purpose, case) in a hash-chained, append-only log."""

from fieldid.audit.log import Attribution, AuditRecord

__all__ = ["Attribution", "AuditRecord"]
