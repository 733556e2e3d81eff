"""Store: the on-disk collection (SQLite + vector shards + FAISS index); the only code that knows the schema."""

from clipdex.store.ann import ANN_THRESHOLD, AnnIndex, build_ann, default_factory
from clipdex.store.compact import CompactReport, compact
from clipdex.store.store import FORMAT_VERSION, CollectionInfo, ItemRecord, Store
from clipdex.store.vectors import VectorView
from clipdex.store.verify import Problem, RepairReport, repair_collection, verify_collection
from clipdex.store.writes import IndexReport, add_embedded

__all__ = [
    "ANN_THRESHOLD",
    "FORMAT_VERSION",
    "AnnIndex",
    "CollectionInfo",
    "CompactReport",
    "IndexReport",
    "ItemRecord",
    "Store",
    "Problem",
    "RepairReport",
    "VectorView",
    "add_embedded",
    "build_ann",
    "compact",
    "default_factory",
    "repair_collection",
    "verify_collection",
]
