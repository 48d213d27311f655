"""Face detectors on a labelled set: failure to acquire, wrong face, and time per image.

Every configuration runs through ``fieldid.detect.acquire.FaceFinder`` as the pipeline would: its
ladder (detect on a copy whose longer side is ``detect_max_side``, then on copies twice as large
up to full resolution, then at full resolution with each further upsampling step, then the
fallback detector along its own ladder and schedule), then dlib's 5-point landmarks on the kept
box. ``detect_max_side`` 0 means one step at full resolution. The baseline is the project default
(``PipelineSpec()``: HOG, with dlib's MMOD as fallback at upsample 0).
Two views of each image:

* ``250``: the dataset image as it is (LFW: 250×250, subject centred);
* ``640``: a 640×480 frame, the image scaled ×1.5 (375×375, inter-eye distance ~62 px) and
  centred on a neutral grey canvas, like a phone frame.

An image counts as acquired only when the face kept (the largest box) is the subject: its centre
within ``--centre-tol`` px (×1.5 on the frame) of the image centre, where LFW puts the subject.
Otherwise it is a *wrong face* (a bystander or a false positive). *Miss* = FTA + wrong face.
``eye Δ`` is how far (median, % of the inter-eye distance) the eye centres placed by dlib's
5-point model on this detector's box lie from those placed on the baseline's box: a detector whose
boxes are unlike dlib's can shift the alignment even when it finds the face.

Time is ``FaceFinder.find`` per image (downscaling, every detection attempt, landmarks), median
and p95, with the ratio of medians against the baseline measured in the same process, image by
image interleaved with the others. ``fallback ran`` counts the images on which the fallback
detector ran, with their median and maximum time. ``no-face ms`` is one ``find`` on a blank grey
image of the view's size: a photo with no face runs every step, the fallback's included.

Detectors: dlib HOG and MMOD (face-recognition-models weights); YuNet through
``fieldid.detect.yunet`` when ``--yunet-model`` gives its ONNX file (no package ships it); OpenCV's
Haar cascade (only with an OpenCV that still has ``cv2.CascadeClassifier`` and ships
``cv2.data.haarcascades``: 4.x, not 5.0) and MediaPipe's BlazeFace (the legacy
``mediapipe.solutions.face_detection``, whose wheel ships the short- and full-range models; last in
mediapipe 0.10.21, which needs numpy < 2, so it runs in a separate venv). Unavailable ones are
listed as skipped. MMOD is slow on CPU, so the MMOD-only rows run on a seeded sample
(``--slow-limit``, of which ``--slow-frame-limit`` also as frames); the fallback rows run on
everything (the fallback runs only when HOG finds nothing).

    python benchmarks/bench_detectors.py --dataset ../shared/faces/lfw-dev --out det.json
    python benchmarks/bench_detectors.py --merge det.json det-mp.json   # one table from two runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from fieldid.dataset import LabelledImage, read_labelled
from fieldid.detect.acquire import FaceFinder
from fieldid.detect.dlib_adapters import DlibHogDetector, DlibLandmarker, DlibMmodDetector
from fieldid.detect.types import FaceBox, FaceDetector
from fieldid.errors import AcquisitionFailed
from fieldid.pipeline import PipelineSpec, make_detector

RGB = NDArray[np.uint8]
BASELINE = "default"
FRAME_W, FRAME_H, FRAME_SCALE = 640, 480, 1.5


# -- adapters for detectors fieldid does not ship (benchmark-local) ------------------------------


def _upsampled(rgb: RGB, upsample: int) -> tuple[RGB, float]:
    if upsample <= 0:
        return rgb, 1.0
    f = float(2**upsample)
    h, w = rgb.shape[:2]
    big = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_LINEAR)
    return np.asarray(big, dtype=np.uint8), f


class HaarDetector:
    """OpenCV's Viola-Jones frontal cascade (``haarcascade_frontalface_default.xml``)."""

    name = "opencv-haar"

    def __init__(self, min_neighbors: int = 5, min_size: int = 40) -> None:
        data = cv2.data.haarcascades  # type: ignore[attr-defined]
        path = os.path.join(data, "haarcascade_frontalface_default.xml")
        self._c = cv2.CascadeClassifier(path)  # type: ignore[attr-defined]
        if self._c.empty():
            raise RuntimeError(f"cannot load {path}")
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, rgb: RGB, upsample: int = 0) -> list[FaceBox]:
        img, f = _upsampled(rgb, upsample)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        found = self._c.detectMultiScale(
            gray,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        return [FaceBox(x / f, y / f, (x + w) / f, (y + h) / f, 1.0) for x, y, w, h in found]


class MediapipeDetector:
    """MediaPipe BlazeFace via the legacy solutions API (model shipped in the wheel)."""

    def __init__(self, model_selection: int = 0, min_confidence: float = 0.5) -> None:
        import mediapipe as mp  # type: ignore[import-not-found]

        self._fd = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_confidence
        )
        self.name = "mediapipe-" + ("short" if model_selection == 0 else "full")

    def detect(self, rgb: RGB, upsample: int = 0) -> list[FaceBox]:
        img, f = _upsampled(np.ascontiguousarray(rgb), upsample)
        h, w = img.shape[:2]
        res = self._fd.process(img)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            x0, y0 = b.xmin * w / f, b.ymin * h / f
            x1, y1 = x0 + b.width * w / f, y0 + b.height * h / f
            out.append(FaceBox(x0, y0, x1, y1, float(d.score[0])))
        return out


