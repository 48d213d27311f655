"""Small-cell suppression for published counts, with complementary suppression checked exactly.

The rule (docs/transparency.md states it for readers):

1. *Primary suppression.* Every count under k, zero included, is shown as ``"< k"``; counts of
   k or more are shown as they are. (Showing zeros would tell a reader that every ``"< k"`` cell
   is at least 1, and two such cells beside a small total would then give each other away.)
2. *Nothing can be worked back.* A report also states sums (a total and its breakdown) and order
   relations (identifications corrected <= identifications confirmed). A reader who knows rule 1
   knows a ``"< k"`` cell lies in [0, k-1], a withheld cell in [k, inf), and a shown cell exactly.
   For every ``"< k"`` cell, :func:`protect` computes by integer programming the smallest and the
   largest value the cell can take given *everything* the report states. If fewer than
   :func:`min_values` values remain (5 for k = 10), one more count is withheld: the smallest
   count of at least k that shares a sum with the exposed cell (a breakdown cell before a total),
   and the check runs again, until every ``"< k"`` cell can hold at least that many values. A
   withheld cell is shown as ``"withheld"``.
3. If no further count can be withheld and a cell is still exposed, nothing is published
   (``transparency.suppression_failed``). It cannot happen: a cell all of whose relations hold
   only ``"< k"`` cells can take every value from 0 to k-1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from fieldid.errors import FieldidError

State = Literal["shown", "small", "withheld"]
WITHHELD = "withheld"


class SuppressionError(FieldidError):
    code = "transparency.suppression_failed"


def min_values(k: int) -> int:
    """How many values every ``"< k"`` cell must still be able to take: max(2, ceil((k-1)/2))."""
    return max(2, math.ceil((k - 1) / 2))


def small_label(k: int) -> str:
    return f"< {k}"


@dataclass
class Counts:
    """The counts a report publishes and the relations between them that it states."""

    values: dict[str, int] = field(default_factory=dict)
    #: (total, parts): the report states total == sum(parts).
    sums: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    #: (a, b): the report states a <= b.
    at_most: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, value: int) -> str:
        if key in self.values and self.values[key] != value:
            raise ValueError(f"cell {key} given twice with different values")
        if value < 0:
            raise ValueError(f"cell {key} is negative")
        self.values[key] = int(value)
        return key

    def add_sum(self, total: str, parts: Iterable[str]) -> None:
        ps = tuple(parts)
        if sum(self.values[p] for p in ps) != self.values[total]:
            raise ValueError(f"{total} is not the sum of its parts")
        self.sums.append((total, ps))

    def add_at_most(self, a: str, b: str) -> None:
        if self.values[a] > self.values[b]:
            raise ValueError(f"{a} > {b}")
        self.at_most.append((a, b))


@dataclass
class Protection:
    k: int
    states: dict[str, State]
    #: For every ``"< k"`` cell: the smallest and largest value a reader can deduce it may have.
    ranges: dict[str, tuple[int, int]]
    values: dict[str, int]

    def label(self, key: str) -> int | str:
        st = self.states[key]
        if st == "shown":
            return self.values[key]
        return small_label(self.k) if st == "small" else WITHHELD

    def counts(self, state: State) -> int:
        return sum(1 for s in self.states.values() if s == state)


def _bounds(c: Counts, states: dict[str, State], k: int, keys: list[str]) -> Bounds:
    lo: list[float] = []
    hi: list[float] = []
    for key in keys:
        st = states[key]
        if st == "shown":
            lo.append(c.values[key])
            hi.append(c.values[key])
        elif st == "small":
            lo.append(0)
            hi.append(k - 1)
        else:
            lo.append(k)
            hi.append(np.inf)
    return Bounds(np.array(lo, dtype=float), np.array(hi, dtype=float))


def _constraints(c: Counts, index: dict[str, int]) -> list[LinearConstraint]:
    rows: list[np.ndarray] = []
    lb: list[float] = []
    ub: list[float] = []
    n = len(index)
    for total, parts in c.sums:
        r = np.zeros(n)
        r[index[total]] -= 1
        for p in parts:
            r[index[p]] += 1
        rows.append(r)
        lb.append(0.0)
        ub.append(0.0)
    for a, b in c.at_most:
        r = np.zeros(n)
        r[index[a]] += 1
        r[index[b]] -= 1
        rows.append(r)
        lb.append(-np.inf)
        ub.append(0.0)
    if not rows:
        return []
    return [LinearConstraint(np.vstack(rows), np.array(lb), np.array(ub))]


def _range(
    key: str, index: dict[str, int], bounds: Bounds, cons: list[LinearConstraint]
) -> tuple[int, int]:
    n = len(index)
    out = []
    for sign in (1.0, -1.0):
        obj = np.zeros(n)
        obj[index[key]] = sign
        res = milp(obj, integrality=np.ones(n), bounds=bounds, constraints=cons)
        if res.x is None:  # cannot happen: the true values satisfy every constraint
            raise SuppressionError(f"the published counts are inconsistent ({res.message})")
        out.append(round(float(res.x[index[key]])))
    return out[0], out[1]


def _audit(
    c: Counts, states: dict[str, State], k: int, keys: list[str], only: set[str] | None = None
) -> dict[str, tuple[int, int]]:
    """The range of every ``"< k"`` cell (of ``only``, if given) a reader can deduce."""
    index = {key: i for i, key in enumerate(keys)}
    bounds = _bounds(c, states, k, keys)
    cons = _constraints(c, index)
    linked = {key for total, parts in c.sums for key in (total, *parts)}
    linked |= {key for pair in c.at_most for key in pair}
    out: dict[str, tuple[int, int]] = {}
    for key in keys:
        if states[key] != "small" or (only is not None and key not in only):
            continue
        # A cell in no stated relation can be anything "< k" says.
        out[key] = _range(key, index, bounds, cons) if key in linked else (0, k - 1)
    return out


def _candidates(c: Counts, states: dict[str, State], exposed: str) -> list[str]:
    """Counts to withhold next for ``exposed``: shown (so at least k), in a relation with it (or,
    failing that, with a suppressed cell related to it, and so on); breakdown cells before
    totals, smallest first."""
    relations = [(t, ps) for t, ps in c.sums] + [(b, (a,)) for a, b in c.at_most]
    seen = {exposed}
    frontier = {exposed}
    while frontier:
        near = [(t, ps) for t, ps in relations if frontier & {t, *ps}]
        parts = {p for _, ps in near for p in ps}
        cells = parts | {t for t, _ in near}
        shown = [x for x in cells if states[x] == "shown"]
        if shown:
            return sorted(shown, key=lambda x: (x not in parts, c.values[x], x))
        frontier = {x for x in cells if x not in seen}
        seen |= frontier
    return []


def protect(c: Counts, k: int) -> Protection:
    """Apply the rule in the module docstring; every ``"< k"`` cell ends with at least
    :func:`min_values` possible values, or :class:`SuppressionError` is raised."""
    if k < 3:
        raise SuppressionError(
            f"k = {k}: suppression needs k of at least 3", code="transparency.bad_k"
        )
    need = min_values(k)
    keys = list(c.values)
    states: dict[str, State] = {key: ("small" if v < k else "shown") for key, v in c.values.items()}
    ranges = _audit(c, states, k, keys)
    withheld_any = False
    for _ in range(len(keys) + 1):
        exposed = sorted(key for key, (lo, hi) in ranges.items() if hi - lo + 1 < need)
        if not exposed:
            if withheld_any:  # ranges found before the last withholding are now too narrow
                ranges = _audit(c, states, k, keys)
            return Protection(k, states, ranges, dict(c.values))
        cands = _candidates(c, states, exposed[0])
        if not cands:
            raise SuppressionError(
                f"a count shown as '< {k}' could still be worked out from the totals and no "
                "further count can be withheld; nothing is published"
            )
        states[cands[0]] = "withheld"
        withheld_any = True
        # Withholding a count only widens what the others may be: re-check the exposed ones.
        ranges.update(_audit(c, states, k, keys, set(exposed)))
    raise SuppressionError("suppression did not settle")  # pragma: no cover
