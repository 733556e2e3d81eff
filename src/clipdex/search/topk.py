"""Exact top-k by inner product, and merging candidate lists."""

from __future__ import annotations

import numpy as np

__all__ = ["exact_topk", "merge_topk"]


def exact_topk(matrix: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and row indices of the ``k`` best rows, best first.

    ``matrix`` is float32 ``(n, d)``, ``query`` float32 ``(d,)``; one BLAS
    matrix-vector product, so the cost is one pass over the matrix.
    """
    n = len(matrix)
    if n == 0 or k <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores = matrix @ query
    k = min(k, n)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(n)
    order = part[np.argsort(-scores[part], kind="stable")]
    return scores[order], order.astype(np.int64)


def merge_topk(scores: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge candidate lists, keeping each id once with its best score."""
    if not scores:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    all_scores = np.concatenate(scores)
    all_ids = np.concatenate(ids)
    order = np.argsort(-all_scores, kind="stable")
    _, first = np.unique(all_ids[order], return_index=True)
    keep = order[np.sort(first)]
    return all_scores[keep][:k], all_ids[keep][:k]
