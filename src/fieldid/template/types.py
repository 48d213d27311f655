"""Templates and the embedder interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from fieldid.detect.types import Face, LandmarkScheme
from fieldid.errors import ModelMismatch


@dataclass(frozen=True)
class ModelId:
    """Which model made a template. Templates of different models are never compared."""

    id: str
    version: str

    def __str__(self) -> str:
        return f"{self.id}@{self.version}"


@dataclass(frozen=True)
class Template:
    """A face template: an L2-normalised float32 vector and the model that made it."""

    vector: NDArray[np.float32]
    model: ModelId

    def require_model(self, model: ModelId) -> None:
        if self.model != model:
            raise ModelMismatch(
                f"template made by {self.model} cannot be compared with {model} templates; "
                "re-enrol the images with the gallery's model",
                code="template.model_mismatch",
                template_model=str(self.model),
                expected_model=str(model),
            )


class Embedder(Protocol):
    """Turns an aligned face into a template vector (L2-normalised, float32, length ``dim``)."""

    model: ModelId
    dim: int
    #: Landmarks this embedder aligns with. ``"arcface5"`` needs eye centres, nose tip and
    #: mouth corners; ``"dlib5"`` is dlib's own 5-point shape.
    landmark_scheme: LandmarkScheme

    def embed(self, rgb: NDArray[np.uint8], face: Face) -> NDArray[np.float32]: ...


def l2_normalise(v: NDArray[np.floating]) -> NDArray[np.float32]:
    """Scale rows (or one vector) to unit length; zero vectors stay zero."""
    a = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    out: NDArray[np.float32] = np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)
    return out
