"""Redress: what was done with a person's face and records, for the person to see and contest."""

from fieldid.redress.export import RecordSource, Redress

__all__ = ["RecordSource", "Redress"]
