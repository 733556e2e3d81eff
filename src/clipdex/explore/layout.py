"""The embeddings map: every image as a point in 2-D, near images near each other.

UMAP (``umap-learn``, the ``map`` extra) where installed, PCA otherwise. The layout is cached
beside the vectors (``map/layout.npz`` in the collection or embedding folder) and kept up to
date incrementally: items that are gone leave it, new items are placed at the similarity-weighted
mean of their nearest mapped neighbours (so the existing points never move), and the whole layout
is fitted again once the new items exceed a quarter of those it was fitted on.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clipdex.errors import BadQueryError, SourceError
from clipdex.explore.neighbours import knn
from clipdex.store.store import Store

__all__ = ["METHODS", "MapLayout", "Mappable", "map_layout", "source_vectors"]

METHODS = ("auto", "umap", "pca")
_REFIT_SHARE = 0.25  # new items past this share of the fitted ones: fit again
_PLACE_K = 8


class Mappable(Protocol):
    """What a map can be drawn of: a collection, or an index served like one."""

    path: Path

    def item_vectors(self) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class MapLayout:
    """Item (or embedding row) ids and their positions in [0, 1]², plus how the layout came about."""

    ids: np.ndarray
    xy: np.ndarray
    method: str
    fitted_on: int  # how many items the last full fit saw
    placed: int  # items added since, placed among their neighbours
    dropped: int  # items gone since the last call
    refitted: bool  # whether this call fitted the layout anew
    seconds: float

    def to_dict(self, points: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "items": len(self.ids), "fitted_on": self.fitted_on,
                               "placed": self.placed, "dropped": self.dropped, "refitted": self.refitted,
                               "seconds": round(self.seconds, 3)}
        if points:
            out["points"] = [[int(i), round(float(x), 5), round(float(y), 5)]
                             for i, (x, y) in zip(self.ids, self.xy, strict=True)]
        return out


def source_vectors(source: Mappable | str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, Path]:
    """``(ids, unit image vectors, the folder the map is cached in)`` of a collection or an embedding folder
    (img_emb/ + metadata/: ids are row numbers across its parts).

    Raises:
        SourceError: a path that is neither.
    """
    if not isinstance(source, str | os.PathLike):  # a collection, or a served index
        ids, vectors = source.item_vectors()
        return ids, vectors, Path(source.path)
    folder = Path(source)
    if (folder / "collection.json").is_file():
        with Store.open(folder) as store:
            ids, vectors = store.item_vectors()
        return ids, vectors, folder
    if (folder / "img_emb").is_dir():
        from clipdex.embeddings.layout import read_parts
        from clipdex.linalg import l2_normalize

        parts, _ = read_parts(folder)
        vectors = l2_normalize(np.concatenate([np.load(p.npy).astype(np.float32) for p in parts]))
        return np.arange(len(vectors), dtype=np.int64), vectors, folder
    raise SourceError(f"{folder} is neither a collection nor an embedding folder (img_emb/ + metadata/)")


def map_layout(source: Mappable | str | os.PathLike[str], method: str = "auto", refit: bool = False,
               seed: int = 0) -> MapLayout:
    """The 2-D layout of a collection's (or embedding folder's) image vectors, from the cache when it holds.

    ``auto`` keeps a cached layout's method, and fits new ones with UMAP where installed, else PCA.

    Raises:
        BadQueryError: an unknown method, or ``umap`` asked for without umap-learn.
        SourceError: not a collection or an embedding folder.
    """
    started = time.perf_counter()
    ids, vectors, folder = source_vectors(source)
    cache = folder / "map" / "layout.npz"
    cached = _load(cache)
    # "auto" takes the layout as it was made (a served map follows what `clipdex map --method` chose)
    method = cached["method"] if method == "auto" and cached is not None and not refit else _resolve(method)
    if cached is not None and not refit and cached["method"] == method and len(ids):
        kept = np.isin(cached["ids"], ids)
        new = ids[~np.isin(ids, cached["ids"])]
        placed = int(cached["placed"]) + len(new)
        if kept.sum() >= 2 and placed <= _REFIT_SHARE * int(cached["fitted_on"]):
            layout = _extend(ids, vectors, cached["ids"][kept], cached["xy"][kept], new, method,
                             int(cached["fitted_on"]), placed, int((~kept).sum()))
            layout.seconds = time.perf_counter() - started
            if len(new) or (~kept).any():
                _save(cache, layout)
            return layout
    xy = _fit(vectors, method, seed)
    layout = MapLayout(ids, xy, method, len(ids), 0, 0, True, 0.0)
    _save(cache, layout)
    layout.seconds = time.perf_counter() - started
    return layout


def _resolve(method: str) -> str:
    if method not in METHODS:
        raise BadQueryError(f"unknown map method {method!r}. Available: {', '.join(METHODS)}")
    try:
        import umap  # noqa: F401
    except ImportError:
        if method == "umap":
            raise BadQueryError("the umap method needs umap-learn: pip install 'clipdex[map]' "
                                "(or use --method pca)") from None
        return "pca"
    return "umap" if method == "auto" else method


def _fit(vectors: np.ndarray, method: str, seed: int) -> np.ndarray:
    """Positions in [0, 1]² (a small margin left) from a full fit."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if method == "umap" and n >= 5:
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.1, metric="cosine",
                            random_state=seed, low_memory=True, n_jobs=1)
        xy = reducer.fit_transform(vectors)
    else:
        xy = _pca(vectors)
    return _unit_square(np.asarray(xy, np.float64))


