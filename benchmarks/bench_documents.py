"""Document reading benchmark: MRZ read accuracy and time on synthetic degraded photos.

For ``--documents`` documents (the five formats in turn: TD1, TD2, TD3, MRV-A, MRV-B), invented
holder data (``documents.specimen.random_identity``) is rendered as a SPECIMEN data page with the
OCR-B font, then photographed in software (``documents.specimen.photograph``: any rotation up to
180° either way, perspective, blur, noise, glare on half (up to +110 grey levels, which leaves
the print legible; ``--glare-max 150`` for glare that erases it), low light on 30 %, JPEG quality
45-92; 1600x1200 frames). Photos are made before timing starts. Each JPEG is then read with
``documents.read.read_document`` from its bytes (decode included in the time).

Per document, the outcome is one of:

- ``right_valid``: every field right (the corrected MRZ lines equal the printed ones) and
  ``valid`` (every check digit holds, nothing uncertain);
- ``right_not_valid``: every field right, but not called valid (a character read uncertainly);
- ``wrong_valid``: a field wrong yet called valid (the failure that must never happen);
- ``wrong_flagged``: a field wrong and not called valid (the reader said it was unsure);
- ``no_mrz``: no MRZ found or parsed.

``--wrong-check-digits N`` adds N documents whose printed MRZ has one check digit deliberately
wrong: each must come out not valid, with that check ``invalid``.

    nice -n 10 python benchmarks/bench_documents.py --documents 500 \
        --out benchmarks/results/documents.json

``--baseline REV`` also reads every photo with the reader as it was at git revision ``REV``
(its ``documents`` modules loaded from the repository into a private package), in the same
process, alternating which goes first: per photo, the time ratio new/old, and both outcomes.
The median of those ratios is the speed claim that survives the machine's load (absolute times
on this shared machine move with it). ``c8abc9f`` is the first reader that was merged.

``--engine tesseract`` reads the same lines with Debian's tesseract (eng LSTM, MRZ whitelist)
instead of PP-OCR, for comparison; ``--engine fastmrz`` runs fastmrz end to end (installed by
hand: it is AGPL-3.0 and not a dependency; see :func:`run_fastmrz`). The machine's load
average is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from fieldid.clock import ManualClock
from fieldid.documents.mrz import FORMATS
from fieldid.documents.ocr import LineReader, PaddleLineReader, TesseractLineReader
from fieldid.documents.read import DocumentError, read_document
from fieldid.documents.specimen import Degradation, numbered_photo


def make_photos(
    n: int, seed: int, wrong: int, deg: Degradation | None = None
) -> list[dict[str, Any]]:
    out = []
    for i in range(n + wrong):
        d = numbered_photo(seed, i, n, deg)
        out.append(
            {
                "i": i,
                "format": d.format,
                "lines": d.lines,
                "broken": d.broken,
                "jpeg": d.photo.jpeg,
                "conditions": d.photo.conditions,
            }
        )
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


class Reader(Protocol):
    def __call__(self, jpeg: bytes, clock: ManualClock) -> Any: ...


def outcome(d: dict[str, Any], r: Any) -> str:
    """One photo's outcome (see the module's docstring); ``r`` is None where nothing was read."""
    if r is None:
        return "no_mrz"
    if d["broken"] is not None:
        return "refused" if not r.valid else "wrong_valid"
    if r.mrz.lines == d["lines"]:
        return "right_valid" if r.valid else "right_not_valid"
    return "wrong_valid" if r.valid else "wrong_flagged"


def baseline_reader(rev: str) -> tuple[Reader, type[Exception]]:
    """``read_document`` as it was at git revision ``rev``: its ``documents`` modules are
    copied from the repository into a private package, their imports of each other pointed at
    it (everything else, such as the intake, is today's)."""
    root = Path(__file__).resolve().parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="fieldid-baseline-"))
    pkg = tmp / "fieldid_baseline_documents"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for mod in ("locate", "mrz", "ocr", "read", "glyphs"):
        got = subprocess.run(
            ["git", "show", f"{rev}:src/fieldid/documents/{mod}.py"],
            cwd=root,
            check=False,
            capture_output=True,
            text=True,
        )
        if got.returncode != 0:
            if mod == "glyphs":
                continue  # readers before the shape judge have no such module
            got.check_returncode()
        src = got.stdout
        src = re.sub(r"\bfieldid\.documents\.", "fieldid_baseline_documents.", src)
        (pkg / f"{mod}.py").write_text(src)
    sys.path.insert(0, str(tmp))
    old = importlib.import_module("fieldid_baseline_documents.read")
    reader = old.PaddleLineReader()

    def read(jpeg: bytes, clock: ManualClock) -> Any:
        return old.read_document(jpeg, reader=reader, clock=clock)

    return read, old.DocumentError


