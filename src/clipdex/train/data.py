"""Training batches: from the synthetic world (rendered on the fly) or any clipdex source.

Both paths go through the same preprocessing as indexing
(:func:`clipdex.encoders.preprocess.preprocess_image`); source images are
decoded by :mod:`clipdex.media`.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from clipdex.encoders.preprocess import ModelConfig, preprocess_image
from clipdex.media.decode import DecodeOptions
from clipdex.media.pipeline import decode_stream
from clipdex.media.pools import iter_source
from clipdex.media.sources import Item, SourceOptions
from clipdex.synth.render import render_scene
from clipdex.synth.styles import STYLES, render_styled, style_names
from clipdex.synth.world import (
    COLORS,
    SHAPES,
    SIZES,
    Scene,
    WorldConfig,
    counterfactual,
    describe_pair,
    pair_negatives,
    plural,
    sample_scene,
    training_caption,
)
from clipdex.train.scene import (
    CELLS,
    CONJUNCTIONS,
    ROLES,
    caption_conjunctions,
    caption_count,
    caption_place,
    caption_roles,
    cell_labels,
)

__all__ = ["Batch", "SourceData", "SynthData", "prefetch", "swap_negative"]


@dataclass
class Batch:
    """Preprocessed pixels ``(b, 3, S, S)``, one caption each, and hard negatives per sample."""

    pixels: np.ndarray
    captions: list[str]
    negatives: list[list[str]] = field(default_factory=list)
    skipped: int = 0
    cells: np.ndarray | None = None  # synthetic data: (b, 9) each grid cell's object (see train.scene)
    pairs: np.ndarray | None = None  # synthetic data: (b, 80) the colour-shape pairs each caption names
    roles: np.ndarray | None = None  # synthetic data: (b, 320) the roles a relation caption gives (see train.scene)
    has_roles: np.ndarray | None = None  # synthetic data: (b,) 1 where the caption is a relation
    places: np.ndarray | None = None  # synthetic data: (b, 720) the pair and cell a caption places, if any
    counts: np.ndarray | None = None  # synthetic data: (b,) how many objects a caption says, -1 where none


class SynthData:
    """Endless fresh scenes; the batch for step ``s`` depends only on (seed, s), so resume is exact."""

    def __init__(self, seed: int, batch_size: int, model: ModelConfig, n_negatives: int = 3,
                 world: WorldConfig = WorldConfig(), p_relation: float = 0.5, counterfactuals: float = 0.0,
                 p_cross: float = 0.0, p_position: float = 0.0, styles: str = "") -> None:
        self.seed, self.batch_size, self.model = seed, batch_size, model
        self.n_negatives, self.world, self.p_relation = n_negatives, world, p_relation
        self.counterfactuals, self.p_cross, self.p_position = counterfactuals, p_cross, p_position
        self.styles = style_names(styles) if styles else ()
        self._style_rng = random.Random(seed)

    def _render(self, scene: Scene) -> Image.Image:
        """The scene drawn by the plain renderer, or in a style drawn at random (style randomisation)."""
        if not self.styles:
            return render_scene(scene, self.model.image_size)
        style = STYLES[self._style_rng.choice(self.styles)]
        return render_styled(scene, style, self.model.image_size, seed=self._style_rng.randrange(1 << 30))

    def batch(self, step: int) -> Batch:
        rng = random.Random(self.seed * 1_000_003 + step)
        # styles draw from their own stream: the scenes and captions are those of the plain run
        self._style_rng = random.Random(self.seed * 7_777_777 + step)
        pixels: list[np.ndarray] = []
        captions: list[str] = []
        negatives: list[list[str]] = []
        cells: list[np.ndarray] = []
        # Counterfactual pairs first: a relation caption and its minimally edited scene, side by side.
        while len(captions) + 2 <= self.batch_size * self.counterfactuals:
            scene = sample_scene(rng, self.world, seed=rng.randrange(1 << 30))
            made = counterfactual(scene, rng)
            if made is None:
                continue
            for sc, pair in ((made[0], made[1]), (made[2], made[3])):
                pixels.append(preprocess_image(self._render(sc), self.model))
                captions.append(describe_pair(*pair))
                negatives.append(pair_negatives(sc, pair, rng, self.n_negatives))
                cells.append(cell_labels(sc))
        while len(captions) < self.batch_size:
            scene = sample_scene(rng, self.world, seed=rng.randrange(1 << 30))
            image = self._render(scene)
            pixels.append(preprocess_image(image, self.model))
            positive, negs = training_caption(scene, rng, max(self.n_negatives, 1), self.p_relation, self.p_cross,
                                              self.p_position)
            captions.append(positive)
            negatives.append(negs[: self.n_negatives])
            cells.append(cell_labels(scene))
        roles = [caption_roles(c) for c in captions]
        places = [caption_place(c) for c in captions]
        return Batch(np.stack(pixels), captions, negatives, cells=np.stack(cells),
                     pairs=np.stack([caption_conjunctions(c) for c in captions]),
                     roles=np.stack([np.zeros(len(ROLES) * CONJUNCTIONS, np.float32) if r is None else r
                                     for r in roles]),
                     has_roles=np.asarray([r is not None for r in roles]),
                     places=np.stack([np.zeros(len(CELLS) * CONJUNCTIONS, np.float32) if p is None else p
                                      for p in places]),
                     counts=np.asarray([caption_count(c) for c in captions], np.int64))


class SourceData:
    """Epochs over a clipdex source, decoded once per epoch through the media pipeline.

    Unreadable images and items without captions are skipped and counted.
    """

    def __init__(self, location: str, seed: int, batch_size: int, model: ModelConfig, n_negatives: int = 0,
                 source: SourceOptions = SourceOptions()) -> None:
        self.items: list[Item] = [i for i in iter_source(location, source)]
        self.no_caption = sum(1 for i in self.items if not i.captions)
        self.items = [i for i in self.items if i.captions]
        self.seed, self.batch_size, self.model, self.n_negatives = seed, batch_size, model, n_negatives
        self.decode_failures = 0

    def steps_per_epoch(self) -> int:
        return max(1, len(self.items) // self.batch_size)

    def batch(self, step: int) -> Batch:
        epoch, index = divmod(step, self.steps_per_epoch())
        order = list(range(len(self.items)))
        random.Random(self.seed * 7919 + epoch).shuffle(order)
        chosen = [self.items[i] for i in order[index * self.batch_size:(index + 1) * self.batch_size]]
        rng = random.Random(self.seed * 1_000_003 + step)
        pixels, captions, negatives, skipped = [], [], [], 0
        options = DecodeOptions(draft_size=self.model.image_size)
        for decoded in decode_stream(chosen, lambda i: i.path, options,
                                     lambda im: preprocess_image(im, self.model)):
            if decoded.error is not None:
                skipped += 1
                continue
            caption = rng.choice(decoded.item.captions)
            pixels.append(decoded.value)
            captions.append(caption)
            negatives.append([swap_negative(caption, rng) for _ in range(self.n_negatives)])
        self.decode_failures += skipped
        if not pixels:
            return Batch(np.zeros((0, 3, self.model.image_size, self.model.image_size), np.float32), [], [], skipped)
        return Batch(np.stack(pixels), captions, negatives, skipped)


_ATTRIBUTES = [set(COLORS), set(SHAPES) | {plural(s) for s in SHAPES}, set(SIZES),
               {"left", "right", "above", "below", "top", "bottom"}]
_STOP = {"a", "an", "the", "of", "and", "in", "on", "at", "with", "to", "is", "are", "that", "this", "its"}


def swap_negative(caption: str, rng: random.Random) -> str:
    """A hard negative for any caption, by word swap.

    The rule: if two words of the same attribute class (two colours, two
    shapes, two sizes, two directions) appear, swap them; else if one
    direction word appears, flip it; else swap two random content words
    (not stop words). The result has the same bag of words but a different
    meaning, which is what binding needs. Returns the caption unchanged only
    when it has fewer than two content words.
    """
    words = caption.split()
    lowered = [w.lower().strip(",.") for w in words]
    for group in _ATTRIBUTES:
        where = [i for i, w in enumerate(lowered) if w in group]
        distinct = [i for i in where if lowered[i] != lowered[where[0]]]
        if where and distinct:
            i, j = where[0], distinct[0]
            words[i], words[j] = words[j], words[i]
            return " ".join(words)
    flips = {"left": "right", "right": "left", "above": "below", "below": "above", "top": "bottom",
             "bottom": "top"}
    for i, w in enumerate(lowered):
        if w in flips:
            words[i] = flips[w]
            return " ".join(words)
    content = [i for i, w in enumerate(lowered) if w not in _STOP]
    if len(content) < 2:
        return caption
    i, j = rng.sample(content, 2)
    words[i], words[j] = words[j], words[i]
    return " ".join(words)


def prefetch(make: Callable[[int], Batch], steps: range, depth: int = 3) -> Iterator[tuple[int, Batch]]:
    """Build batches in a background thread so data loading overlaps the training step."""
    q: queue.Queue[tuple[int, Batch] | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def worker() -> None:
        for step in steps:
            if stop.is_set():
                return
            q.put((step, make(step)))
        q.put(None)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while (got := q.get()) is not None:
            yield got
    finally:
        stop.set()
