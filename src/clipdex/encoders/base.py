"""The Encoder protocol: batch in, float32 L2-normalised array out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

__all__ = ["Encoder", "l2_normalize"]


@runtime_checkable
class Encoder(Protocol):
    """A CLIP-family dual encoder.

    Every method returns ``float32`` arrays of shape ``(n, dim)`` whose rows
    have unit L2 norm, so inner product is cosine similarity.
    """

    spec: str
    dim: int
    image_size: int

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Resize, crop and normalise one RGB image to ``(3, S, S)`` float32."""
        ...

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed a stack of preprocessed images ``(n, 3, S, S)``."""
        ...

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """Embed RGB images (preprocessing included)."""
        ...

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, as contiguous float32 (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)