def run(
    docs: list[dict[str, Any]], reader: LineReader, baseline: str | None = None
) -> dict[str, Any]:
    clock = ManualClock()
    old: Reader | None = None
    old_error: type[Exception] = DocumentError
    if baseline is not None:
        old, old_error = baseline_reader(baseline)
    # warm up: the models load lazily
    with contextlib.suppress(DocumentError):
        read_document(docs[0]["jpeg"], reader=reader, clock=clock)
    if old is not None:
        with contextlib.suppress(old_error):
            old(docs[0]["jpeg"], clock)
    rows = []
    for k, d in enumerate(docs):
        order = ("new", "old") if k % 2 == 0 else ("old", "new")
        got: dict[str, tuple[Any, str | None, float]] = {}
        for which in order if old is not None else ("new",):
            t = time.perf_counter()
            try:
                if which == "new":
                    r, err = read_document(d["jpeg"], reader=reader, clock=clock), None
                else:
                    assert old is not None
                    r, err = old(d["jpeg"], clock), None
            except (DocumentError, old_error) as e:
                r, err = None, getattr(e, "code", "error")
            got[which] = (r, err, (time.perf_counter() - t) * 1000)
        r, err, ms = got["new"]
        row: dict[str, Any] = {
            "i": d["i"],
            "format": d["format"],
            "ms": round(ms, 1),
            "conditions": d["conditions"],
            "broken": d["broken"],
            "outcome": outcome(d, r),
        }
        if "old" in got:
            row["old_ms"] = round(got["old"][2], 1)
            row["old_outcome"] = outcome(d, got["old"][0])
        if r is None:
            row["error"] = err
        else:
            row["valid"] = r.valid
            row["corrections"] = len(r.corrections)
            row["confidence"] = round(r.confidence, 3)
            row["uncertain"] = r.uncertain
            row["checks"] = {c.name: c.state for c in r.checks}
            row["looks"] = getattr(r, "looks", ["first"])
            verdicts = getattr(r, "shape_verdicts", [])
            row["shape_verdicts"] = len(verdicts)
            row["shape_corrections"] = sum(c.reason == "glyph_shape" for c in r.corrections)
            if d["broken"] is not None:
                row["broken_check_state"] = r.mrz.check(d["broken"]).state
            elif row["outcome"] != "right_valid":
                row["read"] = r.mrz.lines
                row["printed"] = d["lines"]
        rows.append(row)
    clean = [r for r in rows if r["broken"] is None]
    broken = [r for r in rows if r["broken"] is not None]
    times = [r["ms"] for r in clean]
    counts = Counter(r["outcome"] for r in clean)
    per_format = {
        f: {
            "n": sum(r["format"] == f for r in clean),
            "right_valid": sum(r["format"] == f and r["outcome"] == "right_valid" for r in clean),
        }
        for f in FORMATS
    }
    res: dict[str, Any] = {
        "engine": reader.name,
        "documents": len(clean),
        "outcomes": dict(counts),
        "read_right_and_valid": counts["right_valid"] / max(1, len(clean)),
        "wrong_reported_valid": counts["wrong_valid"],
        "per_format": per_format,
        "ms_p50": round(statistics.median(times), 1),
        "ms_p95": round(pct(times, 0.95), 1),
        "ms_max": round(max(times), 1),
        "second_looks": sum(len(r.get("looks", [])) > 1 for r in clean),
        "shape_judged": sum(r.get("shape_verdicts", 0) > 0 for r in clean),
        "shape_corrected": sum(r.get("shape_corrections", 0) > 0 for r in clean),
        "wrong_check_digit_documents": len(broken),
        "wrong_check_digit_refused": sum(r["outcome"] == "refused" for r in broken),
        "wrong_check_digit_flagged_invalid": sum(
            r.get("broken_check_state") == "invalid" for r in broken
        ),
        "failures": [r for r in rows if r["outcome"] not in ("right_valid", "refused")],
    }
    if old is not None:
        old_counts = Counter(r["old_outcome"] for r in clean)
        ratios = [r["ms"] / r["old_ms"] for r in clean if r["old_ms"] > 0]
        res["baseline"] = {
            "revision": baseline,
            "outcomes": dict(old_counts),
            "read_right_and_valid": old_counts["right_valid"] / max(1, len(clean)),
            "wrong_reported_valid": old_counts["wrong_valid"],
            "ms_p50": round(statistics.median(r["old_ms"] for r in clean), 1),
            "time_ratio_new_over_old_median": round(statistics.median(ratios), 3),
            "p50_ratio": round(
                statistics.median(times) / statistics.median(r["old_ms"] for r in clean), 3
            ),
            "wrong_check_digit_refused": sum(r["old_outcome"] == "refused" for r in broken),
        }
    return res


