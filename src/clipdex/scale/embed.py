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

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.curate.embeddings import parquet_bytes, save_atomic, write_clip_retrieval
from clipdex.curate.pool import PoolOptions, Sample, Shard, open_pool, text_if_mixed
from clipdex.encoders.base import Encoder
from clipdex.media.decode import DecodeOptions
from clipdex.media.pipeline import embed_stream

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
    vectors: list[np.ndarray] = []
    failures: dict[str, list[str]] = {"key": [], "error": []}
    stream = embed_stream(encoder, samples, lambda s: s.image if s.image is not None else b"",
                          DecodeOptions(draft_size=encoder.image_size), batch_size)
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
