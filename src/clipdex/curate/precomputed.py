"""Embeddings computed before a curation run: reuse them instead of running the encoder again.

Two layouts are read:

* a clipdex collection (``collection.json``): image vectors by image path,
  caption vectors by (image path, caption text);
* clip-retrieval's interchange layout (see :mod:`clipdex.embeddings.layout`):
  a row is found by its ``key`` column or by its ``image_path``.

A sample that is not found is simply encoded as usual.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from clipdex.embeddings.layout import EmbeddingLookup
from clipdex.errors import SourceError
from clipdex.store import Store

__all__ = ["Precomputed", "open_precomputed"]


class Precomputed(Protocol):
    """Look up stored image and caption vectors of pool samples (float32, L2-normalised); None: not stored."""

    def images(self, keys: list[str], paths: list[str | None]) -> list[np.ndarray | None]: ...

    def texts(self, keys: list[str], paths: list[str | None], captions: list[str]) -> list[np.ndarray | None]: ...


def open_precomputed(location: str | os.PathLike[str]) -> Precomputed:
    """Open a collection folder or a clip-retrieval embedding folder.

    Raises:
        SourceError: the folder is neither.
    """
    path = Path(location)
    if (path / "collection.json").exists():
        return _CollectionVectors(path)
    if (path / "img_emb").is_dir():
        return EmbeddingLookup(path)
    raise SourceError(f"{path}: not a clipdex collection nor a clip-retrieval folder "
                      "(img_emb/*.npy + metadata/*.parquet)")


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


class _CollectionVectors:
    def __init__(self, path: Path) -> None:
        self.store = Store.open(path)
        images = self.store.vectors("image")
        captions = self.store.vectors("caption")
        records = self.store.items(set(images.item_ids.tolist()) | set(captions.item_ids.tolist()))
        paths = {item_id: _abs(record.path) for item_id, record in records.items()}
        texts = self.store.caption_texts(captions.caption_ids.tolist())
        self._images = {paths[int(i)]: row for row, i in enumerate(images.item_ids)}
        self._texts = {(paths[int(i)], texts[int(c)]): row
                       for row, (i, c) in enumerate(zip(captions.item_ids, captions.caption_ids, strict=True))
                       if int(c) in texts and int(i) in paths}
        self._image_matrix, self._text_matrix = images.matrix, captions.matrix

    def images(self, keys: list[str], paths: list[str | None]) -> list[np.ndarray | None]:
        rows = [self._images.get(_abs(path)) for path in paths]
        return [None if row is None else self._image_matrix[row] for row in rows]

    def texts(self, keys: list[str], paths: list[str | None], captions: list[str]) -> list[np.ndarray | None]:
        rows = [self._texts.get((_abs(path), caption)) for path, caption in zip(paths, captions, strict=True)]
        return [None if row is None else self._text_matrix[row] for row in rows]
