"""Scene supervision: what the synthetic world's scene graph says each tower should hold.

Contrastive training on the synthetic world starts in two traps. Colour alone
tells most images of a batch apart, so shape words get almost no gradient; and
neither tower has a reason to encode "which colour is which shape" or "what is
left of what" before the other one does (the binding probes sit at chance).
The renderer knows the answers, so both towers are told directly, through
small heads used only while training (``--scene-weight``) and never exported:

- cells: each 3x3 grid cell's colour and shape, from the image tower's
  feature grid (dense labels teach the tower shapes within a few hundred steps);
- pairs: the colour-shape pairs an image holds and a caption names, from
  each unit embedding;
- roles: which colour-shape pairs stand left of / right of / above / below
  another one, from the image embedding and from a relation caption's
  embedding. A caption and its flipped twin give opposite roles, so the
  text tower must read word order, and the image tower must encode places.
- places and counts (``--place-weight``): in which grid cell each colour-shape
  pair stands and how many objects the scene holds, from the image embedding,
  and the same from a caption that names them ("a red circle on the left with
  2 other shapes"). Relations say where objects are relative to each other;
  these say where they are in the picture, which position captions ask.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clipdex.synth.world import CELLS, COLORS, FLIP, SHAPES, Scene, cell_relation, parse_placed, plural

__all__ = ["CELLS", "CONJUNCTIONS", "MAX_OBJECTS", "ROLES", "SceneHeads", "caption_conjunctions", "caption_count",
           "caption_place", "caption_roles", "cell_labels", "image_places", "image_roles", "scene_loss"]

_COLORS = list(COLORS)
CONJUNCTIONS = len(_COLORS) * len(SHAPES)  # colour-shape pairs
ROLES = ("left of", "right of", "above", "below")
_SHAPE_OF = {**{s: i for i, s in enumerate(SHAPES)}, **{plural(s): i for i, s in enumerate(SHAPES)}}
# Binary cross-entropy over 80 or 320 mostly-empty outputs is ~0.1 at the prior; this brings each
# term to the size of the cell cross-entropies (~1) so none is drowned.
_BCE_SCALE = 10.0
_HEAD_INPUT_SCALE = 8.0  # heads read unit vectors; scaled so a linear head can reach confident logits
MAX_OBJECTS = 4  # the world's scenes hold 1-4 objects
_SIGN_SUFFIX = " and a sign that says "


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


def image_roles(cells: np.ndarray) -> np.ndarray:
    """``(b, 4 * 80)`` from :func:`cell_labels` rows: pair p is "left of" another object, etc."""
    out = np.zeros((len(cells), len(ROLES) * CONJUNCTIONS), np.float32)
    for i, grid in enumerate(cells):
        objects = [(CELLS[k], (grid[0, k] - 1) * len(SHAPES) + grid[1, k] - 1)
                   for k in range(len(CELLS)) if grid[0, k] > 0]
        for cell_a, pair_a in objects:
            for cell_b, _ in objects:
                if cell_a != cell_b:
                    out[i, ROLES.index(cell_relation(cell_a, cell_b)) * CONJUNCTIONS + pair_a] = 1.0
    return out


def caption_roles(caption: str) -> np.ndarray | None:
    """``(4 * 80,)`` roles a relation caption ("a red circle left of a blue star") gives its two
    objects, or None for other captions."""
    for rel in ROLES:
        marker = f" {rel} "
        if marker not in caption:
            continue
        left, right = (part.split() for part in caption.lower().split(marker, 1))
        if len(left) < 2 or len(right) < 2 or left[-1] not in SHAPES or right[-1] not in SHAPES \
                or left[-2] not in COLORS or right[-2] not in COLORS:
            return None
        out = np.zeros(len(ROLES) * CONJUNCTIONS, np.float32)
        for words, role in ((left, rel), (right, FLIP[rel])):
            pair = _COLORS.index(words[-2]) * len(SHAPES) + SHAPES.index(words[-1])
            out[ROLES.index(role) * CONJUNCTIONS + pair] = 1.0
        return out
    return None


def image_places(cells: np.ndarray) -> np.ndarray:
    """``(b, 9 * 80)`` from :func:`cell_labels` rows: pair p stands in grid cell k."""
    out = np.zeros((len(cells), len(CELLS) * CONJUNCTIONS), np.float32)
    rows, ks = np.nonzero(cells[:, 0] > 0)
    pairs = (cells[rows, 0, ks] - 1) * len(SHAPES) + cells[rows, 1, ks] - 1
    out[rows, ks * CONJUNCTIONS + pairs] = 1.0
    return out


def _placed(caption: str) -> tuple[tuple[int, str | None, str, str], tuple[int, int], int | None] | None:
    """The grammar's position and cross captions, read by :func:`clipdex.synth.world.parse_placed`."""
    return parse_placed(caption.lower().split(_SIGN_SUFFIX)[0])


