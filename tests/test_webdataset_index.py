"""Webdataset tar shards are a source like any other: `clipdex index shards/` reads members in place."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdex import Collection, load_encoder
from clipdex.cli import app_main
from clipdex.errors import DecodeError
from clipdex.media import decode_image, iter_source
from clipdex.media.members import read_member, split_member_path
from clipdex.synth import write_scenes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wds") / "shards"
    write_scenes(out, 30, seed=11, fmt="webdataset", size=48, shard_size=12)  # 3 tars: 12 + 12 + 6
    return out


def test_tar_shards_index_to_the_same_vectors_as_the_same_images_in_a_folder(
        shards: Path, tmp_path: Path, tiny_spec: str) -> None:
    write_scenes(tmp_path / "folder", 30, seed=11, fmt="folder", size=48)  # the same scenes as files
    enc = load_encoder(tiny_spec)
    from_tars = Collection.create(tmp_path / "a", enc.spec, enc.dim, vector_dtype="float32")
    from_files = Collection.create(tmp_path / "b", enc.spec, enc.dim, vector_dtype="float32")
    report = from_tars.add(shards, enc)
    from_files.add(tmp_path / "folder", enc)
    assert (report.added, report.failed) == (30, 0)
    tars, files = from_tars.vectors("image"), from_files.vectors("image")
    key_of = {r.id: r.metadata["key"] for r in from_tars.items(tars.item_ids.tolist()).values()}
    stem_of = {r.id: Path(r.path).stem for r in from_files.items(files.item_ids.tolist()).values()}
    by_key = {key_of[int(i)]: tars.matrix[row] for row, i in enumerate(tars.item_ids)}
    for row, i in enumerate(files.item_ids):
        np.testing.assert_allclose(by_key[stem_of[int(i)]], files.matrix[row], atol=1e-6)
    # captions come from key.txt, the hit's path names the member, and its thumbnail decodes from the tar
    hit = from_tars.search("a red circle", k=1)[0]
    assert ".tar#" in hit.path and hit.path.endswith(".png") and hit.captions
    assert Image.open(io.BytesIO(from_tars.thumbnail(hit.id, 64))).size[0] <= 64
    # nothing changed: nothing is embedded again
    again = from_tars.add(shards, enc)
    assert (again.skipped, again.added, again.updated) == (30, 0, 0)


def test_a_member_path_reads_its_bytes_and_refuses_what_is_not_there(shards: Path) -> None:
    first = next(iter_source(shards))
    tar_path, member = split_member_path(first.path)  # type: ignore[misc]
    with tarfile.open(tar_path) as tar:
        f = tar.extractfile(member)
        assert f is not None and read_member(first.path, 1 << 20) == f.read()
    assert decode_image(first.path).size == (48, 48)
    assert first.metadata["key"] == "000000" and first.captions
    with pytest.raises(DecodeError, match="no member"):
        read_member(f"{tar_path}#nope.png", 1 << 20)
    with pytest.raises(DecodeError, match="too large"):
        read_member(first.path, 10)
    assert split_member_path(str(shards / "missing.tar#x.png")) is None  # no such shard: an ordinary path


def test_cli_indexes_one_tar_and_the_server_sends_its_members(shards: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from fastapi.testclient import TestClient

    from clipdex.serve import ServeConfig, create_app

    one = sorted(shards.glob("*.tar"))[-1]
    assert app_main(["index", str(one), "--collection", str(tmp_path / "c"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 6 and report["failed"] == 0
    with TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"}))) as client:
        hit = client.get("/api/search", params={"q": "a blue star", "k": 1}).json()["hits"][0]
        image = client.get(f"/api/items/{hit['id']}/image")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size == (48, 48)
        assert client.get(f"/api/items/{hit['id']}/thumbnail").status_code == 200
