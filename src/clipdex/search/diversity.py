"""Result diversity: maximal marginal relevance and near-duplicate collapsing over a candidate list."""

from __future__ import annotations

import numpy as np

__all__ = ["collapse_near_duplicates", "mmr"]


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Greedy MMR: pick ``k`` positions maximising ``lam * relevance - (1 - lam) * max cos to those picked``.

    ``lam = 1`` is the plain ranking; lower values trade relevance for variety.
    """
    n = len(relevance)
    if n == 0 or k <= 0:
        return np.zeros(0, np.int64)
    picked = [int(np.argmax(relevance))]
    closest = vectors @ vectors[picked[0]]
    taken = np.zeros(n, bool)
    taken[picked[0]] = True
    while len(picked) < min(k, n):
        gain = lam * relevance - (1 - lam) * closest
        gain[taken] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        taken[best] = True
        closest = np.maximum(closest, vectors @ vectors[best])
    return np.asarray(picked, np.int64)


def collapse_near_duplicates(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Positions to keep, in order: each dropped one is within ``threshold`` cosine of a kept one ranked above."""
    keep: list[int] = []
    for i in range(len(vectors)):
        if not keep or float(np.max(vectors[keep] @ vectors[i])) < threshold:
            keep.append(i)
    return np.asarray(keep, np.int64)