def caption_place(caption: str) -> np.ndarray | None:
    """``(9 * 80,)`` one-hot of the pair and cell a caption places ("a red circle on the left"), or None."""
    placed = _placed(caption)
    if placed is None:
        return None
    (_, _, color, shape), cell, _ = placed
    out = np.zeros(len(CELLS) * CONJUNCTIONS, np.float32)
    out[CELLS.index(cell) * CONJUNCTIONS + _COLORS.index(color) * len(SHAPES) + SHAPES.index(shape)] = 1.0
    return out


def caption_count(caption: str) -> int:
    """How many objects a position caption says the scene holds ("... with 2 other shapes" -> 3), or -1.

    A placed object with no "with N other shapes" says nothing about the count:
    cross captions ("a red circle on the left") name one object of a busier scene.
    """
    placed = _placed(caption)
    return -1 if placed is None or placed[2] is None else placed[2] + 1


class SceneHeads(nn.Module):
    """Linear read-outs: cells from the feature grid, pairs and roles from each embedding."""

    def __init__(self, dim: int, grid_width: int) -> None:
        super().__init__()
        self.cells = nn.Linear(grid_width, len(_COLORS) + 1 + len(SHAPES) + 1)
        self.image_pairs = nn.Linear(dim, CONJUNCTIONS)
        self.text_pairs = nn.Linear(dim, CONJUNCTIONS)
        self.image_roles = nn.Linear(dim, len(ROLES) * CONJUNCTIONS)
        self.text_roles = nn.Linear(dim, len(ROLES) * CONJUNCTIONS)
        self.image_places = nn.Linear(dim, len(CELLS) * CONJUNCTIONS)
        self.text_places = nn.Linear(dim, len(CELLS) * CONJUNCTIONS)
        self.image_count = nn.Linear(dim, MAX_OBJECTS)
        self.text_count = nn.Linear(dim, MAX_OBJECTS)


