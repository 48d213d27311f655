"""Where a search is placed: the cost of the sensitive-area check per search, by number of areas.

For N areas (small squares of about 200 m, scattered over a 1°×1° region, as schools in a
city region would be) in a SQLite store, times the check a search makes before any face work:
read the areas whose bounding box meets the cell (``areas_near``, an indexed query) and decide
exactly with Shapely (``areas_at``). Baseline, in the same process: the same check reading every
area and testing each one (what a check without the bounding-box columns would do).

    nice -n 10 .venv/bin/python benchmarks/bench_location.py [--areas 100 1000 10000] [--cells 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from fieldid.access import Actor, Role
from fieldid.location.areas import add_area, areas_at, areas_near, list_areas
from fieldid.location.cell import coarsen
from fieldid.store import open_store


def square(lon: float, lat: float, d: float = 0.002) -> dict[str, object]:
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--areas", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--cells", type=int, default=200)
    args = ap.parse_args()
    admin = Actor("bench", Role.ADMIN)
    print(f"{'areas':>7} {'indexed ms':>11} {'scan-all ms':>12} {'ratio':>6} {'hits/cell':>9}")
    for n in args.areas:
        rnd = random.Random(n)
        with tempfile.TemporaryDirectory() as d:
            store = open_store(f"sqlite:///{Path(d) / 'bench.db'}")
            with store.unit_of_work() as uow:
                for i in range(n):
                    add_area(
                        uow,
                        admin,
                        name=f"school {i}",
                        kind="school",
                        geometry=square(2 + rnd.random(), 48 + rnd.random()),
                    )
            now = store.now()
            cells = [coarsen(48 + rnd.random(), 2 + rnd.random(), 0.01) for _ in range(args.cells)]
            fast, slow, hits = [], [], []
            for c in cells:
                t = time.perf_counter()
                with store.read() as s:
                    got = areas_at(areas_near(s, c), c, now)
                fast.append(time.perf_counter() - t)
                hits.append(len(got))
                if len(slow) < 20:  # the baseline is slow: 20 cells are enough for its median
                    t = time.perf_counter()
                    with store.read() as s:
                        every = areas_at(list_areas(s), c, now)
                    slow.append(time.perf_counter() - t)
                    assert [a.id for a in every] == [a.id for a in got]
            store.close()
        f, sl = statistics.median(fast) * 1000, statistics.median(slow) * 1000
        print(f"{n:>7} {f:>11.2f} {sl:>12.1f} {sl / f:>6.0f} {statistics.mean(hits):>9.2f}")


if __name__ == "__main__":
    main()