def haar_available() -> str | None:
    if not hasattr(cv2, "CascadeClassifier"):
        return (
            f"OpenCV {cv2.__version__} has no CascadeClassifier (not in the main wheel since 5.0)"
        )
    data = getattr(cv2, "data", None)
    path = os.path.join(getattr(data, "haarcascades", ""), "haarcascade_frontalface_default.xml")
    if not os.path.isfile(path):
        return f"OpenCV {cv2.__version__} ships no haarcascade_frontalface_default.xml"
    return None


def mediapipe_available() -> str | None:
    try:
        import mediapipe as mp  # type: ignore[import-not-found]
    except ImportError as e:
        return f"mediapipe not importable ({e})"
    if not hasattr(mp, "solutions") or not hasattr(mp.solutions, "face_detection"):
        return f"mediapipe {mp.__version__} has no legacy solutions.face_detection (needs ≤0.10.21)"
    return None


# -- configurations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    make: Callable[[], FaceFinder]
    slow: bool = False  # evaluated on the --slow-limit sample only
    needs: Callable[[], str | None] = lambda: None


def _finder(
    det: FaceDetector,
    schedule: Sequence[int],
    fallback: FaceDetector | None = None,
    *,
    max_side: int,
    fallback_schedule: Sequence[int] = (0,),
) -> FaceFinder:
    return FaceFinder(
        det,
        DlibLandmarker("dlib5"),
        upsample_schedule=schedule,
        detect_max_side=max_side,
        fallback=fallback,
        fallback_upsample_schedule=fallback_schedule,
    )


