"""Rendering scenes to images with Pillow (drawn at 2x and downscaled for clean edges)."""

from __future__ import annotations

import math
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from clipdex.synth.world import BACKGROUNDS, COLORS, SIZES, Obj, Scene

__all__ = ["render_scene", "shape_outline"]


def render_scene(scene: Scene, size: int = 64, supersample: int = 2) -> Image.Image:
    """Draw a scene as an RGB image of ``size`` x ``size`` pixels."""
    big = size * supersample
    image = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    if scene.texture:
        _texture(draw, big, random.Random(scene.seed))
    for obj in scene.objects:
        _shape(draw, obj, big)
    if scene.word:
        _word(draw, scene.word, big)
    return image.resize((size, size), Image.Resampling.BOX) if supersample > 1 else image


def _texture(draw: ImageDraw.ImageDraw, big: int, rng: random.Random) -> None:
    step = max(4, big // 12)
    shade = (rng.randint(150, 190),) * 3
    for x in range(-big, big, step):
        draw.line([(x, 0), (x + big, big)], fill=shade, width=max(1, big // 64))


def _shape(draw: ImageDraw.ImageDraw, obj: Obj, big: int) -> None:
    cell = big / 3
    cx, cy = (obj.cell[1] + 0.5) * cell, (obj.cell[0] + 0.5) * cell
    r = SIZES[obj.size] * big / 2 * 1.2
    fill = COLORS[obj.color]
    box = [cx - r, cy - r, cx + r, cy + r]
    kind = obj.shape
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=fill)
    elif kind == "cross":
        w = r * 0.35
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    elif kind == "heart":
        k = r * 0.5
        draw.ellipse([cx - r, cy - r * 0.8, cx, cy - r * 0.8 + 2 * k], fill=fill)
        draw.ellipse([cx, cy - r * 0.8, cx + r, cy - r * 0.8 + 2 * k], fill=fill)
        draw.polygon([(cx - r * 0.98, cy - r * 0.2), (cx + r * 0.98, cy - r * 0.2), (cx, cy + r)], fill=fill)
    else:
        draw.polygon(_polygon(kind, cx, cy, r), fill=fill)


def shape_outline(kind: str, cx: float, cy: float, r: float, degrees: float = 0.0) -> list[tuple[float, float]]:
    """Any shape as one polygon around ``(cx, cy)`` with radius ``r``, turned by ``degrees`` (for styles that
    outline, rotate or jitter shapes: the same silhouettes :func:`render_scene` fills)."""
    turn = math.radians(degrees)
    cos, sin = math.cos(turn), math.sin(turn)
    return [(cx + (x * cos - y * sin) * r, cy + (x * sin + y * cos) * r) for x, y in _unit_outline(kind)]


@lru_cache(maxsize=16)
def _unit_outline(kind: str) -> tuple[tuple[float, float], ...]:
    if kind == "circle":
        return tuple((math.cos(2 * math.pi * i / 32), math.sin(2 * math.pi * i / 32)) for i in range(32))
    if kind == "square":
        return ((-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85))
    if kind == "cross":
        w = 0.35
        return ((-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w),
                (-w, -w))
    if kind == "heart":  # two lobes and a point, traced as one outline
        pts = [(0.5 * math.cos(a) - 0.5, 0.5 * math.sin(a) - 0.3)
               for a in (math.radians(d) for d in range(150, 360, 15))]
        pts += [(0.5 * math.cos(a) + 0.5, 0.5 * math.sin(a) - 0.3)
                for a in (math.radians(d) for d in range(180, 390, 15))]
        return (*pts, (0.0, 1.0))
    return _unit_polygon(kind)


@lru_cache(maxsize=16)
def _unit_polygon(kind: str) -> tuple[tuple[float, float], ...]:
    if kind == "triangle":
        angles = [-90, 30, 150]
        return tuple((math.cos(math.radians(a)), math.sin(math.radians(a)) + 0.15) for a in angles)
    if kind == "diamond":
        return ((0, -1), (0.7, 0), (0, 1), (-0.7, 0))
    if kind == "hexagon":
        return tuple((math.cos(math.radians(60 * i)), math.sin(math.radians(60 * i))) for i in range(6))
    if kind == "star":
        pts = []
        for i in range(10):
            rad = 1.0 if i % 2 == 0 else 0.42
            a = math.radians(-90 + 36 * i)
            pts.append((rad * math.cos(a), rad * math.sin(a) + 0.08))
        return tuple(pts)
    raise ValueError(f"unknown shape {kind!r}")


def _polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    return [(cx + x * r, cy + y * r) for x, y in _unit_polygon(kind)]


@lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def _word(draw: ImageDraw.ImageDraw, word: str, big: int) -> None:
    px = max(8, big // 8)
    font = _font(px)
    left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
    x, y = (big - (right - left)) / 2, big - (bottom - top) - big * 0.06
    pad = px * 0.25
    draw.rectangle([x - pad, y - pad, x + right - left + pad, y + bottom - top + pad * 2], fill=(255, 255, 255),
                   outline=(0, 0, 0))
    draw.text((x - left, y - top), word, fill=(0, 0, 0), font=font)
