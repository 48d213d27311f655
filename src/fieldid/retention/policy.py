"""The retention policy: how long each class of data is kept, from ``[retention]`` in
``fieldid.toml``. The defaults minimise what is held:

=========================== ======= ============================================================
class                       default what it covers
=========================== ======= ============================================================
probe_images                24h     the photo taken in the field, whatever the search's outcome
probe_templates             24h     the template made from it
unidentified_searches       30d     search records (candidate lists, adjudications) of searches
                                    that ended without identification, counted from their end
                                    (refused, no candidate, rejected, inconclusive) or, for a
                                    search never adjudicated, from its start
confirmed_identifications   365d    search records whose adjudication confirmed a candidate,
                                    counted from the confirmation
audit_entries               183d    the audit log; the law asks for at least six months, so less
                                    than 183 days is refused when the policy is loaded
exports                     30d     files written by audit export, redress export and report
document_images             0m      the data page photo and the chip's data groups of a document
                                    presented at an encounter, counted from the encounter's end
                                    (settled by the document: never stored; followed by a
                                    search: when that search is closed); never held longer than
                                    ``probe_images`` from the check
document_checks             30d     the record of a document check (fields, number hashed,
                                    check states, the 1:1 result), from the encounter's end
=========================== ======= ============================================================

``purge_probe_at_adjudication`` (default true): the probe of a search closed without an
identification is purged the moment it is adjudicated, not at the end of its period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fieldid.errors import WorkspaceError
from fieldid.policy_file import read_section

CLASSES = (
    "probe_images",
    "probe_templates",
    "unidentified_searches",
    "confirmed_identifications",
    "audit_entries",
    "exports",
    "document_images",
    "document_checks",
)
DEFAULTS: dict[str, str] = {
    "probe_images": "24h",
    "probe_templates": "24h",
    "unidentified_searches": "30d",
    "confirmed_identifications": "365d",
    "audit_entries": "183d",
    "exports": "30d",
    "document_images": "0m",
    "document_checks": "30d",
}
#: Six months, rounded up: the minimum retention of audit entries (EU AI Act Art. 19 and 26(6)).
MIN_AUDIT = timedelta(days=183)

_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, *, key: str = "duration") -> timedelta:
    """``"24h"``, ``"30d"``, ``"90m"`` -> timedelta; anything else is refused with its key."""
    m = _DURATION.match(str(text))
    if not m:
        raise WorkspaceError(
            f"[retention] {key} = {text!r} is not a duration: write a whole number and a unit, "
            'like "24h", "30d" or "90m"',
            code="config.retention",
            key=key,
        )
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def human_period(text: str) -> str:
    """``"24h"`` -> ``"24 hours"``, ``"30d"`` -> ``"30 days"`` (for people, e.g. a receipt)."""
    m = _DURATION.match(str(text))
    if not m:
        return str(text)
    n, unit = int(m.group(1)), _UNITS[m.group(2)]
    return f"{n} {unit[:-1] if n == 1 else unit}"


@dataclass(frozen=True)
class RetentionPolicy:
    periods: dict[str, timedelta]
    texts: dict[str, str]
    purge_probe_at_adjudication: bool = True

    def period(self, data_class: str) -> timedelta:
        return self.periods[data_class]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetentionPolicy:
        unknown = set(d) - set(CLASSES) - {"purge_probe_at_adjudication"}
        if unknown:
            raise WorkspaceError(
                f"[retention] has unknown settings: {', '.join(sorted(unknown))}; the data "
                f"classes are {', '.join(CLASSES)}",
                code="config.retention",
            )
        texts = {c: str(d.get(c, DEFAULTS[c])) for c in CLASSES}
        periods = {c: parse_duration(texts[c], key=c) for c in CLASSES}
        if periods["audit_entries"] < MIN_AUDIT:
            raise WorkspaceError(
                f"[retention] audit_entries = {texts['audit_entries']!r} is shorter than the "
                "six months (183d) the audit log must be kept; set 183d or more",
                code="config.retention_audit_too_short",
                minimum="183d",
            )
        at_adj = d.get("purge_probe_at_adjudication", True)
        if not isinstance(at_adj, bool):
            raise WorkspaceError(
                "[retention] purge_probe_at_adjudication must be true or false",
                code="config.retention",
            )
        return cls(periods, texts, at_adj)

    @classmethod
    def load(cls, root: Path) -> RetentionPolicy:
        """The ``[retention]`` policy of the workspace at ``root``."""
        return cls.from_dict(read_section(root, "retention"))

    @classmethod
    def default(cls) -> RetentionPolicy:
        return cls.from_dict({})

    def human(self) -> dict[str, str]:
        """Each class's period in words ("24 hours")."""
        return {c: human_period(t) for c, t in self.texts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {**self.texts, "purge_probe_at_adjudication": self.purge_probe_at_adjudication}
