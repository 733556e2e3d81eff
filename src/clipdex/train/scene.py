"""Scene supervision: what the synthetic world's scene graph says each embedding should hold.

Contrastive training on the synthetic world learns colours and counts but not
which colour belongs to which shape, nor where things are (the binding probes
stay at chance). The renderer knows the answer, so the joint space can be told
directly: from an image embedding, predict each grid cell's object (colour
and shape together, or empty); from a caption embedding, predict which
colour-shape pairs it mentions. Both are small heads on the unit embeddings,
used only while training (``--scene-weight``) and never exported.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clipdex.synth.world import CELLS, COLORS, SHAPES, Scene, plural

__all__ = ["CONJUNCTIONS", "SceneHeads", "caption_conjunctions", "cell_labels", "scene_loss"]

_COLORS = list(COLORS)
CONJUNCTIONS = len(_COLORS) * len(SHAPES)  # colour-shape pairs
_SHAPE_OF = {**{s: i for i, s in enumerate(SHAPES)}, **{plural(s): i for i, s in enumerate(SHAPES)}}


def cell_labels(scene: Scene) -> np.ndarray:
    """``(2, 9)``: per grid cell, 1 + its object's colour and 1 + its shape (0 where the cell is empty)."""
    out = np.zeros((2, len(CELLS)), np.int64)
    for obj in scene.objects:
        out[:, CELLS.index(obj.cell)] = 1 + _COLORS.index(obj.color), 1 + SHAPES.index(obj.shape)
    return out


def caption_conjunctions(caption: str) -> np.ndarray:
    """``(80,)`` multi-hot of the colour-shape pairs a caption names ("two small red circles" -> red circle):
    in the grammar a colour stands right before its shape, after an optional size."""
    out = np.zeros(CONJUNCTIONS, np.float32)
    words = caption.lower().replace(",", " ").split()
    for i, word in enumerate(words):
        shape = _SHAPE_OF.get(word)
        if shape is not None and i and words[i - 1] in COLORS:
            out[_COLORS.index(words[i - 1]) * len(SHAPES) + shape] = 1.0
    return out


class SceneHeads(nn.Module):
    """Read-outs of the joint space: each cell's colour (11 ways) and shape (9 ways) from an image,
    the 80 colour-shape pairs from a caption."""

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.cells = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(),
                                   nn.Linear(hidden, len(CELLS) * (len(_COLORS) + 1 + len(SHAPES) + 1)))
        self.pairs = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, CONJUNCTIONS))

    def cell_logits(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(b, 9, 11)`` colour and ``(b, 9, 9)`` shape logits."""
        out = self.cells(image).reshape(len(image), len(CELLS), -1)
        return out[..., :len(_COLORS) + 1], out[..., len(_COLORS) + 1:]


def scene_loss(heads: SceneHeads, image: torch.Tensor, text: torch.Tensor, cells: np.ndarray,
               pairs: np.ndarray) -> torch.Tensor:
    """Cross-entropy over every cell's colour and shape plus binary cross-entropy over the caption's pairs."""
    colour, shape = heads.cell_logits(image)
    labels = torch.from_numpy(cells)  # (b, 2, 9)
    cell_loss = (F.cross_entropy(colour.reshape(-1, colour.shape[-1]), labels[:, 0].reshape(-1))
                 + F.cross_entropy(shape.reshape(-1, shape.shape[-1]), labels[:, 1].reshape(-1)))
    pair_loss = F.binary_cross_entropy_with_logits(heads.pairs(text), torch.from_numpy(pairs))
    return cell_loss + CONJUNCTIONS * pair_loss / 8  # a caption names ~2 of 80 pairs: keep both terms ~1
