"""Training throughput of the built-in architecture: step vs data loading alone.

Defaults are stage 1 of the recipe of builtin:shapes-tiny (recipes/shapes_tiny.sh):
CNN image tower, word convolutions, grid read-out, a 256-d joint space,
cross-binding captions and scene supervision with the place read-outs.
Prints one JSON document. Usage:

    python benchmarks/bench_train.py [--batch-size 256] [--steps 5] [--hard-negatives 3] [--stem cnn]
        [--text-conv 2] [--scene-weight 1.0] [--place-weight 1.0] [--p-cross 0.35] [--embed-dim 256]
        [--no-grid-readout]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from clipdex.train.adapters import make_adapter
from clipdex.train.data import SynthData
from clipdex.train.loop import TrainConfig, _loss
from clipdex.train.scene import SceneHeads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--hard-negatives", type=int, default=3)
    parser.add_argument("--stem", default="cnn")
    parser.add_argument("--text-conv", type=int, default=2)
    parser.add_argument("--scene-weight", type=float, default=1.0)
    parser.add_argument("--place-weight", type=float, default=1.0)
    parser.add_argument("--p-cross", type=float, default=0.35)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--no-grid-readout", dest="grid_readout", action="store_false")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    adapter = make_adapter("builtin", stem=args.stem, text_conv=args.text_conv, grid_readout=args.grid_readout,
                           embed_dim=args.embed_dim)
    data = SynthData(0, args.batch_size, adapter.runtime, args.hard_negatives, p_relation=0.6, p_cross=args.p_cross)
    cfg = TrainConfig(out="unused", batch_size=args.batch_size, hard_negatives=args.hard_negatives,
                      stem=args.stem, text_conv=args.text_conv, grid_readout=args.grid_readout,
                      scene_weight=args.scene_weight, place_weight=args.place_weight, p_cross=args.p_cross,
                      embed_dim=args.embed_dim)
    if args.scene_weight > 0:
        adapter.module.scene_heads = SceneHeads(adapter.runtime.dim, adapter.image_tower.width)
    optimizer = torch.optim.AdamW(adapter.module.parameters(), lr=1e-3)

    data_times, step_times = [], []
    for step in range(args.steps + 1):
        t = time.perf_counter()
        batch = data.batch(step)
        data_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        loss = _loss(adapter, batch, cfg)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - t)
    data_s, step_s = statistics.median(data_times[1:]), statistics.median(step_times[1:])  # first is warm-up
    out = {
        "batch_size": args.batch_size, "hard_negatives": args.hard_negatives, "cores": os.cpu_count(),
        "stem": args.stem, "text_conv": args.text_conv, "grid_readout": args.grid_readout,
        "scene_weight": args.scene_weight, "place_weight": args.place_weight, "embed_dim": args.embed_dim,
        "params": sum(p.numel() for p in adapter.module.parameters()),
        "data_loading_samples_s": round(args.batch_size / data_s, 1),
        "train_step_samples_s": round(args.batch_size / step_s, 1),
        "data_share_of_step_if_serial": round(data_s / (data_s + step_s), 3),
        "data_is_bottleneck": data_s > step_s,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
