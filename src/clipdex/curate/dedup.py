"""Duplicate finding over pass-1 vectors and hashes: exact, near (connected components), nearest-of-a-set, clusters."""

from __future__ import annotations

import numpy as np

from clipdex.curate.context import Context

__all__ = ["KEEP_RULES", "components", "exact_duplicates", "near_duplicates", "nearest_in", "phash_duplicates",
           "target_clusters"]

KEEP_RULES = ("clip_score", "first", "largest")
EXACT_LIMIT = 20_000  # up to this many vectors the near-duplicate search is exact (flat); past it, IVF
_CHUNK = 4096


def _rank(ctx: Context, rows: np.ndarray, keep: str) -> np.ndarray:
    """Lower is better: which member of a duplicate group is kept."""
    if keep == "clip_score" and "clip_score" in ctx.table.column_names:
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


def exact_duplicates(ctx: Context, alive: np.ndarray, keep: str) -> np.ndarray:
    """Row of the kept copy for each exact duplicate (same content hash), -1 elsewhere."""
    out = np.full(ctx.n, -1, np.int64)
    hashes = ctx.col("sha256")
    rows = np.array([i for i in np.flatnonzero(alive) if hashes[i]], np.int64)
    if len(rows) < 2:
        return out
    ids: dict[str, int] = {}
    labels = np.array([ids.setdefault(hashes[i], len(ids)) for i in rows], np.int64)
    keepers = _keepers(labels, _rank(ctx, rows, keep))
    dup = keepers != np.arange(len(rows))
    out[rows[dup]] = rows[keepers[dup]]
    return out


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


def _index(ctx: Context, rows: np.ndarray) -> object:
    import faiss

    d = ctx.image_vectors(rows[:1]).shape[1]
    if len(rows) <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(4 * np.sqrt(len(rows)))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(rows, min(len(rows), 64 * nlist), replace=False)
        index.train(ctx.image_vectors(np.sort(sample)))
        index.nprobe = 8
        index.quantizer_trains_alone = 0
    for start in range(0, len(rows), 65_536):
        index.add(ctx.image_vectors(rows[start:start + 65_536]))
    return index


def near_duplicates(ctx: Context, alive: np.ndarray, cos: float, keep: str) -> tuple[np.ndarray, np.ndarray]:
    """(row of the kept copy or -1, cosine to it) for each row; groups are connected components of cos >= t."""
    dup_of = np.full(ctx.n, -1, np.int64)
    sim = np.full(ctx.n, np.nan, np.float32)
    rows = np.flatnonzero(alive & ctx.col("has_image_emb"))
    if len(rows) < 2:
        return dup_of, sim
    index = _index(ctx, rows)
    a_parts, b_parts = [], []
    for start in range(0, len(rows), _CHUNK):
        lims, _, found = index.range_search(ctx.image_vectors(rows[start:start + _CHUNK]), cos)  # type: ignore[attr-defined]
        query = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
        a_parts.append(query)
        b_parts.append(found.astype(np.int64))
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    edge = a != b
    labels = components(len(rows), a[edge], b[edge])
    keepers = _keepers(labels, _rank(ctx, rows, keep))
    dup = np.flatnonzero(keepers != np.arange(len(rows)))
    for start in range(0, len(dup), _CHUNK):
        part = dup[start:start + _CHUNK]
        mine, theirs = ctx.image_vectors(rows[part]), ctx.image_vectors(rows[keepers[part]])
        sim[rows[part]] = np.einsum("ij,ij->i", mine, theirs)
    dup_of[rows[dup]] = rows[keepers[dup]]
    return dup_of, sim


def phash_duplicates(ctx: Context, alive: np.ndarray, max_bits: int, keep: str) -> tuple[np.ndarray, np.ndarray]:
    """(row of the kept copy or -1, Hamming distance to it) with groups of pHash distance <= ``max_bits``."""
    import faiss

    dup_of = np.full(ctx.n, -1, np.int64)
    dist = np.full(ctx.n, -1, np.int64)
    hashes = ctx.col("phash")
    rows = np.array([i for i in np.flatnonzero(alive) if hashes[i]], np.int64)
    if len(rows) < 2:
        return dup_of, dist
    codes = np.stack([np.frombuffer(bytes.fromhex(hashes[i]), np.uint8) for i in rows])
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    a_parts, b_parts = [], []
    for start in range(0, len(rows), _CHUNK):
        # range_search keeps distances strictly below the radius
        lims, _, found = index.range_search(codes[start:start + _CHUNK], max_bits + 1)
        a_parts.append(np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64)))
        b_parts.append(found.astype(np.int64))
    a, b = np.concatenate(a_parts), np.concatenate(b_parts)
    edge = a != b
    labels = components(len(rows), a[edge], b[edge])
    keepers = _keepers(labels, _rank(ctx, rows, keep))
    dup = np.flatnonzero(keepers != np.arange(len(rows)))
    dup_of[rows[dup]] = rows[keepers[dup]]
    dist[rows[dup]] = np.unpackbits(codes[dup] ^ codes[keepers[dup]], axis=1).sum(axis=1)
    return dup_of, dist


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
    kmeans = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, spherical=True, verbose=False)
    kmeans.train(x)
    for start in range(0, len(rows), 65_536):
        part = rows[start:start + 65_536]
        cluster[part] = kmeans.index.search(ctx.image_vectors(part), 1)[1][:, 0]
    wanted = np.unique(kmeans.index.search(np.ascontiguousarray(targets, np.float32), 1)[1][:, 0])
    return cluster, wanted
