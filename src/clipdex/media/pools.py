"""Every source clipdex reads: :func:`iter_source` (items to index) and :func:`open_pool` (samples to curate).

Indexing reads a folder (sidecar ``.txt`` captions), a CSV/TSV/Parquet/JSONL
table, a Karpathy JSON (:mod:`clipdex.media.sources`) or webdataset tar shards
(members read in place, see :mod:`clipdex.media.members`).

Pools: the image–caption samples a curation run reads, split into shards, and writes back.

A pool is a table (Parquet / CSV / TSV: one row per sample), webdataset tar
shards as img2dataset writes them (``key.jpg`` + ``key.txt`` + ``key.json``), or
a folder of images with sidecar ``.txt`` captions. Unlike an indexing source,
every row is its own sample: two rows naming the same image are two samples.

Shards are the unit of work, resume and output: a tar file, or a fixed run of
rows / files for tables and folders.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clipdex.errors import SourceError
from clipdex.media.members import member_path
from clipdex.media.sources import IMAGE_EXTENSIONS, Item, SourceOptions, read_source, walk_images

__all__ = ["POOL_FORMATS", "Pool", "PoolOptions", "Sample", "Shard", "ShardResult", "ShardRunner", "ShardWorker",
           "is_webdataset", "iter_source", "open_pool", "text_if_mixed"]

POOL_FORMATS = ("parquet", "csv", "tsv", "webdataset", "folder")
_IMAGE_COLUMNS = ("path", "image", "image_path", "filepath", "file", "filename")
_CAPTION_COLUMNS = ("caption", "text", "title", "description", "alt")
_KEY_COLUMNS = ("key", "uid", "id", "sample_id")
_WDS_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
MAX_TEXT_MEMBER = 1 << 20  # captions and JSON: no real one comes near 1 MiB
MAX_IMAGE_MEMBER = 256 << 20  # as decoding's own file cap


@dataclass
class Sample:
    """One image–caption pair. ``image_path`` or ``image_bytes`` holds the image."""

    key: str
    caption: Any
    image_path: str | None = None
    image_bytes: bytes | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why its image cannot be used, found while reading (an oversized member)
    caption_error: str | None = None  # the same for its caption

    @property
    def image(self) -> str | bytes | None:
        return self.image_bytes if self.image_bytes is not None else self.image_path


@dataclass(frozen=True)
class Shard:
    index: int
    name: str


@dataclass(frozen=True)
class ShardResult:
    """What one worker did with one shard."""

    shard: int
    samples: int = 0
    failed: int = 0
    error: str = ""  # the shard could not be read at all


class ShardWorker(Protocol):
    """Built once per process or actor (``setup``), then called once per shard; picklable before setup."""

    def setup(self, threads: int) -> None: ...

    def __call__(self, index: int) -> ShardResult: ...


# How shards are spread over workers: (shard indexes, worker, called with each result as it comes back).
# The caller picks one: in process (the default of each pipeline) or clipdex.scale.ray_runner.
ShardRunner = Callable[[Sequence[int], ShardWorker, Callable[[ShardResult], None]], object]


@dataclass(frozen=True)
class PoolOptions:
    """Column names (None = guess), rows or files per shard for tables and folders."""

    image_col: str | None = None
    caption_col: str | None = None
    key_col: str | None = None
    image_root: str | None = None
    shard_size: int = 10_000


class Pool:
    """A pool in one of :data:`POOL_FORMATS`. Use :func:`open_pool`."""

    format: str

    def __init__(self, location: Path, options: PoolOptions) -> None:
        self.location = location
        self.options = options

    def shards(self) -> list[Shard]:
        raise NotImplementedError

    def read(self, shard: Shard, with_images: bool = True) -> Iterator[Sample]:
        """The samples of one shard; image bytes are read only when ``with_images``."""
        raise NotImplementedError

    def write(self, out: Path, shard: Shard, keep: set[str], copy_images: bool) -> int:
        """Write the kept samples of ``shard`` under ``out`` in this pool's format; returns how many."""
        raise NotImplementedError

    def finish(self, out: Path, shards: list[Shard]) -> None:
        """Join per-shard outputs where the format is one file (tables)."""


def is_webdataset(path: Path) -> bool:
    """A ``.tar`` shard, or a folder of them with no images of its own (then it is not a photo folder)."""
    if path.is_file():
        return path.suffix.lower() == ".tar"
    if not path.is_dir() or not any(path.glob("*.tar")):
        return False
    return not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())


