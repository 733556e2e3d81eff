"""``clipdex embed``: a pool's images and captions to clip-retrieval's layout, shard by shard.

Output (rows aligned within a part; one part per pool shard)::

    OUT/img_emb/img_emb_{i}.npy      float16 (n, d), unit rows
    OUT/text_emb/text_emb_{i}.npy    float16 (n, d); a zero row where the sample has no caption
    OUT/metadata/metadata_{i}.parquet  key, image_path, caption, the pool's other columns
    OUT/failures/failures_{i}.parquet  key, error: samples whose image could not be read

The metadata file is written last, so its presence means the part is done: a
killed run started again skips finished parts and never writes a row twice.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.curate.pool import PoolOptions, Sample, Shard, open_pool
from clipdex.encoders.base import Encoder
from clipdex.media.decode import DecodeOptions
from clipdex.media.pipeline import decode_stream

__all__ = ["EmbedReport", "embed_pool"]

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
               progress: ProgressFn | None = None) -> EmbedReport:
    """Embed every shard of a pool not embedded yet into ``out`` (see the module doc for the layout)."""
    import time

    from clipdex.errors import SourceError

    started = time.perf_counter()
    pool = open_pool(pool_location, options)
    out = Path(out)
    for sub in ("img_emb", "text_emb", "metadata", "failures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    shards = pool.shards()
    report = EmbedReport(str(out), parts=len(shards))
    for n, shard in enumerate(shards):
        if (out / "metadata" / f"metadata_{shard.index}.parquet").exists():
            report.parts_reused += 1
        else:
            try:
                done, failed = _embed_shard(pool.read(shard), shard, out, encoder, batch_size)
                report.samples += done
                report.failed += failed
                report.parts_done_now += 1
            except SourceError as e:
                report.failed_shards[shard.name] = str(e)
        if progress:
            progress(n + 1, len(shards), report.failed)
    report.seconds = time.perf_counter() - started
    return report


def _embed_shard(samples: Any, shard: Shard, out: Path, encoder: Encoder, batch_size: int) -> tuple[int, int]:
    rows: list[Sample] = []
    images: list[np.ndarray] = []
    failures: dict[str, list[str]] = {"key": [], "error": []}
    batch: list[tuple[Sample, np.ndarray]] = []

    def flush() -> None:
        if batch:
            images.append(encoder.encode_pixels(np.stack([p for _, p in batch])))
            rows.extend(s for s, _ in batch)
            batch.clear()

    stream = decode_stream(samples, lambda s: s.image if s.image is not None else b"", DecodeOptions(),
                           encoder.preprocess)
    for decoded in stream:
        if decoded.error is not None:
            failures["key"].append(decoded.item.key)
            failures["error"].append("no image in this sample" if decoded.item.image is None else decoded.error)
            continue
        batch.append((decoded.item, decoded.value))
        if len(batch) >= batch_size:
            flush()
    flush()
    image_matrix = np.concatenate(images) if images else np.zeros((0, encoder.dim), np.float32)
    text_matrix = np.zeros_like(image_matrix)
    captioned = [i for i, s in enumerate(rows) if isinstance(s.caption, str) and s.caption.strip()]
    for start in range(0, len(captioned), 256):
        part = captioned[start:start + 256]
        text_matrix[part] = encoder.encode_texts([" ".join(str(rows[i].caption).split()) for i in part])
    _write(out, shard.index, rows, image_matrix, text_matrix, failures)
    return len(rows), len(failures["key"])


def _save(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _npy(matrix: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, matrix.astype(np.float16))
    return buf.getvalue()


def _parquet(columns: dict[str, list[Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, row_group_size=4096)  # small groups: a search hit reads one
    return buf.getvalue()


def _write(out: Path, index: int, rows: list[Sample], images: np.ndarray, texts: np.ndarray,
           failures: dict[str, list[str]]) -> None:
    _save(out / "img_emb" / f"img_emb_{index}.npy", _npy(images))
    _save(out / "text_emb" / f"text_emb_{index}.npy", _npy(texts))
    _save(out / "failures" / f"failures_{index}.parquet", _parquet(failures))
    columns: dict[str, list[Any]] = {
        "key": [s.key for s in rows],
        "image_path": [s.image_path for s in rows],
        "caption": [" ".join(s.caption.split()) if isinstance(s.caption, str) and s.caption.strip() else None
                    for s in rows],
    }
    for name in sorted({k for s in rows for k in s.columns} - set(columns)):
        values = [s.columns.get(name) for s in rows]
        kinds = {type(v) for v in values if v is not None}
        columns[name] = values if len(kinds) <= 1 else [None if v is None else str(v) for v in values]
    _save(out / "metadata" / f"metadata_{index}.parquet", _parquet(columns))  # last: the part is done
