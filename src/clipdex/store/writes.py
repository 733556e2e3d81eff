"""Writing items into a store: plan what changed, then commit batches of rows and vectors.

Each batch is one shard file plus one SQLite transaction, so a killed process
loses at most the batch in flight, and re-running the same command skips what
was committed (by path, size, mtime and a hash of captions and metadata). The
vectors arrive computed (by :mod:`clipdex.indexing`, or by another tool through
:func:`add_embedded`): nothing here knows an encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipdex.linalg import l2_normalize
from clipdex.media.members import split_member_path
from clipdex.media.sources import Item, display_path
from clipdex.media.video import split_frame_path
from clipdex.store.db import bump_version, dumps, get_meta, set_meta
from clipdex.store.store import Store
from clipdex.store.vectors import file_sha256, write_shard

__all__ = ["EncodedBatch", "IndexReport", "PlannedItem", "add_embedded", "content_hash", "fingerprint", "plan_items",
           "write_batch"]

Box = tuple[float, float, float, float]


@dataclass
class IndexReport:
    """What one ``index`` run did."""

    seen: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    pruned: int = 0
    moved: int = 0  # items whose file was found under another path (moved or renamed): kept, not embedded again
    gone: int = 0  # items of this source whose files are gone, kept because prune was not asked for
    captions: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0  # time inside the encoder: the rest went to planning, decoding, storing
    backend: str = ""  # the image tower's backend (``auto`` resolved)
    calibration_seconds: float = 0.0  # the one-time backend measurement, when this run made it (not in img/s)
    index: str = "exact"
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def model_busy(self) -> float:
        """Share of the run's wall time the model was encoding (decoding that starves it shows as a low share)."""
        seconds = self.seconds - self.calibration_seconds
        return min(1.0, self.model_seconds / seconds) if seconds > 0 else 0.0

    @property
    def images_per_second(self) -> float:
        embedded, seconds = self.added + self.updated, self.seconds - self.calibration_seconds
        return embedded / seconds if seconds > 0 else 0.0


@dataclass
class PlannedItem:
    """An item to (re-)embed: its exact OS path, what it looks like now, and the row it replaces."""

    item: Item
    path_bytes: bytes
    fingerprint: str
    old_id: int | None
    rel: str
    source: str
    content: str | None = None


@dataclass
class EncodedBatch:
    """One batch ready to commit: every planned item with its error (None: ok), and the vectors of the ok ones.

    ``image_vectors`` has one row per ok item, in order; captions and region
    crops name their ok item by its position among the ok items (``*_owner``).
    """

    planned: list[PlannedItem]
    errors: list[str | None]
    image_vectors: np.ndarray | None = None
    caption_owner: list[int] = field(default_factory=list)
    caption_texts: list[str] = field(default_factory=list)
    caption_vectors: np.ndarray | None = None
    region_owner: list[int] = field(default_factory=list)
    region_boxes: list[Box] = field(default_factory=list)
    region_vectors: np.ndarray | None = None


def fingerprint(item: Item) -> str:
    """What 'changed' means: the file's size and mtime, and a hash of its captions and metadata."""
    container = split_frame_path(item.path) if "#t=" in item.path else split_member_path(item.path)
    try:
        st = os.stat(container[0] if container else item.path)  # a frame or tar member changes with its file
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    text = json.dumps([item.captions, item.metadata], sort_keys=True, default=str)
    return f"{stamp}:{hashlib.sha1(text.encode()).hexdigest()[:12]}"


_HASHED_BYTES = 1 << 30  # larger files (no photo is) are matched by path and stamp only


