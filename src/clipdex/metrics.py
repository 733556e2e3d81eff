"""The field's metrics, computed as the benchmarks define them.

Every function returns per-query values (so results can be bootstrapped and
compared) alongside means; scores are NumPy arrays, queries on rows. Large
score matrices are ranked blockwise, never fully sorted.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = [
    "ap_at_k",
    "clipscore",
    "ndcg_at_k",
    "precision_at_k",
    "rank_of_targets",
    "recall_at_k",
    "roc_auc",
    "relevant_recall_at_k",
    "retrieval_recalls",
    "topk_indices",
    "zero_shot_accuracy",
]


TIE = 1e-6


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def rank_of_targets(scores: np.ndarray, targets: np.ndarray, block: int = 2048) -> np.ndarray:
    """0-based rank of each query's target (strictly better candidates counted; ties favour the target)."""
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or len(targets) != len(scores):
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} do not match")
    out = np.empty(len(scores), np.int64)
    for rows in _blocks(len(scores), block):
        s = scores[rows]
        true = s[np.arange(len(s)), targets[rows]]
        out[rows] = (s > true[:, None]).sum(axis=1)
    return out


def recall_at_k(scores: np.ndarray, truth: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries whose single true target ranks in the top ``k``."""
    rank = rank_of_targets(scores, truth)
    return {k: float((rank < k).mean()) for k in ks}


def topk_indices(scores: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Indices of the ``k`` best columns per row, best first (argpartition per block)."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    out = np.empty((len(scores), k), np.int64)
    for rows in _blocks(len(scores), block):
        s = scores[rows]
        part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.tile(np.arange(k), (len(s), 1))
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
        out[rows] = np.take_along_axis(part, order, axis=1)
    return out


def relevant_recall_at_k(scores: np.ndarray, relevant: np.ndarray,
                         ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries with at least one relevant target in the top ``k``."""
    per = relevant_hits(scores, relevant, ks)
    return {k: float(v.mean()) for k, v in per.items()}


def relevant_hits(scores: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Per query: 1.0 when a relevant target is in the top ``k`` (clip_benchmark's definition)."""
    top = topk_indices(scores, max(ks))
    hit = np.take_along_axis(np.asarray(relevant, bool), top, axis=1)
    return {k: np.asarray(hit[:, :k].any(axis=1), dtype=np.float64) for k in ks}


def retrieval_recalls(text_emb: np.ndarray, image_emb: np.ndarray, caption_image: np.ndarray,
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, np.ndarray]:
    """Image-text retrieval with several captions per image, per query.

    text->image R@K: each caption is a query, averaged over all captions.
    image->text R@K: an image counts when any of its captions is in the top K,
    averaged over images. (As clip_benchmark and DataComp compute them.)
    """
    caption_image = np.asarray(caption_image)
    # An image's best own caption sets its bar: image->text counts the captions scoring above it.
    # The bar comes from a row-wise dot product, which may differ from the matmul's rounding by
    # ~1e-7, so scores within TIE of it count as ties (in the image's favour, as for text->image).
    own = (text_emb * image_emb[caption_image]).sum(axis=1)
    best_own = np.full(len(image_emb), np.inf)
    np.minimum.at(best_own, caption_image, -own)
    best_own = -best_own + TIE  # an image without captions keeps -inf and never counts as a hit
    # One blockwise pass over the caption x image scores serves both directions; the full
    # matrix is never held at once.
    t2i_rank = np.empty(len(text_emb), np.int64)
    above = np.zeros(len(image_emb), np.int64)
    for rows in _blocks(len(text_emb), 2048):
        s = text_emb[rows] @ image_emb.T
        exact_own = s[np.arange(len(s)), caption_image[rows]]  # the same rounding as its competitors
        t2i_rank[rows] = (s > exact_own[:, None]).sum(axis=1)
        above += (s > best_own[None, :]).sum(axis=0)
    out = {f"t2i_R@{k}": (t2i_rank < k).astype(np.float64) for k in ks}
    best_rank = np.where(np.isfinite(best_own), above, np.iinfo(np.int64).max)
    for k in ks:
        out[f"i2t_R@{k}"] = (best_rank < k).astype(np.float64)
    return out


def precision_at_k(ranked_relevance: np.ndarray, k: int) -> np.ndarray:
    """Per query: relevant share of the first ``k`` results (rows: 0/1 relevance in rank order)."""
    r = np.asarray(ranked_relevance, np.float64)[:, :k]
    return r.sum(axis=1) / k


def ap_at_k(ranked_relevance: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """INQUIRE's AP@k: sum of precision at each relevant rank <= k, over min(#relevant, k).

    A query with no relevant item scores 0 (it cannot be answered well).
    """
    r = np.asarray(ranked_relevance, np.float64)[:, :k]
    cum = np.cumsum(r, axis=1)
    precision = cum / np.arange(1, r.shape[1] + 1)
    denom = np.minimum(np.asarray(n_relevant, np.float64), k)
    total = (precision * r).sum(axis=1)
    return np.divide(total, denom, out=np.zeros_like(total), where=denom > 0)


def ndcg_at_k(ranked_gain: np.ndarray, all_gains: list[np.ndarray], k: int) -> np.ndarray:
    """nDCG@k with log2 discounts; the ideal ranking sorts each query's gains."""
    g = np.asarray(ranked_gain, np.float64)[:, :k]
    discount = 1.0 / np.log2(np.arange(2, g.shape[1] + 2))
    dcg = (g * discount[: g.shape[1]]).sum(axis=1)
    ideal = np.zeros(len(g))
    for i, gains in enumerate(all_gains):
        best = np.sort(np.asarray(gains, np.float64))[::-1][:k]
        ideal[i] = (best * discount[: len(best)]).sum()
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def zero_shot_accuracy(image_emb: np.ndarray, class_emb: np.ndarray, labels: np.ndarray,
                       ks: tuple[int, ...] = (1, 5)) -> dict[str, np.ndarray | float]:
    """Top-k accuracy per image and mean per-class recall (balanced accuracy)."""
    labels = np.asarray(labels)
    rank = rank_of_targets(image_emb @ class_emb.T, labels)
    out: dict[str, np.ndarray | float] = {f"top{k}": (rank < k).astype(np.float64) for k in ks}
    top1 = rank == 0
    per_class = [top1[labels == c].mean() for c in np.unique(labels)]
    out["mean_per_class_recall"] = float(np.mean(per_class))
    return out


def clipscore(image_emb: np.ndarray, text_emb: np.ndarray, w: float = 2.5) -> np.ndarray:
    """CLIPScore per pair: w * max(cos, 0) (Hessel et al., 2021)."""
    cos = (np.asarray(image_emb) * np.asarray(text_emb)).sum(axis=1)
    return w * np.maximum(cos, 0.0)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties count half)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order), np.float64)
    ranks[order] = np.arange(1, len(order) + 1)
    values = np.concatenate([pos, neg])
    for v in np.unique(values):  # average ranks over ties
        tie = values == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
