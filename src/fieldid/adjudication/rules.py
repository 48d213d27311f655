"""The adjudication rules a workspace enforces, from ``[adjudication]`` in ``fieldid.toml``.

- ``two_person_purposes``: purposes whose confirmations need a second, different operator.
- ``min_confirm_score``: no one may confirm a candidate scoring below it (default: the search's
  own threshold, so every listed candidate may be confirmed and nothing else can be).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldid.errors import WorkspaceError
from fieldid.policy_file import read_section


@dataclass(frozen=True)
class AdjudicationRules:
    two_person_purposes: frozenset[str] = frozenset()
    min_confirm_score: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AdjudicationRules:
        unknown = set(d) - {"two_person_purposes", "min_confirm_score"}
        if unknown:
            raise WorkspaceError(
                f"[adjudication] has unknown settings: {', '.join(sorted(unknown))}",
                code="config.invalid",
            )
        purposes = d.get("two_person_purposes", [])
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise WorkspaceError(
                "[adjudication] two_person_purposes must be a list of purposes",
                code="config.invalid",
            )
        score = d.get("min_confirm_score")
        if score is not None and (not isinstance(score, int | float) or not -1 <= score <= 1):
            raise WorkspaceError(
                "[adjudication] min_confirm_score must be a cosine similarity in [-1, 1]",
                code="config.invalid",
            )
        return cls(frozenset(purposes), None if score is None else float(score))

    @classmethod
    def load(cls, root: Path) -> AdjudicationRules:
        """The ``[adjudication]`` rules of the workspace at ``root``."""
        return cls.from_dict(read_section(root, "adjudication"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "two_person_purposes": sorted(self.two_person_purposes),
            "min_confirm_score": self.min_confirm_score,
        }
