"""Hardening: only decoded images leave the server, checkpoints never run code, the index is one unit."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from clipdex import Collection, IndexOptions, load_encoder
from clipdex.serve import ServeConfig, create_app

pytestmark = pytest.mark.integration


def test_the_server_sends_no_bytes_of_a_file_that_failed_to_index(tmp_path: Path, tiny_spec: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("ssh-rsa AAAA... the user's key")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (200, 20, 20)).save(photos / "red.png")
    os.symlink(secret, photos / "zz.png")  # a link inside the indexed folder to a file that is not an image
    table = tmp_path / "table"
    table.mkdir()
    Image.new("RGB", (40, 30), (20, 20, 200)).save(table / "blue.png")
    rows = ["path,caption", "blue.png,a blue square", "../secret.txt,leak", f"{secret},leak again",
            "/etc/hostname,system file"]
    (table / "rows.csv").write_text("\n".join(rows) + "\n")
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        folder_report = coll.add(photos, enc)
        table_report = coll.add(table / "rows.csv", enc)
        records = coll.items(range(1, 10))
    assert (folder_report.added, folder_report.failed) == (1, 1)
    assert (table_report.added, table_report.failed) == (1, 3)  # every row outside the table's root refused
    outside = [r for r in records.values() if r.error and "outside the source's image root" in r.error]
    assert len(outside) == 3
    with TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"}))) as client:
        for record in records.values():
            for route in ("image", "thumbnail"):
                got = client.get(f"/api/items/{record.id}/{route}")
                if record.status == "ok":
                    assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).size
                else:
                    assert got.status_code == 404, (record.path, route, got.status_code)
                    assert b"ssh-rsa" not in got.content and b"the user's key" not in got.content


def test_allow_outside_root_indexes_what_the_user_vouches_for(tmp_path: Path, tiny_spec: str) -> None:
    from clipdex.media import SourceOptions

    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (40, 30), (20, 200, 20)).save(tmp_path / "elsewhere" / "g.png")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "rows.csv").write_text("path\n../elsewhere/g.png\n")
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        report = coll.add(tmp_path / "t" / "rows.csv", enc,
                          IndexOptions(source=SourceOptions(allow_outside_root=True)))
    assert (report.added, report.failed) == (1, 0)


def test_the_index_and_its_id_map_are_one_unit(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> None:
    enc = load_encoder(tiny_spec)
    coll = Collection.create(tmp_path / "c", enc.spec, enc.dim)
    coll.use_encoder(enc)
    coll.add(scenes_folder, enc, IndexOptions(index_factory="Flat"))
    truth = [(h.id, round(h.score, 4)) for h in coll.search("a red circle", k=5)]
    index = tmp_path / "c" / "index"
    manifest = json.loads((index / "manifest.json").read_text())
    unit = index / manifest["unit"]
    # a writer killed after writing a new unit but before the switch: the old unit stays in force
    shutil.copytree(unit, index / "v999-1")
    ids = np.load(unit / "vec_ids.npy")
    np.save(index / "v999-1" / "vec_ids.npy", ids[::-1].copy())
    again = Collection.open(tmp_path / "c")
    again.use_encoder(enc)
    assert [(h.id, round(h.score, 4)) for h in again.search("a red circle", k=5)] == truth
    # the id map changed under its manifest (the torn pair): refused, search stays right, info says so
    np.save(unit / "vec_ids.npy", ids[::-1].copy())
    torn = Collection.open(tmp_path / "c")
    torn.use_encoder(enc)
    assert torn.ann() is None and "refused" in torn.info().index
    assert [(h.id, round(h.score, 4)) for h in torn.search("a red circle", k=5)] == truth
    # and the next index run builds it again
    torn.add(scenes_folder, enc)
    assert torn.ann_problem() is None and torn.info().index == "Flat over 60"
    assert not (index / "v999-1").exists()
