"""Words: BM25 (bm25s) over each item's captions, file name and OCR text, and its fusion with dense scores.

The index is built in memory on first use and rebuilt when the collection
changes (its version moves). Fusion is reciprocal rank fusion (k = 60) or a
convex combination of min-max normalised scores (``alpha`` = dense share).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clipdex.errors import MissingExtraError

if TYPE_CHECKING:
    from clipdex.store.store import Store

__all__ = ["LexicalIndex", "convex_fusion", "item_texts", "lexical_index", "rrf_fusion"]

RRF_K = 60
_SPLIT_NAME = re.compile(r"[_\-.\s]+")


def item_texts(collection: Store) -> tuple[np.ndarray, list[str]]:
    """(item ids, one text per item): its captions, the words of its file name, and its OCR text."""
    ids, texts = [], []
    for item_id, path, metadata, captions in collection.text_rows():
        stem = os.path.splitext(os.path.basename(path))[0]
        ids.append(item_id)
        texts.append(" ".join([*captions, _SPLIT_NAME.sub(" ", stem), str(metadata.get("ocr", ""))]))
    return np.asarray(ids, np.int64), texts


@dataclass
class LexicalIndex:
    """A BM25 index over a collection's items at one version."""

    version: int
    item_ids: np.ndarray
    retriever: Any

    def search(self, text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, item ids) of up to ``k`` items sharing a word with ``text``, best first."""
        import bm25s

        if len(self.item_ids) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        k = min(k, len(self.item_ids))
        tokens = bm25s.tokenize([text], stopwords="en", show_progress=False)
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        keep = scores[0] > 0
        return scores[0][keep].astype(np.float32), self.item_ids[docs[0][keep]]


_CACHE: dict[str, LexicalIndex] = {}
_LOCK = threading.Lock()


def lexical_index(collection: Store) -> LexicalIndex:
    """The collection's BM25 index, rebuilt only when the collection changed."""
    try:
        import bm25s
    except ImportError as e:
        raise MissingExtraError("lexical and hybrid search need bm25s: pip install 'clipdex[search]'") from e
    key = str(collection.path)
    version = collection.version()
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.version == version:
            return cached
        ids, texts = item_texts(collection)
        retriever = bm25s.BM25()
        if texts:
            retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        _CACHE[key] = LexicalIndex(version, ids, retriever)
        return _CACHE[key]


def rrf_fusion(rankings: list[np.ndarray], k: int = RRF_K) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of ranked id lists: (fused scores, ids), best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking.tolist()):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank + 1)
    ids = np.asarray(sorted(fused, key=lambda i: -fused[i]), np.int64)
    return np.asarray([fused[i] for i in ids.tolist()], np.float32), ids


def convex_fusion(dense: tuple[np.ndarray, np.ndarray], lexical: tuple[np.ndarray, np.ndarray],
                  alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``alpha * dense + (1 - alpha) * lexical`` after min-max normalising each list (absent = 0)."""
    def normalised(scores: np.ndarray) -> np.ndarray:
        if len(scores) == 0:
            return scores
        low, high = float(scores.min()), float(scores.max())
        return (scores - low) / (high - low) if high > low else np.ones_like(scores)

    fused: dict[int, float] = {}
    for weight, (scores, ids) in ((alpha, dense), (1 - alpha, lexical)):
        for score, item in zip(normalised(scores).tolist(), ids.tolist(), strict=True):
            fused[item] = fused.get(item, 0.0) + weight * score
    ids = np.asarray(sorted(fused, key=lambda i: -fused[i]), np.int64)
    return np.asarray([fused[i] for i in ids.tolist()], np.float32), ids
