"""Curation throughput and memory.

1. Precomputed embeddings: a generated pool of N samples (captions, width and
   height columns) with CLIP-like clustered 512-d image and caption vectors in
   clip-retrieval's layout (10% mismatched captions, 5% near-duplicate images).
   Chain: size, aspect, caption-quality, clip-score top 30%, dedup (embedding).
   No image is opened. Reports samples/s, samples/s per core and peak RSS,
   against a baseline in the same run: loading the same vectors and computing
   the clip scores and a top-30% threshold with numpy alone.
2. Embedding computed: the synthetic noisy pool (64 px images) with the
   built-in model (bounded by the encoder), for reference.

Prints one JSON document.

    python benchmarks/bench_curate.py [--n 200000] [--computed 2000] [--work build/bench-curate]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# the generated vectors are of no real model, so caption-quality runs without its text-tower score
CHAIN = ["size:min_side=64", "aspect:max=3", "caption-quality:visual=false", "clip-score:top=0.3",
         "dedup:mode=near,cos=0.95,keep=first"]
DIM = 512


def make_pool(folder: Path, n: int, part_rows: int = 100_000, seed: int = 0) -> Path:
    """Write pool.parquet and a clip-retrieval folder (img_emb/text_emb/metadata), part by part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clipdex.embeddings.layout import write_clip_retrieval
    from clipdex.synth.world import captions_for, sample_scenes

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    scenes = sample_scenes(2000, seed)
    captions = [c for s in scenes for c in captions_for(s, 2, __import__("random").Random(seed))]
    centroids = rng.standard_normal((4096, DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    writer = None
    for part, start in enumerate(range(0, n, part_rows)):
        m = min(part_rows, n - start)
        topic = rng.integers(0, len(centroids), m)
        image = centroids[topic] + 0.9 * rng.standard_normal((m, DIM)).astype(np.float32) / np.sqrt(DIM)
        dup = rng.random(m) < 0.05  # near-duplicates of the previous sample
        image[1:][dup[1:]] = image[:-1][dup[1:]] + 0.05 * rng.standard_normal((int(dup[1:].sum()), DIM)) / np.sqrt(DIM)
        text = image + 1.2 * rng.standard_normal((m, DIM)).astype(np.float32) / np.sqrt(DIM)
        wrong = rng.random(m) < 0.1
        text[wrong] = rng.standard_normal((int(wrong.sum()), DIM)).astype(np.float32)
        image /= np.linalg.norm(image, axis=1, keepdims=True)
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        keys = [f"{start + i:09d}" for i in range(m)]
        caption = [captions[i] for i in rng.integers(0, len(captions), m)]
        width = rng.integers(32, 1024, m)
        height = rng.integers(32, 1024, m)
        write_clip_retrieval(folder / "emb", image, {"key": keys, "caption": caption}, text, part=part)
        table = pa.table({"key": keys, "path": [f"images/{k}.jpg" for k in keys], "caption": caption,
                          "width": width, "height": height})
        if writer is None:
            writer = pq.ParquetWriter(folder / "pool.parquet", table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return folder


def baseline_seconds(folder: Path) -> float:
    """The irreducible work: read every vector, dot products, a top-30% threshold."""
    started = time.perf_counter()
    scores = []
    for npy in sorted((folder / "emb" / "img_emb").glob("*.npy")):
        image = np.load(npy).astype(np.float32)
        text = np.load(folder / "emb" / "text_emb" / npy.name.replace("img", "text")).astype(np.float32)
        scores.append(np.einsum("ij,ij->i", image, text))
    all_scores = np.concatenate(scores)
    np.partition(all_scores, int(0.7 * len(all_scores)))
    return time.perf_counter() - started


def run_child(folder: Path, out: Path, embeddings: str | None, chain: list[str], pool: str,
              workers: int = 1) -> dict[str, object]:
    """Curate in a child process, so its peak RSS is its own (and its workers' are counted apart)."""
    code = (
        "import json, resource, sys, time\n"
        "from clipdex.curate import curate, CurateOptions\n"
        # VmHWM, not ru_maxrss: ru_maxrss survives exec and so counts this parent's memory at the fork
        # (the workers' figure still does, so it is an upper bound).
        "def _hwm_mb():\n"
        "    line = next(x for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
        "    return int(line.split()[1]) / 1024\n"
        f"r = curate({pool!r}, {str(out)!r}, {chain!r}, CurateOptions(embeddings={embeddings!r}, report=False,"
        f" workers={workers}))\n"
        "print(json.dumps({'samples': r.samples, 'kept': r.kept, 'seconds': r.seconds,\n"
        "  'peak_rss_mb': _hwm_mb(),\n"
        "  'worker_peak_rss_mb_upper_bound': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,\n"
        "  'stage_seconds': r.stage_seconds, 'steps': [(s.filter, s.rejected) for s in r.steps]}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--computed", type=int, default=2000, help="noisy-pool samples for the computed run")
    parser.add_argument("--work", default="build/bench-curate")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    cores = os.cpu_count() or 1
    t = time.perf_counter()
    folder = make_pool(work / "pool", args.n)
    generate_s = time.perf_counter() - t
    base = min(baseline_seconds(folder) for _ in range(3))
    result: dict[str, object] = {"cores": cores, "chain": CHAIN, "generate_seconds": round(generate_s, 1),
                                 "baseline_numpy_seconds": round(base, 2), "goal_per_core": 5000}
    for workers in (1, cores):
        pre = run_child(folder, work / f"out-pre-{workers}", str(folder / "emb"), CHAIN,
                        str(folder / "pool.parquet"), workers)
        rate = pre["samples"] / pre["seconds"]  # type: ignore[operator]
        result[f"precomputed_workers_{workers}"] = {
            **pre, "samples_per_second": round(rate), "samples_per_second_per_core": round(rate / cores),
            "ratio_to_baseline": round(pre["seconds"] / base, 1)}  # type: ignore[operator]
    if args.computed:
        from clipdex.synth.companions import write_noisy_pool

        write_noisy_pool(work / "noisy", args.computed, seed=1, size=64)
        # the built-in model's thresholds (see benchmarks/curate_experiment.py)
        chain = ["blank", "size:min_side=32", "caption-quality", "basic:min_side=32", "dedup:cos=0.93",
                 "clip-score:min=0.2"]
        computed = run_child(work / "noisy", work / "out-computed", None, chain, str(work / "noisy" / "pool.parquet"))
        rate = computed["samples"] / computed["seconds"]  # type: ignore[operator]
        result["computed"] = {**computed, "samples_per_second": round(rate, 1)}
    result["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
