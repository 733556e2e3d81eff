"""kill -9 at any moment, then the same command again: one vector per valid item, nothing lost."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdex import Collection

pytestmark = pytest.mark.e2e


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill9_mid_index_then_resume(tmp_path: Path, tiny_spec: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(240):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(data / f"{i:03d}.jpg")
        (data / f"{i:03d}.txt").write_text(f"caption number {i}\nsecond caption {i}\n")
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    coll = tmp_path / "c"
    cmd = [sys.executable, "-m", "clipdex", "index", str(data), "-c", str(coll), "--model", tiny_spec,
           "--batch-size", "8"]
    kills, chooser = 0, random.Random(7)
    for _ in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = _count(coll / "items.sqlite")
        deadline = time.monotonic() + 60
        # wait until this run has committed something, then kill at a random moment
        while proc.poll() is None and _count(coll / "items.sqlite") <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(chooser.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    done = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    c = Collection.open(coll)
    info = c.info()
    assert (info.items, info.ok, info.errors) == (241, 240, 1)
    assert info.image_vectors == 240 and info.caption_vectors == 480 == info.captions
    per_item = c.conn.execute(
        "SELECT item_id, COUNT(*) FROM vectors WHERE kind='image' GROUP BY item_id HAVING COUNT(*) != 1").fetchall()
    assert per_item == []
    listed = {r[0] for r in c.conn.execute("SELECT file FROM shards")}
    on_disk = {p.name for p in (coll / "vectors").iterdir()}
    assert on_disk == listed  # no orphan or temp shard left behind
    view = c.vectors("image")
    assert len(np.unique(view.item_ids)) == 240
    assert np.isfinite(view.matrix).all() and np.allclose(np.linalg.norm(view.matrix, axis=1), 1, atol=1e-2)
