"""Retrieval metrics on similarity matrices (NumPy in, floats out)."""

from __future__ import annotations

import numpy as np

__all__ = ["recall_at_k", "relevant_recall_at_k"]


def recall_at_k(scores: np.ndarray, truth: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries whose true target ranks in the top ``k``.

    Args:
        scores: ``(n_queries, n_targets)`` similarities.
        truth: ``(n_queries,)`` index of each query's target.
    """
    scores = np.asarray(scores)
    truth = np.asarray(truth)
    if scores.ndim != 2 or len(truth) != len(scores):
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} do not match")
    true_scores = scores[np.arange(len(scores)), truth]
    rank = (scores > true_scores[:, None]).sum(axis=1)  # ties count in the query's favour
    return {k: float((rank < k).mean()) for k in ks}


def relevant_recall_at_k(scores: np.ndarray, relevant: np.ndarray,
                         ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries with at least one relevant target in the top ``k``.

    ``relevant`` is a boolean ``(n_queries, n_targets)`` matrix (several targets
    may satisfy a short caption).
    """
    order = np.argsort(-np.asarray(scores), axis=1, kind="stable")
    hit = np.take_along_axis(np.asarray(relevant, bool), order, axis=1)
    return {k: float(hit[:, :k].any(axis=1).mean()) for k in ks}
