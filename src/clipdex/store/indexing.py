"""Indexing: source items -> decode (parallel) -> encode -> shards + SQLite, in batches.

Each batch is one shard file plus one SQLite transaction, so a killed process
loses at most the batch in flight, and re-running the same command skips what
was committed (by path, size, mtime and a hash of captions and metadata).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clipdex.errors import CollectionError, SourceError
from clipdex.media.decode import DecodeOptions
from clipdex.media.pipeline import Decoded, decode_stream
from clipdex.media.sources import Item, SourceOptions, display_path, iter_folder, iter_source
from clipdex.store.ann import ANN_THRESHOLD
from clipdex.store.db import bump_version, dumps, get_meta, set_meta
from clipdex.store.vectors import write_shard

if TYPE_CHECKING:
    from clipdex.encoders.base import Encoder
    from clipdex.store.collection import Collection

__all__ = ["IndexOptions", "IndexReport", "ProgressFn", "add_embedded", "index_items", "index_source"]

ProgressFn = Callable[[int, int, int], None]  # (done, total, failed)


@dataclass(frozen=True)
class IndexOptions:
    """How ``index`` runs.

    Attributes:
        batch_size: images per encoder call and per committed shard.
        workers: decode threads (None: from the machine).
        decode: decoding limits; reduced JPEG decoding is on by default.
        source: column names / image root for tables and JSON.
        prune: remove items of this source whose files are gone.
        wait: seconds to wait for another writer before failing.
        index_factory: faiss factory string, "exact", or None (by size).
        ann_threshold: image vectors from which an ANN index is built.
        embed_captions: also embed captions (needed for image -> text search).
        ocr: read words in each image (RapidOCR) into the item's ``ocr`` metadata, for lexical search.
        regions: also embed overlapping crops on these grids (e.g. ``(2, 3)``: 4 + 9 crops), so a
            query about a small object can match the crop where it is (``Query(regions=True)``).
        video_every: index video files of a folder as frames sampled every this many seconds
            (items ``video.mp4#t=12.000`` with ``video`` and ``t`` metadata); None: skip videos.
    """

    batch_size: int = 64
    workers: int | None = None
    decode: DecodeOptions = DecodeOptions()
    source: SourceOptions = SourceOptions()
    prune: bool = False
    wait: float = 0.0
    index_factory: str | None = None
    ann_threshold: int = ANN_THRESHOLD
    embed_captions: bool = True
    ocr: bool = False
    regions: tuple[int, ...] = ()
    video_every: float | None = None


@dataclass
class IndexReport:
    """What one ``index`` run did."""

    seen: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    pruned: int = 0
    captions: int = 0
    seconds: float = 0.0
    index: str = "exact"
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        embedded = self.added + self.updated
        return embedded / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Todo:
    item: Item
    path_bytes: bytes
    fingerprint: str
    old_id: int | None
    rel: str
    source: str


def index_source(collection: Collection, source: str | os.PathLike[str] | Iterable[Item],
                 encoder: Encoder, options: IndexOptions = IndexOptions(),
                 progress: ProgressFn | None = None) -> IndexReport:
    """Index a folder, table, Karpathy JSON, or an iterable of :class:`Item`.

    Raises:
        SourceError: the source cannot be read at all.
        CollectionError: the encoder does not match the collection.
        CollectionLockedError: another process is writing.
    """
    if isinstance(source, str | os.PathLike):
        root = Path(source).expanduser()
        items: Iterable[Item] = iter_source(root, options.source)
        if options.video_every is not None:
            from clipdex.media.video import expand_videos

            if options.video_every <= 0:
                raise SourceError("--video-every must be a positive number of seconds")
            base = iter_folder(root, videos=True) if root.is_dir() else items
            items = expand_videos(base, options.video_every)
        source_key = str(root.resolve())
        rel_root = str(root) if root.is_dir() else str(root.parent)
    else:
        items, source_key, rel_root = source, "items", ""
    return index_items(collection, items, encoder, options, progress, source_key, rel_root)


def index_items(collection: Collection, items: Iterable[Item], encoder: Encoder,
                options: IndexOptions = IndexOptions(), progress: ProgressFn | None = None,
                source_key: str = "items", rel_root: str = "") -> IndexReport:
    """Embed new or changed items and commit them batch by batch (see module doc)."""
    collection.check_encoder(encoder.spec)
    if encoder.dim != collection.dim:
        raise CollectionError(f"the encoder makes {encoder.dim}-d vectors but {collection.path} holds "
                              f"{collection.dim}-d ones; use the collection's model or a new collection")
    start = time.perf_counter()
    report = IndexReport()
    with collection.writing(options.wait) as conn:
        todo, gone = _plan(conn, items, source_key, rel_root, report)
        if options.prune and gone:
            collection.delete_items(conn, gone)
            conn.commit()
            report.pruned = len(gone)
        _embed_all(collection, conn, todo, encoder, options, report, progress)
        report.index = _refresh_index(collection, options, changed=report.added + report.updated + report.pruned)
    report.seconds = time.perf_counter() - start
    return report


def _fingerprint(item: Item) -> str:
    from clipdex.media.video import split_frame_path

    frame = split_frame_path(item.path) if "#t=" in item.path else None
    try:
        st = os.stat(frame[0] if frame else item.path)  # a frame changes when its video does
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    text = json.dumps([item.captions, item.metadata], sort_keys=True, default=str)
    return f"{stamp}:{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _plan(conn: sqlite3.Connection, items: Iterable[Item], source_key: str, rel_root: str,
          report: IndexReport) -> tuple[list[_Todo], list[int]]:
    known = {bytes(r[0]): (r[1], r[2], r[3]) for r in
             conn.execute("SELECT path_bytes, id, fingerprint, source FROM items")}
    seen: set[bytes] = set()
    todo: list[_Todo] = []
    for item in items:
        path_bytes = os.fsencode(item.path)
        if path_bytes in seen:
            continue
        seen.add(path_bytes)
        report.seen += 1
        fingerprint = _fingerprint(item)
        old = known.get(path_bytes)
        if old is not None and old[1] == fingerprint:
            report.skipped += 1
            continue
        rel = os.path.relpath(item.path, rel_root) if rel_root else item.path
        todo.append(_Todo(item, path_bytes, fingerprint, old[0] if old else None, display_path(rel), source_key))
    gone = [v[0] for k, v in known.items() if v[2] == source_key and k not in seen]
    return todo, gone


def _embed_all(collection: Collection, conn: sqlite3.Connection, todo: list[_Todo], encoder: Encoder,
               options: IndexOptions, report: IndexReport, progress: ProgressFn | None) -> None:
    decode = options.decode
    if decode.draft_size is None and not options.ocr:  # OCR wants every pixel of the file
        decode = DecodeOptions(decode.max_pixels, encoder.image_size, decode.max_bytes)
    transform: Callable[[Any], Any] = encoder.preprocess
    if options.ocr or options.regions:
        transform = _with_extras(encoder.preprocess, options.ocr, options.regions)
    total, done = len(todo), 0
    if progress:
        progress(0, total, 0)
    batch: list[Decoded[_Todo]] = []
    stream = decode_stream(todo, lambda t: t.item.path, decode, transform, options.workers,
                           prefetch=max(2 * options.batch_size, 32))
    for decoded in stream:
        batch.append(decoded)
        if len(batch) >= options.batch_size:
            _commit_batch(collection, conn, batch, encoder, options, report)
            done += len(batch)
            batch = []
            if progress:
                progress(done, total, report.failed)
    if batch:
        _commit_batch(collection, conn, batch, encoder, options, report)
        done += len(batch)
    if progress:
        progress(done, total, report.failed)


def crop_boxes(grids: tuple[int, ...], overlap: float = 0.5) -> list[tuple[float, float, float, float]]:
    """Crops of a g x g grid per ``g``, each ``(1 + overlap) / g`` of a side, as (x0, y0, x1, y1) fractions."""
    boxes = []
    for g in grids:
        side = min(1.0, (1 + overlap) / g)
        step = (1 - side) / (g - 1) if g > 1 else 0.0
        for row in range(g):
            for col in range(g):
                x0, y0 = col * step, row * step
                boxes.append((round(x0, 4), round(y0, 4), round(x0 + side, 4), round(y0 + side, 4)))
    return boxes


def _with_extras(preprocess: Callable[[Any], np.ndarray], ocr: bool,
                 grids: tuple[int, ...]) -> Callable[[Any], Any]:
    """A decode-thread transform that also reads the image's words and cuts its region crops."""
    boxes = crop_boxes(grids)
    if ocr:
        from clipdex.media.ocr import load_ocr, ocr_text

        load_ocr()  # fail before any work when the OCR extra is missing

    def transform(im: Any) -> _Extras:
        text = None
        if ocr:
            try:
                text = ocr_text(im)
            except Exception:  # noqa: BLE001  (an OCR engine error must not cost the image its vector)
                text = ""
        w, h = im.size
        crops = [preprocess(im.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))))
                 for x0, y0, x1, y1 in boxes]
        return _Extras(preprocess(im), text, crops, boxes)

    return transform


