"""DataComp in miniature: does curating a noisy pool train a better model for the same compute?

1. Write the synthetic noisy pool (known damage per sample).
2. Curate it with the built-in model (blank, size, caption-quality, basic,
   dedup, clip-score), and measure each filter's precision/recall against the
   labels, each filter run alone on a second noisy pool (another seed).
3. Train the built-in architecture on the raw pool and on the curated pool for
   the same number of samples seen (steps x batch), over several seeds. As in
   DataComp, samples seen is about one pass over the raw pool, so the curated
   arm sees its (fewer, cleaner) samples several times.
4. Evaluate both on a clean held-out split (a seed never used for the pool):
   text->image Recall@1/5. Prints one JSON document.

    python benchmarks/curate_experiment.py [--n 30000] [--steps 250] [--seeds 3] [--work build/curate-exp]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

# Thresholds for the built-in model: its clean captions score 0.37-0.64 (1st-99th percentile) and 95% of
# mismatched ones below 0.18; near-duplicates (1 px shift, blur, JPEG) mostly stay above cosine 0.93 while
# distinct scenes fall below.
CHAIN = ["blank", "size:min_side=32", "caption-quality", "basic:min_side=32", "dedup:cos=0.93",
         "clip-score:min=0.2"]


def filter_quality(pool: Path, work: Path) -> list[dict[str, object]]:
    from clipdex.curate import curate
    from clipdex.curate.measure import measure_against_labels

    out = []
    for spec in CHAIN + ["dedup:mode=exact", "dedup:cos=0.98", "dedup:cos=0.95", "dedup:method=phash"]:
        run = work / "alone" / spec.replace(":", "_").replace("=", "")
        shutil.rmtree(run, ignore_errors=True)
        curate(pool / "pool.parquet", run, [spec])
        out += [q.to_dict() for q in measure_against_labels(run / "decisions.parquet", pool / "labels.parquet")]
    return out


def train_eval(data: Path, out: Path, steps: int, batch: int, seed: int) -> dict[str, float]:
    from clipdex.train import TrainConfig, train

    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(out=str(out), data=str(data), steps=steps, batch_size=batch, seed=seed, val_every=steps,
                      val_size=1000, checkpoint_every=steps, warmup=min(100, steps // 5))
    result = train(cfg)
    return {"t2i_R@1": result.validation["val_t2i_R@1"], "t2i_R@5": result.validation["val_t2i_R@5"],
            "seconds": round(result.seconds, 1)}


def summary(runs: list[dict[str, float]], key: str) -> dict[str, float]:
    values = [r[key] for r in runs]
    return {"mean": round(statistics.mean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--quality-n", type=int, default=5000, help="pool size for the per-filter measurement")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work", default="build/curate-exp")
    args = parser.parse_args()
    from clipdex.curate import curate
    from clipdex.synth.companions import write_noisy_pool

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    write_noisy_pool(work / "pool", args.n, seed=11, size=64)
    curated = curate(work / "pool" / "pool.parquet", work / "curated", CHAIN)
    write_noisy_pool(work / "quality-pool", args.quality_n, seed=12, size=64)
    result: dict[str, object] = {
        "pool": args.n, "chain": CHAIN, "curated_kept": curated.kept,
        "curate_seconds": round(curated.seconds, 1),
        "filter_quality_pool": args.quality_n,
        "filter_quality_alone": filter_quality(work / "quality-pool", work),
        "samples_seen": args.steps * args.batch,
    }
    arms: dict[str, list[dict[str, float]]] = {"raw": [], "curated": []}
    for seed in range(args.seeds):
        arms["raw"].append(train_eval(work / "pool" / "pool.parquet", work / f"raw-{seed}", args.steps, args.batch,
                                      seed))
        arms["curated"].append(train_eval(work / "curated" / "pool.parquet", work / f"cur-{seed}", args.steps,
                                          args.batch, seed))
    for arm, runs in arms.items():
        result[arm] = {"runs": runs, "t2i_R@1": summary(runs, "t2i_R@1"), "t2i_R@5": summary(runs, "t2i_R@5")}
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
