"""Metric computation at COCO-5k size: 25,000 captions x 5,000 images, random embeddings.

Baseline in the same run: the naive way (full score matrix, full argsort).
Prints one JSON document. Usage:

    python benchmarks/bench_eval.py [--images 5000] [--captions-per-image 5] [--dim 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc

import numpy as np

from clipdex.metrics import retrieval_recalls


def naive_t2i(text: np.ndarray, image: np.ndarray, owner: np.ndarray, k: int) -> float:
    order = np.argsort(-(text @ image.T), axis=1)[:, :k]
    return float((order == owner[:, None]).any(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = rng.standard_normal((args.images, args.dim), dtype=np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    owner = np.repeat(np.arange(args.images), args.captions_per_image)
    text = image[owner] + 3.0 * rng.standard_normal((len(owner), args.dim), dtype=np.float32) / np.sqrt(args.dim)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    tracemalloc.start()
    t = time.perf_counter()
    per = retrieval_recalls(text, image, owner, ks=(1, 5, 10))
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t = time.perf_counter()
    naive = naive_t2i(text, image, owner, 10)
    naive_s = time.perf_counter() - t
    out = {
        "captions": len(text), "images": len(image), "dim": args.dim,
        "seconds": round(seconds, 3), "peak_traced_mb": round(peak / 1e6, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
        "t2i_R@10": round(float(per["t2i_R@10"].mean()), 4), "naive_t2i_R@10": round(naive, 4),
        "naive_full_argsort_seconds_t2i_only": round(naive_s, 3),
        "goal": "under 5 s and under 2 GB on 2 cores",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
