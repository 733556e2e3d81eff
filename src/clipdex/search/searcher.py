"""The search pipeline: query -> embed -> candidates (exact or ANN + delta) -> hits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from clipdex.errors import BadQueryError, DecodeError
from clipdex.media.decode import decode_image
from clipdex.search.query import Hit, Query, Target
from clipdex.search.topk import exact_topk, merge_topk

if TYPE_CHECKING:
    from clipdex.encoders.base import Encoder
    from clipdex.store.collection import Collection
    from clipdex.store.vectors import VectorView

__all__ = ["embed_query", "search"]


def embed_query(query: Query, encoder: Encoder) -> np.ndarray:
    """The query's unit vector ``(dim,)``.

    Raises:
        BadQueryError: the query is invalid or its image cannot be decoded.
    """
    query.validate()
    if query.text is not None:
        return encoder.encode_texts([query.text.strip()])[0]
    image = query.image
    if not isinstance(image, Image.Image):
        try:
            image = decode_image(image)  # type: ignore[arg-type]
        except DecodeError as e:
            raise BadQueryError(f"query image: {e}") from e
    return encoder.encode_images([image])[0]


def search(collection: Collection, query: Query, encoder: Encoder) -> list[Hit]:
    """Run one query against a collection.

    Args:
        collection: where to search.
        query: what to look for (validated here).
        encoder: must be the collection's encoder.

    Returns:
        Up to ``query.k`` hits, best first.

    Raises:
        BadQueryError: the query is invalid.
        CollectionError: the encoder does not match the collection.
    """
    collection.check_encoder(encoder.spec)
    vector = embed_query(query, encoder)
    kind = "caption" if query.target == Target.CAPTIONS else "image"
    view = collection.vectors(kind)
    if query.where:
        allowed = collection.filter_item_ids(query.where)
        rows = np.flatnonzero(np.isin(view.item_ids, allowed))
        scores, local = exact_topk(view.matrix[rows], vector, query.k)
        picked = rows[local]
    elif kind == "image" and collection.ann() is not None:
        scores, picked = _ann_with_delta(collection, view, vector, query.k)
    else:
        scores, picked = exact_topk(view.matrix, vector, query.k)
    if query.min_score is not None:
        keep = scores >= query.min_score
        scores, picked = scores[keep], picked[keep]
    return _hits(collection, view, scores, picked, kind)


def _ann_with_delta(collection: Collection, view: VectorView, vector: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """ANN over the indexed snapshot + exact over vectors added since; rows of ``view``."""
    ann = collection.ann()
    assert ann is not None
    removed = len(ann.vec_ids) - int(np.isin(ann.vec_ids, view.vec_ids, assume_unique=True).sum())
    ann_scores, ann_ids = ann.search(vector[None, :], k + max(removed, 0))
    rows = np.searchsorted(view.vec_ids, ann_ids[0])
    rows = np.minimum(rows, max(len(view.vec_ids) - 1, 0))
    live = (ann_ids[0] >= 0) & (view.vec_ids[rows] == ann_ids[0]) if len(view) else np.zeros(0, bool)
    delta = np.flatnonzero(~np.isin(view.vec_ids, ann.vec_ids, assume_unique=True))
    d_scores, d_local = exact_topk(view.matrix[delta], vector, k)
    return merge_topk([ann_scores[0][live], d_scores], [rows[live], delta[d_local]], k)


def _hits(collection: Collection, view: VectorView, scores: np.ndarray, rows: np.ndarray,
          kind: str) -> list[Hit]:
    item_ids = view.item_ids[rows]
    records = collection.items(item_ids.tolist())
    texts = collection.caption_texts(view.caption_ids[rows].tolist()) if kind == "caption" else {}
    hits = []
    for score, row, item_id in zip(scores.tolist(), rows.tolist(), item_ids.tolist(), strict=True):
        record = records.get(item_id)
        if record is None:
            continue  # removed between loading vectors and fetching rows
        caption = texts.get(int(view.caption_ids[row])) if kind == "caption" else (
            record.captions[0] if record.captions else None)
        hits.append(Hit(item_id, score, record.path, caption, record.metadata, record.captions))
    return hits
