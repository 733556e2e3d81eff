"""The approximate index: a FAISS index over a snapshot of the image vectors.

The index covers the vectors that were live when it was built; vectors added
later are searched exactly beside it and removed ones are filtered out, so a
stale index costs speed, never correctness.

On disk the index and its id map are one unit: both files are written into a
new folder (``index/v<version>-<stamp>/``), then one atomic replace of
``index/manifest.json`` points at it, recording each file's size and the id
map's sha256. A killed writer leaves the previous unit in force; a unit whose
files do not match its manifest is refused on open (search falls back to exact,
``info`` says so, and the next ``index`` rebuilds it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.errors import CollectionError, UsageError
from clipdex.store.vectors import file_sha256

__all__ = ["ANN_THRESHOLD", "AnnIndex", "IndexPlan", "build_ann", "default_factory", "load_ann", "open_ann",
           "plan_index", "train_quietly", "verify_ann"]

# Exact search over float32 is memory-bound: ~25 ms per 100k x 512 on a laptop core.
ANN_THRESHOLD = 200_000


def default_factory(n: int) -> str:
    """A collection's index when none is asked for: an IVF-Flat with :func:`plan_index`'s lists
    (about 4·sqrt(n)): fast to build, recall >= 0.95 at its nprobe, exact scores."""
    return f"IVF{_nlist(n)},Flat"


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


def train_quietly(faiss: Any, index: Any, sample: np.ndarray) -> None:
    """Train ``index`` on ``sample`` without faiss's "please provide at least N training points" line on
    stderr: the sample sizes here are chosen on purpose (30 to 40 points per list), and a warning the
    user cannot act on is noise in a command's output."""
    try:
        faiss.extract_index_ivf(index).cp.min_points_per_centroid = 1
    except (RuntimeError, AttributeError):
        pass  # no inverted lists: nothing warns
    index.train(sample)


