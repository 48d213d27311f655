"""A location reduced to a grid cell: what the phone sends and the server keeps.

The phone rounds latitude and longitude each to the nearest multiple of ``grid_deg`` (default
0.01°) before anything leaves it (``service/static/capture.js``, the same rule as
:func:`coarsen`). The point it stands for is the cell's centre; the true position lies within
half a cell of it in each direction, so the *cell* (:meth:`Cell.bounds`) is what is compared with
sensitive areas: an area the true position lies in always intersects the cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fieldid.errors import FieldidError

#: How far from the grid a sent value may be (floating-point rounding on the phone) and still
#: count as on it, in cells.
ON_GRID_TOLERANCE = 1e-6


def _decimals(grid: float) -> int:
    return max(0, -math.floor(math.log10(grid) + 1e-9)) + 2


def snap(value: float, grid: float) -> float:
    """``value`` rounded to the nearest multiple of ``grid`` (halves away from zero, as
    JavaScript's Math.round does for positive values; the phone and this agree on every value
    that is not exactly half-way)."""
    return round(math.floor(value / grid + 0.5) * grid, _decimals(grid))


@dataclass(frozen=True)
class Cell:
    lat: float
    lon: float
    grid_deg: float

    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the cell."""
        h = self.grid_deg / 2
        return (self.lon - h, self.lat - h, self.lon + h, self.lat + h)

    def to_dict(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "grid_deg": self.grid_deg}

    def text(self) -> str:
        return f"{self.lat:.{_decimals(self.grid_deg)}f}, {self.lon:.{_decimals(self.grid_deg)}f}"


def coarsen(lat: float, lon: float, grid: float) -> Cell:
    """The cell a precise position falls in (what the phone does before sending)."""
    return Cell(snap(lat, grid), snap(lon, grid), grid)


def parse_location(text: str, grid: float) -> Cell:
    """A sent location ``"lat,lon"`` (decimal degrees, WGS 84), checked: numbers, in range, and
    already reduced to the grid. A precise position is refused, never stored and never rounded
    here (``location.not_coarse``): the phone must not send one."""
    parts = text.strip().split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise FieldidError(
            "location must be 'latitude,longitude' in decimal degrees", code="location.invalid"
        ) from None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise FieldidError(
            "location is out of range (latitude -90..90, longitude -180..180)",
            code="location.invalid",
        )
    for v in (lat, lon):
        q = v / grid
        if abs(q - round(q)) > ON_GRID_TOLERANCE:
            raise FieldidError(
                f"location must be reduced on the device to the nearest multiple of {grid:g}°; "
                "a precise position is refused and not kept",
                code="location.not_coarse",
                grid_deg=grid,
            )
    return coarsen(lat, lon, grid)
