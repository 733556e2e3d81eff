"""What pass 2 sees: the score columns of every shard, vectors on demand, the encoder on demand."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.encoders.base import Encoder
from clipdex.errors import ClipdexError
from clipdex.store.vectors import gather_rows

__all__ = ["Context"]


class Context:
    """Columns of the pass-1 table as numpy arrays, plus lazy access to the stored vectors.

    Rows are in shard order; ``extra`` collects the scores filters compute in
    pass 2 (visualness, cluster, duplicate-of) for ``decisions.parquet``.
    """

    def __init__(self, table: Any, workdir: Path, shard_ids: list[int], shard_sizes: list[int],
                 encoder: Callable[[], Encoder]) -> None:
        self.table = table
        self.n = table.num_rows
        self.workdir = workdir
        self.shard_ids = shard_ids
        self.offsets = np.concatenate([[0], np.cumsum(shard_sizes)]).astype(np.int64)
        self.encoder = encoder
        self.extra: dict[str, np.ndarray] = {}
        self._cols: dict[str, np.ndarray] = {}
        self._mmaps: dict[str, list[np.ndarray]] = {}

    def col(self, name: str) -> np.ndarray:
        if name not in self._cols:
            if name not in self.table.column_names:
                raise ClipdexError(f"pass-1 scores have no column {name!r}")
            import pyarrow as pa

            column = self.table.column(name)
            kind = column.type
            if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
                self._cols[name] = np.asarray(column.to_pylist(), dtype=object)
            else:
                self._cols[name] = column.to_numpy(zero_copy_only=False)
        return self._cols[name]

    def pool_column(self, name: str) -> np.ndarray:
        """A column by its name in the pool (``width``) or in the scores (``clip_score``)."""
        names = self.table.column_names
        for candidate in (name, f"col.{name}"):
            if candidate in names:
                return self.col(candidate)
        if name in self.extra:
            return self.extra[name]
        pool_cols = [c[4:] for c in names if c.startswith("col.")]
        scores = [c for c in names if not c.startswith("col.")]
        raise ClipdexError(f"no column {name!r}. Pool columns: {', '.join(pool_cols) or 'none'}; "
                           f"scores: {', '.join(scores)}")

    def short_side(self) -> np.ndarray:
        return np.minimum(self.col("width"), self.col("height"))

    def aspect(self) -> np.ndarray:
        w, h = self.col("width").astype(np.float64), self.col("height").astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.maximum(w, h) / np.minimum(w, h)
        return np.where((w > 0) & (h > 0), ratio, np.inf)

    def row_chunks(self, size: int = 65_536) -> Iterator[np.ndarray]:
        for start in range(0, self.n, size):
            yield np.arange(start, min(start + size, self.n))

    def _vectors(self, kind: str, rows: np.ndarray) -> np.ndarray:
        if kind not in self._mmaps:  # one memory map per shard file, opened once
            self._mmaps[kind] = [np.load(self.workdir / f"{kind}-{shard:05d}.npy", mmap_mode="r")
                                 for shard in self.shard_ids]
        return gather_rows(self._mmaps[kind], rows)

    def image_vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._vectors("image", rows)

    def text_vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._vectors("text", rows)

    def check_dim(self, encoder: Encoder, kind: str) -> None:
        """Refuse to compare the model's vectors with stored ones of another width (another model)."""
        first = next((s for s in self.shard_ids if (self.workdir / f"{kind}-{s:05d}.npy").exists()), None)
        if first is None:
            return
        stored = np.load(self.workdir / f"{kind}-{first:05d}.npy", mmap_mode="r").shape[1]
        if stored and stored != encoder.dim:
            raise ClipdexError(f"the pool's {kind} vectors have {stored} dimensions but {encoder.spec} gives "
                               f"{encoder.dim}: pass the --model the embeddings were made with")

    def target_set(self, spec: str) -> tuple[list[str], np.ndarray]:
        """Image embeddings of one or more sources (joined by ``|``), cached in the work folder."""
        from clipdex.encode import embed_images
        from clipdex.media.pools import iter_source
        from clipdex.media.sources import display_path

        encoder = self.encoder()
        self.check_dim(encoder, "image")
        digest = hashlib.sha256(f"{spec}\0{encoder.spec}".encode()).hexdigest()[:16]
        cache = self.workdir / f"target-{digest}.npz"
        if cache.exists():
            with np.load(cache, allow_pickle=False) as data:
                return [str(r) for r in data["refs"]], data["vectors"]
        paths = [item.path for location in spec.split("|") for item in iter_source(location.strip())]
        if not paths:
            raise ClipdexError(f"no images in {spec}")
        vectors, ok = embed_images(encoder, paths)
        if not ok.any():
            raise ClipdexError(f"none of the {len(paths)} images of {spec} could be decoded")
        refs = [display_path(p) for p, good in zip(paths, ok, strict=True) if good]
        vectors = vectors[ok]
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, refs=np.asarray(refs), vectors=vectors)
        tmp.replace(cache)
        return refs, vectors