def iter_source(location: str | os.PathLike[str], options: SourceOptions = SourceOptions()) -> Iterator[Item]:
    """The items to index of any supported source, chosen by what ``location`` is: a folder of images,
    webdataset tar shards (one ``.tar`` or a folder of them), a CSV/TSV/Parquet/JSONL table or a Karpathy JSON.

    Raises:
        SourceError: the location does not exist or has an unknown format.
    """
    path = Path(location)
    if is_webdataset(path):
        return WebdatasetPool(path, PoolOptions()).items()
    return read_source(path, options)


def open_pool(location: str | os.PathLike[str], options: PoolOptions = PoolOptions()) -> Pool:
    """Open a pool, its format chosen by what ``location`` is.

    Raises:
        SourceError: the location is missing or is not a pool clipdex reads.
    """
    path = Path(os.path.abspath(Path(location).expanduser()))  # sample paths work from any folder
    if options.shard_size < 1:
        raise SourceError("--shard-size must be at least 1")
    if path.is_dir():
        if any(path.glob("*.tar")):
            return WebdatasetPool(path, options)
        return FolderPool(path, options)
    if not path.exists():
        raise SourceError(f"pool not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".tar":
        return WebdatasetPool(path, options)
    if suffix in (".parquet", ".csv", ".tsv"):
        return TablePool(path, options)
    raise SourceError(f"unknown pool format {suffix!r}: use a .parquet/.csv/.tsv table, webdataset .tar shards "
                      "or a folder of images with .txt captions")


def text_if_mixed(values: list[Any]) -> list[Any]:
    """A column of mixed types (common in webdataset json) as text, so Arrow can store it."""
    kinds = {type(v) for v in values if v is not None}
    if len(kinds) <= 1 or kinds <= {int, float}:
        return values
    return [None if v is None else str(v) for v in values]


class TablePool(Pool):
    """A Parquet / CSV / TSV table: one row per sample, shards are runs of rows."""

    def __init__(self, location: Path, options: PoolOptions) -> None:
        super().__init__(location, options)
        self.format = location.suffix.lower().lstrip(".")
        self._table: Any = None

    def table(self) -> Any:
        if self._table is None:
            self._table = _read_table(self.location)
            if self._table.num_rows == 0:
                raise SourceError(f"{self.location}: the table has no rows")
            names = self._table.column_names
            self.image_col = _pick(names, self.options.image_col, _IMAGE_COLUMNS, "image", self.location)
            self.caption_col = _pick(names, self.options.caption_col, _CAPTION_COLUMNS, "caption", self.location)
            self.key_col = (_pick(names, self.options.key_col, _KEY_COLUMNS, "key", self.location)
                            if self.options.key_col or any(k in names for k in _KEY_COLUMNS) else None)
            if self.key_col and not self.options.key_col and not _unique(self._table.column(self.key_col)):
                self.key_col = None  # a guessed "id" shared by several captions: key rows by position
        return self._table

    def shards(self) -> list[Shard]:
        n, size = self.table().num_rows, self.options.shard_size
        return [Shard(i, f"rows-{start:09d}") for i, start in enumerate(range(0, n, size))]

    def _rows(self, shard: Shard) -> list[dict[str, Any]]:
        size = self.options.shard_size
        return self.table().slice(shard.index * size, size).to_pylist()  # type: ignore[no-any-return]

    def read(self, shard: Shard, with_images: bool = True) -> Iterator[Sample]:
        root = str(self.options.image_root or self.location.parent)
        first = shard.index * self.options.shard_size
        size = self.options.shard_size
        data = self.table().slice(shard.index * size, size).to_pydict()  # columnar: far cheaper than row dicts
        others = [name for name in data if name not in (self.image_col, self.caption_col)]
        refs, captions = data[self.image_col], data[self.caption_col]
        keys = data[self.key_col] if self.key_col else [None] * len(refs)
        for offset, (ref, caption, key) in enumerate(zip(refs, captions, keys, strict=True)):
            path = None if ref is None or str(ref).strip() == "" else str(ref)
            if path is not None and not path.startswith("/"):
                path = os.path.join(root, path)
            columns = {name: data[name][offset] for name in others}
            yield Sample(str(key) if key is not None else str(first + offset), caption, image_path=path,
                         columns=columns)

    def write(self, out: Path, shard: Shard, keep: set[str], copy_images: bool) -> int:
        import pyarrow.parquet as pq

        rows = []
        samples = self.read(shard, with_images=False)
        for sample, row in zip(samples, self._rows(shard), strict=True):
            if sample.key not in keep:
                continue
            row = dict(row)
            if copy_images and sample.image_path:
                row[self.image_col] = _copy_image(sample.image_path, out, f"images/{_safe(sample.key)}")
            elif sample.image_path:
                row[self.image_col] = os.path.abspath(sample.image_path)  # the table moves; its images do not
            rows.append(row)
        import pyarrow as pa

        part = out / ".parts" / f"{shard.name}.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        schema = self.table().schema
        tmp = part.with_name(part.name + ".tmp")
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
        os.replace(tmp, part)
        return len(rows)

    def finish(self, out: Path, shards: list[Shard]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = out / self.location.name
        if target.exists() and not (out / ".parts").exists():
            return  # joined by an earlier run that was stopped just after
        parts = [pq.read_table(out / ".parts" / f"{s.name}.parquet") for s in shards]
        table = pa.concat_tables(parts) if parts else self.table().slice(0, 0)
        tmp = target.with_name(target.name + ".tmp")
        if self.format == "parquet":
            pq.write_table(table, tmp)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, tmp, pcsv.WriteOptions(delimiter="\t" if self.format == "tsv" else ","))
        os.replace(tmp, target)
        shutil.rmtree(out / ".parts", ignore_errors=True)


def _unique(column: Any) -> bool:
    import pyarrow.compute as pc

    return bool(column.null_count == 0 and pc.count_distinct(column).as_py() == len(column))


def _read_table(path: Path) -> Any:
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pcsv

        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        # every column as text: a CSV column of numbers-then-words must not fail half-way
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, delimiter=delimiter), [])
        return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter),
                             convert_options=pcsv.ConvertOptions(column_types={c: "string" for c in header}))
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot read {path}: {e}") from e
    except Exception as e:  # pyarrow raises its own hierarchy
        if type(e).__module__.startswith("pyarrow"):
            raise SourceError(f"cannot read {path}: {str(e).splitlines()[0]}") from e
        raise


