"""The ready ONNX layouts clipdex loads as they are, and what each one tells about its model.

=================  ==============================================================================
layout             files
=================  ==============================================================================
clipdex            ``visual.onnx`` ``textual.onnx`` ``clipdex_model.json`` and a tokenizer
                   (``tokenizer.json``, ``spiece.model`` or OpenAI's BPE ``*.txt.gz``)
immich             ``visual/model.onnx`` (+ ``preprocess_cfg.json``), ``textual/model.onnx``
                   (+ ``tokenizer.json``), ``config.json`` (open_clip's model config)
transformers.js    ``onnx/vision_model.onnx`` ``onnx/text_model.onnx`` (or ``*_quantized``),
                   ``preprocessor_config.json`` ``tokenizer.json`` ``config.json``
fastembed          two repos, vision (``model.onnx`` + ``preprocessor_config.json``) and text
                   (``model.onnx`` + ``tokenizer.json``): a folder holding both, or ``VISION+TEXT``
rclip / OpenAI     ``visual.onnx`` ``textual.onnx`` and OpenAI's ``bpe_simple_vocab_16e6.txt.gz``
=================  ==============================================================================

Only the files are read here; the graphs' own inputs, outputs, element types
and batch dimension are read from the graphs when they load
(:mod:`clipdex.encoders.onnx_runtime`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clipdex.encoders.preprocess import CLIP_MEAN, CLIP_STD, MODEL_JSON, ModelConfig
from clipdex.errors import ModelNotFoundError

__all__ = ["LAYOUTS", "ModelFiles", "config_from_open_clip", "config_from_preprocessor", "find_model"]

LAYOUTS = ("clipdex", "immich", "transformers.js", "fastembed", "rclip")
SIGLIP_MEAN = (0.5, 0.5, 0.5)
# Pillow's filter numbers as transformers' preprocessor_config.json stores them
_PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's two graphs and tokenizer are, and how its inputs are prepared.

    ``config.dim`` is 0 when the files do not say; the runtime reads it from the graph.
    ``config.pad_id`` is -1 when the tokenizer's own configuration decides.
    """

    layout: str
    visual: Path
    textual: Path
    tokenizer: Path
    config: ModelConfig


def find_model(location: str, spec: str) -> ModelFiles:
    """The model files at ``location`` (a folder, or ``VISION_DIR+TEXT_DIR``), whichever layout they are in.

    Raises:
        ModelNotFoundError: nothing there, or no layout clipdex reads; the message says what was found.
    """
    if "+" in location and not Path(location).exists():
        vision, _, text = location.partition("+")
        return _fastembed(Path(vision).expanduser(), Path(text).expanduser(), spec)
    folder = Path(location).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"{spec}: model folder {folder} does not exist")
    for detect in (_clipdex, _immich, _transformers_js, _fastembed_parent, _rclip):
        found = detect(folder, spec)
        if found is not None:
            return found
    onnx = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.onnx"))[:6]
    raise ModelNotFoundError(
        f"{spec}: {folder} is in no model layout clipdex reads (found "
        f"{', '.join(onnx) if onnx else 'no .onnx files'}); expected one of: {', '.join(LAYOUTS)} "
        "(see the README's Models section), or make one with `clipdex export`")


def _json(path: Path, spec: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"{spec}: {path} is not readable JSON ({e})") from e
    if not isinstance(value, dict):
        raise ModelNotFoundError(f"{spec}: {path} is not a JSON object")
    return value


def _first(folder: Path, *names: str) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _clipdex(folder: Path, spec: str) -> ModelFiles | None:
    if not (folder / MODEL_JSON).is_file():
        return None
    tokenizer = _first(folder, "tokenizer.json", "spiece.model") or next(iter(sorted(folder.glob("*.txt.gz"))), None)
    missing = [n for n in ("visual.onnx", "textual.onnx") if not (folder / n).exists()]
    missing += [] if tokenizer else ["tokenizer.json"]
    if missing or tokenizer is None:
        raise ModelNotFoundError(f"{spec}: {folder} is a clipdex model folder missing {', '.join(missing)}")
    return ModelFiles("clipdex", folder / "visual.onnx", folder / "textual.onnx", tokenizer, ModelConfig.load(folder))


def config_from_preprocessor(pre: dict[str, Any], base: ModelConfig) -> ModelConfig:
    """``base`` with the image settings of a transformers ``preprocessor_config.json``
    (size, crop_size, do_center_crop, resample, image_mean, image_std)."""
    size = pre.get("size", base.image_size)
    crop = pre.get("crop_size", size)
    crop_side = crop.get("height", crop.get("shortest_edge")) if isinstance(crop, dict) else crop
    changes: dict[str, Any] = {"resample": _PIL_FILTERS.get(pre.get("resample", 3), "bicubic")}
    if isinstance(size, dict) and "shortest_edge" in size:
        side = int(size["shortest_edge"])
        centred = pre.get("do_center_crop", True)
        changes.update(resize="shortest", resize_to=side, image_size=int(crop_side or side) if centred else side,
                       crop_rounding="floor")
    else:
        side = int(size.get("height", base.image_size)) if isinstance(size, dict) else int(size)
        changes.update(resize="squash", resize_to=None, image_size=side)
    if "image_mean" in pre:
        changes["mean"] = tuple(float(v) for v in pre["image_mean"])
    if "image_std" in pre:
        changes["std"] = tuple(float(v) for v in pre["image_std"])
    return replace(base, **changes)


