"""An ``Embedder`` backed by any ArcFace-style ONNX face-embedding model.

The model must take one float32 image tensor, 4-D with 3 channels (``NCHW`` or ``NHWC``) whose
spatial size is ``input_size`` or dynamic, and give a 2-D ``batch × dim`` embedding as its first
output. Faces are aligned to the ArcFace template with ``fieldid.template.align`` first.

Error codes (all ``ModelError``): ``model.not_found``, ``model.not_onnx``, ``model.bad_input``,
``model.bad_output``, ``model.bad_config``, ``model.run_failed``, ``model.non_finite``,
``model.landmarks_unavailable``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from fieldid.detect.types import Face, LandmarkScheme
from fieldid.errors import ModelError, ProbeRejected
from fieldid.template.align import align_face
from fieldid.template.types import ModelId, l2_normalise

__all__ = ["OnnxEmbedder", "file_sha256"]

ChannelOrder = Literal["RGB", "BGR"]
Layout = Literal["NCHW", "NHWC"]

#: Crops per ``session.run`` call in ``embed_batch`` when the model takes dynamic batches.
_CHUNK = 64


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _per_channel(value: float | Sequence[float], name: str) -> NDArray[np.float32]:
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3 or not np.isfinite(arr).all():
        raise ModelError(
            f"{name} must be one number or three (one per channel), got {value!r}",
            code="model.bad_config",
        )
    return arr


def _dim_ok(dim: Any, want: int) -> bool:
    """A declared dimension matches ``want`` when it equals it or is dynamic (named or unknown)."""
    return not isinstance(dim, int) or dim <= 0 or dim == want


class OnnxEmbedder:
    """Face templates from an ONNX model run on CPU by onnxruntime.

    ``mean`` and ``std`` apply as ``(pixel - mean) / std`` to 0..255 pixel values, per channel in
    the model's ``channel_order`` when three numbers are given. ``flip=True`` adds the embedding of
    the mirrored crop to that of the crop before normalising (flip fusion); it changes the
    templates, so it is recorded in the default model version (``+flip``).

    The default ``model`` is ``ModelId(id=f"onnx:{file stem}", version=<first 12 hex digits of the
    file's SHA-256>)``: two different weight files never share a model id, whatever their names.
    """

    landmark_scheme: LandmarkScheme

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        model_id: str | None = None,
        version: str | None = None,
        input_size: int = 112,
        channel_order: ChannelOrder = "RGB",
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        layout: Layout = "NCHW",
        flip: bool = False,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        if channel_order not in ("RGB", "BGR"):
            raise ModelError(
                f"channel_order must be 'RGB' or 'BGR', got {channel_order!r}",
                code="model.bad_config",
            )
        if layout not in ("NCHW", "NHWC"):
            raise ModelError(
                f"layout must be 'NCHW' or 'NHWC', got {layout!r}", code="model.bad_config"
            )
        if input_size < 16:
            raise ModelError(
                f"input_size must be at least 16 pixels, got {input_size}", code="model.bad_config"
            )
        self.input_size = int(input_size)
        self.channel_order: ChannelOrder = channel_order
        self.layout: Layout = layout
        self.flip = bool(flip)
        self._mean = _per_channel(mean, "mean")
        self._std = _per_channel(std, "std")
        if np.any(self._std == 0):
            raise ModelError("std must not be zero", code="model.bad_config")
        self.landmark_scheme = "arcface5"

        if not self.path.is_file():
            raise ModelError(
                f"model file not found: {self.path}", code="model.not_found", path=str(self.path)
            )
        self.sha256 = file_sha256(self.path)
        self._session = self._open_session(threads)
        self._input_name, self._batch_fixed = self._check_input()
        self.dim = self._check_output()

        default_version = self.sha256[:12] + ("+flip" if self.flip else "")
        self.model = ModelId(
            id=model_id if model_id is not None else f"onnx:{self.path.stem}",
            version=version if version is not None else default_version,
        )

    # --- loading and validation ---------------------------------------------------------------

    def _open_session(self, threads: int | None) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads if threads else min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: no warnings on stderr at every load
        # No busy-waiting between runs: onnxruntime's worker threads otherwise spin after each
        # embedding and take the CPU from whatever runs next (dlib's detector, the server). On
        # this 2-core machine, spinning made the next dlib call 1.8x slower and the embedding
        # itself no faster (docs/benchmarks.md, "cost").
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(
                str(self.path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped pybind errors
            raise ModelError(
                f"{self.path} is not a loadable ONNX model: {str(exc).strip()[:300]}",
                code="model.not_onnx",
                path=str(self.path),
            ) from exc

    def _check_input(self) -> tuple[str, bool]:
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(
                f"{self.path.name} takes {len(inputs)} inputs; a face embedder takes one image",
                code="model.bad_input",
            )
        inp = inputs[0]
        shape = list(inp.shape) if inp.shape is not None else []
        if inp.type != "tensor(float)":
            raise ModelError(
                f"{self.path.name} input {inp.name!r} is {inp.type}; expected tensor(float)",
                code="model.bad_input",
            )
        want = (
            f"[N, 3, {self.input_size}, {self.input_size}]"
            if self.layout == "NCHW"
            else f"[N, {self.input_size}, {self.input_size}, 3]"
        )
        ok = len(shape) == 4
        if ok:
            if self.layout == "NCHW":
                channels, height, width = shape[1], shape[2], shape[3]
            else:
                height, width, channels = shape[1], shape[2], shape[3]
            ok = (
                _dim_ok(channels, 3)
                and _dim_ok(height, self.input_size)
                and _dim_ok(width, self.input_size)
                and _dim_ok(shape[0], 1)
            )
        if not ok:
            raise ModelError(
                f"{self.path.name} input {inp.name!r} has shape {shape}; expected {want} "
                f"({self.layout}, input_size={self.input_size})",
                code="model.bad_input",
                shape=[str(d) for d in shape],
            )
        return inp.name, isinstance(shape[0], int) and shape[0] == 1

    def _check_output(self) -> int:
        out = self._session.get_outputs()[0]
        if out.shape is not None and len(out.shape) != 2:
            raise ModelError(
                f"{self.path.name} output {out.name!r} has shape {list(out.shape)}; "
                "expected a 2-D [batch, dim] embedding",
                code="model.bad_output",
            )
        probe = self._run(np.zeros((1, self.input_size, self.input_size, 3), dtype=np.uint8))
        if probe.ndim != 2 or probe.shape[0] != 1 or probe.shape[1] < 1:
            raise ModelError(
                f"{self.path.name} gave an output of shape {probe.shape} for one face; "
                "expected [1, dim]",
                code="model.bad_output",
            )
        return int(probe.shape[1])

    # --- running ------------------------------------------------------------------------------

    def _preprocess(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        x = crops.astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x - self._mean) / self._std
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Raw (unnormalised) model output for N aligned RGB crops."""
        x = self._preprocess(crops)
        parts: list[NDArray[np.float32]] = []
        step = 1 if self._batch_fixed else _CHUNK
        for i in range(0, x.shape[0], step):
            try:
                result = self._session.run(None, {self._input_name: x[i : i + step]})
            except Exception as exc:
                raise ModelError(
                    f"{self.path.name} failed to run: {str(exc).strip()[:300]}",
                    code="model.run_failed",
                ) from exc
            parts.append(np.asarray(result[0], dtype=np.float32))
        return np.concatenate(parts, axis=0)

    def _check_crops(
        self, crops: NDArray[np.uint8] | Sequence[NDArray[np.uint8]]
    ) -> NDArray[np.uint8]:
        s = self.input_size
        arr: NDArray[Any]
        if isinstance(crops, np.ndarray):
            arr = crops
        elif len(crops):
            arr = np.stack([np.asarray(c) for c in crops])
        else:
            arr = np.empty((0, s, s, 3), dtype=np.uint8)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[1:] != (s, s, 3) or arr.dtype != np.uint8:
            raise ProbeRejected(
                f"aligned crops must be N×{s}×{s}×3 uint8 RGB, got shape {arr.shape} "
                f"dtype {arr.dtype}",
                code="probe.bad_crop",
            )
        return arr

    def embed_batch(
        self, crops: NDArray[np.uint8] | Sequence[NDArray[np.uint8]]
    ) -> NDArray[np.float32]:
        """Templates (N×dim, rows L2-normalised, float32) for already-aligned RGB crops."""
        arr = self._check_crops(crops)
        if arr.shape[0] == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        raw = self._run(arr)
        if self.flip:
            raw = (raw + self._run(np.ascontiguousarray(arr[:, :, ::-1, :]))) / 2.0
        if not np.isfinite(raw).all():
            raise ModelError(
                f"{self.path.name} produced non-finite values; check mean/std and the model",
                code="model.non_finite",
            )
        return l2_normalise(raw)

    def align(self, rgb: NDArray[np.uint8], face: Face) -> NDArray[np.uint8]:
        """The aligned crop this embedder would embed for ``face``."""
        points = face.arcface5()
        if points is None:
            raise ModelError(
                f"this embedder aligns on ArcFace's five points, which '{face.scheme}' landmarks "
                "cannot give; use a detector with five points (YuNet) or 68-point landmarks",
                code="model.landmarks_unavailable",
                scheme=face.scheme,
            )
        return align_face(rgb, points, self.input_size)

    def embed(self, rgb: NDArray[np.uint8], face: Face) -> NDArray[np.float32]:
        """The template (length ``dim``, unit norm, float32) of ``face`` in the RGB image."""
        vector: NDArray[np.float32] = self.embed_batch(self.align(rgb, face)[None])[0]
        return vector

    def __repr__(self) -> str:
        return f"OnnxEmbedder({str(self.path)!r}, model={self.model}, dim={self.dim})"
