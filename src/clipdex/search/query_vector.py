"""A query as one unit vector: text, image, stored item, given vector, weighted terms, or composed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from clipdex.encode import decode_options
from clipdex.encoders.base import Encoder
from clipdex.errors import BadQueryError, DecodeError
from clipdex.media.decode import decode_image
from clipdex.search.composed import composed_queries
from clipdex.search.query import Query
from clipdex.search.terms import Term
from clipdex.store.store import Store

__all__ = ["combine_terms", "embed_query"]


def embed_query(query: Query, encoder: Encoder, collection: Store | None = None) -> np.ndarray:
    """The query's unit vector ``(dim,)``.

    Raises:
        BadQueryError: the query is invalid, its image cannot be decoded, its
            vector has the wrong shape, or its item has no stored vector.
    """
    query.validate()
    if query.compose is not None:
        return _composed_vector(query, encoder, collection)
    if query.terms is not None:
        return combine_terms(query.terms, encoder, collection)
    if query.vector is not None:
        vec = np.asarray(query.vector, dtype=np.float32).reshape(-1)
        if vec.shape != (encoder.dim,) or not np.isfinite(vec).all() or not np.any(vec):
            raise BadQueryError(f"the query vector must be {encoder.dim} finite numbers, not all zero")
        return vec / np.linalg.norm(vec)
    if query.item_id is not None:
        if collection is None:
            raise BadQueryError("an item_id query needs a collection")
        view = collection.vectors("image")
        rows = np.flatnonzero(view.item_ids == int(query.item_id))
        if len(rows) == 0:
            raise BadQueryError(f"no image vector for item {query.item_id}")
        return view.matrix[rows[0]].copy()
    if query.text is not None:
        return encoder.encode_texts([query.text.strip()])[0]
    image = query.image
    if not isinstance(image, Image.Image):
        try:
            # decoded as indexing decodes (reduced JPEG decoding to the model's size), so a query file
            # and the same file in the collection give the same vector
            image = decode_image(image, decode_options(encoder))  # type: ignore[arg-type]
        except DecodeError as e:
            raise BadQueryError(f"query image: {e}") from e
    return encoder.encode_images([image])[0]


def _composed_vector(query: Query, encoder: Encoder, collection: Store | None) -> np.ndarray:
    """The reference's vector moved by the modification text (``query.compose`` names the method)."""
    reference = embed_query(replace(query, text=None, compose=None), encoder, collection)
    caption = None
    if query.compose == "pdv":
        caption = _reference_caption(query, reference, collection)
    return composed_queries(query.compose or "sum", encoder, reference[None, :], [query.text or ""],
                            [caption] if caption else None)[0]


def _reference_caption(query: Query, reference: np.ndarray, collection: Store | None) -> str:
    """The reference item's stored caption, else the collection's caption nearest to the reference image."""
    if collection is None:
        raise BadQueryError("pdv needs the reference's caption: search a collection with stored captions")
    if query.item_id is not None:
        record = collection.item(int(query.item_id))
        if record.captions:
            return record.captions[0]
    captions = collection.vectors("caption")
    if len(captions) == 0:
        raise BadQueryError("pdv needs the reference's caption, and this collection stores none")
    best = int(np.argmax(captions.matrix @ reference))
    return collection.caption_texts([int(captions.caption_ids[best])])[int(captions.caption_ids[best])]


def combine_terms(terms: list[Term] | tuple[Term, ...], encoder: Encoder,
                  collection: Store | None = None) -> np.ndarray:
    """The unit query vector: normalise(sum of weight x unit vector of each term).

    Raises:
        BadQueryError: no positive term, a term that cannot be embedded, or terms that cancel out.
    """
    if not terms:
        raise BadQueryError("empty query: give at least one term")
    if all(t.weight <= 0 for t in terms):
        raise BadQueryError("a query needs at least one positive term (negative terms only push away)")
    total = np.zeros(encoder.dim, np.float32)
    for term in terms:
        kind = term.kind()
        vector = np.asarray(term.vector, np.float32) if kind == "vector" else None
        single = Query(text=term.text, image=term.image, item_id=term.item_id, vector=vector)
        total += term.weight * embed_query(single, encoder, collection)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise BadQueryError("the terms cancel each other out")
    return total / norm
