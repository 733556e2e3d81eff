"""Generate CLIP-like unit vectors in clip-retrieval's layout, for index benchmarks at 10M and beyond.

CLIP embeddings are not isotropic: their variance falls off over the
dimensions (a power law), they share a common offset (the "modality gap"),
and they cluster by concept. The generator draws a two-level mixture --
concepts, then sub-concepts around them -- with a power-law spectrum and a
shared offset, writes float16 parts of ``--part-size`` rows (written through a
memory map, so a 10M × 512 set never sits in RAM) with aligned metadata
(key, image_path, caption), and a held-out query set (``queries.npy``,
float32 unit rows drawn the same way from another seed, moved a little towards
a "text" offset as captions are).

    python benchmarks/make_vectors.py --n 10000000 --dim 512 --out build/vec10m
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


class ClipLike:
    """The generator: deterministic from a seed, so a benchmark can be rerun on the same vectors."""

    def __init__(self, dim: int, concepts: int = 4096, subs: int = 16, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.scale = (np.arange(1, dim + 1) ** -0.5).astype(np.float32)  # variance falls off over dimensions
        self.scale /= np.linalg.norm(self.scale)
        self.offset = rng.standard_normal(dim).astype(np.float32)
        self.offset *= 0.6 / np.linalg.norm(self.offset)
        self.text_offset = rng.standard_normal(dim).astype(np.float32)
        self.text_offset *= 0.2 / np.linalg.norm(self.text_offset)
        self.concepts = rng.standard_normal((concepts, dim)).astype(np.float32) * self.scale
        self.subs = rng.standard_normal((concepts, subs, dim)).astype(np.float32) * self.scale * 0.6

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        concept = rng.integers(0, len(self.concepts), n)
        sub = rng.integers(0, self.subs.shape[1], n)
        noise = rng.standard_normal((n, len(self.scale)), dtype=np.float32) * self.scale * 0.5
        out = self.concepts[concept] + self.subs[concept, sub] + noise + self.offset
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def write(out: Path, n: int, dim: int, part_size: int, queries: int, seed: int) -> dict[str, object]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    world = ClipLike(dim, seed=seed)
    for sub in ("img_emb", "metadata"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for part, start in enumerate(range(0, n, part_size)):
        rows = min(part_size, n - start)
        target = out / "img_emb" / f"img_emb_{part}.npy"
        if (out / "metadata" / f"metadata_{part}.parquet").exists():
            continue  # resumable: the metadata is written last
        rng = np.random.default_rng([seed, part])
        array = np.lib.format.open_memmap(str(target) + ".tmp.npy", "w+", np.float16, (rows, dim))
        for chunk in range(0, rows, 100_000):
            take = min(100_000, rows - chunk)
            array[chunk:chunk + take] = world.draw(take, rng)
        array.flush()
        del array
        os.replace(str(target) + ".tmp.npy", target)
        keys = [f"{start + i:09d}" for i in range(rows)]
        table = pa.table({"key": keys, "image_path": [f"shard{part:05d}/{k}.jpg" for k in keys],
                          "caption": [f"generated vector {k}" for k in keys]})
        pq.write_table(table, out / "metadata" / f"metadata_{part}.parquet.tmp", row_group_size=4096)
        os.replace(out / "metadata" / f"metadata_{part}.parquet.tmp", out / "metadata" / f"metadata_{part}.parquet")
        print(json.dumps({"part": part, "rows": rows, "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    held_out = world.draw(queries, np.random.default_rng([seed, 10**9])) + world.text_offset
    held_out /= np.linalg.norm(held_out, axis=1, keepdims=True)
    np.save(out / "queries.npy", held_out.astype(np.float32))
    return {"vectors": n, "dim": dim, "parts": -(-n // part_size), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--part-size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="build/vec10m")
    args = parser.parse_args()
    print(json.dumps(write(Path(args.out), args.n, args.dim, args.part_size, args.queries, args.seed)))


if __name__ == "__main__":
    main()
