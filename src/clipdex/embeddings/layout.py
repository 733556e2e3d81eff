"""The one reader and writer of clip-retrieval's embedding-folder layout.

    OUT/img_emb/img_emb_{i}.npy        float16 (n, d) image vectors
    OUT/text_emb/text_emb_{i}.npy      float16 (n, d) caption vectors (a zero row: no caption)
    OUT/metadata/metadata_{i}.parquet  rows aligned with the arrays: key, image_path, caption, ...
    OUT/embed.json                     the model the vectors came from (written by ``clipdex embed``)

Every file is replaced atomically and a part's metadata is written last, so its
presence means the part is whole. ``clipdex embed`` writes this layout;
``build-index``, ``import-embeddings``, ``eval retrieval --embeddings`` and
curation's ``--embeddings`` read it through :func:`read_parts` and
:class:`EmbeddingLookup`.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.errors import ClipdexError, SourceError
from clipdex.linalg import l2_normalize

__all__ = ["EmbeddingLookup", "Part", "npy_bytes", "parquet_bytes", "read_model_card", "read_parts",
           "record_model", "save_atomic", "write_clip_retrieval"]


@dataclass(frozen=True)
class Part:
    """One part of an embedding folder: image vectors and the metadata rows aligned with them."""

    npy: Path
    metadata: Path
    rows: int
    dim: int


def read_parts(emb: str | os.PathLike[str], skip_bad: bool = False) -> tuple[list[Part], dict[str, str]]:
    """The parts of a clip-retrieval folder, checked: each ``img_emb_{i}.npy`` must be a whole 2-D float
    array with the same width as the others, and ``metadata_{i}.parquet`` must exist with as many rows.

    Returns the good parts and, with ``skip_bad``, ``{file: reason}`` for the parts left out.

    Raises:
        SourceError: no parts, or (without ``skip_bad``) the first bad part, named with the reason.
    """
    import pyarrow.parquet as pq

    emb = Path(emb)
    files = sorted((emb / "img_emb").glob("img_emb_*.npy"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not files:
        raise SourceError(f"{emb}: no img_emb/img_emb_*.npy files (clip-retrieval's layout)")
    good: list[Part] = []
    skipped: dict[str, str] = {}
    for npy in files:
        meta = emb / "metadata" / npy.name.replace("img_emb", "metadata").replace(".npy", ".parquet")
        try:
            try:
                array = np.load(npy, mmap_mode="r")
            except (ValueError, OSError, EOFError) as e:
                raise SourceError(f"{npy}: truncated or not a .npy array ({e})") from e
            if array.ndim != 2 or array.dtype.kind != "f":
                raise SourceError(f"{npy}: wrong schema: a {array.ndim}-d {array.dtype} array, "
                                  "expected 2-d float rows")
            if good and array.shape[1] != good[0].dim:
                raise SourceError(f"{npy}: wrong schema: {array.shape[1]}-d vectors where the first part "
                                  f"has {good[0].dim}")
            if not meta.exists():
                raise SourceError(f"{npy}: missing its metadata part {meta}")
            try:
                meta_rows = pq.ParquetFile(meta).metadata.num_rows
            except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a damaged file
                raise SourceError(f"{meta}: truncated or not Parquet ({str(e).splitlines()[0]})") from e
            if meta_rows != len(array):
                raise SourceError(f"{meta}: {meta_rows:,} metadata rows for {len(array):,} vectors in {npy.name}")
            good.append(Part(npy, meta, len(array), int(array.shape[1])))
        except SourceError as e:
            if not skip_bad:
                raise
            skipped[npy.name] = str(e)
    if not good:
        raise SourceError(f"{emb}: no readable part ({len(skipped)} skipped)")
    return good, skipped


class EmbeddingLookup:
    """Find the stored vectors of samples in an embedding folder by ``key`` or ``image_path``.

    Vectors come back float32 and L2-normalised (float16 storage moves norms); a
    caption vector only when the row's caption is the one asked for.
    """

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        parts, _ = read_parts(path)
        self._img: list[np.ndarray] = []
        self._txt: list[np.ndarray | None] = []
        self._by_key: dict[str, tuple[int, int]] = {}
        self._by_path: dict[str, tuple[int, int]] = {}
        self._captions: list[list[Any]] = []
        for part, found in enumerate(parts):
            meta = pq.read_table(found.metadata).to_pydict()
            vectors = np.load(found.npy, mmap_mode="r")
            rows = found.rows
            text_file = path / "text_emb" / found.npy.name.replace("img_emb", "text_emb")
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


def read_model_card(emb: str | os.PathLike[str]) -> str | None:
    """The encoder spec ``clipdex embed`` recorded in ``emb/embed.json`` (None for folders of other tools)."""
    card = Path(emb) / "embed.json"
    return json.loads(card.read_text()).get("model") if card.exists() else None


def record_model(out: Path, spec: str, dim: int) -> None:
    """Write (or check) ``embed.json``: one folder never mixes vectors of two models."""
    made_with = read_model_card(out)
    if made_with is not None:
        if made_with != spec:
            raise ClipdexError(f"{out} holds vectors of {made_with}, not {spec}: "
                               "embed into another --out, or pass the same --model")
        return
    save_atomic(out / "embed.json", json.dumps({"model": spec, "dim": dim}).encode())
