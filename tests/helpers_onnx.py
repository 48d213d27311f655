"""Tiny ONNX models built in memory for tests (no weights downloaded, nothing from ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from conftest import make_workspace, set_setting
from fieldid.workspace import Workspace


def projection(size: int = 112, dim: int = 16, seed: int = 0) -> NDArray[np.float32]:
    """A fixed random (3·size·size)×dim projection matrix."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3 * size * size, dim)).astype(np.float32) / np.float32(size)


def linear_embedder(
    path: Path,
    weights: NDArray[np.float32],
    *,
    input_shape: list[int | str] | None = None,
) -> Path:
    """Write an ONNX model ``x -> Flatten(x) @ weights`` (input NCHW float32) to ``path``."""
    shape = input_shape if input_shape is not None else ["N", 3, 112, 112]
    dim = weights.shape[1]
    w = numpy_helper.from_array(weights, name="W")
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear_embedder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], dim])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def pooled_4d_output(path: Path) -> Path:
    """A model whose output is 4-D (N×3×1×1, GlobalAveragePool): not an embedder."""
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["y"])],
        "pooled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def configure_onnx(root: Path, model: Path, threshold: float | None) -> Workspace:
    """A test workspace (conftest.make_workspace) whose embedder is the ONNX file ``model``,
    with a fixed ``threshold`` or none (then it is uncalibrated and refuses to search)."""
    make_workspace(root).close()
    cfg = (root / "fieldid.toml").read_text()
    cfg = set_setting(cfg, "embedder", "onnx")
    cfg = set_setting(cfg, "onnx_path", str(model))
    cfg = set_setting(cfg, "threshold", threshold)
    (root / "fieldid.toml").write_text(cfg)
    return Workspace.open(root)
