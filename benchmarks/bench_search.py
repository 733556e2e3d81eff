"""Search at 1M x 512: exact latency vs the memory-bandwidth bound, ANN recall@10 and latency.

Vectors are clustered like CLIP embeddings (many tight-ish clusters on the
sphere), not uniform. Queries are fresh points near the same clusters.
Prints one JSON document. Usage:

    python benchmarks/bench_search.py [--n 1000000] [--dim 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import threading
import time

import numpy as np

from clipdex.search.topk import exact_topk
from clipdex.store.ann import build_ann, default_factory


def clustered(n: int, dim: int, clusters: int, seed: int, noise: float = 1.1) -> np.ndarray:
    """CLIP-like vectors: a shared direction (embeddings are anisotropic), topics, sub-topics, noise.

    Same ``seed`` -> same centres, so queries drawn with the same seed land near the data.
    """
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(dim).astype(np.float32)
    shared /= np.linalg.norm(shared)
    topics = rng.standard_normal((max(1, clusters // 10), dim)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    subs = topics[rng.integers(0, len(topics), clusters)] + 0.8 * rng.standard_normal((clusters, dim)).astype(
        np.float32) / np.sqrt(dim)
    subs /= np.linalg.norm(subs, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    noise_rng = np.random.default_rng(seed + 1 + n)  # fresh noise per call size
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        assign = noise_rng.integers(0, clusters, m)
        jitter = noise_rng.standard_normal((m, dim), dtype=np.float32) / np.sqrt(dim)
        block = 0.5 * shared + subs[assign] + noise * jitter
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def read_bandwidth(matrix: np.ndarray, threads: int) -> float:
    """GB/s to stream the matrix once with ``threads`` readers (the floor for exact search)."""
    chunks = np.array_split(np.arange(len(matrix)), threads)

    def read(idx: np.ndarray) -> None:
        matrix[idx[0] : idx[-1] + 1].max()

    times = []
    for _ in range(5):
        workers = [threading.Thread(target=read, args=(c,)) for c in chunks]
        t = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        times.append(time.perf_counter() - t)
    return matrix.nbytes / min(times) / 1e9


def median_ms(fn, queries: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    out: dict[str, object] = {"n": args.n, "dim": args.dim}
    t = time.perf_counter()
    matrix = clustered(args.n, args.dim, clusters=max(10, args.n // 1000), seed=0)
    # same seed: the same cluster centres (drawn first), fresh and larger noise: like text queries,
    # which sit farther from their images than images from each other (the modality gap)
    queries = clustered(args.queries, args.dim, clusters=max(10, args.n // 1000), seed=0, noise=2.5)
    out["generate_s"] = round(time.perf_counter() - t, 1)
    out["matrix_gb_float32_in_ram"] = round(matrix.nbytes / 1e9, 3)
    bw = max(read_bandwidth(matrix, k) for k in (1, 2, 4))
    out["read_bandwidth_gb_s"] = round(bw, 2)
    bound_ms = matrix.nbytes / (bw * 1e9) * 1000
    out["exact_bound_ms"] = round(bound_ms, 2)
    exact_ms = median_ms(lambda q: exact_topk(matrix, q, 10), queries[:30])
    out["exact_latency_ms_median"] = exact_ms
    out["exact_over_bound"] = round(exact_ms / bound_ms, 3)
    truth = np.stack([exact_topk(matrix, q, 10)[1] for q in queries])

    factory = default_factory(args.n)
    t = time.perf_counter()
    ann = build_ann(matrix, np.arange(args.n), factory)
    out["ann_factory"] = factory
    out["ann_build_s"] = round(time.perf_counter() - t, 1)
    default_nprobe = ann.nprobe
    out["ann_default_nprobe"] = default_nprobe
    curve = []
    for nprobe in sorted({8, 16, 32, 64, default_nprobe}):
        ann.nprobe = nprobe
        _, found = ann.search(queries, 10)
        recall = float(np.mean([len(set(f) & set(g)) / 10 for f, g in zip(found, truth, strict=True)]))
        ms = median_ms(lambda q: ann.search(q[None, :], 10), queries[:100])  # noqa: B023
        curve.append({"nprobe": nprobe, "recall@10": round(recall, 4), "latency_ms_median": ms})
    out["ann_curve"] = curve
    out["max_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
