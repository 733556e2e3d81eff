"""Synthetic-world throughput on one core: scenes/s to sample, caption, render and write.

The goal (issue 8) is >= 2,000 scenes/s on one core at 64 px for a scene with its
captions and its image. The process pins itself to one CPU. Baseline in the same
run: Pillow's fixed cost of any supersampled image of that size (a blank canvas
at 2x, downscaled), so the ratio says what drawing the objects adds. Medians over
``--repeats`` passes. Prints one JSON document. Usage:

    python benchmarks/bench_synth.py [--n 4000] [--size 64] [--repeats 3] [--work build/bench-synth]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from clipdex.synth import captions_for, render_scene, sample_scenes, write_scenes


def _rate(n: int, work: Callable[[], object], repeats: int) -> float:
    """Median items/s of ``work`` (which handles ``n`` items) over ``repeats`` passes."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default="build/bench-synth")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    n, size = args.n, args.size
    scenes = sample_scenes(n, seed=0)

    def blank_canvas() -> None:
        for _ in range(n):
            Image.new("RGB", (2 * size, 2 * size), (200, 200, 200)).resize((size, size), Image.Resampling.BOX)

    def sample_and_caption() -> None:
        rng = random.Random(0)
        for scene in sample_scenes(n, seed=0):
            captions_for(scene, 5, rng)

    def render() -> None:
        for scene in scenes:
            render_scene(scene, size)

    def scene_caption_image(png: bool) -> Callable[[], None]:
        def work() -> None:
            rng = random.Random(0)
            for scene in sample_scenes(n, seed=0):
                captions_for(scene, 5, rng)
                image = render_scene(scene, size)
                if png:
                    image.save(io.BytesIO(), format="PNG", compress_level=1)  # as the writers do
        return work

    work = Path(args.work)

    def folder_writer() -> None:
        shutil.rmtree(work, ignore_errors=True)
        write_scenes(work, n, seed=0, fmt="folder", size=size)

    r = args.repeats
    rates = {
        "baseline_blank_canvas": _rate(n, blank_canvas, r),
        "sample_and_5_captions": _rate(n, sample_and_caption, r),
        "render_only": _rate(n, render, r),
        "scene_captions_image": _rate(n, scene_caption_image(png=False), r),
        "scene_captions_image_png": _rate(n, scene_caption_image(png=True), r),
        "write_scenes_folder": _rate(n, folder_writer, r),
    }
    shutil.rmtree(work, ignore_errors=True)
    out: dict[str, object] = {
        "n": n, "size": size, "cores_used": 1, "repeats": r,
        "scenes_per_s": {k: round(v, 1) for k, v in rates.items()},
        "render_cost_vs_blank_canvas": round(rates["baseline_blank_canvas"] / rates["render_only"], 2),
        "goal_scenes_per_s": 2000,
        "meets_goal": rates["scene_captions_image"] >= 2000,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
