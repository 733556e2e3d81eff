"""Ray embedding against the single-process path, on the same pool in the same run.

Writes a pool of ``--n`` synthetic images (64 px PNG, one caption each, a
Parquet table cut into ``--shard-size`` row shards), then embeds it with
``clipdex embed``'s single-process path and with the Ray engine at 1 and 2
workers, each ``--repeats`` times into fresh folders. The local Ray is started
once before the runs (a cluster is started once, not per job; its start-up is
reported apart). Throughput is images/s of the whole job, image and caption
towers, files written; the median of the repeats is compared.

    python benchmarks/bench_ray_embed.py [--n 20000] [--shard-size 1000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", default="build/bench-ray-embed")
    args = parser.parse_args()

    import ray

    from clipdex.curate import PoolOptions
    from clipdex.embeddings.embed import embed_pool
    from clipdex.encoders import load_encoder
    from clipdex.scale.ray_engine import RayOptions, ray_runner
    from clipdex.synth.companions import write_noisy_pool

    work = Path(args.work)
    pool = work / "pool"
    if not (pool / "pool.parquet").exists():
        shutil.rmtree(pool, ignore_errors=True)
        write_noisy_pool(pool, args.n, seed=11, size=64, shares={"mismatched": 0.1})
    options = PoolOptions(shard_size=args.shard_size)
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    ray_start_s = time.perf_counter() - t

    def run(name: str, ray_options: RayOptions | None) -> float:
        out = work / f"out-{name}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        # the single-process path loads its encoder inside the timed run, as the Ray actors do
        report = embed_pool(pool / "pool.parquet", out, load_encoder(), options,
                             runner=ray_runner(ray_options) if ray_options else None)
        seconds = time.perf_counter() - started
        assert report.samples + report.failed == args.n and not report.failed_shards, report
        return seconds

    configs = {"single_process": None, "ray_1_worker": RayOptions(num_workers=1),
               "ray_2_workers": RayOptions(num_workers=2)}
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):  # interleaved, so drift on a noisy machine hits every config alike
        for name, ray_options in configs.items():
            seconds[name].append(run(name, ray_options))
    ray.shutdown()
    median = {name: statistics.median(values) for name, values in seconds.items()}
    result = {
        "images": args.n, "shards": -(-args.n // args.shard_size), "cores": os.cpu_count(),
        "ray_start_seconds": round(ray_start_s, 1),
        **{name: {"seconds": [round(s, 1) for s in seconds[name]], "median_seconds": round(median[name], 1),
                  "images_per_s": round(args.n / median[name], 1)} for name in configs},
        "ray_1_worker_overhead_vs_single_process": round(median["ray_1_worker"] / median["single_process"] - 1, 3),
        "scaling_2_vs_1_worker": round(median["ray_1_worker"] / median["ray_2_workers"], 3),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