def config_from_open_clip(preprocess: dict[str, Any], model_cfg: dict[str, Any], base: ModelConfig) -> ModelConfig:
    """``base`` with an open_clip ``preprocess_cfg`` (torchvision's Resize + CenterCrop) and model config."""
    size = preprocess.get("size", model_cfg.get("vision_cfg", {}).get("image_size", base.image_size))
    side = int(size[0] if isinstance(size, list | tuple) else size)
    mode = preprocess.get("resize_mode", "shortest")
    text = model_cfg.get("text_cfg", {})
    return replace(
        base, image_size=side, resize="squash" if mode == "squash" else "shortest", resize_to=None,
        crop_rounding="round", resample=str(preprocess.get("interpolation", "bicubic")),
        mean=tuple(preprocess.get("mean", base.mean)), std=tuple(preprocess.get("std", base.std)),  # type: ignore[arg-type]
        dim=int(model_cfg.get("embed_dim", base.dim) or 0),
        context_length=int(text.get("context_length", base.context_length)))


def _text_settings(config: dict[str, Any], base: ModelConfig, tokenizer_config: dict[str, Any]) -> ModelConfig:
    """Context length, width, SigLIP's fixed-length padding and text canonicalisation from a transformers
    ``config.json`` and ``tokenizer_config.json``."""
    kind = config.get("model_type", "")
    text = config.get("text_config", config)
    siglip = "siglip" in kind
    dim = config.get("projection_dim") or (text.get("hidden_size") if siglip else 0) or base.dim
    return replace(base, context_length=int(text.get("max_position_embeddings", base.context_length)),
                   dim=int(dim or 0), pad_to_context=siglip or base.pad_to_context,
                   mean=SIGLIP_MEAN if siglip else base.mean, std=SIGLIP_MEAN if siglip else base.std,
                   resize="squash" if siglip else base.resize,
                   text_canonical="siglip" if tokenizer_config.get("tokenizer_class") == "SiglipTokenizer" else "")


_UNKNOWN = ModelConfig(image_size=224, dim=0, pad_id=-1)


def _immich(folder: Path, spec: str) -> ModelFiles | None:
    visual, textual = folder / "visual" / "model.onnx", folder / "textual" / "model.onnx"
    if not (visual.is_file() and textual.is_file()):
        return None
    tokenizer = _first(folder / "textual", "tokenizer.json")
    if tokenizer is None:
        raise ModelNotFoundError(f"{spec}: {folder} looks like an immich export but has no textual/tokenizer.json")
    config = config_from_open_clip(_json(folder / "visual" / "preprocess_cfg.json", spec),
                                   _json(folder / "config.json", spec), replace(_UNKNOWN, pad_to_context=True))
    return ModelFiles("immich", visual, textual, tokenizer, config)


def _transformers_js(folder: Path, spec: str) -> ModelFiles | None:
    onnx = folder / "onnx"
    visual = _first(onnx, "vision_model.onnx", "vision_model_fp16.onnx", "vision_model_quantized.onnx")
    textual = _first(onnx, "text_model.onnx", "text_model_fp16.onnx", "text_model_quantized.onnx")
    if visual is None or textual is None:
        return None
    tokenizer = _first(folder, "tokenizer.json", "spiece.model")
    if tokenizer is None:
        raise ModelNotFoundError(f"{spec}: {folder} looks like a transformers.js export but has no tokenizer.json")
    config = _text_settings(_json(folder / "config.json", spec), _UNKNOWN,
                            _json(folder / "tokenizer_config.json", spec))
    config = config_from_preprocessor(_json(folder / "preprocessor_config.json", spec), config)
    return ModelFiles("transformers.js", visual, textual, tokenizer, config)


def _fastembed_parent(folder: Path, spec: str) -> ModelFiles | None:
    subs = [p for p in sorted(folder.iterdir()) if p.is_dir() and (p / "model.onnx").is_file()]
    vision = [p for p in subs if (p / "preprocessor_config.json").is_file()]
    text = [p for p in subs if (p / "tokenizer.json").is_file() and p not in vision]
    if len(vision) == 1 and len(text) == 1:
        return _fastembed(vision[0], text[0], spec)
    return None


def _fastembed(vision: Path, text: Path, spec: str) -> ModelFiles:
    for part, needs in ((vision, "preprocessor_config.json"), (text, "tokenizer.json")):
        if not (part / "model.onnx").is_file() or not (part / needs).is_file():
            raise ModelNotFoundError(f"{spec}: {part} is not a fastembed {'vision' if part == vision else 'text'} "
                                     f"folder (model.onnx + {needs})")
    config = _text_settings({**_json(vision / "config.json", spec), **_json(text / "config.json", spec)}, _UNKNOWN,
                            _json(text / "tokenizer_config.json", spec))
    config = config_from_preprocessor(_json(vision / "preprocessor_config.json", spec), config)
    return ModelFiles("fastembed", vision / "model.onnx", text / "model.onnx", text / "tokenizer.json", config)


def _rclip(folder: Path, spec: str) -> ModelFiles | None:
    if not ((folder / "visual.onnx").is_file() and (folder / "textual.onnx").is_file()):
        return None
    vocab = next(iter(sorted(folder.glob("*.txt.gz"))), None) or _first(folder, "tokenizer.json")
    if vocab is None:
        raise ModelNotFoundError(
            f"{spec}: {folder} holds visual.onnx and textual.onnx but no tokenizer: add OpenAI's "
            "bpe_simple_vocab_16e6.txt.gz (rclip, open_clip) or a tokenizer.json beside them")
    # image size and width come from the graphs; OpenAI's preprocessing: bicubic, short side, centre crop
    config = replace(_UNKNOWN, image_size=0, mean=CLIP_MEAN, std=CLIP_STD, crop_rounding="round",
                     pad_to_context=True, pad_id=0 if vocab.name.endswith(".gz") else -1)
    return ModelFiles("rclip", folder / "visual.onnx", folder / "textual.onnx", vocab, config)