def content_hash(path: str) -> str | None:
    """A hash of a file's bytes (BLAKE2b, 128 bits): what makes a moved or renamed photo the same item,
    and two copies exact duplicates. None for what is not a plain file (a video frame, a tar member)."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > _HASHED_BYTES:
            return None
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def plan_items(conn: sqlite3.Connection, items: Iterable[Item], source_key: str, rel_root: str,
               report: IndexReport) -> tuple[list[PlannedItem], list[int]]:
    """The new or changed items to embed, and the ids of this source's items whose files are gone.

    An item stored under another spelling of the same file (a relative path recorded by an older
    clipdex, the same source named another way) is matched by its source and path within it, and
    its stored path is brought up to date instead of adding it twice. So is a file whose folder moved
    (an item of another source whose file is gone, at the same path within its source, with the same
    size and mtime) and a file moved or renamed anywhere (an item whose file is gone, with the same
    content hash): its vector is kept (``report.moved``). A file whose stamp changed but whose bytes
    did not (touched, copied back) is not embedded again.
    """
    known = {bytes(r[0]): (r[1], r[2], r[3], r[4]) for r in
             conn.execute("SELECT path_bytes, id, fingerprint, source, content FROM items")}
    by_rel = {r[1]: bytes(r[0]) for r in
              conn.execute("SELECT path_bytes, rel FROM items WHERE source = ?", (source_key,))}
    # items of other sources, by path within their source and file stamp: a moved folder's files match them
    elsewhere = {(r[1], _stamp(r[2])): bytes(r[0]) for r in
                 conn.execute("SELECT path_bytes, rel, fingerprint FROM items WHERE source != ?", (source_key,))}
    by_content: dict[str, list[bytes]] = {}
    for path_bytes_, (_, _, _, content) in known.items():
        if content:
            by_content.setdefault(content, []).append(path_bytes_)
    seen: set[bytes] = set()
    todo: list[PlannedItem] = []
    for item in items:
        path_bytes = os.fsencode(item.path)
        if path_bytes in seen:
            continue
        seen.add(path_bytes)
        report.seen += 1
        rel = display_path(os.path.relpath(item.path, rel_root) if rel_root else item.path)
        old_bytes = by_rel.get(rel)
        now = fingerprint(item)
        digest, moved_here = None, old_bytes is None
        if path_bytes not in known and old_bytes is None:
            moved = elsewhere.get((rel, _stamp(now)))
            if moved is not None and moved in known and not os.path.exists(os.fsdecode(moved)):
                old_bytes = moved  # the same file, moved with its folder: relocated, not embedded again
            else:
                digest = content_hash(item.path)
                old_bytes = _gone_copy(by_content.get(digest or "", []), known, seen)  # moved or renamed
        if path_bytes not in known and old_bytes is not None and old_bytes not in seen and old_bytes in known:
            _relocate(conn, known[old_bytes][0], path_bytes, item.path, source_key)
            known[path_bytes] = _moved_entry(known, old_bytes, source_key)
            report.moved += moved_here  # not a stored path spelled another way: a file that moved
            relocated = moved_here
        else:
            relocated = False
        old = known.get(path_bytes)
        same = old is not None and old[1] == now
        if old is not None and not same and old[3] and _same_content(old, now, digest, item.path):
            # touched or copied back, not changed: the stored vector stands, the new stamp is recorded
            conn.execute("UPDATE items SET fingerprint = ? WHERE id = ?", (now, old[0]))
            same = True
        if same:
            report.skipped += 0 if relocated else 1  # a moved item is counted once, as moved
            continue
        if digest is None:
            digest = content_hash(item.path)
        todo.append(PlannedItem(item, path_bytes, now, old[0] if old else None, rel, source_key, digest))
    gone = [v[0] for k, v in known.items() if v[2] == source_key and k not in seen]
    conn.commit()
    return todo, gone


def _gone_copy(candidates: list[bytes], known: dict[bytes, Any], seen: set[bytes]) -> bytes | None:
    """The stored item with this content whose file is gone (so the file has moved), or None.

    Only while no stored copy of the same bytes is still in place: a new file identical to one that is
    there is another copy (a duplicate), not the moved one.
    """
    stored = [p for p in candidates if p in known]
    gone = [p for p in stored if not os.path.exists(os.fsdecode(p))]
    if len(gone) < len(stored):
        return None
    return next((p for p in gone if p not in seen), None)


def _moved_entry(known: dict[bytes, Any], old_bytes: bytes, source: str) -> tuple[Any, ...]:
    item_id, stored, _, content = known.pop(old_bytes)
    return item_id, stored, source, content


def _same_content(old: tuple[Any, ...], now: str, digest: str | None, path: str) -> bool:
    """Whether a file whose stamp changed still holds the stored bytes, with the same captions and metadata."""
    if old[1].rsplit(":", 1)[-1] != now.rsplit(":", 1)[-1]:
        return False
    return (digest or content_hash(path)) == old[3]


def _relocate(conn: sqlite3.Connection, item_id: int, path_bytes: bytes, path: str, source: str) -> None:
    conn.execute("UPDATE items SET path_bytes = ?, path = ?, source = ? WHERE id = ?",
                 (path_bytes, display_path(path), source, item_id))
    bump_version(conn)


def _stamp(fingerprint_: str) -> str:
    """The file part of a fingerprint (size and mtime), without the hash of captions and metadata."""
    return ":".join(fingerprint_.split(":")[:2])


def write_batch(store: Store, conn: sqlite3.Connection, batch: EncodedBatch, report: IndexReport) -> None:
    """Commit one batch: its shard file, then every row in one transaction (the shard becomes visible with them).

    Captions without vectors (``batch.caption_vectors`` is None) are stored as text only.
    """
    parts = [v for v in (batch.image_vectors, batch.caption_vectors, batch.region_vectors) if v is not None]
    first_vec = int(get_meta(conn, "next_vec", "0"))
    shard = write_shard(store.path / "vectors", first_vec, np.concatenate(parts), store.vector_dtype) \
        if parts else None
    try:
        item_ids = [_upsert_item(conn, p, e, report) for p, e in zip(batch.planned, batch.errors, strict=True)]
        good_ids = [i for i, e in zip(item_ids, batch.errors, strict=True) if e is None]
        next_vec = first_vec
        for item_id in good_ids:
            conn.execute("INSERT INTO vectors VALUES (?, ?, NULL, 'image')", (next_vec, item_id))
            next_vec += 1
        if batch.caption_vectors is not None:
            for owner, text in zip(batch.caption_owner, batch.caption_texts, strict=True):
                cur = conn.execute("INSERT INTO captions (item_id, text) VALUES (?, ?)", (good_ids[owner], text))
                conn.execute("INSERT INTO vectors VALUES (?, ?, ?, 'caption')",
                             (next_vec, good_ids[owner], cur.lastrowid))
                next_vec += 1
        for owner, box in zip(batch.region_owner, batch.region_boxes, strict=True):
            conn.execute("INSERT INTO regions VALUES (?, ?, ?, ?, ?, ?)", (next_vec, good_ids[owner], *box))
            next_vec += 1
        if batch.caption_vectors is None:
            good = [p for p, e in zip(batch.planned, batch.errors, strict=True) if e is None]
            for item_id, planned in zip(good_ids, good, strict=True):
                conn.executemany("INSERT INTO captions (item_id, text) VALUES (?, ?)",
                                 [(item_id, t) for t in planned.item.captions])
        if shard:
            conn.execute("INSERT INTO shards (file, first_vec, count) VALUES (?, ?, ?)",
                         (shard, first_vec, next_vec - first_vec))
            conn.execute("INSERT OR REPLACE INTO shard_sums VALUES (?, ?)",
                         (shard, file_sha256(store.path / "vectors" / shard)))
        set_meta(conn, "next_vec", next_vec)
        bump_version(conn)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    report.captions += len(batch.caption_texts) if batch.caption_vectors is not None else 0


def _upsert_item(conn: sqlite3.Connection, planned: PlannedItem, error: str | None, report: IndexReport) -> int:
    status = "ok" if error is None else "error"
    values: dict[str, Any] = {
        "path": display_path(planned.item.path), "rel": planned.rel, "source": planned.source,
        "fingerprint": planned.fingerprint, "content": planned.content, "status": status, "error": error,
        "metadata": dumps(planned.item.metadata), "added_at": time.time(),
    }
    if error:
        report.failed += 1
        report.errors.append({"path": values["path"], "error": error})
    if planned.old_id is not None:
        conn.execute("DELETE FROM vectors WHERE item_id = ?", (planned.old_id,))
        conn.execute("DELETE FROM captions WHERE item_id = ?", (planned.old_id,))
        conn.execute("DELETE FROM regions WHERE item_id = ?", (planned.old_id,))
        conn.execute(
            "UPDATE items SET path=:path, rel=:rel, source=:source, fingerprint=:fingerprint, content=:content, "
            "status=:status, error=:error, metadata=:metadata, added_at=:added_at WHERE id=:id",
            {**values, "id": planned.old_id})
        if not error:
            report.updated += 1
        return planned.old_id
    cur = conn.execute(
        "INSERT INTO items (path_bytes, path, rel, source, fingerprint, content, status, error, metadata, added_at) "
        "VALUES (:path_bytes, :path, :rel, :source, :fingerprint, :content, :status, :error, :metadata, :added_at)",
        {**values, "path_bytes": planned.path_bytes})
    if not error:
        report.added += 1
    return int(cur.lastrowid or 0)


def add_embedded(store: Store, items: list[Item], image_vectors: np.ndarray, wait: float = 0.0,
                 batch_size: int = 10_000) -> int:
    """Store items whose image vectors were computed elsewhere (a Ray job, another tool).

    Vectors are L2-normalised here; items already in the collection (same
    path) are replaced. Commits in batches, like indexing.

    Returns:
        How many items were stored.

    Raises:
        ValueError: the vectors do not match the items or the collection's dimension.
    """
    vectors = l2_normalize(image_vectors)
    if vectors.shape != (len(items), store.dim):
        raise ValueError(f"expected vectors of shape ({len(items)}, {store.dim}), got {vectors.shape}")
    report = IndexReport()
    with store.writing(wait) as conn:
        known = {bytes(r[0]): r[1] for r in conn.execute("SELECT path_bytes, id FROM items")}
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            planned = [PlannedItem(item, os.fsencode(item.path), fingerprint(item), known.get(os.fsencode(item.path)),
                                   display_path(item.path), "embedded") for item in chunk]
            batch = EncodedBatch(planned, [None] * len(planned), vectors[start : start + batch_size])
            write_batch(store, conn, batch, report)
    return len(items)
