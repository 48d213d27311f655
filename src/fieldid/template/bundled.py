"""Face models whose weights ship inside the package (``fieldid/models/``), loaded lazily.

Contract:

1. ``fieldid/models/bundled.json`` lists each bundled model: its name (what ``[pipeline]
   embedder`` says), the ``ModelId`` its templates carry, the file with its size and SHA-256,
   the template length, how the crop is prepared, its licence and provenance, and its model card.
2. A :class:`BundledOnnxEmbedder` declares its identity (``model``, ``dim``, ``landmark_scheme``)
   from the manifest without touching the weights, so a workspace can name its gallery's model,
   list it or refuse a mismatch without loading anything.
3. The first ``embed`` loads the model under a lock (one load, whatever the threads): the file's
   size and SHA-256 are checked against the manifest first, and a file that does not match is
   never run (``model.checksum_mismatch``); the loaded model must give templates of the declared
   length (``model.bad_output``).

The pattern is immich's machine-learning models: ``predict()`` = lazy ``load()`` under a lock,
then ``_predict()``; one class per task declaring its identity.

Error codes (``ModelError``): ``model.unknown_bundled``, ``model.not_found``,
``model.checksum_mismatch``, ``model.bad_output`` (and those of :class:`OnnxEmbedder`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fieldid.detect.types import Face, LandmarkScheme
from fieldid.errors import ModelError
from fieldid.template.onnx import OnnxEmbedder, file_sha256
from fieldid.template.types import ModelId

__all__ = [
    "BundledModel",
    "BundledOnnxEmbedder",
    "bundled_model",
    "bundled_models",
    "model_card",
    "model_info",
    "models_path",
]

_PACKAGE = "fieldid.models"
_MANIFEST = "bundled.json"


@dataclass(frozen=True)
class BundledModel:
    """One entry of ``fieldid/models/bundled.json``."""

    name: str
    model: ModelId
    file: str
    sha256: str
    size: int
    dim: int
    input_size: int
    channel_order: Literal["RGB", "BGR"]
    mean: float
    std: float
    layout: Literal["NCHW", "NHWC"]
    alignment: str
    licence_spdx: str
    licence_file: str
    licence_note: str
    provenance: dict[str, Any]
    card: str

    def model_id(self, *, flip: bool = False) -> ModelId:
        """The ``ModelId`` of this model's templates (flip fusion changes them: ``+flip``)."""
        return ModelId(self.model.id, self.model.version + ("+flip" if flip else ""))

    def path(self) -> Path:
        return models_path() / self.file

    def provenance_text(self) -> str:
        p = self.provenance
        return (
            f"{p.get('source', '?')} at commit {p.get('commit', '?')}; {p.get('conversion', '?')}; "
            f"{p.get('verified', '?')}; SHA-256 {self.sha256}"
        )


def models_path() -> Path:
    """The folder of the bundled model files (inside the installed package)."""
    ref = resources.files(_PACKAGE)
    return Path(str(ref))


def _parse(raw: dict[str, Any]) -> BundledModel:
    spec = raw["input"]
    lic = raw["licence"]
    return BundledModel(
        name=str(raw["name"]),
        model=ModelId(str(raw["model_id"]), str(raw["version"])),
        file=str(raw["file"]),
        sha256=str(raw["sha256"]).lower(),
        size=int(raw["size"]),
        dim=int(raw["dim"]),
        input_size=int(spec["input_size"]),
        channel_order=spec.get("channel_order", "RGB"),
        mean=float(spec.get("mean", 0.0)),
        std=float(spec.get("std", 1.0)),
        layout=spec.get("layout", "NCHW"),
        alignment=str(raw.get("alignment", "")),
        licence_spdx=str(lic["spdx"]),
        licence_file=str(lic["file"]),
        licence_note=str(lic.get("note", "")),
        provenance=dict(raw.get("provenance", {})),
        card=str(raw.get("card", "")),
    )


@cache
def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        resources.files(_PACKAGE).joinpath(_MANIFEST).read_text("utf-8")
    )
    return data


def bundled_models() -> tuple[BundledModel, ...]:
    """Every model whose weights ship inside the package, in manifest order."""
    return tuple(_parse(raw) for raw in _manifest()["models"])


