"""Thumbnails: decode safely, shrink, encode as JPEG."""

from __future__ import annotations

import io
import os

from PIL import Image

from clipdex.media.decode import DecodeOptions, decode_image

__all__ = ["image_response", "thumbnail_jpeg"]


def thumbnail_jpeg(path: str | os.PathLike[str] | bytes, size: int = 256, quality: int = 85) -> bytes:
    """A JPEG whose longer side is at most ``size`` pixels.

    Raises:
        DecodeError: the image cannot be decoded.
    """
    source = os.fsdecode(path) if isinstance(path, bytes) else path
    image = decode_image(source, DecodeOptions(draft_size=size))
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def image_response(path: str, quality: int = 95) -> tuple[bytes, str]:
    """An image file decoded and encoded again: ``(bytes, media type)``, PNG when the original is PNG
    (lossless stays lossless), JPEG otherwise. Only pixels leave, never the file's own bytes.

    Raises:
        DecodeError: the file is not a readable image.
    """
    image = decode_image(path)
    buf = io.BytesIO()
    if path.lower().endswith(".png"):
        image.save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), "image/jpeg"
