"""Acquisition: find the subject's face in a probe and place its landmarks, within a work budget.

One subject, one capture: when several faces are present the largest is taken and the count is
reported (the quality stage penalises extra faces).

The order of work, and what bounds each step (:class:`DetectBudget`):

1. **Find, on reduced copies.** The detector first runs on a copy whose longer side is
   ``detect_max_side``; when it finds nothing, on copies twice as large, up to full resolution,
   then at full resolution with each further upsampling step. A step is skipped when the pixels it
   would examine (``width × height × 4^upsample``) exceed ``budget.max_pixels``: a large photo
   is searched on copies only, never at full resolution, and never upsampled. A face too small to
   be found on the largest copy allowed is one the quality gate would refuse anyway.
2. **Refine, at full resolution, only inside the found region.** When the face was found on a
   reduced copy, the detector runs again on the full-resolution pixels of the region around it
   (1.5 times the box, at most ``budget.refine_max_pixels``), so the box the landmarks start from
   is not a coarse box scaled up. If that finds nothing there, the scaled box is kept.
3. **Fall back, only where the detector saw something.** When nothing was found, the fallback
   detector (slower and stronger: dlib's MMOD by default) looks only at the regions the detector
   scored just below its threshold (``budget.fallback_min_score``; at most
   ``budget.fallback_max_regions`` of them, each examined on a copy of at most
   ``budget.fallback_max_pixels``). A frame in which the detector saw nothing face-like (a blank
   wall, a document, a frame of the floor) never reaches the fallback. Only a detector that can
   report such near-misses (:class:`Proposer`; dlib's HOG can) gets a fallback.
4. **Stop in time.** No step begins once ``budget.time_s`` seconds of CPU time have been spent
   (CPU time, so that the same photo gets the same answer on an idle and on a busy machine; the
   face-work pool bounds the wall time).

Landmarks are always placed at full resolution. Faces are counted at the first step that finds
any, so a bystander too small to be seen at that scale is not counted; a second face about as
large as the subject's always is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from fieldid.detect.types import Face, FaceBox, FaceDetector, Landmarker, Proposer
from fieldid.errors import AcquisitionFailed

RGB = NDArray[np.uint8]
#: The smallest region (px, image coordinates) the fallback examines around a near-miss.
_MIN_FALLBACK_REGION = 160.0


@dataclass(frozen=True)
class DetectBudget:
    """How much detection work one image may cost (``[pipeline]`` in ``fieldid.toml``).

    The defaults keep the slowest legal image (40 MP) under about a second of detection on a
    2-core machine (docs/benchmarks.md, "Hostile input") while leaving ordinary photos, up to
    640×480 with upsampling ×4, exactly as they were searched before the budget existed.
    """

    #: Pixels the detector may examine in one step (width × height × 4^upsample).
    max_pixels: int = 5_000_000
    #: Pixels of the full-resolution region re-examined around a face found on a reduced copy.
    refine_max_pixels: int = 1_000_000
    #: The fallback looks at regions the detector scored at least this (its threshold is 0).
    fallback_min_score: float = -0.35
    #: At most this many such regions, strongest first.
    fallback_max_regions: int = 1
    #: Pixels of each region copy the fallback examines (× 4^upsample): the region, twice the
    #: near-miss box each way, is scaled to this size, which puts the face at about 128 px.
    fallback_max_pixels: int = 65_536
    #: No detection step starts once this many seconds of CPU time have been spent.
    time_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_pixels", "refine_max_pixels", "fallback_max_pixels"):
            if getattr(self, name) < 10_000:
                raise ValueError(f"detection budget {name} must be at least 10000 pixels")
        if self.fallback_max_regions < 0:
            raise ValueError("detection budget fallback_max_regions must not be negative")
        if not self.time_s > 0:
            raise ValueError("detection budget time_s must be positive")


@dataclass(frozen=True)
class Acquisition:
    """The face kept, how many faces the image held, and how hard the detector had to look."""

    face: Face
    faces_found: int
    detector: str
    upsample: int
    detect_scale: float
    #: Whether the box was re-detected at full resolution inside the found region.
    refined: bool = False
    #: Regions the fallback detector examined (0: it did not run).
    fallback_regions: int = 0
    #: Milliseconds spent finding the face (every step) and placing its landmarks.
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)


@dataclass
class _Search:
    """What one ``find`` has done so far (for the refusal's details and the benchmarks)."""

    started: float
    #: CPU time of this thread at the start: the time budget counts the work done, not the
    #: waiting for a core on a busy machine (the face-work pool's time limit bounds that).
    cpu_started: float = field(default_factory=time.thread_time)
    steps: int = 0
    fallback_regions: int = 0
    stopped_by_time: bool = False


def _iou(a: FaceBox, b: FaceBox) -> float:
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.area + b.area - inter)


