"""The k nearest neighbours of vectors among other (or the same) unit vectors: exact, by faiss's flat
inner-product search (BLAS blocks and a heap, several times faster than a NumPy argpartition)."""

from __future__ import annotations

import numpy as np

__all__ = ["knn"]


def knn(queries: np.ndarray, base: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(cosines, indices)`` of each query's ``k`` nearest rows of ``base`` (unit vectors), best first.

    With ``exclude_self`` the queries are ``base`` itself and each row's own match is left out.
    """
    import faiss

    k = min(k, len(base) - (1 if exclude_self else 0))
    if k <= 0 or not len(queries):
        return np.zeros((len(queries), max(k, 0)), np.float32), np.zeros((len(queries), max(k, 0)), np.int64)
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, np.float32))
    sims, idx = index.search(np.ascontiguousarray(queries, np.float32), k + (1 if exclude_self else 0))
    if not exclude_self:
        return sims, idx.astype(np.int64)
    own = idx == np.arange(len(queries))[:, None]
    # drop each row's own match (or, where an exact copy outranked it, the last neighbour)
    drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
    keep = np.ones_like(own)
    keep[np.arange(len(queries)), drop] = False
    return sims[keep].reshape(len(queries), k), idx[keep].reshape(len(queries), k).astype(np.int64)
