"""The built-in dual encoder: a tiny ViT and a small text transformer.

Read top to bottom: attention block, image tower, text tower, the pair.
Both towers end in a linear projection to a shared space; the runtime
L2-normalises, so the towers return raw projections.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DualEncoder", "ImageTower", "TinyConfig"]


@dataclass(frozen=True)
class TinyConfig:
    """Architecture of the built-in model (saved beside every checkpoint)."""

    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 96
    vision_layers: int = 4
    text_width: int = 96
    text_layers: int = 3
    heads: int = 4
    vocab_size: int = 128
    context_length: int = 32
    embed_dim: int = 64
    stem: str = "patch"  # "patch": one strided conv (ViT); "conv": three 3x3/2 convs; "cnn": four conv-BN layers
    text_conv: int = 0  # residual width-3 convolutions over the words before the text transformer
    grid_readout: bool = False  # image embedding also reads every grid token through its own weights
    arch: str = "tiny-dual-v1"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Block(nn.Module):
    """Pre-norm transformer block; attention written out so ONNX export is plain MatMul/Softmax."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(w // self.heads))
        if bias is not None:
            att = att + bias  # (b, 1, 1, n): -inf-like on padding keys
        out = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, w)
        x = x + self.proj(out)
        return x + self.mlp(self.ln2(x))


def _stem(cfg: TinyConfig) -> nn.Module:
    """Pixels -> a (image_size / patch_size)^2 grid of tokens.

    The conv stem sees across patch borders, which helps a small ViT tell shapes
    apart when an object spans a few patches (Xiao et al., 2021).
    """
    if cfg.stem == "patch":
        return nn.Conv2d(3, cfg.vision_width, cfg.patch_size, cfg.patch_size)
    if cfg.stem not in ("conv", "cnn") or cfg.patch_size != 8:
        raise ValueError(f"unknown stem {cfg.stem!r} for patch size {cfg.patch_size}. Available: patch, conv, cnn (8)")
    w = cfg.vision_width
    if cfg.stem == "cnn":
        return _cnn_stem(w)
    return nn.Sequential(nn.Conv2d(3, w // 4, 3, 2, 1), nn.GELU(), nn.Conv2d(w // 4, w // 2, 3, 2, 1), nn.GELU(),
                         nn.Conv2d(w // 2, w, 3, 2, 1))


def _cnn_stem(width: int) -> nn.Module:
    """A small CNN down to a grid at 1/8 of the image: 3x3 convs with batch norm, strides 2, 1, 2, 2.

    Each output cell sees 19 px, a whole object of the synthetic world, so
    colour and shape meet in one local feature before attention mixes the
    cells; the ViT's 8 px patches split objects and learned shapes slowly.
    """
    widths = (3, width // 4, width // 2, 3 * width // 4, width)
    layers: list[nn.Module] = []
    for c_in, c_out, stride in zip(widths[:-1], widths[1:], (2, 1, 2, 2), strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]
    return nn.Sequential(*layers)


class ImageTower(nn.Module):
    """Patches -> [CLS] + positions -> blocks -> LayerNorm(CLS) -> projection."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.patch = _stem(cfg)
        self.width = cfg.vision_width
        # CLIP's init: positions at width^-0.5, so where a patch is matters from the first step
        scale = cfg.vision_width**-0.5
        self.cls = nn.Parameter(torch.randn(1, 1, cfg.vision_width) * scale)
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, cfg.vision_width) * scale)
        self.blocks = nn.ModuleList(Block(cfg.vision_width, cfg.heads) for _ in range(cfg.vision_layers))
        self.ln = nn.LayerNorm(cfg.vision_width)
        self.head = nn.Linear(cfg.vision_width, cfg.embed_dim, bias=False)
        # One weight matrix per grid position: the embedding then holds "what" x "where" as a sum of
        # per-place terms, which a caption such as "a red circle left of a blue star" can be matched
        # against linearly. Attention pooling into [CLS] adds what and where separately at first.
        self.grid_head = nn.Linear(n_patches * cfg.vision_width, cfg.embed_dim, bias=False) \
            if cfg.grid_readout else None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.features(pixel_values)[0]

    def features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The projection and the stem's feature grid ``(b, width, g, g)`` (read by scene supervision)."""
        grid = self.patch(pixel_values)
        x = grid.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        x = self.ln(x)
        out = self.head(x[:, 0])
        if self.grid_head is not None:
            out = out + self.grid_head(x[:, 1:].flatten(1))
        return out, grid


class WordConv(nn.Module):
    """Residual width-3 convolutions over word embeddings (padding zeroed first).

    They hand the transformer each word together with its neighbours
    ("red circle" is one feature, "blue circle" another) from the first step,
    so a caption and its colour-swapped twin do not start out identical.
    Zeroing the padding makes a padded batch and one unpadded caption (as
    exported) give the same features.
    """

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        # Word embeddings start at 0.02; at that scale GELU is nearly linear and the convolutions
        # would add up to a bag of words. Normalised first, they make real n-gram features.
        self.ln = nn.LayerNorm(width)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, padding=1) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[:, None, :]
        h = self.ln(x).transpose(1, 2) * keep
        for conv in self.convs:
            h = h + F.gelu(conv(h)) * keep
        return h.transpose(1, 2)


class TextTower(nn.Module):
    """Tokens (+ word convolutions) + positions -> bidirectional blocks (padding masked) -> masked mean
    -> projection."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.text_width)
        # CLIP's init (tokens 0.02, positions 0.01): nn.Embedding's default N(0, 1) would drown
        # the positions 50:1 and the tower would start, and stay, a bag of words.
        nn.init.normal_(self.tok.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(1, cfg.context_length, cfg.text_width) * 0.01)
        self.words = WordConv(cfg.text_width, cfg.text_conv) if cfg.text_conv else None
        self.blocks = nn.ModuleList(Block(cfg.text_width, cfg.heads) for _ in range(cfg.text_layers))
        self.ln = nn.LayerNorm(cfg.text_width)
        self.head = nn.Linear(cfg.text_width, cfg.embed_dim, bias=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1]
        x = self.tok(input_ids)
        mask = attention_mask.to(x.dtype)
        if self.words is not None:
            x = self.words(x, mask)
        x = x + self.pos[:, :n]
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        for block in self.blocks:
            x = block(x, bias)
        x = self.ln(x)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return self.head(pooled)


class DualEncoder(nn.Module):
    """Both towers plus the learnable temperature (and bias, for the SigLIP loss)."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = ImageTower(cfg)
        self.textual = TextTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(pixels), dim=-1)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.textual(ids, mask), dim=-1)
