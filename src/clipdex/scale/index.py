"""Indexes over embedding folders (clip-retrieval's layout) built for a memory budget.

``plan_index`` picks the FAISS factory whose codes fit the budget, best first:
flat float32, IVF with float16 or 8-bit scalar codes, then IVF with 4-bit
fast-scan product quantisation of fewer and fewer bytes per vector. The index is trained on a sample and filled
part by part, so the vectors are never all in RAM. A search re-ranks the
index's candidates exactly from the float16 vectors on disk (memory-mapped),
and hydrates results from the metadata part files by row.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.encoders.base import l2_normalize
from clipdex.errors import ClipdexError, SourceError
from clipdex.store.vectors import gather_rows

__all__ = ["EmbeddingIndex", "IndexPlan", "build_index", "parse_size", "plan_index"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"2G"`` -> bytes (K, M, G, T are powers of 1024).

    Raises:
        ClipdexError: not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?\s*", text.upper())
    if not match:
        raise ClipdexError(f"cannot read the size {text!r}; write e.g. 512M or 2G")
    return int(float(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class IndexPlan:
    factory: str
    bytes_per_vector: int
    fixed_bytes: int
    nlist: int
    nprobe: int

    def total_bytes(self, n: int) -> int:
        return n * self.bytes_per_vector + self.fixed_bytes


def _nlist(n: int) -> int:
    return int(min(65_536, max(16, 4 * math.sqrt(n)), max(1, n // 39)))


def plan_index(n: int, dim: int, budget: int) -> IndexPlan:
    """The best index for ``n`` vectors of ``dim`` that fits ``budget`` bytes of RAM.

    Raises:
        ClipdexError: even the smallest codes do not fit; the message gives the minimum budget.
    """
    nlist = _nlist(n)
    nprobe = max(8, nlist // 64)
    centroids = nlist * dim * 4
    options = [IndexPlan("Flat", 4 * dim, 0, 0, 0),
               IndexPlan(f"IVF{nlist},SQfp16", 2 * dim + 8, centroids, nlist, nprobe),
               IndexPlan(f"IVF{nlist},SQ8", dim + 8, centroids, nlist, nprobe)]
    # 4-bit fast-scan PQ: trains in a fraction of a second where 8-bit PQ takes a minute on this machine,
    # and the exact re-ranking from the float16 vectors on disk makes up for the coarser codes
    for m in (dim // 2, dim // 4, dim // 8, dim // 16):
        if m >= 4 and m % 2 == 0 and dim % m == 0:
            options.append(IndexPlan(f"IVF{nlist},PQ{m}x4fs", m // 2 + 8, centroids, nlist, nprobe))
    for plan in options:
        if plan.total_bytes(n) <= budget:
            return plan
    smallest = options[-1]
    raise ClipdexError(f"a memory budget of {budget:,} bytes is too small for {n:,} vectors of {dim} dimensions: "
                       f"the smallest index ({smallest.factory}) needs {smallest.total_bytes(n):,} bytes")


def _parts(emb: Path) -> list[tuple[Path, Path]]:
    files = sorted((emb / "img_emb").glob("img_emb_*.npy"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not files:
        raise SourceError(f"{emb}: no img_emb/img_emb_*.npy files (clip-retrieval's layout)")
    out = []
    for npy in files:
        meta = emb / "metadata" / npy.name.replace("img_emb", "metadata").replace(".npy", ".parquet")
        if not meta.exists():
            raise SourceError(f"{npy}: no matching {meta}")
        out.append((npy, meta))
    return out


def build_index(emb: str | os.PathLike[str], out: str | os.PathLike[str], memory_budget: int,
                factory: str | None = None) -> dict[str, Any]:
    """Build an index of ``emb``'s image vectors into ``out`` (``index.faiss`` + ``manifest.json``).

    Returns the manifest: the chosen factory, counts, sizes and build time.
    """
    import faiss

    emb, out = Path(emb), Path(out)
    parts = _parts(emb)
    arrays = [np.load(npy, mmap_mode="r") for npy, _ in parts]
    n, dim = sum(len(a) for a in arrays), int(arrays[0].shape[1])
    plan = plan_index(n, dim, memory_budget)
    chosen = factory or plan.factory
    started = time.perf_counter()
    index = faiss.index_factory(dim, chosen, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        take = min(n, max(40 * max(plan.nlist, 1), 10_000), 500_000)
        rows = np.sort(np.random.default_rng(0).choice(n, take, replace=False))
        index.train(gather_rows(arrays, rows))
    for array in arrays:
        for start in range(0, len(array), 100_000):
            index.add(l2_normalize(array[start:start + 100_000]))
    if plan.nprobe:
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", plan.nprobe)
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / "index.faiss.tmp"))
    os.replace(out / "index.faiss.tmp", out / "index.faiss")
    manifest = {"factory": chosen, "vectors": n, "dim": dim, "nprobe": plan.nprobe, "emb": str(emb.resolve()),
                "parts": [{"npy": str(npy), "metadata": str(meta), "rows": len(a)}
                          for (npy, meta), a in zip(parts, arrays, strict=True)],
                "memory_budget": memory_budget, "planned": asdict(plan),
                "index_bytes": (out / "index.faiss").stat().st_size,
                "build_seconds": round(time.perf_counter() - started, 2)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


class EmbeddingIndex:
    """A built index folder: search with exact re-ranking, results hydrated from metadata by row."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        import faiss

        folder = Path(folder)
        try:
            self.manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SourceError(f"{folder}: not an index folder (no readable manifest.json)") from e
        self.index = faiss.read_index(str(folder / "index.faiss"))
        if self.manifest["nprobe"]:
            faiss.ParameterSpace().set_index_parameter(self.index, "nprobe", self.manifest["nprobe"])
        self.arrays = [np.load(p["npy"], mmap_mode="r") for p in self.manifest["parts"]]
        self.offsets = np.cumsum([0] + [p["rows"] for p in self.manifest["parts"]])

    def search(self, query: np.ndarray, k: int = 10, rerank: int = 100) -> list[dict[str, Any]]:
        """Top ``k`` rows for a unit query: index candidates (``max(k, rerank)``), rescored exactly."""
        q = l2_normalize(np.asarray(query, np.float32).reshape(1, -1))
        _, ids = self.index.search(q, max(k, rerank))
        found = ids[0][ids[0] >= 0]
        if rerank:
            exact = gather_rows(self.arrays, found) @ q[0]
            order = np.argsort(-exact)[:k]
            found, scores = found[order], exact[order]
        else:
            found = found[:k]
            scores = gather_rows(self.arrays, found) @ q[0]
        return [{"row": int(r), "score": float(s), **self._metadata(int(r))} for r, s in zip(found, scores,
                                                                                               strict=True)]

    def _metadata(self, row: int) -> dict[str, Any]:
        part = int(np.searchsorted(self.offsets, row, side="right") - 1)
        path = self.manifest["parts"][part]["metadata"]
        local = row - int(self.offsets[part])
        starts = _row_group_starts(path)
        group = int(np.searchsorted(starts, local, side="right") - 1)
        table = _row_group(path, group)
        return table.slice(local - int(starts[group]), 1).to_pylist()[0]  # type: ignore[no-any-return]


@lru_cache(maxsize=1024)
def _row_group_starts(path: str) -> np.ndarray:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])[:-1]


@lru_cache(maxsize=64)
def _row_group(path: str, group: int) -> Any:
    """One row group of a metadata part: a hit reads its own group (4,096 rows as clipdex writes them),
    never the whole metadata into RAM; the most recent groups stay cached."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read_row_group(group)
