"""Image preprocessing and the small JSON that describes an ``onnx:`` model folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipdex.errors import ModelNotFoundError

__all__ = ["CLIP_MEAN", "CLIP_STD", "MODEL_JSON", "ModelConfig", "preprocess_image"]

MODEL_JSON = "clipdex_model.json"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelConfig:
    """What the runtime needs besides the two ONNX graphs and the tokenizer.

    ``resize`` is ``"shortest"`` (resize short side, centre crop; CLIP) or
    ``"squash"`` (resize both sides; SigLIP). ``pad_id`` pads token batches.
    """

    image_size: int
    dim: int
    context_length: int = 77
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resize: str = "shortest"
    pad_id: int = 0
    pad_to_context: bool = False
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


def preprocess_image(image: Image.Image, config: ModelConfig) -> np.ndarray:
    """RGB image -> normalised ``(3, S, S)`` float32, as the model was trained."""
    size = config.image_size
    if image.mode != "RGB":
        image = image.convert("RGB")
    if config.resize == "squash":
        image = image.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    else:
        image = _resize_short_side(image, size)
        image = _center_crop(image, size)
    arr = np.asarray(image, dtype=np.float32) * np.float32(1.0 / 255.0)
    normed = (arr - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    return np.ascontiguousarray(normed.transpose(2, 0, 1), dtype=np.float32)


def _resize_short_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    if new == image.size:
        return image
    return image.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0)


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))
