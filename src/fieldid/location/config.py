"""``[location]`` in fieldid.toml: whether searches carry a location, how coarse, and the rule
for each kind of sensitive area. Off unless configured."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fieldid.errors import WorkspaceError
from fieldid.policy_file import read_section

#: The kinds of sensitive area.
KINDS = ("school", "hospital", "place_of_worship", "court", "event")
KIND_TEXT = {
    "school": "a school",
    "hospital": "a hospital",
    "place_of_worship": "a place of worship",
    "court": "a court",
    "event": "an event a supervisor declared",
}
Rule = Literal["approval", "refuse"]
RULES: tuple[Rule, ...] = ("approval", "refuse")
#: Default rule per kind: a supervisor's prior approval, except at a declared event (typically a
#: gathering such as a protest), where searches are refused.
DEFAULT_RULES: dict[str, Rule] = {
    "school": "approval",
    "hospital": "approval",
    "place_of_worship": "approval",
    "court": "approval",
    "event": "refuse",
}
#: Default grid: 0.01 degree, about 1.1 km north-south (0.8 km east-west at 45 degrees).
DEFAULT_GRID_DEG = 0.01
MIN_GRID_DEG = 0.005
MAX_GRID_DEG = 1.0
DEFAULT_APPROVAL_MINUTES = 60
DEFAULT_REPORT_GRID_DEG = 0.1
#: Shortest written reason for a supervisor's approval or refusal.
MIN_REASON = 15


@dataclass(frozen=True)
class LocationConfig:
    enabled: bool = False
    grid_deg: float = DEFAULT_GRID_DEG
    required: bool = True
    approval_minutes: int = DEFAULT_APPROVAL_MINUTES
    report_grid_deg: float = DEFAULT_REPORT_GRID_DEG
    rules: dict[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    @classmethod
    def from_section(cls, d: dict[str, Any]) -> LocationConfig:
        known = {"enabled", "grid_deg", "required", "approval_minutes", "report_grid_deg", "rules"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"[location] has unknown settings: {', '.join(sorted(unknown))}")
        enabled = d.get("enabled", False)
        required = d.get("required", True)
        if not isinstance(enabled, bool) or not isinstance(required, bool):
            raise ValueError("[location] enabled and required must be true or false")
        grid = float(d.get("grid_deg", DEFAULT_GRID_DEG))
        if not MIN_GRID_DEG <= grid <= MAX_GRID_DEG:
            raise ValueError(
                f"[location] grid_deg must lie between {MIN_GRID_DEG} and {MAX_GRID_DEG} "
                f"degrees (finer would record where a person was, not roughly where), got {grid}"
            )
        report = float(d.get("report_grid_deg", DEFAULT_REPORT_GRID_DEG))
        if not grid <= report <= 10.0:
            raise ValueError("[location] report_grid_deg must lie between grid_deg and 10")
        minutes = d.get("approval_minutes", DEFAULT_APPROVAL_MINUTES)
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 1440:
            raise ValueError("[location] approval_minutes must be a whole number from 1 to 1440")
        raw = d.get("rules", {})
        if not isinstance(raw, dict):
            raise ValueError("[location.rules] must be a table")
        bad = set(raw) - set(KINDS)
        if bad:
            raise ValueError(
                f"[location.rules] has unknown kinds: {', '.join(sorted(bad))} "
                f"(kinds: {', '.join(KINDS)})"
            )
        rules: dict[str, Rule] = dict(DEFAULT_RULES)
        for kind, rule in raw.items():
            if rule not in RULES:
                raise ValueError(f"[location.rules] {kind} must be 'approval' or 'refuse'")
            rules[kind] = rule
        return cls(
            enabled=enabled,
            grid_deg=grid,
            required=required,
            approval_minutes=minutes,
            report_grid_deg=report,
            rules=rules,
        )

    @classmethod
    def load(cls, root: Path) -> LocationConfig:
        """The workspace's ``[location]`` (defaults, i.e. off, when it has none)."""
        try:
            return cls.from_section(read_section(root, "location"))
        except (TypeError, ValueError) as e:
            raise WorkspaceError(f"{root / 'fieldid.toml'}: {e}", code="config.invalid") from e

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "grid_deg": self.grid_deg,
            "required": self.required,
            "approval_minutes": self.approval_minutes,
            "report_grid_deg": self.report_grid_deg,
            "rules": dict(self.rules),
        }

    def cell_size_text(self) -> str:
        """The grid in words: its size in degrees and roughly in kilometres."""
        km = self.grid_deg * 111.32
        return (
            f"{self.grid_deg:g}° of latitude and longitude (about {km:.1f} km north-south; "
            f"east-west {km:.1f} km × cos(latitude), e.g. {km * 0.7071:.1f} km at 45°)"
        )
