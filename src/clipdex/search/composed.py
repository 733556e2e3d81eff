"""Composed image+text queries ("this dress, but red"), training-free.

Methods, by name:

* ``image`` / ``text``: one side alone (the baselines every method must beat);
* ``sum``: ``normalise(w * I(ref) + (1 - w) * T(mod))``;
* ``pdv`` (Prompt Directional Vectors): with the reference's caption ``c`` and
  the composed text ``m = "c, mod"``, the direction ``D = T(m) - T(c)`` moves
  both sides: ``q_text = T(c) + a_t * D``, ``q_img = I(ref) + a_i * D``, and
  ``q = normalise((1 - b) * q_img + b * q_text)`` (each side unit-normed first);
* ``caption-fusion`` (WeiMoCIR-style): ``q = normalise((1 - a) * I(ref) + a * T(mod))``
  scored against each candidate as ``b * mean cos(q, its captions) + (1 - b) * cos(q, its image)``.

The reference image itself is never a result (callers mask it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipdex.encoders.base import Encoder, l2_normalize
from clipdex.errors import BadQueryError

__all__ = ["COMPOSED_METHODS", "ComposedParams", "caption_means", "compose_texts", "composed_queries",
           "fusion_scores"]

COMPOSED_METHODS = ("image", "text", "sum", "pdv", "caption-fusion")


@dataclass(frozen=True)
class ComposedParams:
    """Weights of the composed methods.

    Defaults: the best on a synthetic validation split (300 triplets, seed
    101) of the grid in ``benchmarks/tune_composed.py``, with the built-in
    model; a real dataset's own validation split may prefer others.
    """

    weight: float = 0.4  # sum: share of the image
    alpha_text: float = 1.0  # pdv: step along the direction for the text side
    alpha_image: float = 1.0  # pdv: step for the image side
    beta: float = 0.1  # pdv: share of the text side in the final query
    fusion_alpha: float = 0.5  # caption-fusion: share of the text in the query
    fusion_beta: float = 0.1  # caption-fusion: share of the caption similarity in the score


def compose_texts(captions: list[str], modifications: list[str]) -> list[str]:
    """The composed text of PDV: the reference caption followed by the modification."""
    return [f"{c.rstrip(' .,')}, {m.strip()}" for c, m in zip(captions, modifications, strict=True)]


def composed_queries(method: str, encoder: Encoder, reference: np.ndarray, modifications: list[str],
                     reference_captions: list[str] | None = None,
                     params: ComposedParams = ComposedParams()) -> np.ndarray:
    """One unit query vector per (reference image vector, modification text).

    Raises:
        BadQueryError: unknown method, or ``pdv`` without reference captions.
    """
    if method not in COMPOSED_METHODS:
        raise BadQueryError(f"unknown composed method {method!r}. Available: {', '.join(COMPOSED_METHODS)}")
    reference = l2_normalize(np.asarray(reference, np.float32))
    if method == "image":
        return reference
    text = encoder.encode_texts(modifications)
    if method == "text":
        return text
    if method == "sum":
        return l2_normalize(params.weight * reference + (1 - params.weight) * text)
    if method == "caption-fusion":
        return l2_normalize((1 - params.fusion_alpha) * reference + params.fusion_alpha * text)
    if not reference_captions:
        raise BadQueryError("pdv needs the reference image's caption (stored, or the best prompt-bank match)")
    base = encoder.encode_texts(reference_captions)
    direction = encoder.encode_texts(compose_texts(reference_captions, modifications)) - base
    q_text = l2_normalize(base + params.alpha_text * direction)
    q_image = l2_normalize(reference + params.alpha_image * direction)
    return l2_normalize((1 - params.beta) * q_image + params.beta * q_text)


def fusion_scores(queries: np.ndarray, images: np.ndarray, caption_means: np.ndarray, has_caption: np.ndarray,
                  beta: float) -> np.ndarray:
    """caption-fusion scores: candidates without captions fall back to their image similarity alone.

    ``caption_means`` holds, per candidate, the mean of its unit caption vectors
    (so ``q @ mean`` is the mean cosine to its captions).
    """
    image_part = queries @ images.T
    caption_part = queries @ caption_means.T
    return np.where(has_caption[None, :], beta * caption_part + (1 - beta) * image_part, image_part)


def caption_means(vectors: np.ndarray, owners: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate ``0..n-1``, the mean of the caption vectors it owns, and whether it owns any."""
    means = np.zeros((n, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    counts = np.zeros(n, np.int64)
    owners = np.asarray(owners, np.int64)
    np.add.at(means, owners, vectors)
    np.add.at(counts, owners, 1)
    has = counts > 0
    means[has] /= counts[has, None]
    return means, has
