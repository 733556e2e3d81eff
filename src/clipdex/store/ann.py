"""The approximate index: a FAISS index over a snapshot of the image vectors.

The index covers the vectors that were live when it was built; vectors added
later are searched exactly beside it and removed ones are filtered out, so a
stale index costs speed, never correctness.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.errors import CollectionError

__all__ = ["ANN_THRESHOLD", "AnnIndex", "build_ann", "default_factory", "load_ann"]

# Exact search over float32 is memory-bound: ~25 ms per 100k x 512 on a laptop core.
ANN_THRESHOLD = 200_000


def default_factory(n: int) -> str:
    """An IVF-Flat with about 4·sqrt(n) lists: fast to build, recall >= 0.95 at its nprobe."""
    nlist = max(16, int(4 * math.sqrt(n)))
    return f"IVF{nlist},Flat"


@dataclass
class AnnIndex:
    """A FAISS index plus the vector id of each of its rows."""

    index: Any
    vec_ids: np.ndarray
    factory: str
    nprobe: int

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, vec_ids) per query; missing slots have id -1."""
        import faiss

        if hasattr(self.index, "nprobe"):
            faiss.extract_index_ivf(self.index).nprobe = self.nprobe
        scores, rows = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        ids = np.where(rows >= 0, self.vec_ids[np.maximum(rows, 0)], -1)
        return scores, ids


def _default_nprobe(index: object, n: int) -> int:
    # nlist/64 lists: recall@10 >= 0.99 on the clustered benchmark at 100k and 1M (bench_search)
    nlist = getattr(index, "nlist", 0)
    return max(16, nlist // 64) if nlist else 0


def build_ann(matrix: np.ndarray, vec_ids: np.ndarray, factory: str | None = None,
              nprobe: int | None = None, seed: int = 0) -> AnnIndex:
    """Build an inner-product FAISS index from a faiss factory string.

    Raises:
        CollectionError: the factory string is not understood by FAISS.
    """
    import faiss

    n, dim = matrix.shape
    factory = factory or default_factory(n)
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise CollectionError(f"bad index factory {factory!r}: {str(e).splitlines()[0]}") from e
    data = np.ascontiguousarray(matrix, np.float32)
    if not index.is_trained:
        # k-means wants ~40 points per list; more only costs time
        rng = np.random.default_rng(seed)
        size = min(n, max(100_000, 40 * getattr(index, "nlist", 0)))
        sample = data[rng.choice(n, size=size, replace=False)] if size < n else data
        index.train(sample)
    index.add(data)
    nprobe = nprobe or _default_nprobe(index, n)
    if hasattr(index, "nprobe"):
        index.nprobe = nprobe
    return AnnIndex(index, np.asarray(vec_ids, np.int64), factory, nprobe)


def save_ann(ann: AnnIndex, folder: Path, version: int) -> None:
    """Write the index atomically: data first, then the manifest that names it."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".images.faiss.tmp"
    faiss.write_index(ann.index, str(tmp))
    os.replace(tmp, folder / "images.faiss")
    np.save(folder / ".vec_ids.tmp.npy", ann.vec_ids)
    os.replace(folder / ".vec_ids.tmp.npy", folder / "vec_ids.npy")
    manifest = {"factory": ann.factory, "nprobe": ann.nprobe, "count": len(ann.vec_ids), "version": version}
    (folder / ".manifest.tmp").write_text(json.dumps(manifest))
    os.replace(folder / ".manifest.tmp", folder / "manifest.json")


def load_ann(folder: Path) -> AnnIndex | None:
    """The saved index, or None when there is none (or it is incomplete)."""
    import faiss

    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        vec_ids = np.load(folder / "vec_ids.npy")
        index = faiss.read_index(str(folder / "images.faiss"))
    except (OSError, ValueError, RuntimeError):
        return None
    if index.ntotal != len(vec_ids):
        return None  # a crash between the files: ignore, rebuilt on next index
    return AnnIndex(index, vec_ids, manifest["factory"], int(manifest.get("nprobe", 0)))


def drop_ann(folder: Path) -> None:
    (folder / "manifest.json").unlink(missing_ok=True)
