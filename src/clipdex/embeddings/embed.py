"""``clipdex embed``: a pool's images and captions to clip-retrieval's layout, shard by shard.

Output (rows aligned within a part; one part per pool shard)::

    OUT/img_emb/img_emb_{i}.npy      float16 (n, d), unit rows
    OUT/text_emb/text_emb_{i}.npy    float16 (n, d); a zero row where the sample has no caption
    OUT/metadata/metadata_{i}.parquet  key, image_path, caption, the pool's other columns
    OUT/failures/failures_{i}.parquet  key, error: samples whose image could not be read
    OUT/embed.json                   the encoder spec and dimension (build-index and serve read it)

The metadata file is written last, so its presence means the part is done: a
killed run started again skips finished parts and never writes a row twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.embeddings.layout import (
    parquet_bytes,
    read_model_card,
    read_parts,
    record_model,
    save_atomic,
    write_clip_retrieval,
)
from clipdex.encode import embed_stream
from clipdex.encoders.base import Encoder
from clipdex.media.pools import PoolOptions, Sample, Shard, ShardResult, ShardRunner, open_pool, text_if_mixed

__all__ = ["EmbedReport", "EmbedWorker", "embed_pool"]

ProgressFn = Callable[[int, int, int], None]


@dataclass
class EmbedReport:
    out: str
    parts: int = 0
    parts_done_now: int = 0
    parts_reused: int = 0
    samples: int = 0
    failed: int = 0
    seconds: float = 0.0
    failed_shards: dict[str, str] = field(default_factory=dict)


def embed_pool(pool_location: str | os.PathLike[str], out: str | os.PathLike[str], encoder: Encoder,
               options: PoolOptions = PoolOptions(), batch_size: int = 64,
               progress: ProgressFn | None = None, runner: ShardRunner | None = None) -> EmbedReport:
    """Embed every shard of a pool not embedded yet into ``out`` (see the module doc for the layout).

    With a ``runner`` (e.g. :func:`clipdex.scale.ray_runner`), the shards are shared out to workers that
    each load ``encoder.spec`` themselves; otherwise they are embedded here, one after the other, with
    ``encoder``.
    """
    import time

    started = time.perf_counter()
    pool = open_pool(pool_location, options)
    out = Path(out)
    for sub in ("img_emb", "text_emb", "metadata", "failures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    record_model(out, encoder.spec, encoder.dim)
    shards = pool.shards()
    report = EmbedReport(str(out), parts=len(shards))
    todo = [s.index for s in shards if not (out / "metadata" / f"metadata_{s.index}.parquet").exists()]
    report.parts_reused = len(shards) - len(todo)
    names = {s.index: s.name for s in shards}

    def record(result: ShardResult) -> None:
        if result.error:
            report.failed_shards[names[result.shard]] = result.error
        else:
            report.samples += result.samples
            report.failed += result.failed
            report.parts_done_now += 1
        if progress:
            progress(report.parts_reused + report.parts_done_now + len(report.failed_shards), len(shards),
                     report.failed)

    worker = EmbedWorker(str(pool.location), options, str(out), encoder.spec, batch_size)
    if runner is not None:
        runner(todo, worker, record)
    else:
        worker.setup(encoder=encoder)
        for index in todo:
            record(worker(index))
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class EmbedWorker:
    """Embeds one shard of a pool into its part files; picklable until ``setup`` (a Ray actor's state)."""

    pool_location: str
    options: PoolOptions
    out: str
    model: str
    batch_size: int = 64

    def setup(self, threads: int | None = None, encoder: Encoder | None = None) -> None:
        from clipdex.encoders.registry import load_encoder

        self._pool = open_pool(self.pool_location, self.options)
        self._shards = {s.index: s for s in self._pool.shards()}
        self._encoder = encoder or load_encoder(self.model, threads=threads)

    def __call__(self, index: int) -> ShardResult:
        from clipdex.errors import SourceError

        shard = self._shards[index]
        try:
            done, failed = _embed_shard(self._pool.read(shard), shard, Path(self.out), self._encoder,
                                        self.batch_size)
        except SourceError as e:
            return ShardResult(index, error=str(e))
        return ShardResult(index, done, failed)


def _embed_shard(samples: Any, shard: Shard, out: Path, encoder: Encoder, batch_size: int) -> tuple[int, int]:
    rows: list[Sample] = []
    vectors: list[np.ndarray] = []
    failures: dict[str, list[str]] = {"key": [], "error": []}
    stream = embed_stream(encoder, samples, lambda s: s.image if s.image is not None else b"",
                          batch_size=batch_size)
    for sample, vector, error in stream:
        if vector is None:
            failures["key"].append(sample.key)
            failures["error"].append("no image in this sample" if sample.image is None else str(error))
        else:
            rows.append(sample)
            vectors.append(vector)
    image_matrix = np.stack(vectors) if vectors else np.zeros((0, encoder.dim), np.float32)
    text_matrix = np.zeros_like(image_matrix)
    captioned = [i for i, s in enumerate(rows) if isinstance(s.caption, str) and s.caption.strip()]
    for start in range(0, len(captioned), 256):
        part = captioned[start:start + 256]
        text_matrix[part] = encoder.encode_texts([" ".join(str(rows[i].caption).split()) for i in part])
    _write(out, shard.index, rows, image_matrix, text_matrix, failures)
    return len(rows), len(failures["key"])


def _write(out: Path, index: int, rows: list[Sample], images: np.ndarray, texts: np.ndarray,
           failures: dict[str, list[str]]) -> None:
    save_atomic(out / "failures" / f"failures_{index}.parquet", parquet_bytes(failures))  # before the metadata
    columns: dict[str, list[Any]] = {
        "key": [s.key for s in rows],
        "image_path": [s.image_path for s in rows],
        "caption": [" ".join(s.caption.split()) if isinstance(s.caption, str) and s.caption.strip() else None
                    for s in rows],
    }
    for name in sorted({k for s in rows for k in s.columns} - set(columns)):
        columns[name] = text_if_mixed([s.columns.get(name) for s in rows])
    write_clip_retrieval(out, images, columns, texts, part=index)  # metadata last: then the part is done


def import_embeddings(emb: str | os.PathLike[str], collection_path: str | os.PathLike[str],
                      model: str | None = None, skip_bad: bool = False,
                      progress: ProgressFn | None = None) -> dict[str, Any]:
    """Store an embedding folder's image vectors, captions and metadata as collection items, part by part.

    The collection is created for ``model`` (default: the model the folder records); an item is the
    row's ``image_path`` (its key where the pool kept images in tars), so re-importing replaces items
    instead of duplicating them. Returns counts and the parts skipped.

    Raises:
        ClipdexError: no model is known, or it does not match the collection or the vectors' width.
    """
    import pyarrow.parquet as pq

    from clipdex.errors import ClipdexError, SourceError, UsageError
    from clipdex.media.sources import Item
    from clipdex.store import Store, add_embedded

    if not Path(emb).is_dir():
        raise SourceError(f"no embedding folder at {emb} (img_emb/ + metadata/, as clipdex embed writes)")
    spec = model or read_model_card(emb)
    if spec is None:
        raise UsageError(f"{emb} does not record its model (no embed.json): pass --model")
    parts, skipped = read_parts(emb, skip_bad)
    collection = Store.create(collection_path, spec, parts[0].dim, exist_ok=True)
    if collection.dim != parts[0].dim:
        raise ClipdexError(f"{collection_path} holds {collection.dim}-d vectors, {emb} {parts[0].dim}-d ones")
    stored = 0
    with collection:
        for n, part in enumerate(parts):
            rows = pq.read_table(part.metadata).to_pylist()
            items = [Item(str(r.get("image_path") or r.get("key")), [r["caption"]] if r.get("caption") else [],
                          {k: v for k, v in r.items() if k not in ("image_path", "caption") and v is not None})
                     for r in rows]
            stored += add_embedded(collection, items, np.load(part.npy).astype(np.float32))
            if progress:
                progress(n + 1, len(parts), 0)
    return {"collection": str(collection_path), "model": spec, "items": stored, "parts": len(parts),
            "skipped_parts": skipped}
