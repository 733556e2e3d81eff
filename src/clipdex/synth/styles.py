"""Rendering styles: the same scene grammar drawn other ways, to ask whether a model learned the scene or the
drawing.

A style changes how a scene looks and never what it says: shapes keep their colour's name (a shift
stays within it), objects stay in their grid cell (jitter is a fraction of a cell), and rotation and
perspective are mild enough that "left of" and "above" still hold. :data:`TRAIN_STYLES` are for
training; :data:`HELD_OUT_STYLES` are never trained on and measure generalisation.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from clipdex.synth.render import render_scene, shape_outline
from clipdex.synth.world import BACKGROUNDS, COLORS, SIZES, Obj, Scene

__all__ = ["HELD_OUT_STYLES", "STYLES", "TRAIN_STYLES", "Style", "render_styled", "style_names"]


@dataclass(frozen=True)
class Style:
    """How a scene is drawn (see the module doc for what a style may not change)."""

    name: str
    fill: bool = True  # filled shapes; False: outlines only
    outline: int = 0  # outline width in pixels at 64 px (0: none)
    outline_color: str = "same"  # "same" (a darker shade of the fill) or "black"
    antialias: bool = True
    jitter: float = 0.0  # position jitter, as a fraction of a grid cell
    size_jitter: float = 0.0  # relative size change, ±
    rotation: float = 0.0  # each shape turned by up to ± this many degrees
    perspective: float = 0.0  # the whole picture tilted by up to this share of its side
    background: str = "flat"  # flat, gradient, noise, blobs (photographic-looking), stripes, checker
    blur: float = 0.0  # Gaussian blur radius in pixels at 64 px
    jpeg: int = 0  # JPEG quality to round-trip through (0: none)
    color_shift: int = 0  # each colour moved by up to this much per channel, staying within its name


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("plain"),  # the original renderer's look
    Style("outlined", outline=2, outline_color="black"),
    Style("jittered", jitter=0.25, size_jitter=0.2, rotation=20),
    Style("gradient", background="gradient", color_shift=18),
    Style("noisy", background="noise", jpeg=35, blur=0.6),
    Style("stripes", background="stripes", jitter=0.15, rotation=10),
    # held out: never seen in training
    Style("hollow", fill=False, outline=3, antialias=False, jitter=0.1),
    Style("photo", background="blobs", blur=1.0, jpeg=45, color_shift=22, size_jitter=0.15),
    Style("tilted", perspective=0.12, rotation=25, jitter=0.2, background="checker"),
    Style("sketchy", fill=False, outline=2, outline_color="black", background="gradient", jitter=0.2,
          antialias=False, jpeg=60),
)}
TRAIN_STYLES = ("plain", "outlined", "jittered", "gradient", "noisy", "stripes")
HELD_OUT_STYLES = ("hollow", "photo", "tilted", "sketchy")


def style_names(spec: str) -> tuple[str, ...]:
    """Style names from ``train``, ``held-out``, ``all`` or a comma list.

    Raises:
        ValueError: an unknown name.
    """
    groups = {"train": TRAIN_STYLES, "held-out": HELD_OUT_STYLES, "all": tuple(STYLES)}
    names = groups.get(spec) or tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in STYLES]
    if unknown or not names:
        raise ValueError(f"unknown style(s) {', '.join(unknown) or spec!r}. Available: train, held-out, all, "
                         f"{', '.join(STYLES)}")
    return names


def render_styled(scene: Scene, style: Style, size: int = 64, seed: int = 0) -> Image.Image:
    """Draw ``scene`` in ``style`` as an RGB image of ``size`` pixels (deterministic from ``seed``)."""
    if style.name == "plain":
        return render_scene(scene, size)
    rng = random.Random(seed * 7919 + scene.seed)
    scale = 2 if style.antialias else 1
    big = size * scale
    image = _background(scene, style, big, rng)
    draw = ImageDraw.Draw(image)
    unit = big / 64
    for obj in scene.objects:
        _draw_object(draw, obj, style, big, unit, rng)
    if style.perspective:
        image = _tilt(image, style.perspective, rng)
    if scale > 1:
        image = image.resize((size, size), Image.Resampling.BOX)
    if style.blur:
        image = image.filter(ImageFilter.GaussianBlur(style.blur * size / 64))
    if style.jpeg:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=style.jpeg)
        image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return image


def _background(scene: Scene, style: Style, big: int, rng: random.Random) -> Image.Image:
    base = np.array(BACKGROUNDS[scene.background], np.float32)
    if style.background == "flat":
        return Image.new("RGB", (big, big), tuple(int(c) for c in base))
    y, x = np.mgrid[0:big, 0:big].astype(np.float32) / big
    if style.background == "gradient":
        other = np.array(rng.choice(list(BACKGROUNDS.values())), np.float32)
        t = (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)) % 1.0
        pixels = base * (1 - t[..., None]) + other * t[..., None]
    elif style.background == "noise":
        pixels = base + np.random.default_rng(rng.randrange(1 << 30)).normal(0, 22, (big, big, 1))
    elif style.background == "blobs":  # soft out-of-focus shapes, like a photograph's background
        pixels = np.repeat(base[None, None, :], big, 0).repeat(big, 1)
        for _ in range(6):
            cx, cy, r = rng.random(), rng.random(), rng.uniform(0.15, 0.45)
            tone = np.array([rng.uniform(90, 230) for _ in range(3)], np.float32)
            weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None] * 0.6
            pixels = pixels * (1 - weight) + tone * weight
        pixels += np.random.default_rng(rng.randrange(1 << 30)).normal(0, 6, (big, big, 1))
    elif style.background == "stripes":
        pixels = base * (0.85 + 0.15 * (np.sin((x + y) * big / 3.0) > 0))[..., None]
    elif style.background == "checker":
        cells = max(2, big // 16)
        pixels = base * (0.82 + 0.18 * (((x * big // cells) + (y * big // cells)) % 2))[..., None]
    else:
        raise ValueError(f"unknown background {style.background!r}")
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _draw_object(draw: ImageDraw.ImageDraw, obj: Obj, style: Style, big: int, unit: float,
                 rng: random.Random) -> None:
    cell = big / 3
    cx = (obj.cell[1] + 0.5 + rng.uniform(-style.jitter, style.jitter)) * cell
    cy = (obj.cell[0] + 0.5 + rng.uniform(-style.jitter, style.jitter)) * cell
    r = SIZES[obj.size] * big / 2 * 1.2 * (1 + rng.uniform(-style.size_jitter, style.size_jitter))
    colour = _shifted(COLORS[obj.color], style.color_shift, rng)
    points = shape_outline(obj.shape, cx, cy, r, rng.uniform(-style.rotation, style.rotation))
    edge = (0, 0, 0) if style.outline_color == "black" else tuple(int(c * 0.6) for c in colour)
    width = max(1, round(style.outline * unit)) if style.outline else 0
    if style.fill:
        draw.polygon(points, fill=colour)
        if width:
            draw.line([*points, points[0]], fill=edge, width=width, joint="curve")
    else:  # outlines only: the colour is the line's, so the shape keeps its colour's name
        draw.line([*points, points[0]], fill=colour, width=max(width, 2), joint="curve")


def _shifted(rgb: tuple[int, int, int], amount: int, rng: random.Random) -> tuple[int, int, int]:
    """A colour moved by up to ``amount`` per channel, kept nearer its own name than any other."""
    if not amount:
        return rgb
    for _ in range(20):
        candidate = tuple(int(np.clip(c + rng.randint(-amount, amount), 0, 255)) for c in rgb)
        nearest = min(COLORS.values(), key=lambda ref: sum((a - b) ** 2 for a, b in zip(ref, candidate, strict=True)))
        if nearest == rgb:
            return candidate  # type: ignore[return-value]
    return rgb


def _tilt(image: Image.Image, amount: float, rng: random.Random) -> Image.Image:
    """A mild perspective: the top or bottom edge pulled in, as if the picture were seen at an angle."""
    w, h = image.size
    d = amount * w * rng.uniform(0.5, 1.0)
    top = rng.random() < 0.5
    # QUAD names the source corners each output corner samples: a wider source edge draws that edge smaller
    quad = (-d, 0, 0, h, w, h, w + d, 0) if top else (0, 0, -d, h, w + d, h, w, 0)
    fill = image.getpixel((0, 0))
    return image.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR, fillcolor=fill)

