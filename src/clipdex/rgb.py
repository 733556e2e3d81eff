"""The one conversion of any Pillow image to upright 8-bit RGB, used by every route into an encoder.

A file decoded by path, bytes from an upload and a PIL image handed to the
library all pass through :func:`upright_rgb`, so the same picture gives the
same vector whichever way it arrives. Choices where readers differ: alpha is
composited on white (what a viewer shows; transformers drops the alpha
channel, which turns transparent areas black or to whatever colour they
hide), and 16-bit or float images are scaled to 8 bits (Pillow's convert and
transformers clip them at 255, a white image).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

__all__ = ["to_rgb", "upright_rgb"]


def upright_rgb(im: Image.Image) -> Image.Image:
    """EXIF orientation applied (idempotent: the tag is dropped once applied), then :func:`to_rgb`."""
    oriented: Image.Image = ImageOps.exif_transpose(im) or im
    return to_rgb(oriented)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _high_depth_to_rgb(im)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    # Pillow's convert() clips 16-bit values at 255 (a white image); scale instead.
    arr = np.asarray(im, dtype=np.float64)
    top = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
    if im.mode == "I" and arr.max() <= 255:
        top = 255.0
    gray = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")
