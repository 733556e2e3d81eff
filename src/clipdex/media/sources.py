"""Sources: turn a folder, a table or a Karpathy JSON into :class:`Item` rows.

Nothing here decodes or embeds; an item only says where its image is and what
text and metadata come with it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipdex.errors import SourceError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Item",
    "SourceOptions",
    "display_path",
    "iter_folder",
    "iter_karpathy",
    "read_source",
    "iter_table",
    "walk_images",
    "read_jsonl",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif"}
)  # HEIC / HEIF decode with pillow-heif installed (the heic extra), AVIF with Pillow >= 11.2; without them each
#    such file is a counted failure that says what to install
_IMAGE_COLUMNS = ("path", "image", "image_path", "filepath", "file", "filename", "url")
_CAPTION_COLUMNS = ("caption", "text", "title", "description")

Metadata = dict[str, Any]


@dataclass
class Item:
    """One image of a source, with its captions and metadata.

    ``path`` is the file as the OS names it (it may hold undecodable bytes,
    kept by Python's surrogate escapes); ``key`` is unique within the source.
    """

    path: str
    captions: list[str] = field(default_factory=list)
    metadata: Metadata = field(default_factory=dict)
    error: str | None = None  # refused by its source before any read (recorded as the item's failure)

    @property
    def key(self) -> str:
        return self.path


@dataclass(frozen=True)
class SourceOptions:
    """Column names and roots for tabular and JSON sources (None = guess)."""

    image_col: str | None = None
    caption_col: str | None = None
    image_root: str | None = None
    allow_outside_root: bool = False  # tables and JSON may name files outside their image root


def display_path(path: str) -> str:
    """A printable form of a path whose name may not be valid UTF-8."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def read_source(location: str | os.PathLike[str], options: SourceOptions = SourceOptions()) -> Iterator[Item]:
    """The items of a folder, table or Karpathy JSON (:func:`clipdex.media.pools.iter_source` adds tar shards).

    Raises:
        SourceError: the location does not exist or has an unknown format.
    """
    path = Path(location)
    if path.is_dir():
        return iter_folder(path)
    if not path.exists():
        raise SourceError(f"source not found: {display_path(str(path))}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".parquet", ".jsonl"):
        return iter_table(path, options)
    if suffix == ".json":
        return iter_karpathy(path, options)
    raise SourceError(
        f"unknown source format {suffix!r}: use a folder, webdataset .tar shards, .csv, .tsv, .parquet, "
        ".jsonl or a Karpathy-style .json"
    )


VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})


def walk_images(root: str | os.PathLike[str], videos: bool = False, skip_hidden: bool = False) -> Iterator[str]:
    """The one folder walk: image files (and video files when ``videos``) under ``root``, recursively, sorted.

    Symlinked folders are followed once (loops are detected by inode); dangling
    links are skipped; ``skip_hidden`` leaves out folders whose name starts with a dot.
    Iterative, so a folder thousands of levels deep is walked like any other.
    """
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable or vanished: nothing to list
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if not (skip_hidden and entry.name.startswith(".")):
                    subfolders.append(entry.path)
                continue
            ext = os.path.splitext(entry.name)[1].lower()
            if ext not in IMAGE_EXTENSIONS and not (videos and ext in VIDEO_EXTENSIONS):
                continue
            if entry.is_symlink() and not os.path.exists(entry.path):
                continue  # dangling or self-referencing link: nothing to read
            yield entry.path
        stack.extend(reversed(subfolders))  # depth first, in name order, as a recursive walk would


def iter_folder(root: str | os.PathLike[str], videos: bool = False) -> Iterator[Item]:
    """The images of a folder (:func:`walk_images`) as items; a ``name.txt`` beside ``name.jpg`` gives its
    captions, one per line."""
    listed: dict[str, set[str]] = {}
    for full in walk_images(root, videos):
        dirpath, name = os.path.split(full)
        names = listed.get(dirpath)
        if names is None:
            names = listed[dirpath] = set(os.listdir(dirpath))
        yield Item(path=full, captions=_sidecar_captions(dirpath, name, names))


