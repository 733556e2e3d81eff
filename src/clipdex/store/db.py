"""The SQLite half of a collection: items, captions, vector rows, shards, errors."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from clipdex.errors import DamagedError

__all__ = ["SCHEMA_VERSION", "connect", "bump_version", "get_meta", "set_meta"]

SCHEMA_VERSION = 4  # 2: region vectors (crops of an image); 3: shard checksums; 4: items.content. Older files gain them

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    path_bytes BLOB NOT NULL UNIQUE,   -- the OS name, exact even when not UTF-8
    path TEXT NOT NULL,                -- printable form
    rel TEXT NOT NULL,                 -- relative to the source root, for globs
    source TEXT NOT NULL,
    fingerprint TEXT NOT NULL,         -- size, mtime and caption hash: what 'changed' means
    content TEXT,                      -- a hash of the file's bytes: a moved or renamed file is the same item
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_source ON items(source);
CREATE INDEX IF NOT EXISTS items_content ON items(content);
CREATE TABLE IF NOT EXISTS captions (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS captions_item ON captions(item_id);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    first_vec INTEGER NOT NULL,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    vec_id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    caption_id INTEGER REFERENCES captions(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'caption'))
);
CREATE INDEX IF NOT EXISTS vectors_item ON vectors(item_id);
CREATE TABLE IF NOT EXISTS regions (
    vec_id INTEGER PRIMARY KEY,        -- in the same shards as the image and caption vectors
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL  -- the crop, as fractions
);
CREATE INDEX IF NOT EXISTS regions_item ON regions(item_id);
CREATE TABLE IF NOT EXISTS shard_sums (file TEXT PRIMARY KEY, sha256 TEXT NOT NULL);  -- recorded at write time
"""


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """Open the collection database in WAL mode with foreign keys on.

    Raises:
        DamagedError: the file is not a SQLite database, in one line.
    """
    # on a read-only mount, open without the WAL's shared-memory files and locks, which cannot be created there
    immutable = not os.access(path.parent, os.W_OK)
    try:
        return _connect(path, readonly or immutable, immutable)
    except sqlite3.DatabaseError as e:
        if "full" in str(e):
            raise  # the disk, not the file: told as a full disk, and the same command resumes
        raise DamagedError(f"{path} is damaged ({e}); `clipdex verify` says more, restore it from a backup or "
                              "index into a new collection") from e


def _connect(path: Path, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{path}?mode=ro" + ("&immutable=1" if immutable else "")
        conn = sqlite3.connect(uri, uri=True, timeout=30.0, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        # Only the first connection ever creates the schema: a server opens one connection per
        # thread, and each would otherwise start a write transaction just to find it exists.
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
            _add_columns(conn)
            conn.executescript(SCHEMA)
            _strict_json(conn)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('version', '0')")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('next_vec', '0')")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.commit()
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


def _add_columns(conn: sqlite3.Connection) -> None:
    """Columns later schema versions added to tables an older file already has."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
    if columns and "content" not in columns:
        conn.execute("ALTER TABLE items ADD COLUMN content TEXT")


def _strict_json(conn: sqlite3.Connection) -> None:
    """Rewrite metadata an older clipdex stored with NaN (invalid JSON to SQLite) as strict JSON."""
    for item_id, text in conn.execute("SELECT id, metadata FROM items WHERE json_valid(metadata) = 0").fetchall():
        try:
            value = json.loads(text)
        except ValueError:
            value = {}
        conn.execute("UPDATE items SET metadata = ? WHERE id = ?",
                     (dumps(value if isinstance(value, dict) else {}), item_id))


def get_meta(conn: sqlite3.Connection, key: str, default: str = "") -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))


def bump_version(conn: sqlite3.Connection) -> None:
    """Every committed write bumps this, so readers can tell their cache is stale."""
    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")


def dumps(metadata: dict[str, Any]) -> str:
    """Metadata as strict JSON: NaN and infinities (a table's empty float cell) become null, because one
    non-standard number makes SQLite's JSON functions fail for every filter over the whole table."""
    return json.dumps(_finite(metadata), ensure_ascii=False, sort_keys=True, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str | bytes):
        try:
            return _finite(value.item())  # a NumPy scalar
        except (TypeError, ValueError):
            return value
    return value
