"""Small-cell suppression: every "< k" cell keeps enough possible values, checked by brute force
(an enumeration independent of the integer programme fieldid uses)."""

from __future__ import annotations

import random

import pytest

from fieldid.transparency.cells import Counts, SuppressionError, min_values, protect


def grid(values: dict[tuple[str, str], int], rows: list[str], cols: list[str]) -> Counts:
    """A table with every cell, row totals, column totals and the grand total published."""
    c = Counts()
    for (r, col), v in values.items():
        c.add(f"{r}/{col}", v)
    for r in rows:
        c.add(r, sum(values[(r, col)] for col in cols))
        c.add_sum(r, [f"{r}/{col}" for col in cols])
    for col in cols:
        c.add(col, sum(values[(r, col)] for r in rows))
        c.add_sum(col, [f"{r}/{col}" for r in rows])
    c.add("all", sum(values.values()))
    c.add_sum("all", rows)
    c.add_sum("all", cols)
    return c


def line(parts: dict[str, int], total: str = "total") -> Counts:
    """One breakdown and its total."""
    c = Counts()
    for key, v in parts.items():
        c.add(key, v)
    c.add(total, sum(parts.values()))
    c.add_sum(total, list(parts))
    return c


def brute_ranges(c: Counts, labels: dict[str, int | str], k: int) -> dict[str, set[int]]:
    """What a reader can deduce, by exhaustive search: every assignment of the hidden cells
    consistent with the labels ('< k' in 0..k-1, 'withheld' at least k) and with every stated
    sum and order relation. Hidden cells are tried value by value; a sum with one unknown left
    fixes it."""
    small = f"< {k}"
    hidden = [key for key, v in labels.items() if not isinstance(v, int)]
    cap = sum(c.values.values())
    possible: dict[str, set[int]] = {key: set() for key in hidden if labels[key] == small}

    def fits(key: str, v: int) -> bool:
        return 0 <= v < k if labels[key] == small else k <= v <= cap

    def search(val: dict[str, int]) -> None:
        val = dict(val)
        changed = True
        while changed:  # propagate: a sum with one unknown fixes it
            changed = False
            for t, ps in c.sums:
                unknown = [x for x in (t, *ps) if x not in val]
                if len(unknown) != 1:
                    continue
                x = unknown[0]
                v = (
                    sum(val[p] for p in ps)
                    if x == t
                    else val[t] - sum(val[p] for p in ps if p != x)
                )
                if not fits(x, v):
                    return
                val[x] = v
                changed = True
        rest = [x for x in hidden if x not in val]
        if rest:
            x = rest[0]
            for v in range(k) if labels[x] == small else range(k, cap + 1):
                search({**val, x: v})
            return
        if all(val[t] == sum(val[p] for p in ps) for t, ps in c.sums) and all(
            val[a] <= val[b] for a, b in c.at_most
        ):
            for key in possible:
                possible[key].add(val[key])

    search({key: v for key, v in labels.items() if isinstance(v, int)})
    return possible


def check(c: Counts, k: int) -> dict[str, int | str]:
    prot = protect(c, k)
    labels = {key: prot.label(key) for key in c.values}
    for key, v in c.values.items():
        if v < k:
            assert labels[key] == f"< {k}", key
        else:
            assert labels[key] in (v, "withheld"), key
    for key, vals in brute_ranges(c, labels, k).items():
        assert c.values[key] in vals
        assert len(vals) >= min_values(k), (key, sorted(vals), labels)
        lo, hi = prot.ranges[key]
        assert (lo, hi) == (min(vals), max(vals)), key  # the programme's answer is exact
    return labels


def test_a_lone_small_cell_beside_a_total_takes_a_complement() -> None:
    labels = check(line({"a": 3, "b": 12, "c": 0, "d": 25}), 10)
    assert labels == {"a": "< 10", "b": "withheld", "c": "< 10", "d": 25, "total": 40}


def test_two_small_cells_whose_sum_gives_them_away_are_protected() -> None:
    # 1 + 0: both "< 10", but 56 - 25 - 30 = 1 leaves each only 0 or 1 unless more is withheld.
    labels = check(line({"a": 1, "b": 0, "c": 25, "d": 30}), 10)
    assert labels == {"a": "< 10", "b": "< 10", "c": "withheld", "d": 30, "total": 56}


def test_small_parts_of_a_small_total_need_nothing_more() -> None:
    labels = check(line({"manual": 1, "scheduled": 1, "adjudication": 0}, "purges"), 3)
    assert set(labels.values()) == {"< 3"}


def test_order_relations_are_part_of_what_a_reader_knows() -> None:
    c = Counts()
    c.add("confirmed", 2)
    c.add("corrected", 1)
    c.add_at_most("corrected", "confirmed")
    check(c, 4)


@pytest.mark.parametrize("seed", range(6))
def test_random_grids_never_expose_a_small_cell(seed: int) -> None:
    rng = random.Random(seed)
    rows, cols = ["p", "q"], ["m1", "m2", "m3"]
    values = {(r, col): rng.choice([0, 1, 2, 3, 5, 6, 9]) for r in rows for col in cols}
    check(grid(values, rows, cols), 4)


def test_a_total_under_k_is_itself_suppressed_and_still_protected() -> None:
    values = {("p", "m1"): 2, ("p", "m2"): 0, ("q", "m1"): 0, ("q", "m2"): 1}
    labels = check(grid(values, ["p", "q"], ["m1", "m2"]), 5)
    assert labels["all"] == "< 5"


def test_k_below_three_is_refused() -> None:
    c = Counts()
    c.add("a", 1)
    with pytest.raises(SuppressionError) as e:
        protect(c, 2)
    assert e.value.code == "transparency.bad_k"


def test_min_values() -> None:
    assert min_values(10) == 5 and min_values(3) == 2 and min_values(4) == 2