def _sidecar_captions(dirpath: str, name: str, names: set[str]) -> list[str]:
    sidecar = os.path.splitext(name)[0] + ".txt"
    if sidecar not in names:
        return []
    try:
        text = Path(dirpath, sidecar).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def iter_table(path: str | os.PathLike[str], options: SourceOptions = SourceOptions()) -> Iterator[Item]:
    """Read CSV/TSV/Parquet/JSONL rows; rows naming the same image merge their captions."""
    path = Path(path)
    rows = list(_read_rows(path))
    if not rows:
        return iter(())
    columns = list(rows[0].keys())
    image_col = _pick_column(columns, options.image_col, _IMAGE_COLUMNS, "image", path)
    caption_col = _pick_optional(columns, options.caption_col, _CAPTION_COLUMNS, path)
    root = Path(os.path.abspath(Path(options.image_root).expanduser() if options.image_root else path.parent))
    merged: dict[str, Item] = {}
    for row in rows:
        ref = row.get(image_col)
        if ref is None or str(ref).strip() == "":
            continue
        full = str(ref) if os.path.isabs(str(ref)) else str(root / str(ref))
        item = merged.setdefault(full, Item(path=full, error=_outside(full, root, options)))
        caption = row.get(caption_col) if caption_col else None
        if caption is not None and str(caption).strip():
            item.captions.append(str(caption).strip())
        for key, value in row.items():
            if key not in (image_col, caption_col) and _is_scalar(value):
                item.metadata.setdefault(key, value)
    return iter(merged.values())


def _read_rows(path: Path) -> Iterator[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8-sig") as f:
                yield from csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        elif suffix == ".jsonl":
            yield from (row for _, row in read_jsonl(path))
        else:
            import pyarrow.parquet as pq

            yield from pq.read_table(path).to_pylist()
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SourceError(f"cannot read {path}: {e}") from e
    except Exception as e:  # pyarrow raises its own hierarchy
        if type(e).__module__.startswith("pyarrow"):
            raise SourceError(f"cannot read {path}: {e}") from e
        raise


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file.

    Raises:
        SourceError: the file cannot be read, is not UTF-8 text, or a line is not a JSON object (the
            message names file and line).
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    yield lineno, _json_object(line, path, lineno)
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from e


def _json_object(line: str, path: Path, lineno: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise SourceError(f"{path}:{lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(value, dict):
        raise SourceError(f"{path}:{lineno}: expected a JSON object per line")
    return value


def _pick_column(columns: list[str], wanted: str | None, guesses: tuple[str, ...], what: str, path: Path) -> str:
    if wanted:
        if wanted not in columns:
            raise SourceError(f"{path}: no column {wanted!r}. Available: {', '.join(columns)}")
        return wanted
    for guess in guesses:
        if guess in columns:
            return guess
    raise SourceError(
        f"{path}: cannot tell which column holds the {what}; pass --image-col. "
        f"Available: {', '.join(columns)}"
    )


def _pick_optional(columns: list[str], wanted: str | None, guesses: tuple[str, ...], path: Path) -> str | None:
    if wanted:
        return _pick_column(columns, wanted, guesses, "caption", path)
    return next((g for g in guesses if g in columns), None)


def _outside(full: str, root: Path, options: SourceOptions) -> str | None:
    """Why a table or JSON row's file is refused: it resolves outside the source's image root
    (``../../etc/passwd``, an absolute path elsewhere, a link out), unless the user allowed that."""
    if options.allow_outside_root:
        return None
    base = os.path.realpath(root)
    target = os.path.realpath(full)
    if os.path.commonpath([base, target]) == base:
        return None
    return (f"outside the source's image root {display_path(base)} "
            "(pass --image-root, or --allow-outside-root to index it anyway)")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def iter_karpathy(path: str | os.PathLike[str], options: SourceOptions = SourceOptions()) -> Iterator[Item]:
    """Read a COCO/Flickr "Karpathy split" JSON: images with several sentences each.

    Image files are found at ``image_root/filepath/filename`` (``filepath`` is
    optional; ``image_root`` defaults to the JSON's folder).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SourceError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise SourceError(f"{path}: not a Karpathy-style JSON (expected a top-level 'images' list)")
    root = Path(os.path.abspath(Path(options.image_root).expanduser() if options.image_root else path.parent))
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict):
            raise SourceError(f"{path}: images[{n}] is not an object")
        name = entry.get("filename")
        if not name:
            continue
        sentences = entry.get("sentences", [])
        if not isinstance(name, str) or not isinstance(entry.get("filepath", ""), str) \
                or not isinstance(sentences, list) or not all(isinstance(s, dict) for s in sentences):
            raise SourceError(f"{path}: images[{n}] has a field of the wrong type (filename and filepath are "
                              "text, sentences a list of objects)")
        full = root / entry.get("filepath", "") / name
        captions = [str(s.get("raw", "")).strip() for s in sentences]
        metadata: Metadata = {"split": entry.get("split", "")}
        for key in ("imgid", "cocoid"):
            if key in entry:
                metadata[key] = entry[key]
        yield Item(path=str(full), captions=[c for c in captions if c], metadata=metadata,
                   error=_outside(str(full), root, options))
