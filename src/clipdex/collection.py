"""``clipdex.Collection``: the façade users and the layers above use.

A collection is a :class:`~clipdex.store.Store` (the folder: SQLite, vector
shards, ANN files) plus the encoder it was built with, loaded on first use,
plus the searcher. ``store/`` itself knows nothing of encoders or search; this
module is where the three meet.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from clipdex.encoders.base import Encoder
from clipdex.encoders.registry import DEFAULT_SPEC, load_encoder, normalize_spec
from clipdex.errors import SourceError
from clipdex.home import data_home
from clipdex.indexing import IndexOptions, ProgressFn, index_source
from clipdex.media.sources import Item
from clipdex.search.query import Hit, Query, SearchPage
from clipdex.search.searcher import search_page
from clipdex.store.store import Store
from clipdex.store.writes import IndexReport

__all__ = ["Collection", "folder_collection", "index_into", "is_collection", "search_folder"]


class Collection(Store):
    """A collection of images, captions and their embeddings in one folder.

    Example:
        >>> c = Collection.create("photos.clipdex", encoder_spec="builtin:shapes-tiny", dim=256)
        >>> c.add("~/photos")            # doctest: +SKIP
        >>> c.search("a red car", k=5)   # doctest: +SKIP
    """

    _encoder: Encoder | None = None

    def encoder(self) -> Encoder:
        """The encoder this collection was built with, loaded on first use."""
        if self._encoder is None:
            self._encoder = load_encoder(self.encoder_spec)
        return self._encoder

    def use_encoder(self, encoder: Encoder) -> None:
        """Share an already-loaded encoder (it must match this collection's spec)."""
        self.check_encoder(encoder.spec)
        self._encoder = encoder

    def add(self, source: str | os.PathLike[str] | Iterable[Item], encoder: Encoder | None = None,
            options: IndexOptions | None = None, progress: ProgressFn | None = None) -> IndexReport:
        """Embed and store new or changed items of a source (folder, table, JSON or items).

        See :func:`clipdex.indexing.index_items` for the details.
        """
        return index_source(self, source, encoder or self.encoder(), options or IndexOptions(), progress)

    def search(self, query: str | Query, k: int = 10, **kwargs: Any) -> list[Hit]:
        """Search with this collection's encoder; see :func:`clipdex.search.search`.

        Example:
            >>> c.search("a red circle", k=5)  # doctest: +SKIP
        """
        q = query if isinstance(query, Query) else Query(text=query, k=k, **kwargs)
        return self.search_page(q).hits

    def search_page(self, query: Query, encoder: Encoder | None = None) -> SearchPage:
        """One page of hits with its stage timings (``encoder``: this collection's when None)."""
        return search_page(self, query, encoder or self.encoder())


def index_into(collection: str | os.PathLike[str], source: str | os.PathLike[str], model: str | None = None,
               precision: str = "fp32", options: IndexOptions = IndexOptions(),
               progress: ProgressFn | None = None, backend: str | None = None,
               notice: Callable[[str], None] | None = None) -> IndexReport:
    """Index ``source`` into the collection folder, creating it for ``model`` (default: the built-in) if missing.

    An existing collection keeps its model: ``model``, when given, must be the same. ``backend`` picks the
    image tower's runtime (``auto``: the fastest measured on this machine, measured once on the first batch);
    it wins over ``precision``. ``notice`` hears a line before that one-time measurement, which takes
    from seconds to minutes by model size.

    Raises:
        SourceError: a new collection's source does not exist.
        CollectionError: the collection was built with another model.
    """
    folder = Path(collection)
    model = normalize_spec(model) if model else None
    if (folder / "collection.json").exists():
        coll = Collection.open(folder)
        coll.check_encoder(model or coll.encoder_spec)
        encoder = load_encoder(coll.encoder_spec, precision=precision, backend=backend)
    else:
        if not Path(source).exists():
            raise SourceError(f"source not found: {source}")
        encoder = load_encoder(model or DEFAULT_SPEC, precision=precision, backend=backend)
        coll = Collection.create(folder, encoder.spec, encoder.dim)
    if notice is not None and getattr(encoder, "will_calibrate", False):
        notice(f"{encoder.spec}: the first batch measures the image backends for this model on this CPU "
               "(once; the choice is cached)")
    with coll:
        return coll.add(source, encoder, options, progress)


def is_collection(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a collection folder (it holds ``collection.json``)."""
    return (Path(path) / "collection.json").is_file()


def folder_collection(root: str | os.PathLike[str]) -> Path:
    """Where the collection of a photo folder searched without naming one lives (rclip's habit).

    One per folder, under ``$CLIPDEX_DATA_DIR`` or else ``$XDG_DATA_HOME/clipdex`` (``~/.local/share/clipdex``):
    ``libraries/<folder name>-<hash of its absolute path>``, so two folders of one name never share it.
    """
    folder = Path(os.path.abspath(Path(root).expanduser()))
    tag = hashlib.sha1(os.fsencode(folder)).hexdigest()[:12]
    return data_home() / "libraries" / f"{folder.name or 'root'}-{tag}"


def search_folder(root: str | os.PathLike[str], query: Query, model: str | None = None, refresh: bool = True,
                  options: IndexOptions = IndexOptions(),
                  progress: ProgressFn | None = None) -> tuple[list[Hit], IndexReport | None, Path]:
    """Search a photo folder without naming a collection: its own collection (:func:`folder_collection`)
    is brought up to date first (new, changed, moved and deleted files), unless ``refresh`` is False.

    Returns:
        The hits, the index report (None when not refreshed) and the collection folder.

    Raises:
        SourceError: ``root`` is not a folder.
        CollectionError: ``refresh`` is False and the folder was never indexed.
    """
    if not Path(root).is_dir():
        raise SourceError(f"not a folder: {root}")
    where = folder_collection(root)
    report = None
    if refresh:
        where.parent.mkdir(parents=True, exist_ok=True)
        report = index_into(where, root, model, options=options, progress=progress)
    elif not is_collection(where):
        from clipdex.errors import CollectionError

        raise CollectionError(f"{root} has not been indexed yet: search without --no-index once")
    with Collection.open(where) as coll:
        return coll.search(query), report, where