def scene_loss(heads: SceneHeads, grid: torch.Tensor, image: torch.Tensor, text: torch.Tensor,
               cells: np.ndarray, pairs: np.ndarray, roles: np.ndarray, has_roles: np.ndarray,
               role_weight: float = 1.0, places: np.ndarray | None = None, counts: np.ndarray | None = None,
               place_weight: float = 0.0) -> torch.Tensor:
    """Sum of the read-out losses for one batch.

    Args:
        grid: ``(b, w, h, w)`` the image tower's feature grid (pooled here to the 3x3 scene grid).
        image, text: ``(b, d)`` unit embeddings of the images and their captions.
        cells: ``(b, 2, 9)`` :func:`cell_labels`; pairs: ``(b, 80)`` :func:`caption_conjunctions`;
        roles: ``(b, 320)`` :func:`caption_roles` (zeros where none); has_roles: ``(b,)`` 1 for relation captions.
        role_weight: weight of the two role terms against the cell and pair terms.
        places: ``(b, 720)`` :func:`caption_place` (zeros where none); counts: ``(b,)`` :func:`caption_count`.
        place_weight: weight of the place and count terms (0 leaves them out).
    """
    cell_feats = F.adaptive_avg_pool2d(grid, 3).flatten(2).transpose(1, 2)  # (b, 9, w), row-major like CELLS
    logits = heads.cells(cell_feats)
    labels = torch.from_numpy(cells)
    n_col = len(_COLORS) + 1
    loss = (F.cross_entropy(logits[..., :n_col].reshape(-1, n_col), labels[:, 0].reshape(-1))
            + F.cross_entropy(logits[..., n_col:].reshape(-1, logits.shape[-1] - n_col), labels[:, 1].reshape(-1)))
    present = np.zeros((len(cells), CONJUNCTIONS), np.float32)
    rows, cols = np.nonzero(cells[:, 0] > 0)
    present[rows, (cells[rows, 0, cols] - 1) * len(SHAPES) + cells[rows, 1, cols] - 1] = 1.0
    img, txt = image * _HEAD_INPUT_SCALE, text * _HEAD_INPUT_SCALE
    bce = F.binary_cross_entropy_with_logits
    loss = loss + _BCE_SCALE * (bce(heads.image_pairs(img), torch.from_numpy(present))
                                + bce(heads.text_pairs(txt), torch.from_numpy(pairs)))
    # Roles are asked only of the objects present (image) or named (caption): over all 320 outputs
    # the "which objects" part would dominate and left vs right would be a rounding error.
    shown = torch.from_numpy(present.astype(bool))
    role = _role_loss(heads.image_roles(img), torch.from_numpy(image_roles(cells)), shown)
    caption_roles_t = torch.from_numpy(roles)
    named = caption_roles_t.reshape(len(roles), len(ROLES), CONJUNCTIONS).sum(1) > 0
    named &= torch.from_numpy(has_roles.astype(bool))[:, None]
    role = role + _role_loss(heads.text_roles(txt), caption_roles_t, named)
    loss = loss + role_weight * role
    if place_weight > 0 and places is not None and counts is not None:
        loss = loss + place_weight * _place_loss(heads, img, txt, cells, places, counts, shown)
    return loss


def _place_loss(heads: SceneHeads, img: torch.Tensor, txt: torch.Tensor, cells: np.ndarray,
                places: np.ndarray, counts: np.ndarray, shown: torch.Tensor) -> torch.Tensor:
    """Cells of the present (image) or placed (caption) pairs, and the object count from both sides."""
    k = len(CELLS)
    loss = _per_pair_loss(heads.image_places(img), torch.from_numpy(image_places(cells)), shown, k)
    places_t = torch.from_numpy(places)
    placed = places_t.reshape(len(places), k, CONJUNCTIONS).sum(1) > 0
    loss = loss + _per_pair_loss(heads.text_places(txt), places_t, placed, k)
    n_objects = torch.from_numpy((cells[:, 0] > 0).sum(1) - 1)
    loss = loss + F.cross_entropy(heads.image_count(img), n_objects)
    said = torch.from_numpy(counts >= 0)
    if said.any():
        loss = loss + F.cross_entropy(heads.text_count(txt)[said], torch.from_numpy(counts)[said] - 1)
    return loss


def _role_loss(logits: torch.Tensor, targets: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the 4 roles of each selected colour-shape pair.

    ``logits``/``targets``: ``(b, 4 * 80)``; ``objects``: ``(b, 80)`` which pairs to ask about.
    """
    return _per_pair_loss(logits, targets, objects, len(ROLES))


def _per_pair_loss(logits: torch.Tensor, targets: torch.Tensor, objects: torch.Tensor, k: int) -> torch.Tensor:
    """Binary cross-entropy over the ``k`` outputs (roles, cells) of each selected colour-shape pair."""
    if not objects.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(_per_pair(logits, k)[objects], _per_pair(targets, k)[objects])


def _per_pair(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(b, k * 80)`` -> ``(b, 80, k)``: the k outputs of each colour-shape pair side by side."""
    return x.reshape(len(x), k, CONJUNCTIONS).transpose(1, 2)