def configs(yunet_model: Path | None = None) -> list[Config]:
    """The configurations compared; ``side`` and ``sched`` are the project's defaults."""
    hog, mmod = DlibHogDetector, DlibMmodDetector
    spec = PipelineSpec()
    side, sched = spec.detect_max_side, tuple(spec.upsample_schedule)
    s = ",".join(map(str, sched))

    def yunet() -> FaceDetector:
        from fieldid.detect.yunet import YuNetDetector

        return YuNetDetector(str(yunet_model))

    def yunet_available() -> str | None:
        if yunet_model is None:
            return "no --yunet-model given (its weights are not shipped in any installed package)"
        if not hasattr(cv2, "FaceDetectorYN"):
            return f"OpenCV {cv2.__version__} has no FaceDetectorYN"
        return None

    fb = spec.fallback_detector
    fs = ",".join(map(str, spec.fallback_upsample_schedule))
    return [
        Config(
            BASELINE,
            f"project default: {spec.detector} (side {side}, ladder, upsample {s})"
            + (f" + {fb} fallback (upsample {fs})" if fb else ""),
            lambda: _finder(
                make_detector(spec.detector, spec.detector_model),
                sched,
                make_detector(fb) if fb else None,
                max_side=side,
                fallback_schedule=spec.fallback_upsample_schedule,
            ),
        ),
        Config(
            "hog",
            f"dlib HOG alone (side {side}, ladder, upsample {s})",
            lambda: _finder(hog(), sched, max_side=side),
        ),
        Config(
            "hog-480",
            f"dlib HOG alone, detect_max_side 480 (upsample {s})",
            lambda: _finder(hog(), sched, max_side=480),
        ),
        Config(
            "hog-up0",
            "dlib HOG, upsample 0, full resolution only",
            lambda: _finder(hog(), (0,), max_side=0),
        ),
        Config(
            "hog-up1",
            "dlib HOG, upsample 1, full resolution only",
            lambda: _finder(hog(), (1,), max_side=0),
        ),
        Config(
            "mmod-up0",
            f"dlib MMOD (CNN), upsample 0 (side {side}, ladder)",
            lambda: _finder(mmod(), (0,), max_side=side),
            slow=True,
        ),
        Config(
            "mmod-up1",
            f"dlib MMOD (CNN), upsample 1 (side {side}, ladder)",
            lambda: _finder(mmod(), (1,), max_side=side),
            slow=True,
        ),
        Config(
            "hog+mmod012",
            f"dlib HOG + MMOD fallback along the full schedule (upsample {s})",
            lambda: _finder(hog(), sched, mmod(), max_side=side, fallback_schedule=sched),
        ),
        Config(
            "yunet",
            f"OpenCV YuNet 2023mar (side {side}, ladder, upsample {s})",
            lambda: _finder(yunet(), sched, max_side=side),
            needs=yunet_available,
        ),
        Config(
            "haar",
            f"OpenCV Haar frontalface_default (side {side}, ladder)",
            lambda: _finder(HaarDetector(), (0,), max_side=side),
            needs=haar_available,
        ),
        Config(
            "mp-short",
            f"MediaPipe BlazeFace short-range (side {side}, ladder)",
            lambda: _finder(MediapipeDetector(0), (0,), max_side=side),
            needs=mediapipe_available,
        ),
        Config(
            "mp-full",
            f"MediaPipe BlazeFace full-range (side {side}, ladder)",
            lambda: _finder(MediapipeDetector(1), (0,), max_side=side),
            needs=mediapipe_available,
        ),
        Config(
            "hog+mp-short",
            "dlib HOG + MediaPipe short-range fallback",
            lambda: _finder(hog(), sched, fallback=MediapipeDetector(0), max_side=side),
            needs=mediapipe_available,
        ),
        Config(
            "mp-short+hog",
            "MediaPipe short-range + dlib HOG fallback",
            lambda: _finder(
                MediapipeDetector(0), sched, hog(), max_side=side, fallback_schedule=sched
            ),
            needs=mediapipe_available,
        ),
    ]


# -- measurement ---------------------------------------------------------------------------------


def load_rgb(path: Path) -> RGB:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def phone_frame(rgb: RGB, scale: float = FRAME_SCALE, w: int = FRAME_W, h: int = FRAME_H) -> RGB:
    """The image scaled by ``scale`` and centred on a neutral grey w×h canvas."""
    ih, iw = rgb.shape[:2]
    sw, sh = round(iw * scale), round(ih * scale)
    big = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((h, w, 3), 127, dtype=np.uint8)
    x0, y0 = (w - sw) // 2, (h - sh) // 2
    sx0, sy0 = max(0, -x0), max(0, -y0)
    cx0, cy0 = max(0, x0), max(0, y0)
    cw, ch = min(sw - sx0, w - cx0), min(sh - sy0, h - cy0)
    canvas[cy0 : cy0 + ch, cx0 : cx0 + cw] = big[sy0 : sy0 + ch, sx0 : sx0 + cw]
    return canvas


@dataclass
class Tally:
    n: int = 0
    fta: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    fallback_ran: int = 0
    fallback_ms: list[float] = field(default_factory=list)  # images where the fallback ran
    eye_dev: list[float] = field(default_factory=list)  # fraction of IED vs the baseline

    def summary(self, baseline_median: float | None) -> dict[str, Any]:
        med = statistics.median(self.ms) if self.ms else float("nan")
        return {
            "images": self.n,
            "fta": len(self.fta),
            "fta_rate": len(self.fta) / self.n if self.n else float("nan"),
            "wrong_face": len(self.wrong),
            "wrong_face_rate": len(self.wrong) / self.n if self.n else float("nan"),
            "miss_rate": (len(self.fta) + len(self.wrong)) / self.n if self.n else float("nan"),
            "median_ms": med,
            "p95_ms": float(np.percentile(self.ms, 95)) if self.ms else float("nan"),
            "max_ms": max(self.ms) if self.ms else float("nan"),
            "ratio_to_baseline": med / baseline_median if baseline_median else None,
            "fallback_ran": self.fallback_ran,
            "fallback_ms_median": statistics.median(self.fallback_ms) if self.fallback_ms else None,
            "fallback_ms_max": max(self.fallback_ms) if self.fallback_ms else None,
            "eye_dev_median_pct_ied": 100 * statistics.median(self.eye_dev)
            if self.eye_dev
            else None,
            "eye_dev_over_10pct": sum(d > 0.10 for d in self.eye_dev),
            "fta_images": self.fta,
            "wrong_face_images": self.wrong,
        }


