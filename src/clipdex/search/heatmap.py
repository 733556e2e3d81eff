"""Where in an image a query matches: a heat map of query-to-window similarity, as a PNG overlay.

The built-in and exported towers give one vector per image, not per patch, so
the map is made from overlapping windows (a ``grid`` x ``grid`` sweep of
windows half the image's side), each embedded and compared with the query,
then spread back over the pixels they cover. Each window's similarity to a
neutral prompt is subtracted: small models find empty windows close to every
text, and the contrast is what says where the query's object is.
"""

from __future__ import annotations

import io
import os
from typing import Protocol

import numpy as np
from PIL import Image

from clipdex.encoders.base import Encoder
from clipdex.errors import BadQueryError


class ImageSource(Protocol):
    """Where an item's image file is: a collection, or an index served like one."""

    def item_path_bytes(self, item_id: int) -> bytes: ...


NEUTRAL = "a plain empty background"  # the contrast prompt

__all__ = ["NEUTRAL", "heatmap_overlay", "item_heatmap", "window_scores"]


def window_scores(image: Image.Image, query: np.ndarray, encoder: Encoder, grid: int = 5,
                  window: float = 0.5, baseline: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel mean similarity of the windows covering each pixel (minus the baseline's), shape (h, w)."""
    w, h = image.size
    side_w, side_h = max(1, round(window * w)), max(1, round(window * h))
    xs = np.linspace(0, w - side_w, grid).round().astype(int)
    ys = np.linspace(0, h - side_h, grid).round().astype(int)
    boxes = [(int(x), int(y), int(x) + side_w, int(y) + side_h) for y in ys for x in xs]
    pixels = np.stack([encoder.preprocess(image.crop(box)) for box in boxes])
    vectors = encoder.encode_pixels(pixels)
    scores = vectors @ query - (vectors @ baseline if baseline is not None else 0.0)
    total = np.zeros((h, w), np.float32)
    count = np.zeros((h, w), np.float32)
    for (x0, y0, x1, y1), score in zip(boxes, scores.tolist(), strict=True):
        total[y0:y1, x0:x1] += score
        count[y0:y1, x0:x1] += 1
    return total / np.maximum(count, 1)


def heatmap_overlay(image: Image.Image, query: np.ndarray, encoder: Encoder, grid: int = 5,
                    max_side: int = 512) -> bytes:
    """The image with its heat map blended in red (hot = most like the query), as PNG bytes."""
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side))
    scores = window_scores(image, query, encoder, grid, baseline=encoder.encode_texts([NEUTRAL])[0])
    low, high = float(scores.min()), float(scores.max())
    heat = (scores - low) / (high - low) if high > low else np.zeros_like(scores)
    base = np.asarray(image, np.float32)
    red = np.zeros_like(base)
    red[..., 0] = 255
    alpha = 0.6 * heat[..., None]
    blended = (1 - alpha) * base + alpha * red
    buf = io.BytesIO()
    Image.fromarray(blended.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def item_heatmap(collection: ImageSource, item_id: int, text: str, encoder: Encoder, grid: int = 5) -> bytes:
    """The heat map of ``text`` over a stored item's image (PNG bytes).

    Raises:
        BadQueryError: a blank query.
        DecodeError: the item's image cannot be decoded any more.
        CollectionError: no such item.
    """
    from clipdex.media.decode import decode_image

    if not text.strip():
        raise BadQueryError("empty query: the text is blank")
    image = decode_image(os.fsdecode(collection.item_path_bytes(item_id)))
    return heatmap_overlay(image, encoder.encode_texts([text.strip()])[0], encoder, grid)
