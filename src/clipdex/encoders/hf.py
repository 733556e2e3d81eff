"""``hf:REPO_OR_DIR``: a transformers CLIPModel or SiglipModel, exported once to ONNX and cached.

The cache is looked in first: a checkpoint exported before loads with
ONNX Runtime alone, so torch and transformers are needed only the first time
(the export). The export keeps what the checkpoint says about its inputs: the
image processor's sizes, crop and filter (``preprocessor_config.json``), the
tokenizer as shipped (``tokenizer.json``, or Google's ``spiece.model``), the pad
token its tokenizer config names, and SigLIP's text canonicalisation.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from clipdex.encoders.cache import default_cache_dir
from clipdex.encoders.hub import fetch_snapshot
from clipdex.encoders.layouts import config_from_preprocessor
from clipdex.encoders.preprocess import CLIP_MEAN, CLIP_STD, MODEL_JSON, ModelConfig
from clipdex.encoders.text import configured_pad_token
from clipdex.errors import MissingExtraError, ModelNotFoundError
from clipdex.quiet import verbose

__all__ = ["hf_onnx_folder", "model_config"]

FAMILIES = ("clip", "siglip")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def hf_onnx_folder(name: str, cache_dir: Path | None = None) -> Path:
    """The cached ONNX export of a transformers checkpoint, exporting it on first use.

    Raises:
        MissingExtraError: the export is not cached and torch/transformers are not installed.
        ModelNotFoundError: the checkpoint is not on disk (nor downloadable), or is not a CLIP / SigLIP one.
    """
    spec = f"hf:{name}"
    local = _resolve_local(name, spec)
    key = hashlib.sha256(_fingerprint(local).encode()).hexdigest()[:16]
    out = (cache_dir or default_cache_dir()) / "hf" / f"{local.name}-{key}"
    if (out / MODEL_JSON).exists():
        return out  # exported before: no torch needed
    kind = _family(local, spec)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(
            f"{spec}: exporting it once needs torch and transformers ({e.name} is missing); "
            "install them with `pip install 'clipdex[train]'`, or copy an export from another machine"
        ) from e
    _export(local, out, spec, kind)
    return out


def _resolve_local(name: str, spec: str) -> Path:
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
    if Path(name).exists() or name.startswith(("/", ".", "~")):
        raise ModelNotFoundError(f"{spec}: {name} is not a model folder")
    try:
        return fetch_snapshot(name)  # the local HF cache first; HF_HUB_OFFLINE=1 never goes online
    except MissingExtraError:
        raise
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


def _family(local: Path, spec: str) -> str:
    """``clip`` or ``siglip`` from the checkpoint's config.json, checked before torch is loaded."""
    try:
        config = json.loads((local / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"{spec}: {local} has no config.json, so it is not a transformers checkpoint; "
                                 "for an ONNX export use onnx:DIR") from None
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"{spec}: {local / 'config.json'} is not readable JSON ({e})") from e
    kind = str(config.get("model_type", "")) if isinstance(config, dict) else ""
    if kind not in FAMILIES:
        raise ModelNotFoundError(f"{spec}: model type {kind or 'unknown'!r} is not a dual encoder clipdex "
                                 f"exports. Available: {', '.join(FAMILIES)}")
    if not any((local / w).is_file() for w in _WEIGHTS):
        raise ModelNotFoundError(f"{spec}: {local} has a config but no weights ({', '.join(_WEIGHTS[:2])})")
    return kind


def _tokenizer_file(local: Path, spec: str) -> Path:
    for name in ("tokenizer.json", "spiece.model"):
        if (local / name).is_file():
            return local / name
    raise ModelNotFoundError(f"{spec}: {local} has no tokenizer.json or spiece.model")


def _export(local: Path, out: Path, spec: str, kind: str) -> None:
    import torch
    from transformers import CLIPModel, SiglipModel
    from transformers.utils import logging as hf_logging

    from clipdex.encoders.export import export_onnx_folder

    if not verbose():
        hf_logging.disable_progress_bar()  # clipdex draws its own progress; transformers' bars would interleave
        hf_logging.set_verbosity_error()
    cls = CLIPModel if kind == "clip" else SiglipModel
    try:
        model = cls.from_pretrained(local, attn_implementation="eager").eval()
    except Exception as e:  # transformers raises many kinds for a bad checkpoint
        raise ModelNotFoundError(f"{spec}: transformers cannot load {local}: {str(e).splitlines()[0][:200]}") from e
    tokenizer = _tokenizer_file(local, spec)
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


def _pad_id(local: Path, tokenizer: Path, kind: str, text_config: Any) -> int:
    """The id of the pad token the checkpoint's tokenizer config names (SigLIP: ``</s>``), never a guess."""
    token = configured_pad_token(local) or ("</s>" if kind == "siglip" else None)
    if token is not None:
        found: int | None
        if tokenizer.suffix == ".model":
            import sentencepiece

            found = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer)).piece_to_id(token)
        else:
            from tokenizers import Tokenizer

            found = Tokenizer.from_file(str(tokenizer)).token_to_id(token)
        if found is not None:
            return int(found)
    return int(getattr(text_config, "pad_token_id", None) or 0)


def model_config(local: Path, model: Any, kind: str, tokenizer: Path, spec: str) -> ModelConfig:
    """The runtime settings of a transformers checkpoint (see the module doc)."""
    vision, text = model.config.vision_config, model.config.text_config
    siglip = kind == "siglip"
    pre: dict[str, Any] = {}
    if (local / "preprocessor_config.json").exists():
        pre = json.loads((local / "preprocessor_config.json").read_text())
    tokenizer_config: dict[str, Any] = {}
    if (local / "tokenizer_config.json").exists():
        tokenizer_config = json.loads((local / "tokenizer_config.json").read_text())
    dim = getattr(model.config, "projection_dim", None) or text.hidden_size
    size = int(vision.image_size)
    base = ModelConfig(
        image_size=size, dim=int(dim), mean=(0.5,) * 3 if siglip else CLIP_MEAN,  # type: ignore[arg-type]
        std=(0.5,) * 3 if siglip else CLIP_STD,  # type: ignore[arg-type]
        context_length=int(getattr(text, "max_position_embeddings", 77)),
        resize="squash" if siglip else "shortest", pad_id=_pad_id(local, tokenizer, kind, text),
        pad_to_context=siglip, name=spec,
        text_canonical="siglip" if tokenizer_config.get("tokenizer_class") == "SiglipTokenizer"
        or tokenizer.suffix == ".model" else "",
    )
    return config_from_preprocessor(pre, base) if pre else base
