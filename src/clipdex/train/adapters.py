"""Models the trainer can train: the built-in architecture and transformers CLIP/SigLIP.

Each adapter gives the trainer the same five things: ``module`` (parameters),
``encode_image``, ``encode_text`` (unit vectors), ``logit_scale``/``logit_bias``,
a tokenizer and the runtime ``ModelConfig`` used for preprocessing and export.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clipdex.encoders.preprocess import ModelConfig
from clipdex.errors import EncoderSpecError, ModelNotFoundError
from clipdex.quiet import verbose
from clipdex.synth.world import vocabulary
from clipdex.train.model import DualEncoder, TinyConfig
from clipdex.train.tokenizer import build_word_tokenizer

__all__ = ["Adapter", "make_adapter"]


@dataclass
class Adapter:
    module: torch.nn.Module
    image_tower: torch.nn.Module
    text_tower: torch.nn.Module
    tokenizer: Any
    runtime: ModelConfig
    arch: dict[str, Any]
    logit_scale: torch.Tensor
    logit_bias: torch.Tensor

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encs = self.tokenizer.encode_batch(texts)
        return (torch.tensor(np.asarray([e.ids for e in encs]), dtype=torch.long),
                torch.tensor(np.asarray([e.attention_mask for e in encs]), dtype=torch.long))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_tower(pixels), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        ids, mask = self.tokenize(texts)
        return F.normalize(self.text_tower(ids, mask), dim=-1)


def make_adapter(spec: str, freeze: str = "none", stem: str = "patch", text_conv: int = 0,
                 grid_readout: bool = False, embed_dim: int = 64) -> Adapter:
    """``builtin`` (the tiny architecture, fresh weights) or ``hf:DIR`` (fine-tune)."""
    if spec in ("builtin", "builtin-arch", "tiny"):
        return _builtin(stem, text_conv, grid_readout, embed_dim)
    if spec.startswith("hf:"):
        return _hf(spec[3:], freeze)
    raise EncoderSpecError(f"cannot train {spec!r}. Available: builtin, hf:DIR")


def _builtin(stem: str = "patch", text_conv: int = 0, grid_readout: bool = False,
             embed_dim: int = 64) -> Adapter:
    tok = build_word_tokenizer(vocabulary())
    cfg = TinyConfig(vocab_size=max(128, tok.get_vocab_size()), stem=stem, text_conv=text_conv,
                     grid_readout=grid_readout, embed_dim=embed_dim)
    if stem == "cnn":  # the CNN does the per-object work; two attention blocks relate the objects
        cfg = replace(cfg, vision_width=128, vision_layers=2)
    tok.enable_truncation(cfg.context_length)
    tok.enable_padding(pad_id=0)
    model = DualEncoder(cfg)
    runtime = ModelConfig(image_size=cfg.image_size, dim=cfg.embed_dim, context_length=cfg.context_length,
                          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), pad_id=0, name="shapes-tiny")
    arch = cfg.to_dict()
    if stem == "patch":
        del arch["stem"]  # checkpoints from before the option stay resumable
    for option in ("text_conv", "grid_readout"):  # off: checkpoints from before the option stay resumable
        if not arch[option]:
            del arch[option]
    return Adapter(model, model.visual, model.textual, tok, runtime, arch, model.logit_scale,
                   model.logit_bias)


class _HFImage(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixel_values)
        return out if isinstance(out, torch.Tensor) else out.pooler_output


class _HFText(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return out if isinstance(out, torch.Tensor) else out.pooler_output


def _hf(path: str, freeze: str) -> Adapter:
    from tokenizers import Tokenizer
    from transformers import AutoConfig, CLIPModel, SiglipModel

    from clipdex.encoders.hf import model_config

    folder = Path(path)
    if not folder.is_dir():
        raise ModelNotFoundError(f"hf:{path}: not a local model folder (fine-tuning needs the weights on disk)")
    from transformers.utils import logging as hf_logging

    if not verbose():
        hf_logging.disable_progress_bar()  # clipdex draws its own progress; transformers' bars would interleave
        hf_logging.set_verbosity_error()
    kind = AutoConfig.from_pretrained(folder).model_type
    cls = CLIPModel if kind == "clip" else SiglipModel
    model = cls.from_pretrained(folder, attn_implementation="eager")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    runtime = model_config(folder, model, kind, folder / "tokenizer.json", f"hf:{path}")
    tok.enable_truncation(runtime.context_length)
    tok.enable_padding(pad_id=runtime.pad_id, length=runtime.context_length if runtime.pad_to_context else None)
    image, text = _HFImage(model), _HFText(model)
    if freeze in ("image", "text"):  # LiT-style: one tower locked
        locked = model.vision_model if freeze == "image" else model.text_model
        for p in locked.parameters():
            p.requires_grad_(False)
    bias = getattr(model, "logit_bias", None)
    return Adapter(model, image, text, tok, runtime, {"hf": str(folder.resolve()), "type": kind}, model.logit_scale,
                   bias if bias is not None else torch.zeros(()))