def _pick(names: list[str], wanted: str | None, guesses: tuple[str, ...], what: str, path: Path) -> str:
    if wanted:
        if wanted not in names:
            raise SourceError(f"{path}: no column {wanted!r}. Available: {', '.join(names)}")
        return wanted
    found = next((g for g in guesses if g in names), None)
    if found is None:
        raise SourceError(f"{path}: cannot tell which column holds the {what}; pass --{what}-col. "
                          f"Available: {', '.join(names)}")
    return found


def _safe(key: str) -> str:
    """A file name for a sample key: readable, and unique per key (``a/b``, ``a_b`` and ``a?b`` differ).

    Characters outside ``[A-Za-z0-9-_.]`` become ``_``; when that changed the key, a short hash of the
    original keeps it apart from the keys it now resembles. Leading dots go, so no name hides or climbs.
    """
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in key).lstrip(".") or "_"
    if clean == key:
        return clean
    return f"{clean[:100]}-{hashlib.sha1(key.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def _copy_image(src: str, out: Path, stem: str) -> str:
    target = out / (stem + Path(src).suffix.lower())
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return str(target.relative_to(out))


class FolderPool(Pool):
    """Images (recursively) with sidecar ``.txt`` captions; a shard is a run of files in sorted order."""

    format = "folder"

    def _files(self) -> list[str]:
        if not hasattr(self, "_file_list"):
            files = [os.path.relpath(full, self.location) for full in walk_images(self.location, skip_hidden=True)]
            if not files:
                raise SourceError(f"{self.location}: no image files in this folder")
            self._file_list = files
        return self._file_list

    def shards(self) -> list[Shard]:
        size = self.options.shard_size
        return [Shard(i, f"files-{start:09d}") for i, start in enumerate(range(0, len(self._files()), size))]

    def read(self, shard: Shard, with_images: bool = True) -> Iterator[Sample]:
        size = self.options.shard_size
        for rel in self._files()[shard.index * size:(shard.index + 1) * size]:
            sidecar = self.location / (os.path.splitext(rel)[0] + ".txt")
            caption: Any = None
            if sidecar.exists():
                try:
                    caption = " ".join(sidecar.read_text(encoding="utf-8").split())
                except (OSError, UnicodeDecodeError):
                    caption = b"<undecodable>"  # not text: rejected with that reason
            yield Sample(rel, caption, image_path=str(self.location / rel))

    def write(self, out: Path, shard: Shard, keep: set[str], copy_images: bool) -> int:
        kept = 0
        for sample in self.read(shard, with_images=False):
            if sample.key not in keep or sample.image_path is None:
                continue
            target = out / sample.key
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample.image_path, target)
            sidecar = Path(os.path.splitext(sample.image_path)[0] + ".txt")
            if sidecar.exists():
                shutil.copyfile(sidecar, target.with_suffix(".txt"))
            kept += 1
        return kept


