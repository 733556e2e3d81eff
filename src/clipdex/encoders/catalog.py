"""Known models: ready ONNX exports on the Hugging Face hub that load with no torch, and how to get one.

``clipdex models`` prints the table; ``clipdex models pull NAME`` fetches the
export through huggingface_hub into its cache (offline, it resolves an export
already in the cache; ``HF_HUB_OFFLINE=1`` never goes online) and prints the
``onnx:`` spec to use. Speed and int8 columns come from
``benchmarks/bench_models.py`` (random weights of each architecture's shape,
measured on the machine named in the file); quality figures are the published
ones, with their source.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from clipdex.encoders.hub import fetch_snapshot
from clipdex.errors import MissingExtraError, ModelNotFoundError, UsageError

__all__ = ["CATALOG", "KnownModel", "list_models", "pull_model"]

_OPEN_CLIP_RESULTS = "open_clip docs/openclip_results.csv (ImageNet-1k zero-shot top-1)"


@dataclass(frozen=True)
class KnownModel:
    """One ready export: where it lives, what it is, and what is known of its quality and speed."""

    name: str
    repo: str
    layout: str
    family: str
    architecture: str
    dim: int
    image_size: int
    params_m: int
    multilingual: bool = False
    imagenet_zero_shot: float | None = None
    quality_source: str = ""
    files: tuple[str, ...] = ()
    measured: dict[str, Any] = field(default_factory=dict)


_TJS = ("onnx/vision_model.onnx", "onnx/text_model.onnx", "*.json", "*.txt", "spiece.model")
_IMMICH = ("visual/model.onnx", "textual/model.onnx", "*.json", "visual/*.json", "textual/*")

CATALOG: tuple[KnownModel, ...] = (
    KnownModel("clip-vit-b32", "Xenova/clip-vit-base-patch32", "transformers.js", "CLIP (OpenAI)", "ViT-B/32",
               512, 224, 151, imagenet_zero_shot=0.6332, quality_source=_OPEN_CLIP_RESULTS, files=_TJS),
    KnownModel("clip-vit-b16", "Xenova/clip-vit-base-patch16", "transformers.js", "CLIP (OpenAI)", "ViT-B/16",
               512, 224, 150, imagenet_zero_shot=0.6834, quality_source=_OPEN_CLIP_RESULTS, files=_TJS),
    KnownModel("clip-vit-l14", "Xenova/clip-vit-large-patch14", "transformers.js", "CLIP (OpenAI)", "ViT-L/14",
               768, 224, 428, imagenet_zero_shot=0.7554, quality_source=_OPEN_CLIP_RESULTS, files=_TJS),
    KnownModel("laion-vit-b32", "immich-app/ViT-B-32__laion2b_s34b_b79k", "immich", "open_clip (LAION-2B)",
               "ViT-B/32", 512, 224, 151, imagenet_zero_shot=0.6656, quality_source=_OPEN_CLIP_RESULTS,
               files=_IMMICH),
    KnownModel("siglip-base", "Xenova/siglip-base-patch16-224", "transformers.js", "SigLIP (Google)", "ViT-B/16",
               768, 224, 203, quality_source="no published figure found in the sources read here", files=_TJS),
    KnownModel("mclip-xlmr-large-b32", "immich-app/XLM-Roberta-Large-Vit-B-32", "immich",
               "M-CLIP (multilingual)", "XLM-R large + ViT-B/32", 512, 224, 653, multilingual=True,
               quality_source="no ImageNet figure (a multilingual text tower on OpenAI's ViT-B/32)", files=_IMMICH),
)


def _measured() -> dict[str, Any]:
    path = resources.files("clipdex") / "encoders" / "catalog_measured.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return {}


def list_models() -> list[dict[str, Any]]:
    """The catalog as rows, each with the figures ``benchmarks/bench_models.py`` measured (when it has)."""
    measured = _measured()
    machine = measured.get("machine", {})
    rows = []
    for model in CATALOG:
        row = asdict(model)
        row.pop("files")
        row["measured"] = measured.get("models", {}).get(model.name, {})
        row["measured_on"] = machine
        rows.append(row)
    return rows


def pull_model(name: str, local_dir: str | Path | None = None) -> str:
    """Fetch a known export (or find it in the Hugging Face cache) and return its ``onnx:`` spec.

    Raises:
        UsageError: an unknown name (the message lists the known ones).
        MissingExtraError: huggingface_hub is not installed.
        ModelNotFoundError: not in the cache and the hub cannot be reached (or HF_HUB_OFFLINE is set).
    """
    model = next((m for m in CATALOG if m.name == name), None)
    if model is None:
        raise UsageError(f"unknown model {name!r}. Available: {', '.join(m.name for m in CATALOG)}")
    try:
        folder = fetch_snapshot(model.repo, list(model.files), local_dir)
    except MissingExtraError:
        raise
    except Exception as e:  # hub errors vary by version; offline without a cached copy lands here
        raise ModelNotFoundError(
            f"{name}: {model.repo} is not in the Hugging Face cache and could not be downloaded "
            f"({type(e).__name__}); run this where there is internet, or copy the folder and use onnx:DIR") from e
    return f"onnx:{Path(folder).resolve()}"
