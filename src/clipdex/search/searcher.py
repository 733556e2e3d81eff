"""The search pipeline: query -> embed -> candidates (exact or ANN + delta) -> hits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from clipdex.search.query import Hit, Query, SearchPage, Target
from clipdex.search.query_vector import embed_query
from clipdex.search.topk import exact_topk, merge_topk

if TYPE_CHECKING:
    from clipdex.encoders.base import Encoder
    from clipdex.store.store import Store
    from clipdex.store.vectors import VectorView

__all__ = ["search", "search_page"]

_SPARE = 8  # candidates fetched beyond the page, for hits whose files are gone


def search(collection: Store, query: Query, encoder: Encoder) -> list[Hit]:
    """Run one query against a collection; see :func:`search_page`."""
    return search_page(collection, query, encoder).hits


def search_page(collection: Store, query: Query, encoder: Encoder) -> SearchPage:
    """Run one query against a collection.

    Args:
        collection: where to search.
        query: what to look for (validated here).
        encoder: must be the collection's encoder.

    Returns:
        Up to ``query.k`` hits after ``query.offset``, best first, with timings.

    Raises:
        BadQueryError: the query is invalid.
        CollectionError: the encoder does not match the collection.
    """
    collection.check_encoder(encoder.spec)
    if query.mode != "dense":
        return _words_page(collection, query, encoder)
    t0 = time.perf_counter()
    vector = embed_query(query, encoder, collection)
    t1 = time.perf_counter()
    kind = "caption" if query.target == Target.CAPTIONS else "image"
    if _index_only(collection, query, kind):
        return _index_page(collection, query, vector, 1000 * (t1 - t0))
    view = collection.vectors(kind)
    want = query.depth
    diversify = query.diversity is not None or query.collapse is not None
    if diversify or query.compose == "caption-fusion":
        want = max(4 * want, 100)  # re-ranked below: MMR and collapsing need candidates to choose from
    if query.rerank is not None:
        want = max(want, query.rerank_depth)
    elif not diversify and query.compose != "caption-fusion":
        want += _SPARE  # spare candidates stand in for hits whose files were deleted
    # One scan at a time per collection: BLAS already uses every core for one scan, and many
    # concurrent scans (a server's threads) make its threads spin against each other.
    allowed = _allowed(collection, query)  # asked once per request
    with collection.scan_lock:
        scores, picked, considered = _candidates(collection, view, vector, want, kind, allowed)
        region_of: dict[int, int] = {}
        if query.regions and kind == "image":
            allowed_set = set(allowed.tolist()) if allowed is not None else None
            scores, picked, region_of = _with_regions(collection, view, vector, scores, picked, want, allowed_set)
            considered += len(collection.vectors("region"))
    if query.item_id is not None:
        keep = view.item_ids[picked] != int(query.item_id)
        scores, picked = scores[keep], picked[keep]
    if query.min_score is not None:
        keep = scores >= query.min_score
        scores, picked = scores[keep], picked[keep]
    if query.compose == "caption-fusion":
        scores, picked = _fuse_captions(collection, view, vector, scores, picked)
    t_rerank = time.perf_counter()
    if query.rerank is not None:
        from clipdex.search.rerank import rerank

        depth = query.rerank_depth
        head_scores, head = rerank(collection, view, query, vector, scores[:depth], picked[:depth])
        scores, picked = np.concatenate([head_scores, scores[depth:]]), np.concatenate([head, picked[depth:]])
    rerank_ms = 1000 * (time.perf_counter() - t_rerank)
    if diversify:
        scores, picked = _diversify(view, scores, picked, query)
    t2 = time.perf_counter()
    hits = _hits(collection, view, scores[query.offset:], picked[query.offset:], kind, query.k)
    if region_of:
        _attach_regions(collection, hits, region_of)
    t3 = time.perf_counter()
    stages = {"encode": 1000 * (t1 - t0), "search": 1000 * (t2 - t1) - rerank_ms, "fetch": 1000 * (t3 - t2)}
    if query.rerank is not None:
        stages["rerank"] = rerank_ms
    return SearchPage(hits, 1000 * (t3 - t0), stages, considered)


def _index_only(collection: Store, query: Query, kind: str) -> bool:
    """Whether a plain image query can be answered from the ANN index without the vectors in memory.

    Loading every vector costs seconds and a float32 copy of them all at a million items, which a
    process that searches once (a command-line search, ``collection.one_shot``) would pay for one
    query; a server keeps the general path, with the vectors loaded once. Filters, regions, re-ranking,
    diversity and caption fusion need the vectors, so they take the general path too.
    """
    plain = (kind == "image" and not query.filtered and not query.regions and query.rerank is None
             and query.diversity is None and query.collapse is None and query.compose != "caption-fusion"
             and query.item_id is None)
    return plain and collection.one_shot and not collection.has_vectors_loaded(kind) and collection.ann() is not None


def _index_page(collection: Store, query: Query, vector: np.ndarray, encode_ms: float) -> SearchPage:
    """The ANN index's best vectors, plus an exact scan of those added since it was built (read from their
    shards), the same candidates as the general path's ANN + delta, mapped to items through the database."""
    t1 = time.perf_counter()
    ann = collection.ann()
    assert ann is not None
    want = query.depth + _SPARE
    newest = int(np.max(ann.vec_ids)) if len(ann.vec_ids) else -1
    removed = len(ann.vec_ids) - collection.count_vectors("image", newest)  # indexed, since deleted
    delta = collection.vectors_after("image", newest)
    with collection.scan_lock:
        ann_scores, ann_ids = ann.search(vector[None, :], want + removed)
        d_scores, d_local = exact_topk(delta.matrix, vector, want)
    owners = collection.live_vector_items(ann_ids[0][ann_ids[0] >= 0].tolist())
    live = np.asarray([int(v) in owners for v in ann_ids[0]], bool)
    ann_items = np.asarray([owners[int(v)] for v in ann_ids[0][live]], np.int64)
    scores, items = merge_topk([ann_scores[0][live], d_scores], [ann_items, delta.item_ids[d_local]], want)
    if query.min_score is not None:
        keep = scores >= query.min_score
        scores, items = scores[keep], items[keep]
    t2 = time.perf_counter()
    hits = _hits_of(collection, scores[query.offset:], items[query.offset:], None, query.k)
    t3 = time.perf_counter()
    stages = {"encode": encode_ms, "search": 1000 * (t2 - t1), "fetch": 1000 * (t3 - t2)}
    return SearchPage(hits, encode_ms + 1000 * (t3 - t1), stages, len(ann.vec_ids) - removed + len(delta))


