"""Redress: what was done with a person's face and records, for the person to see and contest."""

from fieldid.redress.export import RecordSource, redress_export

__all__ = ["RecordSource", "redress_export"]
