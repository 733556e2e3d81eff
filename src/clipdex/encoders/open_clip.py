"""``open_clip:ARCH/TAG`` and ``open_clip:ARCH/WEIGHTS``: open_clip's ViT CLIP checkpoints, exported to ONNX.

open_clip itself is never imported: its standard ViT CLIP (a patch-embedding
vision transformer with a class token, a causal text transformer pooled at the
end-of-text token, linear projections) is rebuilt here in plain torch, the
state dict loaded into it, and both towers exported once to a cached
``onnx:`` folder. torch is needed for that export only; later loads read the
cache with ONNX Runtime alone.

The architecture comes from ``open_clip_config.json`` beside the weights (what
open_clip's Hugging Face repos ship), else from :data:`ARCHS`. The tokenizer
is the ``tokenizer.json`` or OpenAI ``*.txt.gz`` merges file beside the weights.
Preprocessing is open_clip's: bicubic, short side, centre crop placed as
torchvision places it, OpenAI's mean and std unless the config says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from clipdex.encoders.cache import default_cache_dir
from clipdex.encoders.hub import fetch_snapshot
from clipdex.encoders.layouts import config_from_open_clip
from clipdex.encoders.preprocess import CLIP_MEAN, CLIP_STD, MODEL_JSON, ModelConfig
from clipdex.errors import MissingExtraError, ModelNotFoundError

__all__ = ["ARCHS", "PRETRAINED", "open_clip_folder"]


def _vit(embed: int, image: int, patch: int, width: int, layers: int, text_width: int, text_heads: int,
         text_layers: int = 12) -> dict[str, Any]:
    return {"embed_dim": embed, "vision_cfg": {"image_size": image, "layers": layers, "width": width,
                                               "patch_size": patch},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": text_width, "heads": text_heads,
                         "layers": text_layers}}


# open_clip's model configs of the standard ViT CLIPs (numbers from its model_configs/*.json)
ARCHS: dict[str, dict[str, Any]] = {
    "ViT-B-32": _vit(512, 224, 32, 768, 12, 512, 8),
    "ViT-B-32-256": _vit(512, 256, 32, 768, 12, 512, 8),
    "ViT-B-16": _vit(512, 224, 16, 768, 12, 512, 8),
    "ViT-L-14": _vit(768, 224, 14, 1024, 24, 768, 12),
    "ViT-L-14-336": _vit(768, 336, 14, 1024, 24, 768, 12),
    "ViT-H-14": _vit(1024, 224, 14, 1280, 32, 1024, 16, 24),
}
# (ARCH, TAG) -> (Hugging Face repo, OpenAI's QuickGELU): the tags of open_clip's pretrained table clipdex knows
PRETRAINED: dict[tuple[str, str], tuple[str, bool]] = {
    ("ViT-B-32", "openai"): ("timm/vit_base_patch32_clip_224.openai", True),
    ("ViT-B-32", "laion2b_s34b_b79k"): ("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", False),
    ("ViT-B-32", "datacomp_xl_s13b_b90k"): ("laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K", False),
    ("ViT-B-32-256", "datacomp_s34b_b86k"): ("laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K", False),
    ("ViT-B-16", "openai"): ("timm/vit_base_patch16_clip_224.openai", True),
    ("ViT-B-16", "datacomp_xl_s13b_b90k"): ("laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K", False),
    ("ViT-L-14", "openai"): ("timm/vit_large_patch14_clip_224.openai", True),
    ("ViT-L-14", "datacomp_xl_s13b_b90k"): ("laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K", False),
}
_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def open_clip_folder(rest: str, cache_dir: Path | None = None) -> Path:
    """The cached ONNX export of ``ARCH/TAG`` or ``ARCH/path/to/weights``, exporting it on first use.

    Raises:
        ModelNotFoundError: unknown architecture or tag, weights or tokenizer not found, or weights that
            do not fit the architecture.
        MissingExtraError: the export is not cached and torch is not installed.
    """
    spec = f"open_clip:{rest}"
    arch, slash, tag = rest.partition("/")
    if not slash or not tag:
        raise ModelNotFoundError(f"{spec}: expected open_clip:ARCH/TAG or open_clip:ARCH/WEIGHTS_FILE "
                                 f"(e.g. open_clip:ViT-B-32/laion2b_s34b_b79k)")
    weights, quick_gelu = _weights(arch, tag, spec)
    model_cfg, preprocess = _configs(arch, weights, quick_gelu, spec)
    tokenizer = _tokenizer_beside(weights, spec)
    st = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}|{json.dumps(model_cfg, sort_keys=True)}"
                         .encode()).hexdigest()[:16]
    out = (cache_dir or default_cache_dir()) / "open_clip" / f"{arch}-{key}"
    if (out / MODEL_JSON).exists():
        return out
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(f"{spec}: exporting it once needs torch: pip install 'clipdex[train]'") from e
    config = config_from_open_clip(preprocess, model_cfg, ModelConfig(
        image_size=224, dim=int(model_cfg["embed_dim"]), mean=CLIP_MEAN, std=CLIP_STD, pad_id=0,
        pad_to_context=True, name=spec))
    _export(model_cfg, weights, tokenizer, config, out, spec)
    return out


def _weights(arch: str, tag: str, spec: str) -> tuple[Path, bool]:
    """The weights file (a local path, or the tag's repo in the Hugging Face cache) and whether it uses QuickGELU."""
    local = Path(tag).expanduser()
    if local.is_file():
        return local, "openai" in local.name
    if local.is_dir():
        found = next((local / n for n in _WEIGHT_FILES if (local / n).is_file()), None)
        if found:
            return found, False
    known = PRETRAINED.get((arch, tag))
    if known is None:
        tags = sorted(t for a, t in PRETRAINED if a == arch)
        raise ModelNotFoundError(f"{spec}: no weights file {tag!r} and no known tag {tag!r} for {arch}. "
                                 f"Available tags: {', '.join(tags) or 'none for this architecture'}")
    repo, quick_gelu = known
    try:
        folder = fetch_snapshot(repo)  # the local HF cache first; HF_HUB_OFFLINE=1 stays offline
    except MissingExtraError:
        raise
    except Exception as e:  # hub errors vary by version
        raise ModelNotFoundError(f"{spec}: {repo} is not in the Hugging Face cache and could not be downloaded "
                                 f"({type(e).__name__}); fetch it where there is internet (`hf download {repo}`)"
                                 ) from e
    found = next((folder / n for n in _WEIGHT_FILES if (folder / n).is_file()), None)
    if found is None:
        raise ModelNotFoundError(f"{spec}: {folder} holds no {' or '.join(_WEIGHT_FILES)}")
    return found, quick_gelu


def _configs(arch: str, weights: Path, quick_gelu: bool, spec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    beside = weights.parent / "open_clip_config.json"
    if beside.is_file():
        try:
            config = json.loads(beside.read_text(encoding="utf-8"))
            model_cfg, preprocess = dict(config["model_cfg"]), dict(config.get("preprocess_cfg", {}))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelNotFoundError(f"{spec}: {beside} is not an open_clip config ({e})") from e
    elif arch in ARCHS:
        model_cfg, preprocess = dict(ARCHS[arch]), {}
    else:
        raise ModelNotFoundError(f"{spec}: unknown architecture {arch!r} and no open_clip_config.json beside the "
                                 f"weights. Available: {', '.join(ARCHS)}")
    model_cfg.setdefault("quick_gelu", quick_gelu)
    return model_cfg, preprocess


def _tokenizer_beside(weights: Path, spec: str) -> Path:
    folder = weights.parent
    found = (folder / "tokenizer.json") if (folder / "tokenizer.json").is_file() else next(
        iter(sorted(folder.glob("*.txt.gz"))), None)
    if found is None:
        raise ModelNotFoundError(f"{spec}: no tokenizer beside {weights.name}: put its tokenizer.json or OpenAI's "
                                 "bpe_simple_vocab_16e6.txt.gz in the same folder")
    return found


def _export(model_cfg: dict[str, Any], weights: Path, tokenizer: Path, config: ModelConfig, out: Path,
            spec: str) -> None:
    from clipdex.encoders.export import export_onnx_folder
    from clipdex.encoders.open_clip_vit import build_towers

    state = _load_state(weights, spec)
    try:
        image, text = build_towers(model_cfg, state)
    except (KeyError, RuntimeError, ValueError) as e:
        raise ModelNotFoundError(f"{spec}: the weights do not fit a standard ViT CLIP "
                                 f"({str(e).splitlines()[0][:200]})") from e
    os.makedirs(out.parent, exist_ok=True)
    export_onnx_folder(image, text, tokenizer, config, out, force=True)


def _load_state(weights: Path, spec: str) -> dict[str, Any]:
    import torch

    state: Any
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(weights))
        else:  # weights only: a checkpoint never runs code while it loads
            state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # torch and safetensors raise many kinds
        raise ModelNotFoundError(f"{spec}: cannot read {weights} ({str(e).splitlines()[0][:200]})") from e
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ModelNotFoundError(f"{spec}: {weights} holds no state dict")
    return {k.removeprefix("module."): v.float() for k, v in state.items()}