def _allowed(collection: Store, query: Query) -> np.ndarray | None:
    """The item ids a filtered query may return (None: any): metadata conditions, a place, a selection."""
    if not query.filtered:
        return None
    allowed = collection.filter_item_ids(query.where, query.near) if query.where or query.near else None
    if query.ids is not None:
        chosen = np.unique(np.asarray(query.ids, np.int64))
        allowed = chosen if allowed is None else np.intersect1d(allowed, chosen)
    return allowed


def _words_page(collection: Store, query: Query, encoder: Encoder) -> SearchPage:
    """Lexical or hybrid search: BM25 candidates, fused with dense ones for ``hybrid``."""
    from clipdex.search.lexical import convex_fusion, lexical_index, rrf_fusion

    query.validate()
    t0 = time.perf_counter()
    want = max(4 * (query.k + query.offset), 100)
    lexical = lexical_index(collection).search(query.text or "", want)
    t1 = time.perf_counter()
    view = collection.vectors("image")
    allowed = _allowed(collection, query)
    if query.mode == "hybrid":
        vector = embed_query(query, encoder, collection)
        with collection.scan_lock:
            d_scores, d_rows, _ = _candidates(collection, view, vector, want, "image", allowed)
        dense = (d_scores, view.item_ids[d_rows])
        if query.fusion == "rrf":
            scores, ids = rrf_fusion([dense[1], lexical[1]])
        else:
            scores, ids = convex_fusion(dense, lexical, query.alpha)
    else:
        scores, ids = lexical
    if allowed is not None:
        keep = np.isin(ids, allowed)
        scores, ids = scores[keep], ids[keep]
    row_of = _rows_of_items(view, ids)
    found = [(s, row_of[i]) for s, i in zip(scores.tolist(), ids.tolist(), strict=True) if i in row_of]
    window = found[query.page]
    t2 = time.perf_counter()
    hits = _hits(collection, view, np.asarray([s for s, _ in window], np.float32),
                 np.asarray([r for _, r in window], np.int64), "image")
    t3 = time.perf_counter()
    stages = {"lexical": 1000 * (t1 - t0), "search": 1000 * (t2 - t1), "fetch": 1000 * (t3 - t2)}
    return SearchPage(hits, 1000 * (t3 - t0), stages, len(found))


