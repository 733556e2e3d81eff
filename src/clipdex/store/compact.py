"""``clipdex compact``: rewrite the vector shards without the vectors of removed or replaced items.

Removing or re-embedding items leaves their old vectors in the append-only
shards ("dead" in ``clipdex info``). Compaction copies the live vectors into
new shards under new ids, in one transaction that switches every vector row
to its new id, then rebuilds the FAISS index (its ids are vector ids). A
killed run leaves the old shards and rows in force; the unused new files are
removed by the next write.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clipdex.errors import DamagedError
from clipdex.store.db import bump_version, get_meta, set_meta
from clipdex.store.store import Store
from clipdex.store.vectors import file_sha256, write_shard

__all__ = ["CompactReport", "compact"]

SHARD_ROWS = 65_536


@dataclass
class CompactReport:
    live: int
    dropped: int
    bytes_before: int
    bytes_after: int
    index: str


def compact(store: Store, wait: float = 0.0) -> CompactReport:
    """Rewrite the shards with only live vectors (same values, new ids) and rebuild the index.

    Raises:
        CollectionLockedError: another process is writing.
        DamagedError: a shard cannot be read (run ``clipdex repair`` first).
    """
    folder = store.path / "vectors"
    before = sum(p.stat().st_size for p in folder.glob("shard-*.npy"))
    factory = store.recorded_index_factory()
    with store.writing(wait) as conn:
        rows = conn.execute("SELECT vec_id, 'vectors' FROM vectors UNION ALL SELECT vec_id, 'regions' FROM regions "
                            "ORDER BY vec_id").fetchall()
        stored = int(conn.execute("SELECT COALESCE(SUM(count), 0) FROM shards").fetchone()[0])
        matrix = _gather(store, conn, np.asarray([r[0] for r in rows], np.int64))
        first = int(get_meta(conn, "next_vec", "0"))
        shards = [(write_shard(folder, first + start, matrix[start:start + SHARD_ROWS], store.vector_dtype),
                   first + start, len(matrix[start:start + SHARD_ROWS])) for start in range(0, len(matrix), SHARD_ROWS)]
        try:
            for offset, (vec_id, table) in enumerate(rows):
                conn.execute(f"UPDATE {table} SET vec_id = ? WHERE vec_id = ?", (first + offset, vec_id))
            conn.execute("DELETE FROM shards")
            conn.execute("DELETE FROM shard_sums")
            for name, start, count in shards:
                conn.execute("INSERT INTO shards (file, first_vec, count) VALUES (?, ?, ?)", (name, start, count))
                conn.execute("INSERT INTO shard_sums VALUES (?, ?)", (name, file_sha256(folder / name)))
            set_meta(conn, "next_vec", first + len(rows))
            bump_version(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    with store.writing(wait):
        pass  # the next writer's start removes the old shard files no row names any more
    index = store.build_index(factory, threshold=0) if factory else store.build_index("exact")
    after = sum(p.stat().st_size for p in folder.glob("shard-*.npy"))
    return CompactReport(len(rows), stored - len(rows), before, after, index)


def _gather(store: Store, conn: object, vec_ids: np.ndarray) -> np.ndarray:
    """The stored rows (as stored: float16 or float32) of these vector ids, in their order."""
    out = np.zeros((len(vec_ids), store.dim), np.dtype(store.vector_dtype))
    for file, start, count in store.conn.execute("SELECT file, first_vec, count FROM shards ORDER BY first_vec"):
        lo, hi = np.searchsorted(vec_ids, start), np.searchsorted(vec_ids, start + count)
        if lo < hi:
            try:
                out[lo:hi] = np.load(store.path / "vectors" / file, mmap_mode="r")[vec_ids[lo:hi] - start]
            except (OSError, ValueError, IndexError, EOFError) as e:
                raise DamagedError(f"vector shard {file} cannot be read ({e}); run `clipdex repair` first") from e
    return out
