"""Append-only vector shards and the in-memory view searched by ``search/``.

A shard is one ``.npy`` file of float16 (or float32) rows whose vector ids are
``first_vec .. first_vec + count - 1``. A shard exists for readers only once
its row in the ``shards`` table is committed; a file without a row is debris
from a killed writer and is deleted by the next writer.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from clipdex.errors import DamagedError

__all__ = ["VectorView", "gather_rows", "load_view", "remove_orphan_shards", "write_shard"]


@dataclass
class VectorView:
    """Live vectors of one kind, ready to search.

    ``matrix`` is float32 ``(n, dim)``; row ``i`` belongs to item ``item_ids[i]``
    (and, for captions, caption ``caption_ids[i]``; -1 for images).
    """

    matrix: np.ndarray
    vec_ids: np.ndarray
    item_ids: np.ndarray
    caption_ids: np.ndarray
    _delta: tuple[np.ndarray, int, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.vec_ids)

    def delta_against(self, indexed: np.ndarray) -> tuple[int, np.ndarray]:
        """How many ``indexed`` ids are gone from this view, and the rows not in the index.

        Both are O(n) set operations, so they are computed once per (view, index) pair
        rather than on every query.
        """
        if self._delta is None or self._delta[0] is not indexed:
            removed = len(indexed) - int(np.isin(indexed, self.vec_ids, assume_unique=True).sum())
            rows = np.flatnonzero(~np.isin(self.vec_ids, indexed, assume_unique=True))
            self._delta = (indexed, removed, rows)
        return self._delta[1], self._delta[2]


def write_shard(folder: Path, first_vec: int, vectors: np.ndarray, dtype: str) -> str:
    """Write a shard atomically and return its file name (not yet committed)."""
    name = f"shard-{first_vec:012d}.npy"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(vectors, dtype=np.dtype(dtype)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / name)
    return name


def file_sha256(path: Path) -> str:
    """A file's sha256, read in blocks: recorded for shards and index files when written, compared by verify."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_orphan_shards(conn: sqlite3.Connection, folder: Path) -> int:
    """Delete shard files the database does not list; returns how many."""
    known = {row[0] for row in conn.execute("SELECT file FROM shards")}
    removed = 0
    for path in folder.iterdir():
        if path.name not in known and (path.name.endswith(".tmp") or path.name.startswith("shard-")):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def load_view(conn: sqlite3.Connection, folder: Path, kind: str, dim: int, after: int = -1) -> VectorView:
    """Gather the live vectors of ``kind`` ('image', 'caption' or 'region') from all shards; with ``after``,
    only those whose id is larger (ids only grow, so: the ones added since that vector was written)."""
    if kind == "region":
        try:
            rows = conn.execute("SELECT vec_id, item_id, -1 FROM regions WHERE vec_id > ? ORDER BY vec_id",
                                (after,)).fetchall()
        except sqlite3.OperationalError:
            rows = []  # a collection from before regions existed, opened read-only
    else:
        rows = conn.execute(
            "SELECT vec_id, item_id, COALESCE(caption_id, -1) FROM vectors WHERE kind = ? AND vec_id > ? "
            "ORDER BY vec_id", (kind, after),
        ).fetchall()
    if not rows:
        empty = np.zeros(0, np.int64)
        return VectorView(np.zeros((0, dim), np.float32), empty, empty.copy(), empty.copy())
    table = np.asarray(rows, dtype=np.int64)
    vec_ids = table[:, 0]
    matrix = np.empty((len(vec_ids), dim), np.float32)
    filled = np.zeros(len(vec_ids), bool)
    for file, first, count in conn.execute("SELECT file, first_vec, count FROM shards ORDER BY first_vec"):
        lo = np.searchsorted(vec_ids, first)
        hi = np.searchsorted(vec_ids, first + count)
        if lo == hi:
            continue  # every vector of this shard was removed or is of the other kind
        try:
            shard = np.load(folder / file, mmap_mode="r")
            if shard.shape != (count, dim):
                raise ValueError(f"shape {shard.shape}, expected ({count}, {dim})")
            matrix[lo:hi] = shard[vec_ids[lo:hi] - first]
        except FileNotFoundError:
            continue  # its rows are skipped (verify names the missing file)
        except (ValueError, OSError, EOFError, IndexError) as e:
            raise DamagedError(f"vector shard {file} is damaged ({str(e).splitlines()[0][:120]}); "
                                  "run `clipdex verify` and `clipdex repair`") from e
        filled[lo:hi] = True
    # a vector row whose shard is missing, or whose numbers are not finite, is left out (verify names it)
    keep = filled & np.isfinite(matrix).all(axis=1)
    matrix = matrix[keep]
    # float16 storage moves norms by ~1e-4; renormalise so cosine stays in [-1, 1]
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return VectorView(matrix, vec_ids[keep], table[keep, 1], table[keep, 2])


class RowSource(Protocol):
    """A part of rows: a (memory-mapped) array, or anything indexed by an array of rows like one."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, rows: np.ndarray) -> np.ndarray: ...


def gather_rows(parts: Sequence[RowSource] | Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Unit float32 rows by global index over consecutive parts (e.g. memory-mapped float16 shards).

    Each part is indexed once, with its rows together, so a memory map reads only the pages it needs.
    """
    from clipdex.linalg import l2_normalize

    rows = np.asarray(rows, np.int64)
    offsets = np.cumsum([0] + [len(p) for p in parts])
    position = np.searchsorted(offsets, rows, side="right") - 1
    out = np.zeros((len(rows), parts[0].shape[1] if parts else 0), np.float32)
    for part in np.unique(position):
        sel = position == part
        out[sel] = parts[int(part)][rows[sel] - offsets[part]]
    return l2_normalize(out)  # float16 storage moves norms by ~1e-4