def _rows_of_items(view: VectorView, item_ids: np.ndarray | list[int]) -> dict[int, int]:
    """Row of ``view`` holding each of these items (items without a vector are absent)."""
    rows = np.flatnonzero(np.isin(view.item_ids, item_ids))
    return dict(zip(view.item_ids[rows].tolist(), rows.tolist(), strict=True))


def _with_regions(collection: Store, view: VectorView, vector: np.ndarray, scores: np.ndarray,
                  picked: np.ndarray, want: int,
                  allowed: set[int] | None) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Merge whole-image candidates with the best region crop per item (exact over the crops).

    Returns the merged (scores, rows) best first and, per item whose crop beat
    its whole image, the vec_id of that crop.
    """
    regions = collection.vectors("region")
    if len(regions) == 0:
        return scores, picked, {}
    r_scores = regions.matrix @ vector
    order = np.argsort(-r_scores, kind="stable")
    best: dict[int, tuple[float, int]] = {}
    for pos in order.tolist():  # best crop per item, stopping once enough items are covered
        item = int(regions.item_ids[pos])
        if item not in best and (allowed is None or item in allowed):
            best[item] = (float(r_scores[pos]), int(regions.vec_ids[pos]))
            if len(best) >= want:
                break
    merged: dict[int, tuple[float, int | None]] = {int(view.item_ids[r]): (float(s), None)
                                                    for s, r in zip(scores.tolist(), picked.tolist(), strict=True)}
    for item, (score, vec_id) in best.items():
        if item not in merged or score > merged[item][0]:
            merged[item] = (score, vec_id)
    row_of = _rows_of_items(view, list(merged))
    ranked = sorted((item for item in merged if item in row_of), key=lambda i: -merged[i][0])[:want]
    region_of = {i: v for i in ranked if (v := merged[i][1]) is not None}
    return (np.asarray([merged[i][0] for i in ranked], np.float32),
            np.asarray([row_of[i] for i in ranked], np.int64), region_of)


def _attach_regions(collection: Store, hits: list[Hit], region_of: dict[int, int]) -> None:
    wanted = [region_of[h.id] for h in hits if h.id in region_of]
    if not wanted:
        return
    boxes = collection.region_boxes(wanted)
    for h in hits:
        if h.id in region_of:
            h.region = boxes.get(region_of[h.id])  # type: ignore[assignment]


def _fuse_captions(collection: Store, view: VectorView, vector: np.ndarray, scores: np.ndarray,
                   picked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """caption-fusion: rescore candidates by their captions too (candidates without captions keep theirs)."""
    from clipdex.search.composed import ComposedParams, caption_means, fusion_scores

    captions = collection.vectors("caption")
    position = {item: j for j, item in enumerate(view.item_ids[picked].tolist())}
    mine = np.flatnonzero(np.isin(captions.item_ids, list(position)))  # one pass over the captions
    owners = np.asarray([position[int(i)] for i in captions.item_ids[mine]], np.int64)
    means, has = caption_means(captions.matrix[mine], owners, len(picked))
    fused = fusion_scores(vector[None, :], view.matrix[picked], means, has, ComposedParams().fusion_beta)[0]
    order = np.argsort(-fused, kind="stable")
    return fused[order], picked[order]


def _diversify(view: VectorView, scores: np.ndarray, picked: np.ndarray,
               query: Query) -> tuple[np.ndarray, np.ndarray]:
    """Collapse near-duplicates, then order the rest by MMR (scores stay the query similarities)."""
    from clipdex.search.diversity import collapse_near_duplicates, mmr

    vectors = view.matrix[picked]
    if query.collapse is not None:
        keep = collapse_near_duplicates(vectors, query.collapse)
        scores, picked, vectors = scores[keep], picked[keep], vectors[keep]
    if query.diversity is not None:
        order = mmr(scores, vectors, query.k + query.offset, query.diversity)
        scores, picked = scores[order], picked[order]
    return scores, picked


def _candidates(collection: Store, view: VectorView, vector: np.ndarray, want: int, kind: str,
                allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Best ``want`` rows of ``view``: filtered exact (``allowed`` item ids), ANN + delta, or exact."""
    if allowed is not None:
        rows = np.flatnonzero(np.isin(view.item_ids, allowed))
        scores, local = exact_topk(view.matrix[rows], vector, want)
        return scores, rows[local], len(rows)
    if kind == "image" and collection.ann() is not None:
        scores, picked = _ann_with_delta(collection, view, vector, want)
        return scores, picked, len(view)
    scores, picked = exact_topk(view.matrix, vector, want)
    return scores, picked, len(view)


