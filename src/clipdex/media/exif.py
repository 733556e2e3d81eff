"""What a photo's EXIF says about it, as item metadata: the camera, when it was taken, where.

Stored at index time so searches filter on it (``--where camera=X100V``). Only the
file's header is read (Pillow opens lazily), never its pixels.
"""

from __future__ import annotations

import math
import os
from typing import Any

from PIL import Image, UnidentifiedImageError

__all__ = ["exif_metadata"]

_MAKE, _MODEL, _DATETIME, _GPS_IFD, _EXIF_IFD = 0x010F, 0x0110, 0x0132, 0x8825, 0x8769
_DATETIME_ORIGINAL, _LENS_MODEL, _ORIENTATION = 0x9003, 0xA434, 0x0112


def exif_metadata(path: str) -> dict[str, Any]:
    """``width`` / ``height`` (as stored, before any rotation), and ``camera``, ``camera_make``, ``lens``,
    ``taken`` (ISO 8601), ``orientation`` (EXIF 1-8) and ``gps_lat`` / ``gps_lon`` where the file records
    them; an empty dict for a file that is not a readable image file."""
    if "#" in path and not os.path.exists(path):
        return {}  # a video frame or a tar member: no file of its own to read
    try:
        with Image.open(path) as im:
            size = im.size
            exif = im.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            gps = exif.get_ifd(_GPS_IFD)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return {}
    out: dict[str, Any] = {"width": int(size[0]), "height": int(size[1])}
    for key, value in (("camera", exif.get(_MODEL)), ("camera_make", exif.get(_MAKE)),
                       ("lens", sub.get(_LENS_MODEL))):
        text = _text(value)
        if text:
            out[key] = text
    taken = _text(sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME))
    if taken and len(taken) >= 19 and taken[4] == ":" and taken[:4].isdigit() and taken[:4] != "0000":
        out["taken"] = f"{taken[:4]}-{taken[5:7]}-{taken[8:10]}T{taken[11:19]}"
    orientation = exif.get(_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        out["orientation"] = orientation
    position = _gps(gps)
    if position:
        out["gps_lat"], out["gps_lon"] = position
    return out


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return str(value).strip("\x00 ").strip() if value is not None else ""


def _gps(gps: Any) -> tuple[float, float] | None:
    try:
        lat = _degrees(gps[2]) * (-1 if str(gps.get(1, "N")).upper().startswith("S") else 1)
        lon = _degrees(gps[4]) * (-1 if str(gps.get(3, "E")).upper().startswith("W") else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        return None  # a 0/0 rational or an out-of-range value: no position rather than a wrong one
    return round(lat, 6), round(lon, 6)


def _degrees(dms: Any) -> float:
    d, m, s = (float(x) for x in dms)
    return d + m / 60 + s / 3600
