"""Retrieval and binding probes on the synthetic world's held-out split.

Binding probes ask whether a model knows which attribute belongs to which
object: on two-object scenes, the true caption "a red circle left of a blue
star" must outscore the same words with the colours swapped, and with the
relation flipped. Bag-of-words models score ~0.5 (chance).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from clipdex.metrics import recall_at_k, relevant_recall_at_k
from clipdex.synth.render import render_scene
from clipdex.synth.world import (
    FLIP,
    WorldConfig,
    caption_predicate,
    captions_for,
    describe_pair,
    relation,
    sample_scenes,
)

__all__ = ["binding_outcomes", "binding_probes", "color_shape_ap", "synth_retrieval"]

EncodeImages = Callable[[list], np.ndarray]
EncodeTexts = Callable[[list[str]], np.ndarray]
Render = Callable[[Any, int], Any]  # (scene, its index) -> PIL image


def binding_probes(encode_images: EncodeImages, encode_texts: EncodeTexts, n: int = 500, seed: int = 99_001,
                   image_size: int = 64, render: Render | None = None) -> dict[str, float]:
    """Accuracy of true caption vs colour-swapped and vs relation-flipped, on two-object scenes."""
    swap, flip = binding_outcomes(encode_images, encode_texts, n, seed, image_size, render)
    return {"color_swap": float(swap.mean()), "relation_flip": float(flip.mean()), "n": float(len(swap))}


def binding_outcomes(encode_images: EncodeImages, encode_texts: EncodeTexts, n: int = 500, seed: int = 99_001,
                     image_size: int = 64, render: Render | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per scene: whether the true caption beat the colour-swapped one, and the relation-flipped one.

    ``render(scene, index)`` draws each scene (default: the training renderer), so the same probes
    run on other rendering styles (:mod:`clipdex.synth.styles`).
    """
    scenes = sample_scenes(n, seed, WorldConfig(min_objects=2, max_objects=2, p_repeat=0.0))
    scenes = [s for s in scenes if s.objects[0].color != s.objects[1].color]
    draw = render or (lambda scene, _i: render_scene(scene, image_size))
    images = encode_images([draw(s, i) for i, s in enumerate(scenes)])
    true, swapped, flipped = [], [], []
    for s in scenes:
        a, b = s.objects
        rel = relation(a, b)
        true.append(describe_pair(a, b, rel))
        swapped.append(describe_pair(replace(a, color=b.color), replace(b, color=a.color), rel))
        flipped.append(describe_pair(a, b, FLIP[rel]))
    t, sw, fl = (encode_texts(x) for x in (true, swapped, flipped))
    st, ss, sf = ((images * e).sum(1) for e in (t, sw, fl))
    return st > ss, st > sf


def color_shape_ap(encode_images: EncodeImages, encode_texts: EncodeTexts, n: int = 500, seed: int = 66_001,
                   render: Render | None = None) -> np.ndarray:
    """Average precision of each colour+shape query ("a red circle") over ``n`` scenes: the images holding
    such an object are the relevant ones (every colour-shape pair present at least twice is a query)."""
    from clipdex.metrics import ap_at_k
    from clipdex.synth.world import COLORS, SHAPES

    scenes = sample_scenes(n, seed)
    draw = render or (lambda scene, _i: render_scene(scene, 64))
    images = encode_images([draw(s, i) for i, s in enumerate(scenes)])
    held = [{(o.color, o.shape) for o in s.objects} for s in scenes]
    pairs = [(c, sh) for c in COLORS for sh in SHAPES if sum((c, sh) in h for h in held) >= 2]
    texts = encode_texts([f"a {c} {sh}" if c[0] not in "aeiou" else f"an {c} {sh}" for c, sh in pairs])
    order = np.argsort(-(texts @ images.T), axis=1, kind="stable")
    relevant = np.array([[p in h for h in held] for p in pairs])
    ranked = np.take_along_axis(relevant, order, axis=1)
    return ap_at_k(ranked, relevant.sum(axis=1), len(scenes))


def synth_retrieval(encode_images: EncodeImages, encode_texts: EncodeTexts, n: int = 1000, seed: int = 77_777,
                    captions_per_image: int = 5, image_size: int = 64, render: Render | None = None
                    ) -> dict[str, float]:
    """Text->image and image->text Recall@1/5/10 on a held-out split (``n`` images x 5 captions).

    Also text->image recall with semantic relevance: any test image whose scene
    the caption is true of counts as a hit (:func:`caption_predicate`), since
    short captions fit several scenes ("a red circle left of a blue star").
    """
    scenes = sample_scenes(n, seed)
    draw = render or (lambda scene, _i: render_scene(scene, image_size))
    images = encode_images([draw(s, i) for i, s in enumerate(scenes)])
    texts, owner = [], []
    for i, s in enumerate(scenes):
        caps = captions_for(s, captions_per_image, random.Random(seed + i))
        texts += caps
        owner += [i] * len(caps)
    text_emb = encode_texts(texts)
    owner_arr = np.asarray(owner)
    t2i = recall_at_k(text_emb @ images.T, owner_arr)
    sims = images @ text_emb.T
    # image -> text: a hit when any of the image's own captions is in the top k
    i2t = relevant_recall_at_k(sims, owner_arr[None, :] == np.arange(len(scenes))[:, None])
    relevant = np.asarray([[holds(s) for s in scenes] for holds in map(caption_predicate, texts)])
    t2i_sem = relevant_recall_at_k(text_emb @ images.T, relevant)
    out: dict[str, float] = {}
    for name, res in (("t2i", t2i), ("i2t", i2t), ("t2i_semantic", t2i_sem)):
        for k, v in res.items():
            out[f"{name}_R@{k}"] = v
    return out
