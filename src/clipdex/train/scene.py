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
    """``(9,)`` per grid cell: 0 when empty, else 1 + the colour-shape pair of its object."""
    out = np.zeros(len(CELLS), np.int64)
    for obj in scene.objects:
        out[CELLS.index(obj.cell)] = 1 + _COLORS.index(obj.color) * len(SHAPES) + SHAPES.index(obj.shape)
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
    """Linear read-outs of the joint space: 9 cells x 81 classes from an image, 80 pairs from a caption."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cells = nn.Linear(dim, len(CELLS) * (CONJUNCTIONS + 1))
        self.pairs = nn.Linear(dim, CONJUNCTIONS)


def scene_loss(heads: SceneHeads, image: torch.Tensor, text: torch.Tensor, cells: np.ndarray,
               pairs: np.ndarray) -> torch.Tensor:
    """Cross-entropy over every cell's object plus binary cross-entropy over the caption's pairs."""
    logits = heads.cells(image).reshape(len(image) * len(CELLS), CONJUNCTIONS + 1)
    cell_loss = F.cross_entropy(logits, torch.from_numpy(cells).reshape(-1))
    pair_loss = F.binary_cross_entropy_with_logits(heads.pairs(text), torch.from_numpy(pairs))
    return cell_loss + CONJUNCTIONS * pair_loss / 8  # a caption names ~2 of 80 pairs: keep both terms ~1