@dataclass
class _Extras:
    """Preprocessed pixels, plus the words OCR read and the preprocessed region crops."""

    pixels: np.ndarray
    text: str | None
    crops: list[np.ndarray]
    boxes: list[tuple[float, float, float, float]]


def _commit_batch(collection: Collection, conn: sqlite3.Connection, batch: list[Decoded[_Todo]],
                  encoder: Encoder | _Precomputed, options: IndexOptions, report: IndexReport) -> None:
    good = [d for d in batch if d.error is None]
    region_owner: list[int] = []
    region_boxes: list[tuple[float, float, float, float]] = []
    crops: list[np.ndarray] = []
    for i, d in enumerate(good):
        if isinstance(d.value, _Extras):
            if d.value.text is not None:
                d.item.item.metadata["ocr"] = d.value.text
            crops += d.value.crops
            region_boxes += d.value.boxes
            region_owner += [i] * len(d.value.crops)
            d.value = d.value.pixels
    image_vecs = encoder.encode_pixels(np.stack([d.value for d in good])) if good else None
    region_vecs = encoder.encode_pixels(np.stack(crops)) if crops else None
    caption_owner: list[int] = []
    texts: list[str] = []
    if options.embed_captions:
        for i, d in enumerate(good):
            for text in d.item.item.captions:
                caption_owner.append(i)
                texts.append(text)
    text_vecs = encoder.encode_texts(texts) if texts else None
    parts = [v for v in (image_vecs, text_vecs, region_vecs) if v is not None]
    first_vec = int(get_meta(conn, "next_vec", "0"))
    shard = write_shard(collection.path / "vectors", first_vec, np.concatenate(parts),
                        collection.vector_dtype) if parts else None
    # Everything below is one transaction: the shard becomes visible with its rows.
    try:
        item_ids = [_upsert_item(conn, d, report) for d in batch]
        next_vec = first_vec
        good_ids = [item_ids[i] for i, d in enumerate(batch) if d.error is None]
        for item_id in good_ids:
            conn.execute("INSERT INTO vectors VALUES (?, ?, NULL, 'image')", (next_vec, item_id))
            next_vec += 1
        for owner, text in zip(caption_owner, texts, strict=True):
            cur = conn.execute("INSERT INTO captions (item_id, text) VALUES (?, ?)", (good_ids[owner], text))
            conn.execute("INSERT INTO vectors VALUES (?, ?, ?, 'caption')", (next_vec, good_ids[owner], cur.lastrowid))
            next_vec += 1
        for owner, box in zip(region_owner, region_boxes, strict=True):
            conn.execute("INSERT INTO regions VALUES (?, ?, ?, ?, ?, ?)", (next_vec, good_ids[owner], *box))
            next_vec += 1
        if not options.embed_captions:
            for i, d in enumerate(good):
                conn.executemany("INSERT INTO captions (item_id, text) VALUES (?, ?)",
                                 [(good_ids[i], t) for t in d.item.item.captions])
        if shard:
            conn.execute("INSERT INTO shards (file, first_vec, count) VALUES (?, ?, ?)",
                         (shard, first_vec, next_vec - first_vec))
        set_meta(conn, "next_vec", next_vec)
        bump_version(conn)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    report.captions += len(texts)