def model_info(model: str) -> dict[str, Any] | None:
    """What is known of the model behind a template's ``ModelId`` string
    (``mobileface-v2@onnx-16dcdbe89c85+flip``): name, whether its weights ship inside fieldid,
    licence and provenance. None for a model fieldid does not carry (a user's ONNX file)."""
    model_id, _, version = model.partition("@")
    base_version = version.removesuffix("+flip")
    for raw, inside in [(r, True) for r in _manifest()["models"]] + [
        (r, False) for r in _manifest().get("from_dependencies", [])
    ]:
        if raw["model_id"] == model_id and raw["version"] == base_version:
            lic = raw["licence"]
            return {
                "model": model,
                "name": raw["name"],
                "weights": "inside the fieldid package"
                if inside
                else f"from the dependency {raw.get('package', '?')}",
                "licence": f"{lic['spdx']}: {lic.get('note', '')}".rstrip(": "),
                "provenance": dict(raw.get("provenance", {})),
                "sha256": raw.get("sha256"),
                "flip": version.endswith("+flip"),
            }
    return None


def bundled_model(name: str) -> BundledModel:
    for entry in bundled_models():
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in bundled_models())
    raise ModelError(
        f"no bundled model named {name!r}; bundled: {known}",
        code="model.unknown_bundled",
        name=name,
    )


def model_card(name: str) -> str:
    """The model card (Markdown) of a bundled model."""
    entry = bundled_model(name)
    return resources.files(_PACKAGE).joinpath(entry.card).read_text("utf-8")


def verify_file(entry: BundledModel, path: Path | None = None) -> Path:
    """The model file, after checking its size and SHA-256 against the manifest."""
    p = path or entry.path()
    if not p.is_file():
        raise ModelError(
            f"the bundled model file {p} is missing: reinstall fieldid",
            code="model.not_found",
            path=str(p),
        )
    size = p.stat().st_size
    sha = file_sha256(p) if size == entry.size else ""
    if size != entry.size or sha != entry.sha256:
        raise ModelError(
            f"the bundled model file {p} does not match its manifest (expected {entry.size} "
            f"bytes with SHA-256 {entry.sha256}, found {size} bytes"
            + (f" with SHA-256 {sha}" if sha else "")
            + "): it is not loaded; reinstall fieldid",
            code="model.checksum_mismatch",
            path=str(p),
            expected_sha256=entry.sha256,
            actual_sha256=sha or None,
        )
    return p


class BundledOnnxEmbedder:
    """An ``Embedder`` for a bundled ONNX model: identity declared up front, weights loaded on
    first use, checksum-verified (see the module docstring)."""

    landmark_scheme: LandmarkScheme = "arcface5"

    def __init__(
        self,
        name: str,
        *,
        flip: bool = False,
        threads: int | None = None,
        path: Path | None = None,
    ) -> None:
        self.entry = bundled_model(name)
        self.flip = bool(flip)
        self.model = self.entry.model_id(flip=self.flip)
        self.dim = self.entry.dim
        self._threads = threads
        self._path = path  # tests point this at a damaged copy
        self._lock = threading.Lock()
        self._loaded: OnnxEmbedder | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> OnnxEmbedder:
        """Verify and load the weights (once; later calls return the loaded model)."""
        if self._loaded is not None:
            return self._loaded
        with self._lock:
            if self._loaded is None:
                e = self.entry
                onnx = OnnxEmbedder(
                    verify_file(e, self._path),
                    model_id=self.model.id,
                    version=self.model.version,
                    input_size=e.input_size,
                    channel_order=e.channel_order,
                    mean=e.mean,
                    std=e.std,
                    layout=e.layout,
                    flip=self.flip,
                    threads=self._threads,
                )
                if onnx.dim != self.dim:
                    raise ModelError(
                        f"{e.file} gives {onnx.dim}-d templates; its manifest declares {self.dim}",
                        code="model.bad_output",
                    )
                self._loaded = onnx
        return self._loaded

    def align(self, rgb: NDArray[np.uint8], face: Face) -> NDArray[np.uint8]:
        return self.load().align(rgb, face)

    def embed_batch(
        self, crops: NDArray[np.uint8] | Sequence[NDArray[np.uint8]]
    ) -> NDArray[np.float32]:
        return self.load().embed_batch(crops)

    def embed(self, rgb: NDArray[np.uint8], face: Face) -> NDArray[np.float32]:
        return self.load().embed(rgb, face)

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"BundledOnnxEmbedder({self.entry.name!r}, model={self.model}, {state})"
