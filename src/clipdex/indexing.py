"""Indexing: source items -> plan (what changed) -> decode + encode (:mod:`clipdex.encode`) -> store, in batches.

Each batch is one shard file plus one SQLite transaction (:mod:`clipdex.store.writes`),
so a killed process loses at most the batch in flight, and re-running the same
command skips what was committed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.encode import decode_options, decoded_batches
from clipdex.encoders.base import Encoder
from clipdex.errors import BadQueryError, CollectionError, SourceError
from clipdex.media.decode import DecodeOptions
from clipdex.media.exif import exif_metadata
from clipdex.media.pipeline import Decoded
from clipdex.media.pools import iter_source
from clipdex.media.sources import Item, SourceOptions, iter_folder
from clipdex.store.ann import ANN_THRESHOLD
from clipdex.store.store import Store
from clipdex.store.writes import EncodedBatch, IndexReport, PlannedItem, plan_items, write_batch

__all__ = ["IndexOptions", "IndexReport", "ProgressFn", "crop_boxes", "index_items", "index_source", "parse_grids"]

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


def index_source(collection: Store, source: str | os.PathLike[str] | Iterable[Item],
                 encoder: Encoder, options: IndexOptions = IndexOptions(),
                 progress: ProgressFn | None = None) -> IndexReport:
    """Index a folder, table, Karpathy JSON, or an iterable of :class:`Item`.

    Raises:
        SourceError: the source cannot be read at all.
        CollectionError: the encoder does not match the collection.
        CollectionLockedError: another process is writing.
    """
    if isinstance(source, str | os.PathLike):
        # absolute from here on: stored paths work from any folder, and `photos`, `./photos` and
        # `/home/me/photos` are one source with the same items (links in the path are kept, not resolved)
        root = Path(os.path.abspath(Path(source).expanduser()))
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


def index_items(collection: Store, items: Iterable[Item], encoder: Encoder,
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
        todo, gone = plan_items(conn, items, source_key, rel_root, report)
        if options.prune and gone:
            collection.delete_items(conn, gone)
            conn.commit()
            report.pruned = len(gone)
        elif gone:
            report.gone = len(gone)
        _embed_all(collection, conn, todo, encoder, options, report, progress)
        report.index = _refresh_index(collection, options, changed=report.added + report.updated + report.pruned)
    report.seconds = time.perf_counter() - start
    return report


def _embed_all(collection: Store, conn: sqlite3.Connection, todo: list[PlannedItem], encoder: Encoder,
               options: IndexOptions, report: IndexReport, progress: ProgressFn | None) -> None:
    decode = decode_options(encoder, options.decode, full_size=options.ocr)  # OCR wants every pixel of the file
    transform: Callable[[Any], Any] = encoder.preprocess
    if options.ocr or options.regions:
        transform = _with_extras(encoder.preprocess, options.ocr, options.regions)
    total, done = len(todo), 0
    if progress:
        progress(0, total, 0)
    refused = [t for t in todo if t.item.error]
    if refused:  # the source refused these before any read: recorded as failures, never opened
        write_batch(collection, conn, EncodedBatch(refused, [t.item.error for t in refused]), report)
        done += len(refused)
    readable = [t for t in todo if not t.item.error]
    for batch in decoded_batches(readable, lambda t: t.item.path, encoder, decode, options.batch_size,
                                 options.workers, transform):
        _attach_exif(batch)
        started = time.perf_counter()
        calibrating = getattr(encoder, "calibration_seconds", 0.0)
        encoded = _encode_batch(batch, encoder, options.embed_captions)
        calibrated = getattr(encoder, "calibration_seconds", 0.0) - calibrating  # the first batch may measure
        report.calibration_seconds += calibrated
        report.model_seconds += time.perf_counter() - started - calibrated
        write_batch(collection, conn, encoded, report)
        done += len(batch)
        if progress and done < total:
            progress(done, total, report.failed)
    if progress:
        progress(done, total, report.failed)
    report.backend = getattr(encoder, "backend_in_use", "")


def _encode_batch(batch: list[Decoded[PlannedItem]], encoder: Encoder, embed_captions: bool) -> EncodedBatch:
    """The image, caption and region-crop vectors of one decoded batch (OCR text goes into the metadata)."""
    good = [d for d in batch if d.error is None]
    out = EncodedBatch([d.item for d in batch], [d.error for d in batch])
    pixels, crops = [], []
    for i, d in enumerate(good):
        value = d.value
        if isinstance(value, _Extras):
            if value.text is not None:
                d.item.item.metadata["ocr"] = value.text
            crops += value.crops
            out.region_boxes += value.boxes
            out.region_owner += [i] * len(value.crops)
            value = value.pixels
        pixels.append(value)
    out.image_vectors = encoder.encode_pixels(np.stack(pixels)) if pixels else None
    out.region_vectors = encoder.encode_pixels(np.stack(crops)) if crops else None
    if embed_captions:
        for i, d in enumerate(good):
            for text in d.item.item.captions:
                out.caption_owner.append(i)
                out.caption_texts.append(text)
        out.caption_vectors = encoder.encode_texts(out.caption_texts) if out.caption_texts else None
    return out


def _attach_exif(batch: list[Decoded[PlannedItem]]) -> None:
    """What each photo's EXIF says (camera, when, where), unless the source's own metadata says it."""
    for d in batch:
        if d.error is None:
            d.item.item.metadata = {**exif_metadata(d.item.item.path), **d.item.item.metadata}


def parse_grids(text: str | None) -> tuple[int, ...]:
    """Region grid sizes from ``"2,3"`` (``--regions``); empty for none.

    Raises:
        BadQueryError: not a comma-separated list of sizes from 1 to 8.
    """
    if not text:
        return ()
    try:
        grids = tuple(int(g) for g in text.split(","))
    except ValueError:
        raise BadQueryError(f"--regions takes grid sizes like 2,3, got {text!r}") from None
    if any(not 1 <= g <= 8 for g in grids):
        raise BadQueryError("--regions grid sizes must be between 1 and 8")
    return grids


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


def _refresh_index(collection: Store, options: IndexOptions, changed: int) -> str:
    ann = collection.ann()
    live = len(collection.vectors("image"))
    forced = options.index_factory is not None
    if collection.ann_problem() is not None:  # a refused (damaged) index: built again as it was, never kept
        return collection.build_index(options.index_factory or collection.recorded_index_factory(),
                                      options.ann_threshold)
    if ann is None and live < options.ann_threshold and not forced:
        return "exact"
    stale = ann is None or changed > 0.05 * max(len(ann.vec_ids), 1)
    if forced and (ann is None or ann.factory != options.index_factory or changed):
        stale = True
    if not stale and ann is not None:
        return ann.factory
    return collection.build_index(options.index_factory, options.ann_threshold)


