"""The face pipeline: probe image → acquisition → quality → template, with per-stage timings.

This is the one place the stages are composed; search, verification, enrollment and evaluation all
go through it, so they measure and refuse the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldid.detect.acquire import Acquisition, FaceFinder
from fieldid.detect.types import FaceDetector
from fieldid.errors import WorkspaceError
from fieldid.probe import IntakeLimits, ProbeImage, decode_probe
from fieldid.quality import QualityReport, assess
from fieldid.template.types import Embedder, ModelId, Template


@dataclass(frozen=True)
class Processed:
    """A probe taken through the pipeline, with how long each stage took (milliseconds)."""

    probe: ProbeImage
    acquisition: Acquisition
    quality: QualityReport
    template: Template
    timings_ms: dict[str, float] = field(default_factory=dict)


#: The embedder of a new workspace (``fieldid init`` writes it into ``fieldid.toml``): MobileFace
#: v2, bundled in ``fieldid/models/`` (docs/models.md; chosen on the measurements in
#: docs/benchmarks.md).
DEFAULT_EMBEDDER = "mobileface-v2"
#: The embedder of a workspace whose ``fieldid.toml`` names none: every workspace made before
#: MobileFace v2 became the default used dlib's ResNet, and it keeps it (``fieldid.config``).
LEGACY_EMBEDDER = "dlib-resnet"
#: What ``[pipeline] embedder`` may say.
EMBEDDERS = ("mobileface-v2", "dlib-resnet", "onnx")


@dataclass(frozen=True)
class PipelineSpec:
    """What a workspace's configuration selects: detector, embedder and their options."""

    detector: str = "dlib-hog"
    #: Model file for detectors that need one (yunet).
    detector_model: str | None = None
    fallback_detector: str | None = "dlib-mmod"
    fallback_upsample_schedule: tuple[int, ...] = (0,)
    detect_max_side: int = 320
    upsample_schedule: tuple[int, ...] = (0, 1, 2)
    embedder: str = DEFAULT_EMBEDDER
    flip: bool = False
    onnx_path: str | None = None
    onnx_options: dict[str, Any] = field(default_factory=dict)


def make_detector(name: str, model_path: str | None = None) -> FaceDetector:
    from fieldid.detect.dlib_adapters import DlibHogDetector, DlibMmodDetector

    if name == "dlib-hog":
        return DlibHogDetector()
    if name == "dlib-mmod":
        return DlibMmodDetector()
    if name == "yunet":
        from fieldid.detect.yunet import YuNetDetector

        if not model_path:
            raise WorkspaceError(
                "the yunet detector needs [pipeline] detector_model (a path to its ONNX file)",
                code="config.detector",
            )
        return YuNetDetector(model_path)
    raise WorkspaceError(
        f"unknown detector {name!r}: choose dlib-hog, dlib-mmod or yunet", code="config.detector"
    )


def make_embedder(spec: PipelineSpec) -> Embedder:
    if spec.embedder == "mobileface-v2":
        from fieldid.template.bundled import BundledOnnxEmbedder

        return BundledOnnxEmbedder("mobileface-v2", flip=spec.flip)
    if spec.embedder == "dlib-resnet":
        from fieldid.template.dlib_resnet import DlibResnetEmbedder

        return DlibResnetEmbedder(flip=spec.flip)
    if spec.embedder == "onnx":
        if not spec.onnx_path:
            raise WorkspaceError(
                "the onnx embedder needs [model] onnx_path in the workspace configuration",
                code="config.embedder",
            )
        from fieldid.template.onnx import OnnxEmbedder

        return OnnxEmbedder(Path(spec.onnx_path), flip=spec.flip, **spec.onnx_options)
    raise WorkspaceError(
        f"unknown embedder {spec.embedder!r}: choose {', '.join(EMBEDDERS)}",
        code="config.embedder",
    )


class FacePipeline:
    def __init__(
        self,
        finder: FaceFinder,
        embedder: Embedder,
        *,
        limits: IntakeLimits | None = None,
    ) -> None:
        self.finder = finder
        self.embedder = embedder
        self.limits = limits

    @classmethod
    def from_spec(cls, spec: PipelineSpec, *, limits: IntakeLimits | None = None) -> FacePipeline:
        from fieldid.detect.dlib_adapters import DlibLandmarker

        embedder = make_embedder(spec)
        scheme = "dlib68" if embedder.landmark_scheme == "arcface5" else embedder.landmark_scheme
        finder = FaceFinder(
            make_detector(spec.detector, spec.detector_model),
            DlibLandmarker(scheme),
            upsample_schedule=spec.upsample_schedule,
            detect_max_side=spec.detect_max_side,
            fallback=make_detector(spec.fallback_detector) if spec.fallback_detector else None,
            fallback_upsample_schedule=spec.fallback_upsample_schedule,
        )
        return cls(finder, embedder, limits=limits)

    @property
    def model(self) -> ModelId:
        return self.embedder.model

    def load(self) -> FacePipeline:
        """Load every model now (a lazily loaded embedder's weights, checksum-verified), so that
        a server is ready when it says so and a damaged model file fails at start-up."""
        load = getattr(self.embedder, "load", None)
        if callable(load):
            load()
        return self

    def describe(self) -> str:
        """Everything that decides which template an image gets (keys template caches)."""
        f = self.finder
        fallback = f.fallback.name if f.fallback else "none"
        return (
            f"{self.model}|{f.detector.name}{list(f.upsample_schedule)}|"
            f"{fallback}{list(f.fallback_upsample_schedule)}|max{f.detect_max_side}|"
            f"{f.landmarker.scheme}"
        )

    def decode(self, source: bytes | str | Path) -> tuple[ProbeImage, float]:
        t = time.perf_counter()
        probe = decode_probe(source, self.limits)
        return probe, (time.perf_counter() - t) * 1000

    def process_image(
        self, probe: ProbeImage, timings: dict[str, float] | None = None
    ) -> Processed:
        """Acquire, measure and embed an already decoded probe (raises on failure to acquire)."""
        timings = dict(timings or {})
        rgb: NDArray[np.uint8] = probe.rgb
        t = time.perf_counter()
        acq = self.finder.find(rgb)
        timings["detect_align"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        quality = assess(rgb, acq)
        timings["quality"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        vector = self.embedder.embed(rgb, acq.face)
        timings["embed"] = (time.perf_counter() - t) * 1000
        return Processed(probe, acq, quality, Template(vector, self.model), timings)

    def process(self, source: bytes | str | Path) -> Processed:
        probe, ms = self.decode(source)
        return self.process_image(probe, {"decode": ms})
