"""The k nearest neighbours of every vector among the same vectors (exact, blocked matrix products)."""

from __future__ import annotations

import numpy as np

__all__ = ["knn"]


def knn(queries: np.ndarray, base: np.ndarray, k: int, exclude_self: bool = False,
        block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """``(cosines, indices)`` of each query's ``k`` nearest rows of ``base`` (unit vectors), best first.

    With ``exclude_self`` the queries are ``base`` itself and each row's own match is left out.
    """
    k = min(k, len(base) - (1 if exclude_self else 0))
    if k <= 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    sims_out = np.empty((len(queries), k), np.float32)
    idx_out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), block):
        sims = queries[start:start + block] @ base.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-picked, axis=1)
        idx_out[start:start + block] = np.take_along_axis(part, order, axis=1)
        sims_out[start:start + block] = np.take_along_axis(picked, order, axis=1)
    return sims_out, idx_out
