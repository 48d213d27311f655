"""Retention: every class of data has a period, enforced by :meth:`Retention.purge` (also
scheduled)."""

from fieldid.retention.policy import CLASSES, RetentionPolicy, parse_duration
from fieldid.retention.purge import (
    SCHEDULE_INTERVAL_S,
    PurgeReport,
    Retention,
    purge_probe,
    register_export,
)

__all__ = [
    "CLASSES",
    "SCHEDULE_INTERVAL_S",
    "PurgeReport",
    "Retention",
    "RetentionPolicy",
    "parse_duration",
    "purge_probe",
    "register_export",
]
