"""``clipdex verify`` and ``clipdex repair``: name what is damaged in a collection, and mend it.

Verify reads everything: the manifest's fields, SQLite's own integrity check,
each vector shard (present, readable, the shape its rows say, the checksum
recorded when it was written, finite unit-length rows), the rows that point
into shards, and the FAISS index against its manifest. It writes nothing.

Repair never drops a good row. Vectors of a damaged shard (or bad rows of a
readable one) are removed and their items marked changed, so the next
``clipdex index`` of their source embeds them again; the FAISS index is rebuilt
from the vectors; an orphan vector row goes. A damaged SQLite file cannot be
mended in place: repair says so, and the collection should be restored or
indexed anew.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipdex.errors import CollectionError
from clipdex.store import ann as ann_mod
from clipdex.store.db import bump_version, connect
from clipdex.store.store import MANIFEST, Store, manifest_problem
from clipdex.store.vectors import file_sha256

__all__ = ["Problem", "RepairReport", "repair_collection", "verify_collection"]

REEMBED = "repair:re-embed"  # a fingerprint no file has: the next index embeds the item again


@dataclass
class Problem:
    """One thing wrong, in the file it was found in."""

    file: str
    what: str
    repairable: bool = True
    bad_vec_ids: list[int] = field(default_factory=list)
    whole_file: bool = False  # the shard file itself is gone or untrustworthy: repair removes it


@dataclass
class RepairReport:
    """What repair did, and what it could not."""

    problems_found: int = 0
    vectors_dropped: int = 0
    items_to_reembed: int = 0
    index: str = ""
    left: list[Problem] = field(default_factory=list)


def verify_collection(path: str | Path) -> list[Problem]:
    """Every problem of the collection at ``path`` (an empty list: all is well). Reads only."""
    folder = Path(path)
    if not folder.is_dir():
        raise CollectionError(f"no collection at {folder}")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return [Problem(MANIFEST, f"unreadable ({e})", repairable=False)]
    if manifest_problem(manifest):
        return [Problem(MANIFEST, str(manifest_problem(manifest)), repairable=False)]
    database = folder / "items.sqlite"
    if not database.is_file() or database.stat().st_size == 0:
        return [Problem("items.sqlite", "missing or empty", repairable=False)]
    try:
        conn = connect(database, readonly=True)
        status = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except (CollectionError, sqlite3.DatabaseError) as e:
        return [Problem("items.sqlite", f"not a readable database ({e})", repairable=False)]
    if status != ["ok"]:
        return [Problem("items.sqlite", f"integrity check: {'; '.join(status[:3])}", repairable=False)]
    try:
        problems = _shard_problems(conn, folder / "vectors", int(manifest["dim"]))
        problems += _row_problems(conn)
    finally:
        conn.close()
    refused = ann_mod.verify_ann(folder / "index")
    if refused:
        problems.append(Problem("index/", refused))
    elif not (folder / "index" / "manifest.json").exists() and any(
            p.is_dir() and p.name.startswith("v") for p in (folder / "index").glob("*")):
        problems.append(Problem("index/", "index files without their manifest (the index is lost; search is exact)"))
    return problems


def _shard_problems(conn: sqlite3.Connection, folder: Path, dim: int) -> list[Problem]:
    sums = dict(conn.execute("SELECT file, sha256 FROM shard_sums").fetchall())
    problems = []
    for file, first, count in conn.execute("SELECT file, first_vec, count FROM shards ORDER BY first_vec"):
        path = folder / file
        every = list(range(first, first + count))
        if not path.is_file():
            problems.append(Problem(f"vectors/{file}", "missing", bad_vec_ids=every, whole_file=True))
            continue
        if file in sums and file_sha256(path) != sums[file]:
            problems.append(Problem(f"vectors/{file}", "checksum differs from the one recorded when it was written",
                                    bad_vec_ids=every, whole_file=True))
            continue
        try:
            rows = np.load(path, mmap_mode="r")
            if rows.shape != (count, dim):
                raise ValueError(f"shape {rows.shape}, expected ({count}, {dim})")
            matrix = np.asarray(rows, np.float32)
        except (ValueError, OSError, EOFError) as e:
            problems.append(Problem(f"vectors/{file}", f"unreadable ({str(e).splitlines()[0][:120]})",
                                    bad_vec_ids=every, whole_file=True))
            continue
        norms = np.linalg.norm(matrix, axis=1)
        bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1) | (np.abs(norms - 1) > 0.01))
        if len(bad):
            problems.append(Problem(f"vectors/{file}", f"{len(bad)} rows not finite unit vectors",
                                    bad_vec_ids=[first + int(i) for i in bad]))
    return problems


def _row_problems(conn: sqlite3.Connection) -> list[Problem]:
    ranges = conn.execute("SELECT first_vec, first_vec + count FROM shards ORDER BY first_vec").fetchall()
    starts = np.asarray([r[0] for r in ranges], np.int64)
    ends = np.asarray([r[1] for r in ranges], np.int64)
    ids = np.asarray([r[0] for r in conn.execute("SELECT vec_id FROM vectors UNION ALL SELECT vec_id FROM regions")],
                     np.int64)
    if not len(ids):
        return []
    slot = np.searchsorted(starts, ids, side="right") - 1
    covered = (slot >= 0) & (ids < ends[np.maximum(slot, 0)]) if len(starts) else np.zeros(len(ids), bool)
    orphans = ids[~covered]
    if len(orphans):
        return [Problem("items.sqlite", f"{len(orphans)} vector rows point into no shard",
                        bad_vec_ids=orphans.tolist())]
    return []


def repair_collection(path: str | Path, wait: float = 0.0) -> RepairReport:
    """Mend what :func:`verify_collection` finds (see the module doc); returns what was done and what is left.

    Raises:
        CollectionError: the collection cannot be opened at all (its manifest or database is damaged).
        CollectionLockedError: another process is writing.
    """
    problems = verify_collection(path)
    report = RepairReport(problems_found=len(problems))
    fatal = [p for p in problems if not p.repairable]
    if fatal or not problems:
        report.left = fatal
        return report
    store = Store.open(path)
    with store:
        bad = sorted({v for p in problems for v in p.bad_vec_ids})
        factory = store.recorded_index_factory()
        with store.writing(wait) as conn:
            report.vectors_dropped, report.items_to_reembed = _drop_vectors(conn, bad)
            for problem in problems:
                if problem.whole_file:
                    file = problem.file.removeprefix("vectors/")
                    conn.execute("DELETE FROM shards WHERE file = ?", (file,))
                    conn.execute("DELETE FROM shard_sums WHERE file = ?", (file,))
                    (store.path / "vectors" / file).unlink(missing_ok=True)
            bump_version(conn)
            conn.commit()
        # the index is rebuilt from the vectors that remain, as it was built (or dropped if there was none)
        report.index = store.build_index(factory or "exact", threshold=0)
    report.left = verify_collection(path)
    return report


def _drop_vectors(conn: sqlite3.Connection, vec_ids: list[int]) -> tuple[int, int]:
    """Delete these vector rows and mark their items for re-embedding: (rows dropped, items marked)."""
    items: set[int] = set()
    dropped = 0
    for start in range(0, len(vec_ids), 500):
        chunk = vec_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for table in ("vectors", "regions"):
            items |= {r[0] for r in conn.execute(f"SELECT item_id FROM {table} WHERE vec_id IN ({marks})", chunk)}
            dropped += conn.execute(f"DELETE FROM {table} WHERE vec_id IN ({marks})", chunk).rowcount
    for item in items:
        conn.execute("UPDATE items SET fingerprint = ? WHERE id = ?", (REEMBED, item))
    return dropped, len(items)
