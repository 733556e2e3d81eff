"""The standard ViT CLIP of open_clip / OpenAI in plain torch, to load their state dicts and export them.

Key names follow open_clip's (``visual.conv1.weight``, ``transformer.resblocks.0.attn.in_proj_weight``,
``text_projection``...), so a state dict loads with ``strict=True``: a missing or unexpected key is an
error, never a silently random layer. Needs torch (the train extra); only the export imports this module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["build_towers"]


class QuickGELU(nn.Module):
    """OpenAI's GELU approximation, which its CLIP checkpoints were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (written out: its fused
    inference kernel has no ONNX export)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = (x @ self.in_proj_weight.T + self.in_proj_bias).chunk(3, dim=-1)
        split = lambda t: t.reshape(n, length, self.heads, width // self.heads).transpose(1, 2)  # noqa: E731
        scores = split(q) @ split(k).transpose(-2, -1) / (width // self.heads) ** 0.5
        if mask is not None:
            scores = scores + mask
        out = scores.softmax(dim=-1) @ split(v)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    """Pre-norm residual block: self-attention, then a 4x MLP."""

    def __init__(self, width: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(Block(width, heads, quick_gelu) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class Visual(nn.Module):
    """Patches -> class token + positions -> transformer -> the class token, normalised and projected."""

    def __init__(self, cfg: dict[str, Any], embed_dim: int, quick_gelu: bool) -> None:
        super().__init__()
        width, patch = int(cfg["width"]), int(cfg["patch_size"])
        grid = int(cfg["image_size"]) // patch
        heads = width // int(cfg.get("head_width", 64))
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, int(cfg["layers"]), heads, quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed_dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.conv1(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding)
        return self.ln_post(self.transformer(x)[:, 0]) @ self.proj


class Text(nn.Module):
    """Tokens + positions -> causal transformer -> the end-of-text position (the highest id), projected."""

    def __init__(self, cfg: dict[str, Any], embed_dim: int, quick_gelu: bool) -> None:
        super().__init__()
        width, context = int(cfg["width"]), int(cfg.get("context_length", 77))
        self.token_embedding = nn.Embedding(int(cfg.get("vocab_size", 49408)), width)
        self.positional_embedding = nn.Parameter(torch.zeros(context, width))
        self.transformer = Transformer(width, int(cfg["layers"]), int(cfg["heads"]), quick_gelu)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.register_buffer("causal", torch.full((context, context), float("-inf")).triu(1), persistent=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        length = ids.shape[1]
        causal: torch.Tensor = self.causal  # type: ignore[assignment]
        x = self.token_embedding(ids) + self.positional_embedding[:length]
        x = self.ln_final(self.transformer(x, causal[:length, :length]))
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection


class _Tower(nn.Module):
    """One tower for the export, owning the modules it runs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(*inputs)


def build_towers(model_cfg: dict[str, Any], state: dict[str, torch.Tensor]) -> tuple[nn.Module, nn.Module]:
    """(image tower, text tower) with ``state`` loaded strictly.

    Raises:
        KeyError / RuntimeError: the state dict is not this architecture's (missing, unexpected or mis-shaped keys).
    """
    embed, quick_gelu = int(model_cfg["embed_dim"]), bool(model_cfg.get("quick_gelu", False))
    visual = Visual(model_cfg["vision_cfg"], embed, quick_gelu)
    text = Text(model_cfg["text_cfg"], embed, quick_gelu)
    visual.load_state_dict({k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")})
    text_keys = {k: v for k, v in state.items()
                 if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias", "attn_mask")}
    text.load_state_dict(text_keys)
    return _Tower(visual.eval()), _Tower(text.eval())
