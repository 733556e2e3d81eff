"""The on-disk store of a collection: a folder with a manifest, SQLite and vector shards.

:class:`Store` is the only code that knows the schema. It answers whole
questions (the items a filter allows, the live vectors of a kind, the rows of
these hits) and knows nothing of encoders or search: :class:`clipdex.Collection`
adds those on top.

Layout::

    collection.json   encoder spec, dim, vector dtype, format version
    items.sqlite      items, captions, vector rows, shards, errors (WAL)
    vectors/          append-only shards (float16 by default)
    index/            the FAISS index, when the collection is large enough
    write.lock        held by the one writer
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from clipdex.errors import CollectionError, DamagedError, NotFoundError
from clipdex.media.members import split_member_path
from clipdex.media.video import split_frame_path
from clipdex.store import ann as ann_mod
from clipdex.store.db import bump_version, connect, dumps, get_meta
from clipdex.store.filters import Condition, Near, condition_sql, haversine_km, json_path
from clipdex.store.lock import WriteLock
from clipdex.store.vectors import VectorView, load_view, remove_orphan_shards

__all__ = ["FORMAT_VERSION", "CollectionInfo", "ItemRecord", "Store", "manifest_problem"]

FORMAT_VERSION = 1
MANIFEST = "collection.json"


@dataclass
class ItemRecord:
    """One stored item as search results and ``info`` show it."""

    id: int
    path: str
    status: str
    captions: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class CollectionInfo:
    """Counts and facts about a collection (``clipdex info``)."""

    path: str
    encoder: str
    dim: int
    vector_dtype: str
    items: int
    ok: int
    errors: int
    captions: int
    image_vectors: int
    caption_vectors: int
    dead_vectors: int
    disk_bytes: int
    index: str
    error_list: list[dict[str, str]]
    region_vectors: int = 0


class Store:
    """The images, captions and embeddings of one collection folder (no encoder, no search).

    Example:
        >>> s = Store.create("photos.clipdex", encoder_spec="builtin:shapes-tiny", dim=256)
        >>> s.vectors("image").matrix.shape   # doctest: +SKIP
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.encoder_spec: str = manifest["encoder"]
        self.dim: int = int(manifest["dim"])
        self.vector_dtype: str = manifest.get("vector_dtype", "float16")
        self._local = threading.local()  # one SQLite connection per thread (WAL: readers never block)
        self._all_conns: list[sqlite3.Connection] = []
        self._views: dict[str, tuple[int, VectorView]] = {}
        # Set by a process that searches once (a command-line search): plain queries are answered from the ANN
        # index without loading every vector. A server keeps them loaded (and notices a damaged shard).
        self.one_shot = False
        self._ann: tuple[int, ann_mod.AnnIndex | None, str | None] | None = None
        self._lock = threading.RLock()
        self.scan_lock = threading.Lock()  # see clipdex.search.searcher: one vector scan at a time

    # -- opening --------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], encoder_spec: str, dim: int,
               vector_dtype: str = "float16", exist_ok: bool = False) -> Self:
        """Create an empty collection (or open it when ``exist_ok`` and it matches).

        Raises:
            CollectionError: it exists (and not ``exist_ok``), or it was built
                with another encoder.
        """
        folder = Path(path).expanduser()
        if (folder / MANIFEST).exists():
            if not exist_ok:
                raise CollectionError(f"collection {folder} already exists")
            existing = cls.open(folder)
            existing.check_encoder(encoder_spec)
            return existing
        if vector_dtype not in ("float16", "float32"):
            raise CollectionError(f"vector dtype must be float16 or float32, not {vector_dtype!r}")
        if folder.exists() and not folder.is_dir():
            raise CollectionError(f"{folder} is a file, not a collection folder: choose another --collection")
        for sub in ("", "vectors", "index"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        manifest = {"format_version": FORMAT_VERSION, "encoder": encoder_spec, "dim": int(dim),
                    "vector_dtype": vector_dtype}
        connect(folder / "items.sqlite").close()
        tmp = folder / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, folder / MANIFEST)  # the manifest last: its presence means "complete"
        return cls(folder, manifest)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Self:
        """Open an existing collection.

        Raises:
            CollectionError: there is no collection at ``path``, or its format is newer.
        """
        folder = Path(path).expanduser()
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            raise CollectionError(
                f"no collection at {folder}; create one with `clipdex index SOURCE --collection {folder}`"
            ) from None
        except (OSError, ValueError) as e:  # JSON and UTF-8 errors are ValueErrors
            raise CollectionError(f"{folder / MANIFEST} is unreadable: {str(e)[:200]}") from e
        problem = manifest_problem(manifest)
        if problem:
            raise CollectionError(f"{folder / MANIFEST}: {problem}")
        if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
            raise CollectionError(f"{folder} was written by a newer clipdex (format {manifest['format_version']})")
        database = folder / "items.sqlite"
        if not database.is_file() or database.stat().st_size == 0:
            raise DamagedError(f"{database} is missing or empty: the collection is damaged "
                                  "(restore it from a backup, or index into a new collection)")
        return cls(folder, manifest)

    def check_encoder(self, spec: str) -> None:
        """Refuse to mix embeddings of two models in one collection."""
        if spec != self.encoder_spec:
            raise CollectionError(
                f"{self.path} was built with {self.encoder_spec}, not {spec}; "
                f"use --model {self.encoder_spec} or index into a new collection"
            )

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to ``items.sqlite``."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path / "items.sqlite")
            self._local.conn = conn
            with self._lock:
                self._all_conns.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all_conns:
                conn.close()
            self._all_conns.clear()
        self._local = threading.local()
        self._views.clear()
        self._ann = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def writing(self, wait: float = 0.0) -> Iterator[sqlite3.Connection]:
        """Hold the writer lock; clears debris a killed writer may have left."""
        with WriteLock(self.path, wait):
            remove_orphan_shards(self.conn, self.path / "vectors")
            yield self.conn

    # -- writing --------------------------------------------------------
    def remove(self, pattern: str, wait: float = 0.0, source: str | os.PathLike[str] | None = None) -> int:
        """Remove items whose path (or path relative to its source) matches a glob.

        Args:
            source: only items of this source folder or file (as indexed); None: every source.

        Returns:
            How many items were removed.
        """
        only = str(Path(source).expanduser().resolve()) if source is not None else None
        with self.writing(wait) as conn:
            rows = conn.execute("SELECT id, path, rel, source FROM items").fetchall()
            ids = [r["id"] for r in rows if (only is None or r["source"] == only)
                   and (fnmatch.fnmatchcase(r["rel"], pattern) or fnmatch.fnmatchcase(r["path"], pattern))]
            self.delete_items(conn, ids)
            conn.commit()
        return len(ids)

    def set_metadata(self, updates: dict[int, dict[str, Any]], drop: Iterable[str] = (), wait: float = 0.0) -> int:
        """Merge fields into items' metadata in one transaction (what tags, probes and scores write).

        ``updates`` maps item id -> fields to set; ``drop`` names fields removed from every item first
        (a re-run that no longer tags an item leaves no stale tag). Returns how many items changed.
        """
        drop = list(drop)
        with self.writing(wait) as conn:
            ids = [int(i) for i in updates] if not drop else [
                int(r[0]) for r in conn.execute("SELECT id FROM items")]
            changed = 0
            for chunk, marks in _in_chunks(ids):
                rows = conn.execute(f"SELECT id, metadata FROM items WHERE id IN ({marks})", chunk).fetchall()
                for item_id, text in rows:
                    meta = _loads(text)
                    new = {k: v for k, v in meta.items() if k not in drop}
                    new.update(updates.get(int(item_id), {}))
                    if new != meta:
                        conn.execute("UPDATE items SET metadata = ? WHERE id = ?", (dumps(new), item_id))
                        changed += 1
            if changed:
                bump_version(conn)
            conn.commit()
        return changed

    @staticmethod
    def delete_items(conn: sqlite3.Connection, ids: list[int]) -> None:
        """Delete items (cascading to captions and vector rows) inside a transaction."""
        for chunk, marks in _in_chunks(ids):
            conn.execute(f"DELETE FROM items WHERE id IN ({marks})", chunk)
        if ids:
            bump_version(conn)

    # -- reading --------------------------------------------------------
    def version(self) -> int:
        """Bumped by every committed write; cheap to poll."""
        return int(get_meta(self.conn, "version", "0"))

    def vectors(self, kind: str = "image") -> VectorView:
        """Live vectors of ``kind``, cached until the collection changes."""
        with self._lock:
            version = self.version()
            cached = self._views.get(kind)
            if cached is None or cached[0] != version:
                self._views[kind] = (version, load_view(self.conn, self.path / "vectors", kind, self.dim))
            return self._views[kind][1]

    def has_vectors_loaded(self, kind: str = "image") -> bool:
        """Whether :meth:`vectors` of ``kind`` is in memory and current (a server's are; a one-shot search's not)."""
        with self._lock:
            cached = self._views.get(kind)
            return cached is not None and cached[0] == self.version()

    def vectors_after(self, kind: str, after: int) -> VectorView:
        """Live vectors of ``kind`` whose id is above ``after`` (the ones an index built earlier lacks); not
        cached."""
        return load_view(self.conn, self.path / "vectors", kind, self.dim, after)

    def live_vector_items(self, vec_ids: Iterable[int]) -> dict[int, int]:
        """Item id by vector id, for those of these vectors that are still live (image and caption kinds)."""
        out: dict[int, int] = {}
        for chunk, marks in _in_chunks([int(v) for v in vec_ids if 0 <= int(v) < _MAX_ID]):
            out.update((int(v), int(i)) for v, i in self.conn.execute(
                f"SELECT vec_id, item_id FROM vectors WHERE vec_id IN ({marks})", chunk))
        return out

    def count_vectors(self, kind: str, upto: int) -> int:
        """How many live vectors of ``kind`` have an id at most ``upto``."""
        return int(self.conn.execute("SELECT COUNT(*) FROM vectors WHERE kind = ? AND vec_id <= ?",
                                     (kind, upto)).fetchone()[0])

    def ann(self) -> ann_mod.AnnIndex | None:
        """The saved FAISS index, if any (it may lag behind the newest items)."""
        with self._lock:
            stamp = _mtime(self.path / "index" / "manifest.json")
            if self._ann is None or self._ann[0] != stamp:
                self._ann = (stamp, *ann_mod.open_ann(self.path / "index")) if stamp else (stamp, None, None)
            return self._ann[1]

    def recorded_index_factory(self) -> str | None:
        """The factory string the saved index manifest records (also when the index itself is refused)."""
        try:
            return str(json.loads((self.path / "index" / "manifest.json").read_text())["factory"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def ann_problem(self) -> str | None:
        """Why the saved index was refused (search is exact meanwhile), or None."""
        self.ann()
        return self._ann[2] if self._ann else None

    def build_index(self, factory: str | None = None, threshold: int = ann_mod.ANN_THRESHOLD,
                    nprobe: int | None = None) -> str:
        """Build (or drop) the FAISS index over the image vectors, chosen by size.

        Args:
            factory: a faiss factory string (``"IVF1024,Flat"``, ``"HNSW32,Flat"``);
                ``"exact"`` drops the index; None chooses by size.
            threshold: below this many vectors (and no factory) search stays exact.
            nprobe: IVF lists probed per query (default from the index size).

        Returns:
            What search will use: ``"exact"`` or the factory string.
        """
        view = self.vectors("image")
        folder = self.path / "index"
        if factory == "exact" or (factory is None and len(view) < threshold) or len(view) == 0:
            ann_mod.drop_ann(folder)
            return "exact"
        built = ann_mod.build_ann(view.matrix, view.vec_ids, factory, nprobe)
        ann_mod.save_ann(built, folder, self.version())
        return built.factory

    def items(self, ids: Iterable[int]) -> dict[int, ItemRecord]:
        """Fetch item rows with their captions and metadata, by id (ids no row can have are simply absent)."""
        ids = [int(i) for i in ids if 0 <= int(i) < _MAX_ID]
        out: dict[int, ItemRecord] = {}
        for chunk, marks in _in_chunks(ids):
            for r in self.conn.execute(
                f"SELECT id, path, status, error, metadata FROM items WHERE id IN ({marks})", chunk
            ):
                out[r["id"]] = ItemRecord(r["id"], r["path"], r["status"], [], json.loads(r["metadata"]), r["error"])
            for r in self.conn.execute(
                f"SELECT item_id, text FROM captions WHERE item_id IN ({marks}) ORDER BY id", chunk
            ):
                out[r["item_id"]].captions.append(r["text"])
        return out

    def item(self, item_id: int) -> ItemRecord:
        """One item by id.

        Raises:
            NotFoundError: no such item.
        """
        found = self.items([item_id]).get(int(item_id))
        if found is None:
            raise NotFoundError(f"no item with id {item_id} in {self.path}")
        return found

    def item_path_bytes(self, item_id: int) -> bytes:
        """The exact OS path of an item's image (for serving or re-decoding)."""
        row = self.conn.execute("SELECT path_bytes FROM items WHERE id = ?", (_row_id(item_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"no item with id {item_id} in {self.path}")
        return bytes(row[0])

    def thumbnail(self, item_id: int, size: int = 256) -> bytes:
        """A cached JPEG thumbnail of an item's image (``thumbs/SIZE/ID-FINGERPRINT.jpg``).

        Raises:
            NotFoundError: no such item.
            DecodeError: its image can no longer be decoded.
        """
        from clipdex.media.thumbnails import thumbnail_jpeg

        row = self.conn.execute("SELECT path_bytes, fingerprint, status FROM items WHERE id = ?",
                                (_row_id(item_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"no item with id {item_id} in {self.path}")
        if row["status"] != "ok":
            raise NotFoundError(f"item {item_id} failed to index: it has no image")
        tag = hashlib.sha1(row["fingerprint"].encode()).hexdigest()[:10]
        cached = self.path / "thumbs" / str(size) / f"{int(item_id)}-{tag}.jpg"
        if cached.exists():
            return cached.read_bytes()
        data = thumbnail_jpeg(bytes(row["path_bytes"]), size)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        except OSError:
            pass  # a read-only collection: thumbnails are made each time instead of cached
        return data

    def caption_texts(self, caption_ids: Iterable[int]) -> dict[int, str]:
        ids = [int(i) for i in caption_ids]
        out: dict[int, str] = {}
        for chunk, marks in _in_chunks(ids):
            out.update(self.conn.execute(f"SELECT id, text FROM captions WHERE id IN ({marks})", chunk).fetchall())
        return out

    def hit_rows(self, item_ids: Iterable[int],
                 caption_ids: Iterable[int] = ()) -> tuple[dict[int, ItemRecord], dict[int, str]]:
        """The rows a page of hits shows: item records by id, and the texts of matched captions by id."""
        return self.items(item_ids), self.caption_texts(caption_ids)

    def item_vectors(self, include_gone: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(item ids, rows)``: each ok item's image vector (its first), by id; items whose files are
        gone are left out unless ``include_gone``. Rows are float32 unit vectors ``(n, dim)``."""
        view = self.vectors("image")
        ids, rows = np.unique(view.item_ids.astype(np.int64), return_index=True)  # sorted ids, first rows
        if not include_gone and len(ids):
            keep = ~np.isin(ids, np.fromiter(self.gone_items(ids.tolist()), np.int64))
            ids, rows = ids[keep], rows[keep]
        return ids, view.matrix[rows] if len(rows) else np.zeros((0, self.dim), np.float32)

    def content_hashes(self, item_ids: Iterable[int]) -> dict[int, str]:
        """The recorded content hash of each of these items that has one (older rows and frames have none)."""
        ids = [int(i) for i in item_ids if 0 <= int(i) < _MAX_ID]
        out: dict[int, str] = {}
        try:
            for chunk, marks in _in_chunks(ids):
                out.update((int(r[0]), str(r[1])) for r in self.conn.execute(
                    f"SELECT id, content FROM items WHERE id IN ({marks}) AND content IS NOT NULL", chunk))
        except sqlite3.OperationalError:
            return {}  # opened read-only from before content hashes were recorded
        return out

    def gone_items(self, item_ids: Iterable[int]) -> set[int]:
        """Which of these items' files are no longer on disk (deleted since they were indexed).

        Only items indexed from a folder or table here are checked: items stored from vectors made
        elsewhere (``add_embedded``, ``import-embeddings``) or from an iterable may name files of
        another machine.
        """
        ids = [int(i) for i in item_ids if 0 <= int(i) < _MAX_ID]
        gone = set()
        for chunk, marks in _in_chunks(ids):
            for row in self.conn.execute(f"SELECT id, path_bytes, source FROM items WHERE id IN ({marks})", chunk):
                if os.path.isabs(row[2]) and not _file_present(os.fsdecode(bytes(row[1]))):
                    gone.add(int(row[0]))
        return gone

    def region_boxes(self, vec_ids: Iterable[int]) -> dict[int, tuple[float, float, float, float]]:
        """The crop box ``(x0, y0, x1, y1)`` (fractions of the image) of each region vector."""
        ids = [int(i) for i in vec_ids]
        out: dict[int, tuple[float, float, float, float]] = {}
        for chunk, marks in _in_chunks(ids):
            for row in self.conn.execute(f"SELECT vec_id, x0, y0, x1, y1 FROM regions WHERE vec_id IN ({marks})",
                                         chunk):
                out[row[0]] = (row[1], row[2], row[3], row[4])
        return out

    def text_rows(self) -> Iterator[tuple[int, str, dict[str, Any], list[str]]]:
        """``(item id, path, metadata, captions)`` of every ok item, by id: what lexical search indexes."""
        captions: dict[int, list[str]] = {}
        for item_id, text in self.conn.execute("SELECT item_id, text FROM captions ORDER BY id"):
            captions.setdefault(item_id, []).append(text)
        for item_id, path, metadata in self.conn.execute(
                "SELECT id, path, metadata FROM items WHERE status = 'ok' ORDER BY id"):
            yield item_id, path, _loads(metadata), captions.get(item_id, [])

    def field_values(self, key: str, item_ids: Iterable[int]) -> list[Any]:
        """The value of metadata ``key`` for each of these items, in order (None where an item has none)."""
        ids, path = [int(i) for i in item_ids], json_path(key)
        found: dict[int, Any] = {}
        for chunk, marks in _in_chunks(ids):
            for item_id, value in self.conn.execute(
                    f"SELECT id, json_extract(metadata, ?) FROM items WHERE id IN ({marks})", [path, *chunk]):
                found[int(item_id)] = _json_or_text(value)
        return [found.get(i) for i in ids]

    def metadata_fields(self, sample: int = 2000) -> list[str]:
        """The metadata fields the items hold (from the first ``sample`` items), sorted."""
        rows = self.conn.execute("SELECT DISTINCT j.key FROM (SELECT metadata FROM items WHERE status = 'ok' "
                                 "LIMIT ?) AS m, json_each(m.metadata) AS j", (int(sample),))
        return sorted(str(r[0]) for r in rows)

    def metadata_values(self, key: str, limit: int = 5) -> list[str]:
        """Some distinct values the items hold under metadata ``key`` (empty: no item has the field)."""
        rows = self.conn.execute(
            "SELECT DISTINCT CAST(json_extract(metadata, ?) AS TEXT) AS v FROM items "
            "WHERE status = 'ok' AND v IS NOT NULL ORDER BY v LIMIT ?", (json_path(key), int(limit)))
        return [r[0] for r in rows]

    def filter_item_ids(self, where: dict[str, str] | Iterable[Condition] = (),
                        near: Near | None = None) -> np.ndarray:
        """Ids of ok items whose metadata meets every condition (a dict: ``key == value``) and, with
        ``near``, whose GPS position lies within its radius."""
        conditions = [Condition(k, "=", str(v)) for k, v in where.items()] if isinstance(where, dict) else list(where)
        sql = "SELECT id FROM items WHERE status = 'ok'"
        args: list[Any] = []
        for cond in conditions:
            test, cond_args = condition_sql(cond)
            sql += f" AND {test}"
            args += cond_args
        if near is None:
            return np.asarray([r[0] for r in self.conn.execute(sql, args)], dtype=np.int64)
        sql = sql.replace("SELECT id", "SELECT id, json_extract(metadata, '$.gps_lat'), "
                          "json_extract(metadata, '$.gps_lon')", 1)
        rows = [r for r in self.conn.execute(sql + " AND json_type(metadata, '$.gps_lat') IN ('integer', 'real') "
                                             "AND json_type(metadata, '$.gps_lon') IN ('integer', 'real')", args)]
        if not rows:
            return np.zeros(0, dtype=np.int64)
        table = np.asarray(rows, dtype=np.float64)
        inside = haversine_km(table[:, 1], table[:, 2], near) <= near.km
        return table[inside, 0].astype(np.int64)

    def info(self, max_errors: int = 50) -> CollectionInfo:
        """Counts, disk size, index kind and the recorded per-item errors."""
        c = self.conn
        count = lambda sql: int(c.execute(sql).fetchone()[0])  # noqa: E731
        try:
            regions = count("SELECT COUNT(*) FROM regions")
        except sqlite3.OperationalError:
            regions = 0  # opened read-only from before regions existed
        live = count("SELECT COUNT(*) FROM vectors") + regions
        stored = count("SELECT COALESCE(SUM(count), 0) FROM shards")
        errors = [{"path": r[0], "error": r[1]} for r in c.execute(
            "SELECT path, error FROM items WHERE status = 'error' ORDER BY path LIMIT ?", (max_errors,))]
        ann = self.ann()
        return CollectionInfo(
            path=str(self.path), encoder=self.encoder_spec, dim=self.dim, vector_dtype=self.vector_dtype,
            items=count("SELECT COUNT(*) FROM items"),
            ok=count("SELECT COUNT(*) FROM items WHERE status = 'ok'"),
            errors=count("SELECT COUNT(*) FROM items WHERE status = 'error'"),
            captions=count("SELECT COUNT(*) FROM captions"),
            image_vectors=count("SELECT COUNT(*) FROM vectors WHERE kind = 'image'"),
            caption_vectors=count("SELECT COUNT(*) FROM vectors WHERE kind = 'caption'"), region_vectors=regions,
            dead_vectors=stored - live, disk_bytes=_disk_size(self.path),
            index=f"{ann.factory} over {len(ann.vec_ids)}" if ann else (
                f"exact (saved index refused: {self.ann_problem()}; `clipdex index` rebuilds it)"
                if self.ann_problem() else "exact"), error_list=errors,
        )


_MAX_ID = 1 << 63  # SQLite's INTEGER


def _row_id(item_id: int) -> int:
    """An id SQLite can compare (a larger one names no item: -1 matches none)."""
    return int(item_id) if 0 <= int(item_id) < _MAX_ID else -1


def manifest_problem(manifest: Any) -> str | None:
    """What is wrong with a ``collection.json`` (types included), or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    checks = (("encoder", str), ("dim", int), ("format_version", int))
    for key, kind in checks:
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            return f"{key!r} must be {kind.__name__}, not {manifest.get(key)!r}"
    if manifest["dim"] <= 0 or manifest.get("vector_dtype", "float16") not in ("float16", "float32"):
        return "dim must be positive and vector_dtype float16 or float32"
    return None


def _json_or_text(value: Any) -> Any:
    """json_extract's answer as Python: lists and objects come back as JSON text."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _file_present(path: str) -> bool:
    """Whether an item's file is there (for a video frame or a tar member: its video or shard)."""
    if os.path.exists(path):
        return True
    frame = split_frame_path(path)
    return os.path.exists(frame[0]) if frame else split_member_path(path) is not None


def _in_chunks(ids: list[int], size: int = 500) -> Iterator[tuple[list[int], str]]:
    """``(ids, "?,?,...")`` in runs short enough for SQLite's limit on bound parameters."""
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        yield chunk, ",".join("?" * len(chunk))


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
