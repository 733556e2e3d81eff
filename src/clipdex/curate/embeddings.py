"""Embeddings computed before a curation run: reuse them instead of running the encoder again.

Two layouts are read:

* a clipdex collection (``collection.json``): image vectors by image path,
  caption vectors by (image path, caption text);
* clip-retrieval's interchange layout: ``img_emb/img_emb_{i}.npy``,
  optionally ``text_emb/text_emb_{i}.npy``, and ``metadata/metadata_{i}.parquet``
  with rows aligned to the arrays; a row is found by its ``key`` column or by
  its ``image_path``.

A sample that is not found is simply encoded as usual.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.encoders.base import l2_normalize
from clipdex.errors import SourceError

__all__ = ["Precomputed", "npy_bytes", "open_precomputed", "parquet_bytes", "save_atomic", "write_clip_retrieval"]


class Precomputed:
    """Look up stored image and caption vectors of pool samples (float32, L2-normalised)."""

    def image(self, key: str, path: str | None) -> np.ndarray | None:
        raise NotImplementedError

    def text(self, key: str, path: str | None, caption: str) -> np.ndarray | None:
        raise NotImplementedError

    def images(self, keys: list[str], paths: list[str | None]) -> list[np.ndarray | None]:
        """Batch form of :meth:`image` (layouts with arrays on disk override it to gather in bulk)."""
        return [self.image(k, p) for k, p in zip(keys, paths, strict=True)]

    def texts(self, keys: list[str], paths: list[str | None], captions: list[str]) -> list[np.ndarray | None]:
        return [self.text(k, p, c) for k, p, c in zip(keys, paths, captions, strict=True)]


def open_precomputed(location: str | os.PathLike[str]) -> Precomputed:
    """Open a collection folder or a clip-retrieval embedding folder.

    Raises:
        SourceError: the folder is neither.
    """
    path = Path(location)
    if (path / "collection.json").exists():
        return _CollectionVectors(path)
    if (path / "img_emb").is_dir():
        return _ClipRetrievalVectors(path)
    raise SourceError(f"{path}: not a clipdex collection nor a clip-retrieval folder "
                      "(img_emb/*.npy + metadata/*.parquet)")


def _abs(path: str | None) -> str | None:
    return os.path.abspath(path) if path else None


class _CollectionVectors(Precomputed):
    def __init__(self, path: Path) -> None:
        from clipdex.store.collection import Collection

        self.collection = Collection.open(path)
        images = self.collection.vectors("image")
        captions = self.collection.vectors("caption")
        conn = self.collection.conn
        paths = {item_id: p for item_id, p in conn.execute("SELECT id, path FROM items")}
        texts = {cid: (item_id, t) for cid, item_id, t in conn.execute("SELECT id, item_id, text FROM captions")}
        self._images = {_abs(paths[int(i)]): row for row, i in enumerate(images.item_ids)}
        self._texts = {(_abs(paths[texts[int(c)][0]]), texts[int(c)][1]): row
                       for row, c in enumerate(captions.caption_ids) if int(c) in texts}
        self._image_matrix, self._text_matrix = images.matrix, captions.matrix

    def image(self, key: str, path: str | None) -> np.ndarray | None:
        row = self._images.get(_abs(path))
        return None if row is None else self._image_matrix[row]

    def text(self, key: str, path: str | None, caption: str) -> np.ndarray | None:
        row = self._texts.get((_abs(path), caption))
        return None if row is None else self._text_matrix[row]


class _ClipRetrievalVectors(Precomputed):
    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        parts = sorted((path / "img_emb").glob("img_emb_*.npy"), key=_part_number)
        if not parts:
            raise SourceError(f"{path / 'img_emb'}: no img_emb_*.npy files")
        self._img: list[np.ndarray] = []
        self._txt: list[np.ndarray | None] = []
        self._by_key: dict[str, tuple[int, int]] = {}
        self._by_path: dict[str, tuple[int, int]] = {}
        self._captions: list[list[Any]] = []
        for part, npy in enumerate(parts):
            i = _part_number(npy)
            meta_file = path / "metadata" / f"metadata_{i}.parquet"
            if not meta_file.exists():
                raise SourceError(f"{npy}: no matching {meta_file}")
            meta = pq.read_table(meta_file).to_pydict()
            vectors = np.load(npy, mmap_mode="r")
            rows = len(next(iter(meta.values()), []))
            if rows != len(vectors):
                raise SourceError(f"{meta_file}: {rows} rows but {npy.name} holds {len(vectors)} vectors")
            text_file = path / "text_emb" / f"text_emb_{i}.npy"
            self._img.append(vectors)
            self._txt.append(np.load(text_file, mmap_mode="r") if text_file.exists() else None)
            self._captions.append(list(meta.get("caption", [None] * rows)))
            for row, key in enumerate(meta.get("key", [])):
                self._by_key[str(key)] = (part, row)
            for row, image_path in enumerate(meta.get("image_path", [])):
                if image_path:
                    self._by_path[os.path.abspath(str(image_path))] = (part, row)

    def _find(self, key: str, path: str | None) -> tuple[int, int] | None:
        found = self._by_key.get(key)
        if found is None and path:
            found = self._by_path.get(os.path.abspath(path))
        return found

    def image(self, key: str, path: str | None) -> np.ndarray | None:
        return self.images([key], [path])[0]

    def text(self, key: str, path: str | None, caption: str) -> np.ndarray | None:
        return self.texts([key], [path], [caption])[0]

    def images(self, keys: list[str], paths: list[str | None]) -> list[np.ndarray | None]:
        return self._gather(self._img, [self._find(k, p) for k, p in zip(keys, paths, strict=True)])

    def texts(self, keys: list[str], paths: list[str | None], captions: list[str]) -> list[np.ndarray | None]:
        found = []
        for key, path, caption in zip(keys, paths, captions, strict=True):
            at = self._find(key, path)
            if at is not None and (self._txt[at[0]] is None or self._captions[at[0]][at[1]] not in (None, caption)):
                at = None  # no caption vectors here, or the stored vector is of another caption
            found.append(at)
        return self._gather(self._txt, found)

    @staticmethod
    def _gather(arrays: list[Any], found: list[tuple[int, int] | None]) -> list[np.ndarray | None]:
        """Fancy-index each part once, then normalise the whole batch (float16 storage moves norms)."""
        out: list[np.ndarray | None] = [None] * len(found)
        by_part: dict[int, list[int]] = {}
        for i, at in enumerate(found):
            if at is not None:
                by_part.setdefault(at[0], []).append(i)
        for part, where in by_part.items():
            rows = np.array([found[i][1] for i in where])  # type: ignore[index]
            order = np.argsort(rows)  # memory-mapped reads in file order
            block = l2_normalize(arrays[part][rows[order]])
            for j, i in enumerate(np.asarray(where)[order]):
                out[int(i)] = block[j]
        return out


def _part_number(path: Path) -> int:
    match = re.search(r"_(\d+)\.npy$", path.name)
    return int(match.group(1)) if match else 0


def write_clip_retrieval(folder: str | os.PathLike[str], image_vectors: np.ndarray, metadata: dict[str, list[Any]],
                         text_vectors: np.ndarray | None = None, part: int = 0) -> None:
    """Write one part of the clip-retrieval layout (float16 arrays, aligned metadata rows).

    Every file is replaced atomically and the metadata comes last, so its presence means the part is whole.
    """
    folder = Path(folder)
    for sub in ("img_emb", "metadata") + (("text_emb",) if text_vectors is not None else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    save_atomic(folder / "img_emb" / f"img_emb_{part}.npy", npy_bytes(image_vectors))
    if text_vectors is not None:
        save_atomic(folder / "text_emb" / f"text_emb_{part}.npy", npy_bytes(text_vectors))
    save_atomic(folder / "metadata" / f"metadata_{part}.parquet", parquet_bytes(metadata))


def save_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def npy_bytes(matrix: np.ndarray) -> bytes:
    """A float16 ``.npy`` file in memory."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(matrix, np.float16))
    return buf.getvalue()


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    """A Parquet file in row groups of 4,096: a search hit reads one group, not the whole part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf, row_group_size=4096)
    return buf.getvalue()
