"""Store: the on-disk collection (SQLite + vector shards + FAISS index)."""

from clipdex.store.ann import ANN_THRESHOLD, AnnIndex, build_ann, default_factory
from clipdex.store.collection import FORMAT_VERSION, Collection, CollectionInfo, ItemRecord
from clipdex.store.indexing import IndexOptions, IndexReport, add_embedded, index_items, index_source
from clipdex.store.vectors import VectorView

__all__ = [
    "ANN_THRESHOLD",
    "FORMAT_VERSION",
    "AnnIndex",
    "Collection",
    "CollectionInfo",
    "IndexOptions",
    "IndexReport",
    "ItemRecord",
    "VectorView",
    "add_embedded",
    "build_ann",
    "default_factory",
    "index_items",
    "index_source",
]
