"""Pictures in a terminal: the kitty graphics protocol, iTerm2's inline images, and sixel.

Which one a terminal speaks is read from its environment (``CLIPDEX_PREVIEW`` overrides:
``kitty``, ``iterm`` or ``sixel``); a terminal that speaks none is told so in words, never sent
escape codes it would print as garbage.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping

import numpy as np
from PIL import Image

__all__ = ["PROTOCOLS", "detect_protocol", "image_escape"]

PROTOCOLS = ("kitty", "iterm", "sixel")
_CHUNK = 4096  # the kitty protocol's largest base64 payload per escape


def detect_protocol(env: Mapping[str, str] | None = None) -> str | None:
    """The image protocol this terminal speaks, from its environment; None when it speaks none we know."""
    env = os.environ if env is None else env
    forced = env.get("CLIPDEX_PREVIEW", "").strip().lower()
    if forced:
        return forced if forced in PROTOCOLS else None
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if "kitty" in term or env.get("KITTY_WINDOW_ID") or program == "ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    if "sixel" in term or term.startswith(("mlterm", "foot", "yaft", "contour")):
        return "sixel"
    return None


def image_escape(image: Image.Image, protocol: str, cells: int = 24) -> str:
    """The escape sequence that draws ``image`` about ``cells`` terminal columns wide at the cursor.

    Raises:
        ValueError: an unknown protocol.
    """
    if protocol == "kitty":
        return _kitty(_png(image), cells)
    if protocol == "iterm":
        data = _png(image)
        payload = base64.b64encode(data).decode()
        return f"\x1b]1337;File=inline=1;size={len(data)};width={cells};preserveAspectRatio=1:{payload}\x07"
    if protocol == "sixel":
        return _sixel(image, cells * 10)  # about ten pixels to a cell
    raise ValueError(f"unknown terminal image protocol {protocol!r}. Available: {', '.join(PROTOCOLS)}")


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG")
    return out.getvalue()


def _kitty(png: bytes, cells: int) -> str:
    payload = base64.b64encode(png).decode()
    parts = [payload[i : i + _CHUNK] for i in range(0, len(payload), _CHUNK)] or [""]
    out = []
    for n, part in enumerate(parts):
        more = 1 if n < len(parts) - 1 else 0
        head = f"a=T,f=100,c={cells},m={more}" if n == 0 else f"m={more}"
        out.append(f"\x1b_G{head};{part}\x1b\\")
    return "".join(out)


def _sixel(image: Image.Image, width: int) -> str:
    """Sixel: the picture in bands six pixels high, one run-length-encoded row of bits per palette colour."""
    rgb = image.convert("RGB")
    if rgb.width > width:
        rgb = rgb.resize((width, max(1, round(rgb.height * width / rgb.width))))
    quantized = rgb.quantize(colors=64)
    palette = quantized.getpalette() or []
    index = np.asarray(quantized, dtype=np.uint8)  # (h, w) palette entries
    h, w = index.shape
    used = np.unique(index).tolist()
    out = ['\x1bPq"1;1;' + f"{w};{h}"]
    for c in used:
        r, g, b = palette[3 * c : 3 * c + 3]
        out.append(f"#{c};2;{r * 100 // 255};{g * 100 // 255};{b * 100 // 255}")
    for top in range(0, h, 6):
        band = index[top : top + 6]
        weights = (1 << np.arange(len(band)))[:, None]
        for c in used:
            bits = ((band == c) * weights).sum(axis=0)
            if bits.any():
                out.append(f"#{c}{_runs(bits.tolist())}$")
        out.append("-")
    out.append("\x1b\\")
    return "".join(out)


def _runs(bits: list[int]) -> str:
    """One sixel row: each column's six bits as a character, repeats written ``!count char``."""
    out, x = [], 0
    while x < len(bits):
        end = x
        while end < len(bits) and bits[end] == bits[x]:
            end += 1
        char = chr(63 + bits[x])
        out.append(f"!{end - x}{char}" if end - x > 3 else char * (end - x))
        x = end
    return "".join(out)
