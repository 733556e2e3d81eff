"""What the server needs of anything it serves: a collection, or an embedding index served like one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from clipdex.encoders.base import Encoder
from clipdex.search.query import Query, SearchPage
from clipdex.store.store import CollectionInfo, ItemRecord

__all__ = ["Searchable"]


class Searchable(Protocol):
    """Search, items, thumbnails and facts; :class:`clipdex.Collection` and
    :class:`clipdex.embeddings.served.ServedIndex` both implement it."""

    encoder_spec: str
    path: Path

    def search_page(self, query: Query, encoder: Encoder) -> SearchPage: ...

    def item(self, item_id: int) -> ItemRecord: ...

    def item_path_bytes(self, item_id: int) -> bytes: ...

    def thumbnail(self, item_id: int, size: int = 256) -> bytes: ...

    def info(self, max_errors: int = 50) -> CollectionInfo: ...

    def close(self) -> None: ...

    def item_vectors(self) -> tuple[Any, Any]: ...

    def metadata_fields(self) -> list[str]: ...

    def field_values(self, key: str, item_ids: list[int]) -> list[Any]: ...
