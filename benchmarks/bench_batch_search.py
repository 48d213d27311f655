"""``fieldid search --batch`` against separate ``fieldid search`` calls, on the same probes.

The gallery: the first image of each of ``--people`` LFW identities that have two or more images,
enrolled (synthetic identities) into a workspace whose quality gate admits LFW news photographs
(as the tests' workspaces do). The probes: the second image of ``--probes`` of those people.

Timed, each as a fresh process (what a user runs), wall time from start to exit:

- **separate**: ``fieldid search PROBE --json`` once per probe, one after the other (each call
  starts Python, opens the workspace, loads the models and the index, searches one probe);
- **batch**: ``fieldid search --batch probes.csv --out lines.jsonl`` over all the probes, run
  before and after the separate calls (the median of the two is compared).

Both write one audited search per probe. The script checks that the batch wrote one JSON line per
probe and that each probe's top candidate is the same in both ways.

    nice -n 10 python benchmarks/bench_batch_search.py --dataset ../shared/faces/lfw-dev \\
        --probes 200 --out benchmarks/results/batch-search.json

``--separate N`` times only the first N separate calls and scales the total to all the probes
(labelled as such): for a quick look, not for the recorded figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WS = ROOT / "benchmarks" / ".cache" / "batch-search"
USE = ["--operator", "bench-officer", "--purpose", "field-identification", "--case", "BENCH-1"]
FIELDID = [sys.executable, "-c", "from fieldid.cli.app import main; main()"]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def build(workspace: Path, dataset: Path, people: int) -> list[tuple[str, Path]]:
    """The workspace (kept when it exists) and the (identity, probe path) pairs."""
    sys.path.insert(0, str(ROOT / "src"))
    from fieldid.dataset import LabelledImage, read_labelled

    items = read_labelled(dataset)
    by: dict[str, list[LabelledImage]] = {}
    for it in items:
        by.setdefault(it.identity, []).append(it)
    chosen = sorted(k for k, v in by.items() if len(v) >= 2)[:people]
    pairs = [(k, sorted(by[k], key=lambda i: i.path.name)[1].path.resolve()) for k in chosen]
    if (workspace / "fieldid.toml").is_file():
        return pairs
    from fieldid.gallery.enroll import enroll_images
    from fieldid.workspace import Workspace

    Workspace.init(workspace).close()
    cfg = (workspace / "fieldid.toml").read_text()
    gate = {"min_inter_eye_px": 30.0, "max_abs_yaw_deg": 60.0, "max_abs_pitch_deg": 45.0}
    lines = []
    for line in cfg.splitlines():
        key = line.split("=")[0].strip()
        lines.append(f"{key} = {gate[key]}" if key in gate else line)
    cfg = "\n".join(lines).replace("# threshold = 0.955", "threshold = 0.925")
    (workspace / "fieldid.toml").write_text(cfg + "\n")
    ws = Workspace.open(workspace)
    t = time.perf_counter()
    first = [sorted(by[k], key=lambda i: i.path.name)[0] for k in chosen]
    summary = enroll_images(
        ws,
        [LabelledImage(i.path, i.identity) for i in first],
        operator="bench",
        source_name=str(dataset),
        synthetic=True,
    )
    ws.close()
    print(
        f"gallery: {summary.enrolled} enrolled, {len(summary.refused)} refused, "
        f"in {time.perf_counter() - t:.1f} s",
        file=sys.stderr,
    )
    return pairs


def run(args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    done = subprocess.run(FIELDID + args, capture_output=True, text=True)
    return time.perf_counter() - t, done


def top1(answer: dict[str, Any] | None) -> str | None:
    if not answer or not answer.get("candidates"):
        return None
    return str(answer["candidates"][0]["external_id"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--workspace", type=Path, default=DEFAULT_WS)
    ap.add_argument("--people", type=int, default=400, help="identities enrolled")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--separate", type=int, default=0, help="time only N separate calls")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    before = uptime()
    pairs = build(a.workspace, a.dataset, max(a.people, a.probes))[: a.probes]
    work = a.workspace.parent / "batch-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    probes_csv = work / "probes.csv"
    with probes_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "case_ref"])
        for i, (_, path) in enumerate(pairs):
            w.writerow([str(path), f"BENCH-{i:04d}"])
    ws = ["--workspace", str(a.workspace)]

    def batch(n: int) -> tuple[float, list[dict[str, Any]]]:
        out = work / f"lines-{n}.jsonl"
        secs, done = run(["search", "--batch", str(probes_csv), *ws, *USE, "--out", str(out)])
        if done.returncode != 0:
            raise SystemExit(f"batch failed: {done.stderr[-2000:]}")
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        said = [x for x in done.stderr.splitlines() if "probes:" in x]
        print(f"batch {n}: {secs:.1f} s; {said[-1] if said else ''}", file=sys.stderr)
        return secs, lines

    first, lines = batch(1)
    n_sep = a.separate or len(pairs)
    sep_times: list[float] = []
    sep_top1: list[str | None] = []
    for i, (_, path) in enumerate(pairs[:n_sep]):
        secs, done = run(["search", str(path), *ws, *USE, "--json"])
        sep_times.append(secs)
        try:
            sep_top1.append(top1(json.loads(done.stdout)))
        except json.JSONDecodeError:
            sep_top1.append(None)  # refused: the error went to stdout as JSON too
        if (i + 1) % 20 == 0:
            print(
                f"separate: {i + 1}/{n_sep}, median {statistics.median(sep_times):.2f} s",
                file=sys.stderr,
            )
    second, lines2 = batch(2)

    assert len(lines) == len(pairs) == len(lines2), "one JSON line per probe"
    batch_top1 = [top1(x["result"]) for x in lines]
    agree = sum(x == y for x, y in zip(batch_top1, sep_top1, strict=False))
    right = sum(t == k for t, (k, _) in zip(batch_top1, pairs, strict=True))
    sep_total = sum(sep_times) * (len(pairs) / n_sep)
    batch_s = statistics.median([first, second])
    report = {
        "probes": len(pairs),
        "gallery_people": max(a.people, a.probes),
        "batch_s": [round(first, 2), round(second, 2)],
        "batch_median_s": round(batch_s, 2),
        "batch_per_probe_s": round(batch_s / len(pairs), 3),
        "separate_calls_timed": n_sep,
        "separate_total_s": round(sep_total, 1),
        "separate_scaled": n_sep != len(pairs),
        "separate_per_call_median_s": round(statistics.median(sep_times), 2),
        "separate_per_call_p95_s": round(sorted(sep_times)[int(0.95 * (n_sep - 1))], 2),
        "ratio_batch_to_separate": round(batch_s / sep_total, 4),
        "speedup": round(sep_total / batch_s, 1),
        "top1_same_in_both": f"{agree}/{n_sep}",
        "batch_top1_right": f"{right}/{len(pairs)}",
        "outcomes": {
            k: sum(x["outcome"] == k for x in lines) for k in sorted({x["outcome"] for x in lines})
        },
        "uptime_before": before,
        "uptime_after": uptime(),
        "nice": os.nice(0),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    print(
        f"\n| way | probes | wall time s | per probe s |\n|---|---:|---:|---:|\n"
        f"| `--batch` (median of 2 runs) | {len(pairs)} | {batch_s:.1f} | "
        f"{batch_s / len(pairs):.3f} |\n"
        f"| separate `fieldid search` calls | {len(pairs)} | {sep_total:.1f}"
        f"{' (scaled)' if n_sep != len(pairs) else ''} | "
        f"{statistics.median(sep_times):.2f} (median) |\n\n"
        f"batch / separate = {batch_s / sep_total:.3f} ({sep_total / batch_s:.0f}× faster)"
    )
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
