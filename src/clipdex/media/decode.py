"""Safe image decoding: the one place clipdex turns bytes into RGB pixels.

Every failure becomes a :class:`~clipdex.errors.DecodeError` with a short reason,
so a batch can record it per item and carry on.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from clipdex.errors import DecodeError
from clipdex.media.members import read_member, split_member_path
from clipdex.rgb import to_rgb, upright_rgb

__all__ = ["DecodeOptions", "decode_image", "read_image_bytes", "to_rgb"]

ImageInput = str | os.PathLike[str] | bytes | BinaryIO


@dataclass(frozen=True)
class DecodeOptions:
    """How images are decoded.

    Attributes:
        max_pixels: images with more pixels are refused (decompression bombs).
        draft_size: when set, JPEGs are decoded at a reduced scale that still
            covers this many pixels on the short side (Pillow's ``draft``),
            which is 2-4x faster for large photos.
        max_bytes: files larger than this are refused before reading.
    """

    max_pixels: int = 64_000_000
    draft_size: int | None = None
    max_bytes: int = 256 * 1024 * 1024


def decode_image(source: ImageInput, options: DecodeOptions = DecodeOptions()) -> Image.Image:
    """Decode one image to RGB with EXIF orientation applied.

    Args:
        source: a path, raw bytes, or a binary file object.
        options: limits and reduced decoding.

    Returns:
        A loaded ``PIL.Image`` in mode ``RGB``.

    Raises:
        DecodeError: the input is not a readable, safe image; the message is the reason.
    """
    if isinstance(source, str) and "#t=" in source:
        from clipdex.media.video import read_frame, split_frame_path

        frame = split_frame_path(source)
        if frame is not None:
            return read_frame(*frame)
    if isinstance(source, str) and split_member_path(source) is not None:
        source = read_member(source, options.max_bytes)  # an image inside a webdataset tar shard
    heif = _heif_available()
    if not heif and isinstance(source, str | os.PathLike) and str(source).lower().endswith((".heic", ".heif")):
        raise DecodeError("HEIC/HEIF needs pillow-heif: pip install 'clipdex[heic]'")
    if isinstance(source, str | os.PathLike) and str(source).lower().endswith(".avif") and not _avif_available():
        raise DecodeError("AVIF needs Pillow 11.2 or later built with libavif: pip install -U pillow")
    try:
        fp = _open_bytes(source, options.max_bytes)
        with Image.open(fp) as im:
            width, height = im.size
            if width * height > options.max_pixels:
                raise DecodeError(
                    f"image too large: {width}x{height} pixels exceeds the limit of "
                    f"{options.max_pixels:,} (possible decompression bomb)"
                )
            if options.draft_size and im.format == "JPEG":
                _draft(im, options.draft_size)
            im.load()
            return upright_rgb(im)
    except DecodeError:
        raise
    except Image.DecompressionBombError as e:
        raise DecodeError(f"image too large (decompression bomb): {e}") from e
    except UnidentifiedImageError as e:
        raise DecodeError("not an image (unrecognised format)") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise DecodeError(f"corrupt or truncated image: {_first_line(e)}") from e


def _avif_available() -> bool:
    from PIL import features

    return bool(features.check("avif"))


_HEIF: list[bool] = []  # filled once: whether pillow-heif could register its opener


def _heif_available() -> bool:
    """Register pillow-heif's HEIC/HEIF opener with Pillow the first time, if it is installed."""
    if not _HEIF:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _HEIF.append(True)
        except ImportError:
            _HEIF.append(False)
    return _HEIF[0]


def read_image_bytes(path: str | os.PathLike[str], max_bytes: int = DecodeOptions().max_bytes) -> bytes:
    """The bytes of an image file, refused with the same one-line reasons as :func:`decode_image`.

    Raises:
        DecodeError: missing, unreadable, empty or too large (other OS errors propagate).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise DecodeError("empty file (0 bytes)")
        if size > max_bytes:
            raise DecodeError(f"file too large: {size:,} bytes exceeds {max_bytes:,}")
        return path.read_bytes()
    except PermissionError as e:
        raise DecodeError("permission denied") from e
    except FileNotFoundError as e:
        raise DecodeError("file not found") from e
    except IsADirectoryError as e:
        raise DecodeError("is a directory") from e


def _open_bytes(source: ImageInput, max_bytes: int) -> BinaryIO:
    if isinstance(source, bytes):
        if not source:
            raise DecodeError("empty file (0 bytes)")
        return io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        return io.BytesIO(read_image_bytes(source, max_bytes))
    return source


def _draft(im: Image.Image, short_side: int) -> None:
    # draft() picks the largest JPEG DCT scale whose result still covers the
    # requested box, so asking for (s, s) keeps the short side >= s.
    width, height = im.size
    if min(width, height) >= 2 * short_side:
        im.draft("RGB", (short_side, short_side))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
