"""Where the plain cut finds no readable band, the hard ways of finding it are tried in turn
until one gives a reading whose checks hold, not stopped at the first way that finds a band."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fieldid.documents import read as R


def _run(
    monkeypatch: pytest.MonkeyPatch, sets: list[list[str]], bad: dict[str, int | None]
) -> tuple[Any, list[Any], list[str]]:
    """``_hard_reading`` over fake band sets (bands are names); ``bad`` gives each band's
    failed checks (``None``: its reading does not parse). Returns the answer, the bands tried
    and the sets asked for."""
    asked: list[str] = []

    def band_sets(rgb: Any) -> Iterator[list[str]]:
        for s in sets:
            asked.append(",".join(s))
            yield s

    def first_reading(bands: list[str], reader: Any, today: date) -> Any:
        for b in bands:
            if bad[b] is not None:
                return (b, False, SimpleNamespace(bad=bad[b]))
        return None

    monkeypatch.setattr(R, "hard_band_sets", band_sets)
    monkeypatch.setattr(R, "_first_reading", first_reading)
    got, tried, ms = R._hard_reading(np.zeros((4, 4, 3), np.uint8), None, date(2026, 6, 1))  # type: ignore[arg-type]
    assert ms >= 0.0
    return got, tried, asked


def test_a_piece_of_the_band_does_not_stop_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    # the first way finds only a piece (its reading parses, four checks fail); the next reads
    # the whole band and every check holds; the last way is never asked for
    got, tried, asked = _run(
        monkeypatch,
        [["piece"], ["none"], ["whole"], ["later"]],
        {"piece": 4, "none": None, "whole": 0, "later": 0},
    )
    assert got[0] == "whole"
    assert tried == ["piece", "none", "whole"]
    assert asked == ["piece", "none", "whole"]


def test_without_a_reading_that_holds_the_fewest_failures_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got, _tried, _asked = _run(monkeypatch, [["a"], ["b"], ["c"]], {"a": 3, "b": 1, "c": 1})
    assert got[0] == "b"  # the earlier way on a tie
    got, _tried, _asked = _run(monkeypatch, [["x"]], {"x": None})
    assert got is None