def _pca(vectors: np.ndarray) -> np.ndarray:
    """The two leading principal components (signs fixed so the same data always maps the same way)."""
    x = vectors.astype(np.float64) - vectors.mean(axis=0)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    _, basis = np.linalg.eigh(x.T @ x)
    top = basis[:, ::-1][:, :2]
    top *= np.where(top[np.abs(top).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)
    return x @ top


def _unit_square(xy: np.ndarray, margin: float = 0.02) -> np.ndarray:
    low, high = xy.min(axis=0), xy.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    return (margin + (1 - 2 * margin) * (xy - low) / span).astype(np.float32)


def _extend(ids: np.ndarray, vectors: np.ndarray, kept_ids: np.ndarray, kept_xy: np.ndarray, new: np.ndarray,
            method: str, fitted_on: int, placed: int, dropped: int) -> MapLayout:
    """The cached layout with new items placed at the weighted mean of their nearest mapped neighbours."""
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    kept_vectors = vectors[[row_of[int(i)] for i in kept_ids]]
    new_xy = np.zeros((len(new), 2), np.float32)
    if len(new):
        sims, nearest = knn(vectors[[row_of[int(i)] for i in new]], kept_vectors, _PLACE_K)
        weights = np.exp(20 * (sims - sims[:, :1]))  # the closest neighbours dominate
        weights /= weights.sum(axis=1, keepdims=True)
        new_xy = np.einsum("nk,nkd->nd", weights, kept_xy[nearest]).astype(np.float32)
    all_ids = np.concatenate([kept_ids, new]).astype(np.int64)
    all_xy = np.concatenate([kept_xy, new_xy]).astype(np.float32)
    order = np.argsort(all_ids)
    return MapLayout(all_ids[order], all_xy[order], method, fitted_on, placed, dropped, False, 0.0)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files} | {"method": str(data["method"])}
    except (OSError, ValueError, KeyError):
        return None  # no cache yet, or one this version cannot read: fitted again


def _save(path: Path, layout: MapLayout) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, ids=layout.ids, xy=layout.xy, method=np.asarray(layout.method), fitted_on=layout.fitted_on,
                 placed=layout.placed)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only collection: the layout is fitted each time instead of cached
