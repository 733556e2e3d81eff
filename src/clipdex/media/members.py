"""Images inside webdataset tar shards, named by one path: ``/data/shard-0001.tar#000123.jpg``.

An indexed item from a tar shard keeps that path, so search results, thumbnails
and re-indexing find its bytes again without unpacking the shard. A shard's
member table is read once and cached (keyed by the file's size and mtime), so
reading members one by one costs a seek each, not a scan of the tar.
"""

from __future__ import annotations

import os
import tarfile
from functools import lru_cache

from clipdex.errors import DecodeError

__all__ = ["member_path", "read_member", "split_member_path"]

_MARK = ".tar#"


def member_path(tar_path: str | os.PathLike[str], member: str) -> str:
    """The one path naming ``member`` of the tar shard ``tar_path``."""
    return f"{os.fspath(tar_path)}#{member}"


def split_member_path(path: str) -> tuple[str, str] | None:
    """``(tar file, member name)`` of a member path, None for any other path."""
    at = path.rfind(_MARK)
    if at < 0:
        return None
    tar_path, member = path[: at + len(_MARK) - 1], path[at + len(_MARK):]
    return (tar_path, member) if member and os.path.isfile(tar_path) else None


def read_member(path: str, max_bytes: int) -> bytes:
    """The bytes of the member a member path names.

    Raises:
        DecodeError: the shard is unreadable, the member is missing, empty or too large.
    """
    found = split_member_path(path)
    if found is None:
        raise DecodeError("not a tar member path")
    tar_path, member = found
    try:
        st = os.stat(tar_path)
        table = _member_table(tar_path, st.st_size, st.st_mtime_ns)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise DecodeError(f"unreadable tar shard: {e}") from e
    if member not in table:
        raise DecodeError(f"no member {member!r} in {tar_path}")
    offset, size = table[member]
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    if size > max_bytes:
        raise DecodeError(f"file too large: {size:,} bytes exceeds {max_bytes:,}")
    with open(tar_path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise DecodeError("truncated tar member")
    return data


@lru_cache(maxsize=16)
def _member_table(tar_path: str, size: int, mtime_ns: int) -> dict[str, tuple[int, int]]:
    """name -> (data offset, size) of every regular member; size and mtime key the cache."""
    table: dict[str, tuple[int, int]] = {}
    with tarfile.open(tar_path) as tar:
        try:
            for m in tar:
                if m.isfile():
                    table[m.name] = (m.offset_data, m.size)
        except (tarfile.TarError, EOFError, OSError):
            pass  # a damaged tail: the members before it stay readable
    return table