def _shifted(box: FaceBox, scale: float, dx: float, dy: float) -> FaceBox:
    """A box found on a copy of a region (scaled by ``scale``, offset ``dx, dy``) in image
    coordinates."""
    pts = None
    if box.points5 is not None:
        pts = (box.points5 / scale + np.array([dx, dy], dtype=np.float32)).astype(np.float32)
    return FaceBox(
        box.left / scale + dx,
        box.top / scale + dy,
        box.right / scale + dx,
        box.bottom / scale + dy,
        box.score,
        pts,
    )


def _resized(rgb: RGB, scale: float) -> RGB:
    if scale == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(rgb, size, interpolation=interp), dtype=np.uint8)


class _copies(dict[float, RGB]):
    """Reduced copies of an image, made on first use. Each is resized from the smallest larger
    copy already made (the largest from the image itself), so a 40 MP photo is read in full
    once however many copies the ladder needs."""

    def __init__(self, rgb: RGB, scales: list[float]) -> None:
        super().__init__({1.0: rgb})
        self.scales = scales

    def __missing__(self, scale: float) -> RGB:
        larger = [s for s in self.scales if scale < s < 1.0]
        source = self[min(larger)] if larger else self[1.0]
        h, w = self[1.0].shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        copy = np.asarray(cv2.resize(source, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        self[scale] = copy
        return copy


class FaceFinder:
    """Composes a detector and a landmarker into the acquisition step (see the module note)."""

    def __init__(
        self,
        detector: FaceDetector,
        landmarker: Landmarker,
        *,
        upsample_schedule: Sequence[int] = (0, 1, 2),
        detect_max_side: int = 320,
        fallback: FaceDetector | None = None,
        fallback_upsample_schedule: Sequence[int] = (0,),
        budget: DetectBudget | None = None,
    ) -> None:
        if not upsample_schedule:
            raise ValueError("upsample_schedule needs at least one step")
        self.detector = detector
        self.landmarker = landmarker
        self.upsample_schedule = tuple(upsample_schedule)
        self.detect_max_side = detect_max_side
        self.fallback = fallback
        self.fallback_upsample_schedule = tuple(fallback_upsample_schedule) or (0,)
        self.budget = budget or DetectBudget()

    def ladder(
        self, height: int, width: int, schedule: Sequence[int] | None = None
    ) -> list[tuple[float, int]]:
        """The (scale, upsample) steps tried in turn for an image of this size, within budget."""
        schedule = tuple(schedule or self.upsample_schedule)
        longest = max(height, width)
        scale = min(1.0, self.detect_max_side / longest) if self.detect_max_side else 1.0
        steps: list[tuple[float, int]] = []
        while scale < 1.0:
            steps.append((scale, schedule[0]))
            scale *= 2
        steps.append((1.0, schedule[0]))
        steps += [(1.0, up) for up in schedule[1:]]
        pixels = height * width
        allowed = [(s, up) for s, up in steps if pixels * s * s * 4**up <= self.budget.max_pixels]
        # Even a budget smaller than the first copy allows that copy: something must be searched.
        return allowed or [(min(s for s, _ in steps), schedule[0])]

    def describe(self) -> str:
        """Everything about this finder that decides which face an image gives."""
        b = self.budget
        fallback = self.fallback.name if self.fallback else "none"
        return (
            f"{self.detector.name}{list(self.upsample_schedule)}|"
            f"{fallback}{list(self.fallback_upsample_schedule)}|max{self.detect_max_side}|"
            f"{self.landmarker.scheme}|px{b.max_pixels}/{b.refine_max_pixels}|"
            f"fb{b.fallback_min_score}x{b.fallback_max_regions}@{b.fallback_max_pixels}"
        )

    # --- the steps ------------------------------------------------------------------------------

    def _in_time(self, run: _Search) -> bool:
        if run.steps and time.thread_time() - run.cpu_started >= self.budget.time_s:
            run.stopped_by_time = True
            return False
        return True

    def _scored(self, rgb: RGB, up: int, floor: float | None) -> list[FaceBox]:
        if floor is not None and isinstance(self.detector, Proposer):
            return self.detector.propose(rgb, up, floor)
        return self.detector.detect(rgb, up)

    def _primary(
        self, rgb: RGB, run: _Search, propose: bool
    ) -> tuple[list[FaceBox], int, float, list[FaceBox]]:
        """Boxes (image coordinates) from the first step that finds any, the step's upsample
        and scale, and the near-misses seen on the way (for the fallback)."""
        h, w = rgb.shape[:2]
        floor = self.budget.fallback_min_score if propose else None
        steps = self.ladder(h, w)
        copies = _copies(rgb, sorted({s for s, _ in steps}))
        near: list[FaceBox] = []
        last = (self.upsample_schedule[-1], 1.0)
        for scale, up in steps:
            if not self._in_time(run):
                break
            found = self._scored(copies[scale], up, floor)
            run.steps += 1
            last = (up, scale)
            if scale < 1.0:
                found = [b.scaled(1.0 / scale) for b in found]
            faces = [b for b in found if b.score >= 0.0 or floor is None]
            if faces:
                return faces, up, scale, near
            near += found
        return [], last[0], last[1], near

    def _refine(self, rgb: RGB, box: FaceBox, scale: float, run: _Search) -> FaceBox | None:
        """The face re-detected on the full-resolution pixels around ``box`` (None: not found
        there, or not worth it)."""
        h, w = rgb.shape[:2]
        # The region is the box and a quarter of it on every side: room for the detector's
        # window, and half the pixels of twice the box (the refinement costs ~4 ms at 640×480).
        half_w, half_h = 0.75 * box.width, 0.75 * box.height
        cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        x0, x1 = max(0, int(cx - half_w)), min(w, int(np.ceil(cx + half_w)))
        y0, y1 = max(0, int(cy - half_h)), min(h, int(np.ceil(cy + half_h)))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        pixels = (x1 - x0) * (y1 - y0)
        r = min(1.0, float(np.sqrt(self.budget.refine_max_pixels / pixels)))
        if r <= scale * 1.5:  # the budget allows little more detail than the copy had
            return None
        if not self._in_time(run):
            return None
        region = _resized(np.ascontiguousarray(rgb[y0:y1, x0:x1]), r)
        found = [_shifted(b, r, x0, y0) for b in self.detector.detect(region, 0)]
        run.steps += 1
        best = max(found, key=lambda b: _iou(b, box), default=None)
        if best is None or _iou(best, box) < 0.3:
            return None
        return best

    def _fallback(self, rgb: RGB, near: list[FaceBox], run: _Search) -> list[FaceBox]:
        """The fallback detector on the strongest near-miss regions only (see the module note)."""
        assert self.fallback is not None
        h, w = rgb.shape[:2]
        regions: list[FaceBox] = []
        for b in sorted(near, key=lambda b: b.score, reverse=True):
            if len(regions) >= self.budget.fallback_max_regions:
                break
            if all(_iou(b, r) < 0.3 for r in regions):
                regions.append(b)
        for b in regions:
            # A near-miss found on an upsampled copy can be smaller than the face around it.
            side = max(2.0 * max(b.width, b.height), _MIN_FALLBACK_REGION)
            cx, cy = (b.left + b.right) / 2, (b.top + b.bottom) / 2
            x0, x1 = max(0, int(cx - side / 2)), min(w, int(np.ceil(cx + side / 2)))
            y0, y1 = max(0, int(cy - side / 2)), min(h, int(np.ceil(cy + side / 2)))
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            pixels = (x1 - x0) * (y1 - y0)
            run.fallback_regions += 1
            for up in self.fallback_upsample_schedule:
                r = float(np.sqrt(self.budget.fallback_max_pixels / (pixels * 4**up)))
                if not self._in_time(run):
                    return []
                region = _resized(np.ascontiguousarray(rgb[y0:y1, x0:x1]), r)
                run.steps += 1
                found = self.fallback.detect(region, up)
                if found:
                    return [_shifted(f, r, x0, y0) for f in found]
        return []

    # --- the public step ------------------------------------------------------------------------

    def find(self, rgb: RGB, *, thorough: bool = True) -> Acquisition:
        """The largest face in ``rgb``; raises ``AcquisitionFailed`` (``acquire.no_face``).

        ``thorough=False`` skips the fallback detector: live camera guidance, where a frame
        without a face is the common case and the next frame comes a third of a second later.
        """
        run = _Search(time.perf_counter())
        use_fallback = (
            thorough and self.fallback is not None and isinstance(self.detector, Proposer)
        )
        boxes, up, scale, near = self._primary(rgb, run, use_fallback)
        name = self.detector.name
        refined = False
        if boxes:
            box = max(boxes, key=lambda b: b.area)
            if scale < 1.0:
                better = self._refine(rgb, box, scale, run)
                if better is not None:
                    box, refined = better, True
            count = len(boxes)
        else:
            found = self._fallback(rgb, near, run) if use_fallback and near else []
            if not found:
                h, w = rgb.shape[:2]
                raise AcquisitionFailed(
                    f"no face found in the {w}×{h} photo: make sure one face fills a good part of "
                    "the frame, facing the camera, evenly lit",
                    code="acquire.no_face",
                    width=w,
                    height=h,
                    detection_steps=run.steps,
                    fallback_regions=run.fallback_regions,
                    stopped_by_time_budget=run.stopped_by_time,
                )
            assert self.fallback is not None
            box, name, up, scale = max(found, key=lambda b: b.area), self.fallback.name, 0, 1.0
            count = len(found)
        t = time.perf_counter()
        points = self.landmarker.locate(rgb, box)
        timings = {
            "detect": (t - run.started) * 1000,
            "landmarks": (time.perf_counter() - t) * 1000,
        }
        face = Face(box=box, points=points, scheme=self.landmarker.scheme)
        return Acquisition(face, count, name, up, scale, refined, run.fallback_regions, timings)
