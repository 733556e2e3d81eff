"""Second-stage re-ranking of the top candidates.

* ``prf``: pseudo-relevance feedback (Rocchio): the query moves towards the
  mean of its top-m image vectors, ``q' = normalise(q + beta * mean(top m))``,
  and the candidates are rescored with ``q'``.
* ``model:SPEC``: another encoder (e.g. a bigger model) embeds the query and
  the candidates' images and rescores them; its cost (decoding and encoding
  N images) is reported in the page's stage timings.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from clipdex.encode import embed_images
from clipdex.encoders.base import Encoder, l2_normalize
from clipdex.errors import BadQueryError
from clipdex.search.query import check_rerank
from clipdex.search.query_vector import embed_query

if TYPE_CHECKING:
    from clipdex.search.query import Query
    from clipdex.store.store import Store
    from clipdex.store.vectors import VectorView

__all__ = ["PRF_BETA", "PRF_TOP", "check_rerank", "rerank"]

PRF_TOP = 10
PRF_BETA = 0.5


@lru_cache(maxsize=4)
def _second_encoder(spec: str) -> Encoder:
    from clipdex.encoders.registry import load_encoder

    return load_encoder(spec)


def rerank(collection: Store, view: VectorView, query: Query, vector: np.ndarray, scores: np.ndarray,
           picked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rescore the candidates ``picked`` (rows of ``view``) and return them best first."""
    spec = query.rerank or "prf"
    if spec == "prf":
        top = view.matrix[picked[:PRF_TOP]]
        moved = l2_normalize((vector + PRF_BETA * top.mean(axis=0))[None, :])[0]
        new = view.matrix[picked] @ moved
    else:
        new = _rescore_with(collection, view, query, picked, _second_encoder(spec[len("model:"):]))
    order = np.argsort(-new, kind="stable")
    return new[order].astype(np.float32), picked[order]


def _rescore_with(collection: Store, view: VectorView, query: Query, picked: np.ndarray,
                  encoder: Encoder) -> np.ndarray:
    if query.item_id is not None or query.terms is not None or query.compose is not None:
        raise BadQueryError("a model re-rank takes a text or image query")
    q = embed_query(query, encoder)
    paths = [collection.item(int(i)).path for i in view.item_ids[picked].tolist()]
    images, ok = embed_images(encoder, paths)
    return np.where(ok, images @ q, -np.inf)
