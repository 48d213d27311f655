"""The face pipeline: probe image → acquisition → quality → template, with per-stage timings.

This is the one place the stages are composed; search, verification, enrollment and evaluation all
go through it, so they measure and refuse the same way.

What a search keeps of a probe is :class:`FaceResult`: the template, the quality, the face found,
facts about the file (its hash, format and size) and the *kept image*, re-encoded from the decoded,
upright pixels (:func:`kept_image`). The bytes the officer uploaded are never kept: no EXIF, no
GPS, no comment or maker note, no ICC profile, no payload appended after the image data.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from fieldid.detect.acquire import Acquisition, DetectBudget, FaceFinder
from fieldid.detect.types import FaceDetector
from fieldid.errors import AcquisitionFailed, FieldidError, WorkspaceError
from fieldid.probe import IntakeLimits, ProbeImage, decode_probe
from fieldid.quality import QualityReport, assess
from fieldid.quality.measures import at_scale
from fieldid.template.types import Embedder, ModelId, Template

#: The longest side of the probe image kept with a search (docs/security.md).
KEPT_MAX_SIDE = 2048
KEPT_JPEG_QUALITY = 90


def kept_image(rgb: NDArray[np.uint8], max_side: int = KEPT_MAX_SIDE) -> bytes:
    """The probe as it is stored: a new baseline JPEG encoded from the decoded, upright pixels,
    scaled down to at most ``max_side`` on its longer side, with no metadata of any kind (no EXIF,
    XMP, ICC profile, comment or thumbnail) and nothing after its end-of-image marker."""
    h, w = rgb.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(
        buf, format="JPEG", quality=KEPT_JPEG_QUALITY, optimize=False, progressive=False
    )
    return buf.getvalue()


@dataclass(frozen=True)
class ProbeFacts:
    """What is known of a probe file once it is decoded, without its pixels."""

    format: str
    #: ``(width, height)`` as stored in the file, before the orientation was applied.
    original_size: tuple[int, int]
    orientation_applied: int
    #: Hex SHA-256 of the bytes as received (recorded in the audit; the bytes are not kept).
    sha256: str
    byte_size: int
    #: Upright size, after the orientation was applied.
    width: int
    height: int

    @classmethod
    def of(cls, probe: ProbeImage) -> ProbeFacts:
        return cls(
            probe.format,
            probe.original_size,
            probe.orientation_applied,
            probe.sha256,
            probe.byte_size,
            probe.width,
            probe.height,
        )


@dataclass(frozen=True)
class FaceResult:
    """A probe taken through the pipeline, as a search records it: everything but its pixels,
    plus the kept image (:func:`kept_image`). Small and picklable: face-work processes return it.
    """

    probe: ProbeFacts
    acquisition: Acquisition
    quality: QualityReport
    template: Template
    kept_image: bytes
    timings_ms: dict[str, float] = field(default_factory=dict)


#: Longest side of an enrolled face's thumbnail (the face with a margin, square).
THUMBNAIL_PX = 160
#: Compression level of the enrolled pixels' lossless PNG (``gallery/pixels.py``).
PNG_COMPRESSION = 3


def encode_pixels(rgb: NDArray[np.uint8]) -> bytes:
    """The RGB image as a lossless PNG (what enrollment keeps: ``gallery/pixels.py``)."""
    ok, buf = cv2.imencode(
        ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]
    )
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise FieldidError("the enrolled image could not be kept", code="enroll.pixels")
    return bytes(buf)


def face_thumbnail(
    rgb: NDArray[np.uint8], acquisition: Acquisition, size: int = THUMBNAIL_PX
) -> bytes:
    """A JPEG of the face (box with a margin, square), at most ``size`` px a side."""
    box = acquisition.face.box
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    half = max(box.width, box.height) * 0.75
    h, w = rgb.shape[:2]
    x0, x1 = max(0, int(cx - half)), min(w, int(cx + half))
    y0, y1 = max(0, int(cy - half)), min(h, int(cy + half))
    crop = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    crop.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@dataclass(frozen=True)
class EnrollFace:
    """An image taken through the pipeline for enrollment, as the gallery keeps it: the size,
    the face and its quality, the template, a thumbnail of the face and the pixels as the
    pipeline saw them (lossless PNG, for re-templating). Picklable: face-work processes return
    it, so an enrollment's face work runs where a search's does."""

    width: int
    height: int
    acquisition: Acquisition
    quality: QualityReport
    template: Template
    thumbnail: bytes
    pixels: bytes


@dataclass(frozen=True)
class FrameCheck:
    """Live guidance for one camera frame: its size, the face found (None: no face) and its
    quality at capture scale. No template is made."""

    width: int
    height: int
    acquisition: Acquisition | None
    quality: QualityReport | None


@dataclass(frozen=True)
class Processed:
    """A probe taken through the pipeline, with how long each stage took (milliseconds)."""

    probe: ProbeImage
    acquisition: Acquisition
    quality: QualityReport
    template: Template
    timings_ms: dict[str, float] = field(default_factory=dict)

    def enrollment(self) -> EnrollFace:
        """What enrollment keeps of this image (:class:`EnrollFace`)."""
        rgb = self.probe.rgb
        return EnrollFace(
            self.probe.width,
            self.probe.height,
            self.acquisition,
            self.quality,
            self.template,
            face_thumbnail(rgb, self.acquisition),
            encode_pixels(rgb),
        )

    def result(self) -> FaceResult:
        """The record of this probe a search keeps (re-encodes the kept image)."""
        t = time.perf_counter()
        kept = kept_image(self.probe.rgb)
        timings = {**self.timings_ms, "keep": (time.perf_counter() - t) * 1000}
        return FaceResult(
            ProbeFacts.of(self.probe), self.acquisition, self.quality, self.template, kept, timings
        )


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
    #: How much detection work one image may cost (fieldid.detect.acquire).
    budget: DetectBudget = field(default_factory=DetectBudget)


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
            budget=spec.budget,
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
        return f"{self.model}|{self.finder.describe()}"

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
        timings.update(acq.timings_ms)  # detect, landmarks
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

    def check_frame(self, source: bytes, scale: float = 1.0) -> FrameCheck:
        """Live guidance for a camera frame: decode, find the face without the fallback detector
        (a frame without a face is the common case), measure quality at capture ``scale``."""
        probe, _ = self.decode(source)
        try:
            acq = self.finder.find(probe.rgb, thorough=False)
        except AcquisitionFailed:
            return FrameCheck(probe.width, probe.height, None, None)
        return FrameCheck(probe.width, probe.height, acq, at_scale(assess(probe.rgb, acq), scale))
