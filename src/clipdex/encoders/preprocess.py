"""Image preprocessing and the small JSON that describes an ``onnx:`` model folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipdex.errors import ModelNotFoundError
from clipdex.rgb import upright_rgb

__all__ = ["CLIP_MEAN", "CLIP_STD", "MODEL_JSON", "RESAMPLE", "ModelConfig", "preprocess_image"]

MODEL_JSON = "clipdex_model.json"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelConfig:
    """What the runtime needs besides the two ONNX graphs and the tokenizer.

    ``resize`` is ``"shortest"`` (the short side to ``resize_to``, the long side
    scaled and truncated, then a centre crop of ``image_size``; CLIP) or
    ``"squash"`` (both sides to ``image_size``; SigLIP). ``resample`` is the
    Pillow filter; ``crop_rounding`` places an odd centre crop as transformers
    does (``"floor"``) or as torchvision / open_clip do (``"round"``).
    ``pad_id`` pads token batches; ``pad_to_context`` pads every text to
    ``context_length`` (SigLIP pools the last position); ``text_canonical``
    names a text clean-up the tokenizer file does not hold (``"siglip"``).
    """

    image_size: int
    dim: int
    context_length: int = 77
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resize: str = "shortest"
    pad_id: int = 0
    pad_to_context: bool = False
    resample: str = "bicubic"
    resize_to: int | None = None
    crop_rounding: str = "floor"
    text_canonical: str = ""
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> None:
        Path(folder, MODEL_JSON).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> ModelConfig:
        path = Path(folder, MODEL_JSON)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise ModelNotFoundError(f"{folder}: missing {MODEL_JSON}") from e
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ModelNotFoundError(f"{path}: unknown keys {sorted(unknown)}")
        raw["mean"] = tuple(raw.get("mean", CLIP_MEAN))
        raw["std"] = tuple(raw.get("std", CLIP_STD))
        return cls(**raw)


RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
            "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


def preprocess_image(image: Image.Image, config: ModelConfig) -> np.ndarray:
    """Any PIL image -> normalised ``(3, S, S)`` float32, as the model's reference preprocessing does.

    The image passes :func:`clipdex.rgb.upright_rgb` first, the conversion every route shares.
    """
    image = upright_rgb(image)
    size = config.image_size
    resample = RESAMPLE[config.resample]
    if config.resize == "squash":
        if image.size != (size, size):
            image = image.resize((size, size), resample)
    else:
        # Resize, then crop, as the references do: resizing only the cropped box (Pillow's ``box``) is 20 %
        # faster but rounds a few pixels one level apart, and the pixels are meant to match exactly.
        image = _resize_short_side(image, config.resize_to or size, resample)
        image = _center_crop(image, size, config.crop_rounding)
    # Each channel through a 256-entry table of (v / 255 - mean) / std, computed in float32 exactly as the
    # arithmetic would be: the same numbers, a third of the time of broadcasting over (H, W, 3).
    table = _normalise_table(tuple(config.mean), tuple(config.std))
    out = np.empty((3, size, size), np.float32)
    for channel, plane in enumerate(image.split()):
        np.take(table[channel], np.asarray(plane), out=out[channel])
    return out


@lru_cache(maxsize=8)
def _normalise_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    scaled = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
    table = (scaled[None, :] - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    table.flags.writeable = False  # shared by every call
    return table


def _resize_short_side(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    # the long side is truncated, as transformers, torchvision and OpenAI's CLIP do (640x427 -> 335x224)
    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    return image if new == image.size else image.resize(new, resample)


def _center_crop(image: Image.Image, size: int, rounding: str) -> Image.Image:
    width, height = image.size
    if rounding == "round":  # torchvision: int(round((w - s) / 2))
        left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
    else:  # transformers: (w - s) // 2
        left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))