def _ann_with_delta(collection: Store, view: VectorView, vector: np.ndarray,
                    k: int) -> tuple[np.ndarray, np.ndarray]:
    """ANN over the indexed snapshot + exact over vectors added since; rows of ``view``."""
    ann = collection.ann()
    assert ann is not None
    removed, delta = view.delta_against(ann.vec_ids)
    ann_scores, ann_ids = ann.search(vector[None, :], k + removed)
    rows = np.searchsorted(view.vec_ids, ann_ids[0])
    rows = np.minimum(rows, max(len(view.vec_ids) - 1, 0))
    live = (ann_ids[0] >= 0) & (view.vec_ids[rows] == ann_ids[0]) if len(view) else np.zeros(0, bool)
    d_scores, d_local = exact_topk(view.matrix[delta], vector, k)
    return merge_topk([ann_scores[0][live], d_scores], [rows[live], delta[d_local]], k)


def _hits(collection: Store, view: VectorView, scores: np.ndarray, rows: np.ndarray, kind: str,
          limit: int | None = None) -> list[Hit]:
    """Up to ``limit`` hits from the ranked rows, leaving out items whose files were deleted since indexing
    (the spare candidates behind them take their places)."""
    return _hits_of(collection, scores, view.item_ids[rows], view.caption_ids[rows] if kind == "caption" else None,
                    limit)


def _hits_of(collection: Store, scores: np.ndarray, item_ids: np.ndarray, caption_ids: np.ndarray | None,
             limit: int | None) -> list[Hit]:
    """Hits of ranked items (and, for captions, the matched caption of each), skipping gone ones."""
    if limit is not None:
        scores, item_ids = scores[: limit + _SPARE], item_ids[: limit + _SPARE]
    records, texts = collection.hit_rows(item_ids.tolist(), caption_ids.tolist() if caption_ids is not None else [])
    gone = collection.gone_items(records)
    hits: list[Hit] = []
    for i, (score, item_id) in enumerate(zip(scores.tolist(), item_ids.tolist(), strict=True)):
        record = records.get(item_id)
        if record is None or item_id in gone:
            continue  # removed since the vectors were loaded, or its file deleted since indexing
        caption = texts.get(int(caption_ids[i])) if caption_ids is not None else (
            record.captions[0] if record.captions else None)
        hits.append(Hit(item_id, score, record.path, caption, record.metadata, record.captions))
        if limit is not None and len(hits) >= limit:
            break
    return hits