def eyes(acq: Any) -> NDArray[np.float32]:
    left, right = acq.face.eye_centres()
    return np.stack([left, right])


def run(args: argparse.Namespace) -> dict[str, Any]:
    items: list[LabelledImage] = read_labelled(args.dataset)
    rng = np.random.default_rng(args.seed)
    order = np.arange(len(items))
    if args.paths:
        keep = {ln.strip() for ln in args.paths.read_text().splitlines() if ln.strip()}
        order = np.array(
            [i for i, it in enumerate(items) if str(it.path.relative_to(args.dataset)) in keep],
            dtype=np.int64,
        )
    if args.limit and args.limit < len(items):
        order = np.sort(rng.choice(len(items), args.limit, replace=False))
    slow_set = set(
        order[
            np.sort(rng.choice(len(order), min(args.slow_limit, len(order)), replace=False))
        ].tolist()
    )
    slow_frame_set = set(sorted(slow_set)[: args.slow_frame_limit])
    frame_set = set(order.tolist())
    if args.frame_limit and args.frame_limit < len(order):
        frame_set = set(order[rng.choice(len(order), args.frame_limit, replace=False)].tolist())

    wanted = set(args.detectors.split(",")) if args.detectors else None
    active: list[tuple[Config, FaceFinder]] = []
    skipped: dict[str, str] = {}
    for c in configs(args.yunet_model):
        if wanted is not None and c.key not in wanted and c.key != BASELINE:
            continue
        why = c.needs()
        if why:
            skipped[c.key] = why
            continue
        active.append((c, c.make()))
    print("configurations:", ", ".join(c.key for c, _ in active), file=sys.stderr)
    for k, why in skipped.items():
        print(f"skipped {k}: {why}", file=sys.stderr)

    views = [v for v in ("250", "640") if v in args.views.split(",")]
    tallies = {(c.key, v): Tally() for c, _ in active for v in views}
    load_start = os.getloadavg()
    # Warm-up (model loading, first-call allocations) on an image outside the timing.
    warm = load_rgb(items[int(order[0])].path)
    for _, f in active:
        for img in (warm, phone_frame(warm)):
            with contextlib.suppress(AcquisitionFailed):
                f.find(img)

    started = time.time()
    for done, idx in enumerate(order.tolist()):
        item = items[idx]
        rgb = load_rgb(item.path)
        rel = (
            str(item.path.relative_to(args.dataset))
            if item.path.is_relative_to(args.dataset)
            else str(item.path)
        )
        for v in views:
            if v == "640" and idx not in frame_set:
                continue
            img = rgb if v == "250" else phone_frame(rgb)
            h, w = img.shape[:2]
            tol = args.centre_tol * (1.0 if v == "250" else FRAME_SCALE)
            found: dict[str, NDArray[np.float32]] = {}
            # rotate the order per image so no configuration always runs first
            shift = done % len(active)
            for c, finder in active[shift:] + active[:shift]:
                if c.slow and (idx not in (slow_set if v == "250" else slow_frame_set)):
                    continue
                t = tallies[(c.key, v)]
                t.n += 1
                t0 = time.perf_counter()
                try:
                    acq = finder.find(img)
                except AcquisitionFailed as e:
                    t.ms.append((time.perf_counter() - t0) * 1000)
                    t.fta.append(rel)
                    if e.details.get("fallback_regions", 0) > 0:
                        t.fallback_ran += 1
                        t.fallback_ms.append(t.ms[-1])
                    continue
                t.ms.append((time.perf_counter() - t0) * 1000)
                if acq.fallback_regions > 0:
                    t.fallback_ran += 1
                    t.fallback_ms.append(t.ms[-1])
                b = acq.face.box
                cx, cy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
                if np.hypot(cx - w / 2, cy - h / 2) > tol:
                    t.wrong.append(rel)
                    continue
                found[c.key] = eyes(acq)
            # eye placement against the baseline's, as a fraction of its inter-eye distance
            base = found.get(BASELINE)
            if base is not None:
                ied = max(float(np.linalg.norm(base[1] - base[0])), 1e-6)
                for key, e in found.items():
                    if key != BASELINE:
                        d = float(np.max(np.linalg.norm(e - base, axis=1))) / ied
                        tallies[(key, v)].eye_dev.append(d)
        if args.progress and (done + 1) % args.progress == 0:
            el = time.time() - started
            print(
                f"{done + 1}/{len(order)} images, {el:.0f}s, load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )

    # The worst case: a photo with no face runs every step of the schedule, fallback included.
    no_face: dict[tuple[str, str], float] = {}
    if args.no_face:
        for v in views:
            blank = np.full((250, 250, 3) if v == "250" else (FRAME_H, FRAME_W, 3), 127, np.uint8)
            for c, finder in active:
                t0 = time.perf_counter()
                with contextlib.suppress(AcquisitionFailed):
                    finder.find(blank)
                no_face[(c.key, v)] = (time.perf_counter() - t0) * 1000

    # Photos with no face at all (scikit-image's sample photographs of things): how often does
    # each configuration's fallback run, and what does refusing them cost?
    no_face_set: dict[str, dict[str, Any]] = {}
    if args.no_face:
        for size_name, size in NO_FACE_SIZES.items():
            imgs = no_face_photos(size)
            for c, finder in active:
                ran, ms, found = 0, [], 0
                for img in imgs:
                    t0 = time.perf_counter()
                    try:
                        acq = finder.find(img)
                        found += 1
                        ran += acq.fallback_regions > 0
                    except AcquisitionFailed as e:
                        ran += e.details.get("fallback_regions", 0) > 0
                    ms.append((time.perf_counter() - t0) * 1000)
                no_face_set.setdefault(c.key, {})[size_name] = {
                    "photos": len(imgs),
                    "fallback_ran": ran,
                    "false_faces": found,
                    "median_ms": statistics.median(ms),
                    "max_ms": max(ms),
                }

    results: dict[str, Any] = {}
    for v in views:
        base_t = tallies.get((BASELINE, v))
        base_med = statistics.median(base_t.ms) if base_t and base_t.ms else None
        results[v] = {
            c.key: {
                "label": c.label,
                **tallies[(c.key, v)].summary(base_med),
                "no_face_ms": no_face.get((c.key, v)),
            }
            for c, _ in active
        }
    return {
        "dataset": str(args.dataset),
        "images_in_dataset": len(items),
        "images_run": len(order),
        "frame_images": len(frame_set),
        "slow_sample": len(slow_set),
        "slow_frame_sample": len(slow_frame_set & frame_set),
        "seed": args.seed,
        "centre_tol_px": args.centre_tol,
        "frame": {"width": FRAME_W, "height": FRAME_H, "scale": FRAME_SCALE},
        "skipped": skipped,
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "seconds": time.time() - started,
        "versions": versions(),
        "results": results,
        "no_face_set": no_face_set,
    }


#: The no-face photos: scikit-image's sample photographs in which no person appears.
NO_FACE_NAMES = (
    "brick", "chelsea", "coffee", "coins", "color", "grass", "gravel", "horse", "ihc", "moon",
    "page", "retina", "rocket", "text", "motorcycle_left", "clock_motion", "chessboard_RGB",
    "logo", "cell", "phantom", "hubble_deep_field", "microaneurysms",
)  # fmt: skip
NO_FACE_SIZES: dict[str, tuple[int, int] | None] = {
    "as is": None,
    "640×480": (640, 480),
    "4000×3000": (4000, 3000),
}


def no_face_photos(size: tuple[int, int] | None) -> list[RGB]:
    """scikit-image's sample photos of things (shipped in its wheel), as RGB, resized."""
    import glob

    import skimage

    folder = Path(skimage.__file__).parent / "data"
    out = []
    for name in NO_FACE_NAMES:
        paths = glob.glob(str(folder / f"{name}.*"))
        if not paths:
            continue
        rgb = load_rgb(Path(paths[0]))
        if size is not None:
            rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
        out.append(rgb)
    return out


def versions() -> dict[str, str]:
    import dlib

    out = {
        "python": platform.python_version(),
        "dlib": dlib.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }
    try:
        import mediapipe as mp  # type: ignore[import-not-found]

        out["mediapipe"] = mp.__version__
    except ImportError:
        pass
    return out


def table(report: dict[str, Any], title: str = "") -> str:
    lines = []
    for v, rows in report["results"].items():
        what = (
            "250×250 dataset images"
            if v == "250"
            else f"{FRAME_W}×{FRAME_H} frames (image ×{FRAME_SCALE} on grey)"
        )
        lines.append(f"\n{title}{what}:\n")
        lines.append(
            "| detector | images | FTA % | wrong face % | miss % | median ms | p95 ms "
            "| × baseline | fallback ran (median / max ms) | eye Δ % IED | no-face ms |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key, r in rows.items():
            ratio = "" if r["ratio_to_baseline"] is None else f"{r['ratio_to_baseline']:.2f}"
            nf = "" if r.get("no_face_ms") is None else f"{r['no_face_ms']:.0f}"
            fb = str(r["fallback_ran"])
            if r.get("fallback_ms_median") is not None:
                fb += f" ({r['fallback_ms_median']:.0f} / {r['fallback_ms_max']:.0f} ms)"
            eye = (
                "" if r["eye_dev_median_pct_ied"] is None else f"{r['eye_dev_median_pct_ied']:.1f}"
            )
            lines.append(
                f"| {key}: {r['label']} | {r['images']} | {100 * r['fta_rate']:.2f} "
                f"| {100 * r['wrong_face_rate']:.2f} | {100 * r['miss_rate']:.2f} "
                f"| {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {ratio} | {fb} "
                f"| {eye} | {nf} |"
            )
    if report.get("no_face_set"):
        lines.append(
            "\nPhotos with no face (scikit-image's sample photos of things): fallback ran on / "
            "false faces / median and max ms to refuse\n"
        )
        sizes = list(next(iter(report["no_face_set"].values())))
        lines.append("| detector | " + " | ".join(sizes) + " |")
        lines.append("|---|" + "---:|" * len(sizes))
        for key, per in report["no_face_set"].items():
            cells = [
                f"{r['fallback_ran']} of {r['photos']} / {r['false_faces']} / "
                f"{r['median_ms']:.0f}, {r['max_ms']:.0f}"
                for r in per.values()
            ]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if report.get("skipped"):
        lines.append("")
        for k, why in report["skipped"].items():
            lines.append(f"- skipped {k}: {why}")
    la, lb = report["load_avg_start"], report["load_avg_end"]
    lines.append(
        f"\n{report['images_run']} images ({report['frame_images']} as frames, MMOD-only "
        f"rows on a sample of {report['slow_sample']}, "
        f"{report.get('slow_frame_sample', report['slow_sample'])} as frames), "
        f"seed {report['seed']}, "
        f"{report['seconds']:.0f} s, load average {la[0]:.1f} → {lb[0]:.1f}, "
        f"{report['versions']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, help="labelled set (folder or CSV), e.g. LFW layout")
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    ap.add_argument(
        "--limit", type=int, default=0, help="seeded sample of this many images (0: all)"
    )
    ap.add_argument(
        "--frame-limit",
        type=int,
        default=0,
        help="run the 640×480 view on a seeded sample of this many (0: all)",
    )
    ap.add_argument(
        "--slow-limit", type=int, default=150, help="images (seeded sample) for the MMOD-only rows"
    )
    ap.add_argument(
        "--slow-frame-limit", type=int, default=50, help="of those, run as 640×480 frames"
    )
    ap.add_argument("--views", default="250,640", help="250, 640 or both")
    ap.add_argument(
        "--detectors",
        default="",
        help="comma list of configuration keys (baseline always runs); default all",
    )
    ap.add_argument(
        "--centre-tol",
        type=float,
        default=40.0,
        help="px from the image centre for the kept face to count as the subject",
    )
    ap.add_argument(
        "--paths", type=Path, help="only these images (a file of paths relative to --dataset)"
    )
    ap.add_argument(
        "--no-face",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time each configuration once on a blank grey image (the worst case)",
    )
    ap.add_argument("--yunet-model", type=Path, help="YuNet ONNX file, to add a YuNet row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", type=int, default=250, help="report every N images (0: never)")
    ap.add_argument("--merge", nargs="+", type=Path, help="print one table from these JSON reports")
    args = ap.parse_args(argv)
    if args.merge:
        for p in args.merge:
            print(table(json.loads(p.read_text()), title=f"{p.name}: "))
        return 0
    if args.dataset is None:
        ap.error("--dataset is required")
    args.dataset = args.dataset.resolve()
    report = run(args)
    print(table(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
