"""``hf:REPO_OR_DIR``: a transformers CLIPModel or SiglipModel, exported once to ONNX."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from clipdex.encoders.cache import default_cache_dir
from clipdex.encoders.preprocess import CLIP_MEAN, CLIP_STD, ModelConfig
from clipdex.errors import MissingExtraError, ModelNotFoundError

__all__ = ["hf_onnx_folder"]


def hf_onnx_folder(name: str, cache_dir: Path | None = None) -> Path:
    """The cached ONNX export of a transformers model, exporting it on first use.

    Raises:
        MissingExtraError: torch/transformers are not installed.
        ModelNotFoundError: the model is not on disk and cannot be downloaded.
    """
    spec = f"hf:{name}"
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as e:
        raise MissingExtraError(
            f"{spec}: needs torch and transformers ({e.name} is missing); "
            "install them with `pip install 'clipdex[train]'`"
        ) from e
    local = _resolve_local(name, spec, transformers)
    key = hashlib.sha256(_fingerprint(local).encode()).hexdigest()[:16]
    out = (cache_dir or default_cache_dir()) / "hf" / f"{local.name}-{key}"
    if not (out / "clipdex_model.json").exists():
        _export(local, out, spec)
    return out


def _resolve_local(name: str, spec: str, transformers: Any) -> Path:
    if Path(name).is_dir():
        return Path(name).resolve()
    if Path(name).exists() or name.startswith(("/", ".", "~")):
        raise ModelNotFoundError(f"{spec}: {name} is not a model folder")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name))
    except Exception as e:  # hub errors are many and vary by version
        raise ModelNotFoundError(
            f"{spec}: not found locally and could not be downloaded ({type(e).__name__}); "
            f"download it where there is internet (`hf download {name} --local-dir DIR`) "
            "and pass hf:DIR"
        ) from e


def _fingerprint(folder: Path) -> str:
    parts = [str(folder)]
    for path in sorted(folder.iterdir()):
        if path.is_file():
            st = path.stat()
            parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def _export(local: Path, out: Path, spec: str) -> None:
    import torch
    from transformers import AutoConfig, CLIPModel, SiglipModel

    from clipdex.encoders.export import export_onnx_folder

    kind = AutoConfig.from_pretrained(local).model_type
    if kind not in ("clip", "siglip"):
        raise ModelNotFoundError(f"{spec}: model type {kind!r} is not supported. Available: clip, siglip")
    cls = CLIPModel if kind == "clip" else SiglipModel
    model = cls.from_pretrained(local, attn_implementation="eager").eval()
    tokenizer = _load_tokenizer(local, spec)
    config = model_config(local, model, kind, tokenizer, spec)

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return _pooled(self.model.get_image_features(pixel_values=pixel_values))

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            if kind == "siglip":  # SigLIP pools the last token and was trained without a mask
                return _pooled(self.model.get_text_features(input_ids=input_ids))
            return _pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    os.makedirs(out.parent, exist_ok=True)
    export_onnx_folder(ImageTower(), TextTower(), tokenizer, config, out, force=True)


def _pooled(output: Any) -> Any:
    # transformers 5 returns a model output whose pooler_output is the projection.
    return output if hasattr(output, "shape") else output.pooler_output


def _load_tokenizer(local: Path, spec: str) -> Any:
    from tokenizers import Tokenizer

    if (local / "tokenizer.json").exists():
        return Tokenizer.from_file(str(local / "tokenizer.json"))
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(local).backend_tokenizer
    except Exception as e:
        raise ModelNotFoundError(f"{spec}: no usable tokenizer in {local} ({type(e).__name__}: {e})") from e


def model_config(local: Path, model: Any, kind: str, tokenizer: Any, spec: str) -> ModelConfig:
    import json

    vision, text = model.config.vision_config, model.config.text_config
    pre: dict[str, Any] = {}
    if (local / "preprocessor_config.json").exists():
        pre = json.loads((local / "preprocessor_config.json").read_text())
    siglip = kind == "siglip"
    mean = tuple(pre.get("image_mean", (0.5, 0.5, 0.5) if siglip else CLIP_MEAN))
    std = tuple(pre.get("image_std", (0.5, 0.5, 0.5) if siglip else CLIP_STD))
    pad_token = "<pad>" if siglip else None
    pad_id = tokenizer.token_to_id(pad_token) if pad_token else None
    if pad_id is None:
        pad_id = getattr(text, "pad_token_id", None) or 0
    dim = getattr(model.config, "projection_dim", None) or text.hidden_size
    return ModelConfig(
        image_size=int(vision.image_size), dim=int(dim), mean=mean, std=std,  # type: ignore[arg-type]
        context_length=int(getattr(text, "max_position_embeddings", 77)),
        resize="squash" if siglip else "shortest", pad_id=int(pad_id), pad_to_context=siglip,
        name=spec,
    )
