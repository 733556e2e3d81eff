"""Duplicate finding over pass-1 vectors and hashes: exact, near (connected components), nearest-of-a-set, clusters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clipdex.curate.context import Context

__all__ = ["KEEP_RULES", "components", "cosine", "duplicate_groups", "embedding_edges", "equal_value_edges",
           "hash_edges", "nearest_in", "phash_edges", "target_clusters", "vector_edges"]

KEEP_RULES = ("clip_score", "first", "largest")
EXACT_LIMIT = 20_000  # up to this many vectors all pairs are compared; past it, within k-means buckets
_CHUNK = 4096


def _rank(ctx: Context, rows: np.ndarray, keep: str) -> np.ndarray:
    """Lower is better: which member of a duplicate group is kept."""
    if keep == "clip_score":  # the dedup filter asks pass 1 for clip scores when this is its rule
        score = ctx.col("clip_score")[rows]
        return -np.nan_to_num(score, nan=-np.inf)
    if keep == "largest":
        return -(ctx.col("width")[rows].astype(np.int64) * ctx.col("height")[rows])
    return rows.astype(np.float64)


def _keepers(labels: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For each position, the position of the best-ranked member of its group (ties: earliest)."""
    order = np.lexsort((np.arange(len(labels)), rank, labels))
    first = np.ones(len(order), bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    best_of_label = {}
    for pos in order[first]:
        best_of_label[labels[pos]] = pos
    return np.array([best_of_label[label] for label in labels], np.int64)


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label (the smallest member) of each of ``n`` nodes given edges a-b."""
    labels = np.arange(n)
    if len(a) == 0:
        return labels
    while True:
        low = np.minimum(labels[a], labels[b])
        new = labels.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # pointer jumping: halves the remaining path each round
        if np.array_equal(new, labels):
            return labels
        labels = new


def _range_edges(index: object, queries: Callable[[int, int], np.ndarray], n: int,
                 radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b) of positions whose range search found each other (self-pairs dropped)."""
    a_parts, b_parts = [], []
    for start in range(0, n, _CHUNK):
        lims, _, found = index.range_search(queries(start, min(start + _CHUNK, n)), radius)  # type: ignore[attr-defined]
        a_parts.append(np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64)))
        b_parts.append(found.astype(np.int64))
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    return a[a != b], b[a != b]


