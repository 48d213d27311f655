"""Audit: every use attributable (operator, purpose, case) in a hash-chained, append-only log."""

from fieldid.audit.log import Attribution, AuditLog, AuditRecord, SqlAuditLog

__all__ = ["Attribution", "AuditLog", "AuditRecord", "SqlAuditLog"]
