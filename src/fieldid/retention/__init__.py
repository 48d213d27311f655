"""Retention: every class of data has a period, enforced by :func:`purge` (also scheduled)."""

from fieldid.retention.policy import CLASSES, RetentionPolicy, parse_duration
from fieldid.retention.purge import (
    SCHEDULE_INTERVAL_S,
    PurgeReport,
    oldest_retained,
    purge,
    purge_probe,
    register_export,
    run_scheduled_purge,
)

__all__ = [
    "CLASSES",
    "SCHEDULE_INTERVAL_S",
    "PurgeReport",
    "RetentionPolicy",
    "oldest_retained",
    "parse_duration",
    "purge",
    "purge_probe",
    "register_export",
    "run_scheduled_purge",
]