def _upsert_item(conn: sqlite3.Connection, decoded: Decoded[_Todo], report: IndexReport) -> int:
    todo = decoded.item
    status, error = ("ok", None) if decoded.error is None else ("error", decoded.error)
    values: dict[str, Any] = {
        "path": display_path(todo.item.path), "rel": todo.rel, "source": todo.source, "fingerprint": todo.fingerprint,
        "status": status, "error": error, "metadata": dumps(todo.item.metadata), "added_at": time.time(),
    }
    if error:
        report.failed += 1
        report.errors.append({"path": values["path"], "error": error})
    if todo.old_id is not None:
        conn.execute("DELETE FROM vectors WHERE item_id = ?", (todo.old_id,))
        conn.execute("DELETE FROM captions WHERE item_id = ?", (todo.old_id,))
        conn.execute("DELETE FROM regions WHERE item_id = ?", (todo.old_id,))
        conn.execute(
            "UPDATE items SET path=:path, rel=:rel, source=:source, fingerprint=:fingerprint, "
            "status=:status, error=:error, metadata=:metadata, added_at=:added_at WHERE id=:id",
            {**values, "id": todo.old_id})
        if not error:
            report.updated += 1
        return todo.old_id
    cur = conn.execute(
        "INSERT INTO items (path_bytes, path, rel, source, fingerprint, status, error, metadata, added_at) "
        "VALUES (:path_bytes, :path, :rel, :source, :fingerprint, :status, :error, :metadata, :added_at)",
        {**values, "path_bytes": todo.path_bytes})
    if not error:
        report.added += 1
    return int(cur.lastrowid or 0)