def plan_index(n: int, dim: int, budget: int) -> IndexPlan:
    """The best index for ``n`` vectors of ``dim`` that fits ``budget`` bytes of RAM.

    Raises:
        UsageError: even the smallest codes do not fit; the message gives the minimum budget.
    """
    nlist = _nlist(n)
    nprobe = max(8, nlist // 64)
    centroids = nlist * dim * 4
    # past a few thousand lists, finding the nearest lists by brute force costs more than scanning them
    # (for every added vector and every query): an HNSW graph over the centroids finds them instead
    ivf = f"IVF{nlist}" if nlist < 4096 else f"IVF{nlist}_HNSW32"
    if nlist >= 4096:
        centroids += nlist * 32 * 2 * 4  # the graph's links
    options = [IndexPlan("Flat", 4 * dim, 0, 0, 0),
               IndexPlan(f"{ivf},SQfp16", 2 * dim + 8, centroids, nlist, nprobe),
               IndexPlan(f"{ivf},SQ8", dim + 8, centroids, nlist, nprobe)]
    # 4-bit fast-scan PQ: trains in a fraction of a second where 8-bit PQ takes a minute on this machine,
    # and the exact re-ranking from the float16 vectors on disk makes up for the coarser codes
    for m in (dim // 2, dim // 4, dim // 8, dim // 16):
        if m >= 4 and m % 2 == 0 and dim % m == 0:
            options.append(IndexPlan(f"{ivf},PQ{m}x4fs", m // 2 + 8, centroids, nlist, nprobe))
    for plan in options:
        if plan.total_bytes(n) <= budget:
            return plan
    smallest = options[-1]
    raise UsageError(f"a memory budget of {budget:,} bytes is too small for {n:,} vectors of {dim} dimensions: "
                       f"the smallest index ({smallest.factory}) needs {smallest.total_bytes(n):,} bytes")


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
        train_quietly(faiss, index, sample)
    index.add(data)
    nprobe = nprobe or _default_nprobe(index, n)
    if hasattr(index, "nprobe"):
        index.nprobe = nprobe
    return AnnIndex(index, np.asarray(vec_ids, np.int64), factory, nprobe)


def save_ann(ann: AnnIndex, folder: Path, version: int) -> None:
    """Write the index and its id map as one unit (see the module doc); older units are removed after."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    name = f"v{version}-{time.time_ns()}"
    tmp = folder / f".{name}.tmp"
    tmp.mkdir()
    faiss.write_index(ann.index, str(tmp / "images.faiss"))
    np.save(tmp / "vec_ids.npy", np.asarray(ann.vec_ids, np.int64))
    for f in (tmp / "images.faiss", tmp / "vec_ids.npy"):
        _fsync(f)
    os.replace(tmp, folder / name)
    manifest = {"factory": ann.factory, "nprobe": ann.nprobe, "count": len(ann.vec_ids), "version": version,
                "unit": name, "index_bytes": (folder / name / "images.faiss").stat().st_size,
                "vec_ids_sha256": file_sha256(folder / name / "vec_ids.npy"),
                "index_sha256": file_sha256(folder / name / "images.faiss")}  # checked by verify, not on every open
    pointer = folder / ".manifest.tmp"
    pointer.write_text(json.dumps(manifest))
    _fsync(pointer)
    os.replace(pointer, folder / "manifest.json")  # the one switch from the old unit to the new
    _remove_other_units(folder, keep=name)


def load_ann(folder: Path) -> AnnIndex | None:
    """The saved index, or None when there is none. See :func:`check_ann` for a damaged one."""
    return open_ann(folder)[0]


def open_ann(folder: Path) -> tuple[AnnIndex | None, str | None]:
    """(the saved index or None, the reason it was refused or None)."""

    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"index manifest unreadable ({e})"
    if not isinstance(manifest, dict) or "factory" not in manifest:
        return None, "index manifest has no factory"
    unit = folder / str(manifest.get("unit", "")) if manifest.get("unit") else folder  # older collections
    problem = _check_unit(unit, manifest) if manifest.get("unit") else None
    if problem:
        return None, problem
    try:
        vec_ids = np.load(unit / "vec_ids.npy")
        index = _read_index(str(unit / "images.faiss"))
    except (OSError, ValueError, RuntimeError) as e:
        return None, f"index files unreadable ({str(e).splitlines()[0][:120]})"
    if index.ntotal != len(vec_ids) or ("count" in manifest and len(vec_ids) != int(manifest["count"])):
        return None, f"index holds {index.ntotal} vectors but its id map {len(vec_ids)}"
    return AnnIndex(index, vec_ids, str(manifest["factory"]), int(manifest.get("nprobe", 0))), None


def _read_index(path: str) -> Any:
    """The index with its vectors mapped from the file rather than read into memory, where FAISS can (IVF
    lists): opening a 1M-vector index takes milliseconds and pages in only the lists a query probes.
    A unit's files are never rewritten in place (a rebuild writes a new unit), so the mapping stays valid."""
    import faiss

    try:
        return faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:  # an index type FAISS cannot map: read it whole
        return faiss.read_index(path)


def verify_ann(folder: Path) -> str | None:
    """Everything :func:`open_ann` checks, and the index file's own checksum (it reads the whole file)."""
    _, problem = open_ann(folder)
    if problem:
        return problem
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None  # no index
    unit = folder / str(manifest.get("unit", ""))
    if manifest.get("index_sha256") and file_sha256(unit / "images.faiss") != manifest["index_sha256"]:
        return "index file does not match its checksum (changed or damaged)"
    return None


def _check_unit(unit: Path, manifest: dict[str, Any]) -> str | None:
    try:
        size = (unit / "images.faiss").stat().st_size
        digest = file_sha256(unit / "vec_ids.npy")
    except OSError:
        return f"index unit {unit.name} is missing its files"
    if size != manifest.get("index_bytes"):
        return f"index file is {size} bytes, its manifest says {manifest.get('index_bytes')}"
    if digest != manifest.get("vec_ids_sha256"):
        return "index id map does not match its manifest (changed or damaged)"
    return None


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove_other_units(folder: Path, keep: str) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name != keep and entry.name.lstrip(".").startswith("v"):
            shutil.rmtree(entry, ignore_errors=True)
    for legacy in ("images.faiss", "vec_ids.npy"):  # the layout before units
        (folder / legacy).unlink(missing_ok=True)


def drop_ann(folder: Path) -> None:
    (folder / "manifest.json").unlink(missing_ok=True)
    if folder.is_dir():
        _remove_other_units(folder, keep="")
