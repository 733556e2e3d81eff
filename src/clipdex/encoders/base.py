"""The Encoder protocol: batch in, float32 L2-normalised array out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from clipdex.linalg import l2_normalize  # re-exported: encoders' public helper since the start

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