def hash_edges(ctx: Context, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining samples with the same content hash (each to the first of its hash)."""
    hashes = ctx.col("sha256")
    return equal_value_edges([hashes[row] for row in rows])


def equal_value_edges(values: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining each position to the first position holding the same value (empty values join nothing)."""
    first: dict[str, int] = {}
    a, b = [], []
    for pos, value in enumerate(values):
        if value:
            if value in first:
                a.append(first[value])
                b.append(pos)
            else:
                first[value] = pos
    return np.asarray(a, np.int64), np.asarray(b, np.int64)


def embedding_edges(ctx: Context, rows: np.ndarray, cos: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining samples whose image vectors have cosine >= ``cos``."""
    rows = rows[ctx.col("has_image_emb")[rows]]
    return vector_edges(lambda picked: ctx.image_vectors(rows[picked]), len(rows), cos)


def vector_edges(vectors_of: Callable[[np.ndarray], np.ndarray], n: int,
                 cos: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of positions in ``[0, n)`` whose unit vectors (``vectors_of(positions)``) have cosine >= ``cos``:
    all pairs up to :data:`EXACT_LIMIT` vectors, within k-means buckets past it."""
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if n <= EXACT_LIMIT:
        return _exact_edges(vectors_of(np.arange(n)), cos)
    return _bucket_edges(vectors_of, n, cos)


def _bucket_edges(vectors_of: Callable[[np.ndarray], np.ndarray], n: int, cos: float,
                  probes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with cosine >= ``cos``, compared exactly within k-means buckets.

    Each vector joins the buckets of its ``probes`` nearest centroids, and each
    bucket is compared with itself by one matrix product (BLAS). Near-duplicates
    sit far closer together than a bucket is wide, so they share a bucket; the
    tests check agreement with the exact pairs. faiss's IVF range search does
    the same comparisons one list entry at a time and is 20x slower here.
    """
    import faiss

    nlist = max(1, int(np.sqrt(n)))
    sample = np.sort(np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False))
    first = vectors_of(sample)
    kmeans = faiss.Kmeans(first.shape[1], nlist, niter=10, seed=0, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(first)
    buckets = np.empty((n, probes), np.int64)
    for start in range(0, n, 65_536):
        part = np.arange(start, min(start + 65_536, n))
        buckets[start:start + 65_536] = kmeans.index.search(vectors_of(part), probes)[1]
    flat = buckets.ravel()
    owner = np.repeat(np.arange(n), probes)
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(nlist + 1))
    a_parts, b_parts = [], []
    for c in range(nlist):
        members = owner[order[bounds[c]:bounds[c + 1]]]
        if len(members) < 2:
            continue
        i, j = _exact_edges(vectors_of(members), cos)  # blocked: a crowded bucket stays small in RAM
        a_parts.append(members[i])
        b_parts.append(members[j])
    if not a_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


def _exact_edges(vectors: np.ndarray, cos: float, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """All pairs with cosine >= ``cos`` by blocked matrix products (BLAS; faiss's flat range search is not)."""
    a_parts, b_parts = [], []
    for start in range(0, len(vectors), block):
        sims = vectors[start:start + block] @ vectors.T
        a, b = np.nonzero(sims >= cos)
        a_parts.append(a + start)
        b_parts.append(b)
    a, b = np.concatenate(a_parts).astype(np.int64), np.concatenate(b_parts).astype(np.int64)
    return a[a != b], b[a != b]


def phash_edges(ctx: Context, rows: np.ndarray, max_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining samples whose 64-bit perceptual hashes differ in at most ``max_bits`` bits."""
    import faiss

    hashes = ctx.col("phash")
    have = np.array([bool(hashes[r]) for r in rows], bool)
    if have.sum() < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes = np.stack([np.frombuffer(bytes.fromhex(hashes[r]), np.uint8) for r in rows[have]])
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    # binary range_search keeps distances strictly below the radius
    a, b = _range_edges(index, lambda lo, hi: codes[lo:hi], len(codes), max_bits + 1)
    local = np.flatnonzero(have)
    return local[a], local[b]


def duplicate_groups(ctx: Context, alive: np.ndarray, exact: bool, near: str | None, cos: float, bits: int,
                     keep: str) -> tuple[np.ndarray, np.ndarray]:
    """Group alive samples by the chosen duplicate relations (connected components) and keep one per group.

    Returns, per row, the row of its group's kept sample (-1 for kept rows and
    singletons) and whether the two are byte-identical.
    """
    dup_of = np.full(ctx.n, -1, np.int64)
    identical = np.zeros(ctx.n, bool)
    rows = np.flatnonzero(alive)
    if len(rows) < 2:
        return dup_of, identical
    edges = [hash_edges(ctx, rows)] if exact else []
    if near == "embedding":
        has = ctx.col("has_image_emb")[rows]
        a, b = embedding_edges(ctx, rows, cos)
        local = np.flatnonzero(has)
        edges.append((local[a], local[b]))
    elif near == "phash":
        edges.append(phash_edges(ctx, rows, bits))
    a = np.concatenate([e[0] for e in edges]) if edges else np.zeros(0, np.int64)
    b = np.concatenate([e[1] for e in edges]) if edges else np.zeros(0, np.int64)
    labels = components(len(rows), a, b)
    keepers = _keepers(labels, _rank(ctx, rows, keep))
    dup = np.flatnonzero(keepers != np.arange(len(rows)))
    dup_of[rows[dup]] = rows[keepers[dup]]
    hashes = ctx.col("sha256")
    for pos in dup:
        h = hashes[rows[pos]]
        identical[rows[pos]] = bool(h) and h == hashes[rows[keepers[pos]]]
    return dup_of, identical


def cosine(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine between the image vectors of rows ``a`` and rows ``b`` (pairwise, same length)."""
    out = np.zeros(len(a), np.float32)
    for start in range(0, len(a), _CHUNK):
        part = slice(start, start + _CHUNK)
        out[part] = np.einsum("ij,ij->i", ctx.image_vectors(a[part]), ctx.image_vectors(b[part]))
    return out


def nearest_in(ctx: Context, alive: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each alive row with an image vector: the nearest of ``vectors`` and its cosine (-inf elsewhere)."""
    import faiss

    match = np.full(ctx.n, -1, np.int64)
    sim = np.full(ctx.n, -np.inf, np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, np.float32))
    rows = np.flatnonzero(alive & ctx.col("has_image_emb"))
    for start in range(0, len(rows), _CHUNK):
        part = rows[start:start + _CHUNK]
        scores, found = index.search(ctx.image_vectors(part), 1)
        match[part], sim[part] = found[:, 0], scores[:, 0]
    return match, sim


def target_clusters(ctx: Context, alive: np.ndarray, targets: np.ndarray, k: int | None,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means over alive pool images; returns each row's cluster (-1 if none) and the clusters nearest a target."""
    import faiss

    cluster = np.full(ctx.n, -1, np.int64)
    rows = np.flatnonzero(alive & ctx.col("has_image_emb"))
    if len(rows) == 0:
        return cluster, np.zeros(0, np.int64)
    k = int(k or max(2, len(rows) // 128))
    k = min(k, len(rows))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(rows, min(len(rows), 256 * k), replace=False))
    x = ctx.image_vectors(sample)
    kmeans = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(x)
    for start in range(0, len(rows), 65_536):
        part = rows[start:start + 65_536]
        cluster[part] = kmeans.index.search(ctx.image_vectors(part), 1)[1][:, 0]
    wanted = np.unique(kmeans.index.search(np.ascontiguousarray(targets, np.float32), 1)[1][:, 0])
    return cluster, wanted