def _refresh_index(collection: Collection, options: IndexOptions, changed: int) -> str:
    ann = collection.ann()
    live = len(collection.vectors("image"))
    forced = options.index_factory is not None
    if ann is None and live < options.ann_threshold and not forced:
        return "exact"
    stale = ann is None or changed > 0.05 * max(len(ann.vec_ids), 1)
    if forced and (ann is None or ann.factory != options.index_factory or changed):
        stale = True
    if not stale and ann is not None:
        return ann.factory
    return collection.build_index(options.index_factory, options.ann_threshold)


def add_embedded(collection: Collection, items: list[Item], image_vectors: np.ndarray, wait: float = 0.0,
                 batch_size: int = 10_000) -> int:
    """Store items whose image vectors were computed elsewhere (a Ray job, another tool).

    Vectors are L2-normalised here; items already in the collection (same
    path) are replaced. Commits in batches, like :func:`index_items`.

    Returns:
        How many items were stored.

    Raises:
        ValueError: the vectors do not match the items or the collection's dimension.
    """
    from clipdex.encoders.base import l2_normalize

    vectors = l2_normalize(image_vectors)
    if vectors.shape != (len(items), collection.dim):
        raise ValueError(f"expected vectors of shape ({len(items)}, {collection.dim}), got {vectors.shape}")
    report = IndexReport()
    with collection.writing(wait) as conn:
        known = {bytes(r[0]): r[1] for r in conn.execute("SELECT path_bytes, id FROM items")}
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            batch = []
            for item, vec in zip(chunk, vectors[start : start + batch_size], strict=True):
                path_bytes = os.fsencode(item.path)
                todo = _Todo(item, path_bytes, _fingerprint(item), known.get(path_bytes), display_path(item.path),
                             "embedded")
                batch.append(Decoded(todo, value=vec))
            _commit_batch(collection, conn, batch, _Precomputed(collection.dim), IndexOptions(embed_captions=False),
                          report)
    return len(items)


class _Precomputed:
    """An encoder stand-in whose 'pixels' are already the vectors (used by :func:`add_embedded`)."""

    spec = "precomputed"
    image_size = 0

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(pixels, np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        raise ValueError("precomputed items carry no caption vectors")