class WebdatasetPool(Pool):
    """Tar shards of ``key.<ext>`` members grouped by key; each tar is one shard."""

    format = "webdataset"

    def _tars(self) -> list[Path]:
        if self.location.is_file():
            return [self.location]
        return sorted(self.location.glob("*.tar"))

    def shards(self) -> list[Shard]:
        return [Shard(i, p.name) for i, p in enumerate(self._tars())]

    def _groups(self, shard: Shard) -> Iterator[tuple[str, dict[str, tarfile.TarInfo], tarfile.TarFile]]:
        path = self._tars()[shard.index]
        try:
            with tarfile.open(path) as tar:
                key: str | None = None
                members: dict[str, tarfile.TarInfo] = {}
                for member in tar:
                    if not member.isfile():
                        continue
                    base = os.path.basename(member.name)
                    stem, _, ext = base.partition(".")
                    name = os.path.join(os.path.dirname(member.name), stem)
                    if name != key and key is not None:
                        yield key, members, tar
                        members = {}
                    key = name
                    members[ext.lower()] = member
                if key is not None:
                    yield key, members, tar
        except (tarfile.TarError, OSError, EOFError) as e:
            raise SourceError(f"{path}: unreadable tar shard ({e})") from e

    def read(self, shard: Shard, with_images: bool = True) -> Iterator[Sample]:
        for key, members, tar in self._groups(shard):
            yield self._sample(key, members, tar, with_images)

    @staticmethod
    def _sample(key: str, members: dict[str, tarfile.TarInfo], tar: tarfile.TarFile, with_image: bool) -> Sample:
        """One sample; a member larger than its cap (by its header, before any of it is read or decompressed)
        is not read and the sample carries the reason."""
        ext = next((e for e in _WDS_IMAGE_EXTS if e in members), None)
        sample = Sample(key, None)
        if "txt" in members:
            if members["txt"].size > MAX_TEXT_MEMBER:
                sample.caption_error = f"caption member of {members['txt'].size:,} bytes (over {MAX_TEXT_MEMBER:,})"
            else:
                sample.caption = _member_text(tar, members["txt"])
        if "json" in members and members["json"].size <= MAX_TEXT_MEMBER:
            meta = _member_json(tar, members["json"])
            sample.columns = {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool)}
        if ext and members[ext].size > MAX_IMAGE_MEMBER:
            sample.error = f"image member of {members[ext].size:,} bytes (over {MAX_IMAGE_MEMBER:,})"
        elif ext and with_image:
            sample.image_bytes = _member_bytes(tar, members[ext])
        return sample

    def items(self) -> Iterator[Item]:
        """Every sample with an image member as an item to index: its member path, caption and JSON fields."""
        for shard in self.shards():
            tar_path = self._tars()[shard.index]
            for key, members, _tar in self._groups(shard):
                ext = next((e for e in _WDS_IMAGE_EXTS if e in members), None)
                if ext is None:
                    continue  # no image in this sample: nothing to index
                sample = self._sample(key, members, _tar, with_image=False)
                captions = [sample.caption] if isinstance(sample.caption, str) and sample.caption else []
                yield Item(member_path(tar_path.resolve(), members[ext].name), captions,
                           {"key": key, **sample.columns})

    def write(self, out: Path, shard: Shard, keep: set[str], copy_images: bool) -> int:
        target = out / shard.name
        tmp = target.with_name(target.name + ".tmp")
        kept = 0
        with tarfile.open(tmp, "w") as dst:
            for key, members, tar in self._groups(shard):
                if key not in keep:
                    continue
                for member in members.values():
                    data = _member_bytes(tar, member)
                    copy = tarfile.TarInfo(_contained(member.name))  # never an absolute or climbing name
                    copy.size, copy.mtime, copy.mode = len(data), member.mtime, 0o644
                    dst.addfile(copy, io.BytesIO(data))
                kept += 1
        os.replace(tmp, target)
        return kept


def _contained(name: str) -> str:
    """A member name that stays inside the folder a tar is unpacked in (``/abs`` and ``../x`` lose those parts)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    return f.read() if f else b""


def _member_text(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Any:
    data = _member_bytes(tar, member)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return data  # bytes: "caption is not text"


def _member_json(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    try:
        value = json.loads(_member_bytes(tar, member))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