def run_fastmrz(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """fastmrz end to end (its segmentation model, then Tesseract), for comparison only.

    fastmrz is AGPL-3.0 and not a fieldid dependency: install it by hand
    (``pip install fastmrz pytesseract``). It asks Tesseract for a language ``mrz`` whose model
    neither it nor Debian ships, so Tesseract's ``eng`` model with the MRZ whitelist stands in.
    Its text goes through fieldid's parser, so "right" and "valid" mean the same as above."""
    import cv2
    import numpy as np
    import pytesseract  # type: ignore[import-not-found]
    from fastmrz import FastMRZ  # type: ignore[import-not-found]

    from fieldid.documents.mrz import MRZ_ALPHABET, MrzFormatError, parse_mrz

    original = pytesseract.image_to_string

    def eng(image: Any, lang: str = "eng", config: str = "") -> str:
        wl = f" -c tessedit_char_whitelist={MRZ_ALPHABET}"
        return str(original(image, lang="eng", config=config + wl))

    pytesseract.image_to_string = eng
    fm = FastMRZ()
    rows = []
    for d in docs:
        if d["broken"] is not None:
            continue
        bgr = cv2.imdecode(np.frombuffer(d["jpeg"], np.uint8), cv2.IMREAD_COLOR)
        t = time.perf_counter()
        text = fm.get_details(bgr, input_type="numpy", ignore_parse=True)
        ms = (time.perf_counter() - t) * 1000
        lines = [x for x in str(text).splitlines() if x.strip()]
        try:
            r = parse_mrz(lines)
            outcome = (
                ("right_valid" if r.checks_valid else "right_not_valid")
                if r.lines == d["lines"]
                else ("wrong_valid" if r.checks_valid else "wrong_flagged")
            )
        except MrzFormatError:
            outcome = "no_mrz"
        rows.append(
            {"format": d["format"], "outcome": outcome, "ms": ms, "angle": d["conditions"]["angle"]}
        )
    counts = Counter(r["outcome"] for r in rows)
    upright = [r for r in rows if abs(r["angle"]) <= 10]
    return {
        "engine": "fastmrz-2.1.2+tesseract-eng",
        "documents": len(rows),
        "outcomes": dict(counts),
        "read_right_and_valid": counts["right_valid"] / max(1, len(rows)),
        "wrong_reported_valid": counts["wrong_valid"],
        "upright_documents": len(upright),
        "upright_right_and_valid": sum(r["outcome"] == "right_valid" for r in upright),
        "ms_p50": round(statistics.median(r["ms"] for r in rows), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--documents", type=int, default=500)
    ap.add_argument("--wrong-check-digits", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engine", choices=("ppocr", "tesseract", "fastmrz"), default="ppocr")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (PP-OCR)")
    ap.add_argument(
        "--glare-max", type=float, default=None, help="strongest glare (default 110 grey levels)"
    )
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also read every photo with the reader at this git revision (e.g. c8abc9f)",
    )
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    deg = Degradation()
    if a.glare_max is not None:
        deg = replace(deg, glare_strength=(deg.glare_strength[0], a.glare_max))
    load_before = os.getloadavg()
    t = time.perf_counter()
    docs = make_photos(a.documents, a.seed, a.wrong_check_digits, deg)
    made_s = time.perf_counter() - t
    if a.engine == "fastmrz":
        res = run_fastmrz(docs)
        print(json.dumps(res, indent=1))
        if a.out:
            a.out.write_text(json.dumps({**res, "command": " ".join(sys.argv)}, indent=1) + "\n")
        return
    reader: LineReader = (
        PaddleLineReader(threads=a.threads) if a.engine == "ppocr" else TesseractLineReader()
    )
    res = run(docs, reader, a.baseline)
    res["load_average_before"] = load_before
    res["photos_made_s"] = round(made_s, 1)
    res["machine"] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    res["command"] = " ".join(sys.argv)
    res["degradation"] = {k: getattr(deg, k) for k in deg.__dataclass_fields__}
    res["load_average_after"] = os.getloadavg()
    print(f"engine {res['engine']}: {res['documents']} documents, outcomes {res['outcomes']}")
    print(
        f"read right and valid: {100 * res['read_right_and_valid']:.1f} %; wrong reported "
        f"valid: {res['wrong_reported_valid']}; time p50 {res['ms_p50']} ms, p95 "
        f"{res['ms_p95']} ms"
    )
    print(
        f"wrong check digit: {res['wrong_check_digit_refused']}/"
        f"{res['wrong_check_digit_documents']} refused "
        f"({res['wrong_check_digit_flagged_invalid']} with that check invalid)"
    )
    print(
        "per format:",
        res["per_format"],
        "second looks:",
        res["second_looks"],
        "shapes judged / corrected:",
        res["shape_judged"],
        "/",
        res["shape_corrected"],
    )
    if "baseline" in res:
        b = res["baseline"]
        print(
            f"baseline {b['revision']}: outcomes {b['outcomes']}, right and valid "
            f"{100 * b['read_right_and_valid']:.1f} %, p50 {b['ms_p50']} ms; time new/old per "
            f"photo, median {b['time_ratio_new_over_old_median']}"
        )
    print("load average:", res["load_average_before"], "->", res["load_average_after"])
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
