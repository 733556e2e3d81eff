"""An index folder (``clipdex build-index``) served with the collection API.

``clipdex serve INDEX`` answers the same ``/api/search``, ``/api/items/{id}``,
thumbnails and page as for a collection, so an app moves from a laptop
collection to a 10M-vector index without changing its client. What an index
holds is vectors, float16 copies and metadata rows, so it answers dense
searches -- by text, uploaded image, vector, or "more like this" row -- with
``k``, ``offset`` and ``min_score``; what needs a collection's tables (captions
as targets, words, regions, filters, composed and weighted queries, reranking)
is refused with a one-line reason.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.embeddings.index import EmbeddingIndex
from clipdex.encoders.base import Encoder
from clipdex.encoders.registry import DEFAULT_SPEC
from clipdex.errors import BadQueryError, CollectionError, NotFoundError
from clipdex.media.thumbnails import thumbnail_jpeg
from clipdex.search.query import Hit, Query, SearchPage, Target
from clipdex.search.query_vector import embed_query
from clipdex.store import CollectionInfo, ItemRecord

__all__ = ["ServedIndex", "is_index_folder"]

# query fields an index cannot answer, with the collection feature they need
_NEEDS_A_COLLECTION = (("terms", "weighted terms"), ("compose", "composed queries"), ("rerank", "reranking"),
                       ("diversity", "diversity"), ("collapse", "near-duplicate collapsing"))


MAP_LIMIT = 1_000_000  # rows of a served index the map will load (4 KB a row at 1024-d)


def is_index_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / "manifest.json").is_file() and (Path(path) / "metadata").is_dir()


class ServedIndex:
    """A built index that answers like a collection for serving (it implements ``clipdex.serve.Searchable``)."""

    def __init__(self, folder: str | os.PathLike[str], model: str | None = None) -> None:
        self.path = Path(folder)
        self.index = EmbeddingIndex(folder)
        self.encoder_spec: str = model or self.index.manifest.get("model") or DEFAULT_SPEC

    def check_encoder(self, encoder: Encoder) -> None:
        if encoder.dim != self.index.dim:
            raise CollectionError(f"{encoder.spec} makes {encoder.dim}-d vectors but {self.path} holds "
                                  f"{self.index.dim}-d ones: serve it with the model the embeddings were made with")

    def info(self, max_errors: int = 0) -> CollectionInfo:
        n = len(self.index)
        return CollectionInfo(path=str(self.path), encoder=self.encoder_spec, dim=self.index.dim,
                              vector_dtype="float16", items=n, ok=n, errors=0,
                              captions=0, image_vectors=n, caption_vectors=0, dead_vectors=0,
                              disk_bytes=int(self.index.manifest["index_bytes"]), index=self.index.manifest["factory"],
                              error_list=[])

    def _row(self, item_id: int) -> dict[str, Any]:
        if not 0 <= int(item_id) < len(self.index):
            raise NotFoundError(f"no item with id {item_id} in {self.path}")
        return self.index.metadata(np.array([int(item_id)]))[0]

    def item(self, item_id: int) -> ItemRecord:
        row = self._row(item_id)
        return ItemRecord(id=int(item_id), path=str(row.get("image_path") or row.get("key") or ""), status="ok",
                          captions=[row["caption"]] if row.get("caption") else [], metadata=_rest(row))

    def item_path_bytes(self, item_id: int) -> bytes:
        path = self._row(item_id).get("image_path")
        if not path:
            raise CollectionError(f"item {item_id} of {self.path} has no image file (its pool kept images in tars)")
        return os.fsencode(path)

    def thumbnail(self, item_id: int, size: int = 256) -> bytes:
        return thumbnail_jpeg(self.item_path_bytes(item_id), size)

    def item_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(row ids, unit vectors)`` of every row, for the embeddings map.

        Raises:
            BadQueryError: past :data:`MAP_LIMIT` rows (a map of more points is not drawn from a served index).
        """
        if len(self.index) > MAP_LIMIT:
            raise BadQueryError(f"{self.path} holds {len(self.index):,} vectors: the map of a served index stops at "
                                f"{MAP_LIMIT:,} (map a collection, or an embedding folder with clipdex map)")
        rows = np.arange(len(self.index), dtype=np.int64)
        return rows, self.index.vectors(rows)

    def metadata_fields(self) -> list[str]:
        """The metadata columns a point can be coloured by."""
        names = self.index.readers[0].schema.names if self.index.readers else []
        return sorted(n for n in names if n not in ("image_path", "caption"))

    def field_values(self, key: str, item_ids: list[int]) -> list[Any]:
        """Metadata column ``key`` of these rows, in order (None where absent)."""
        column = self.index.column(key)
        return [column[i] if 0 <= i < len(column) else None for i in item_ids]

    def search_page(self, query: Query, encoder: Encoder) -> SearchPage:
        """Dense search of the index: the query vector, index candidates, exact re-ranking, metadata.

        Raises:
            BadQueryError: the query is invalid, or needs a collection (the reason says which part).
        """
        query.validate()
        _refuse_collection_features(query)
        self.check_encoder(encoder)
        t0 = time.perf_counter()
        if query.item_id is not None:
            self._row(query.item_id)
            vector = self.index.vectors(np.array([query.item_id]))[0]
        else:
            vector = embed_query(query, encoder)
        t1 = time.perf_counter()
        want = query.depth
        if query.ids is not None:
            found = self._search_rows(vector, np.unique(np.asarray(query.ids, np.int64)), want)
        else:
            found = self.index.search(vector, want, max(self.index.rerank, want))
        found = [h for h in found if h["row"] != query.item_id]
        if query.min_score is not None:
            found = [h for h in found if h["score"] >= query.min_score]
        page = found[query.page]
        hits = [Hit(id=h["row"], score=h["score"], path=str(h.get("image_path") or h.get("key") or ""),
                    caption=h.get("caption"), metadata=_rest(h)) for h in page]
        t2 = time.perf_counter()
        return SearchPage(hits, (t2 - t0) * 1000, {"embed": (t1 - t0) * 1000, "index": (t2 - t1) * 1000},
                          len(self.index))

    def _search_rows(self, vector: np.ndarray, rows: np.ndarray, k: int) -> list[dict[str, Any]]:
        """Exact search among chosen rows (a selection made on the map), hydrated like index hits."""
        rows = rows[(rows >= 0) & (rows < len(self.index))]
        scores = self.index.vectors(rows) @ vector if len(rows) else np.zeros(0, np.float32)
        best = np.argsort(-scores, kind="stable")[:k]
        meta = self.index.metadata(rows[best])
        return [{**m, "row": int(rows[b]), "score": float(scores[b])} for m, b in zip(meta, best, strict=True)]

    def close(self) -> None:
        """Nothing to release: the index files are memory-mapped and closed with the process."""


def _rest(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("row", "score", "image_path", "caption")}


def _refuse_collection_features(query: Query) -> None:
    for name, feature in _NEEDS_A_COLLECTION:
        if getattr(query, name) is not None:
            raise BadQueryError(f"{feature} need a collection; an index answers plain vector searches")
    if query.target != Target.IMAGES or query.mode != "dense" or query.regions or query.where or query.near:
        raise BadQueryError("an index answers dense searches over images: caption targets, word search, "
                            "regions and metadata filters need a collection")
