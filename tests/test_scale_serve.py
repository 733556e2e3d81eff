"""``clipdex serve INDEX``: a built index answers the collection API from a real server on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import serving

pytestmark = pytest.mark.e2e


def _call(url: str, body: dict[str, Any] | None = None, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    payload = json.dumps(body).encode() if body is not None else data
    request = urllib.request.Request(url, payload, headers or {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            raw = r.read()
            return r.status, json.loads(raw) if r.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def index_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from clipdex.cli import app_main
    from clipdex.synth.companions import write_noisy_pool

    root = tmp_path_factory.mktemp("served")
    write_noisy_pool(root / "pool", 80, seed=8, size=48, shares={"mismatched": 0.2})
    assert app_main(["embed", str(root / "pool" / "pool.parquet"), "--out", str(root / "emb"), "--shard-size",
                     "30"]) == 0
    assert app_main(["build-index", str(root / "emb"), "--out", str(root / "index"), "--shards", "2"]) == 0
    with serving(str(root / "index")) as base:
        yield base, root


def test_index_answers_like_a_collection(index_server: tuple[str, Path]) -> None:
    from clipdex.embeddings.index import EmbeddingIndex
    from clipdex.encoders import load_encoder

    base, root = index_server
    status, collections = _call(base + "/api/collections")
    assert status == 200 and collections[0]["name"] == "index" and collections[0]["items"] == 80
    assert collections[0]["model"] == "builtin:shapes-tiny"  # recorded by embed, carried by build-index
    assert collections[0]["features"] == ["text", "image", "similar", "map"]  # what the page offers for an index
    # the map of an index, and a selection on it as a search filter
    status, drawn = _call(base + "/api/map?color=key")
    assert status == 200 and drawn["items"] == 80 and len(drawn["values"]) == 80 and "key" in drawn["fields"]
    ids = [p[0] for p in drawn["points"]]
    by_row = [row["key"] for row in EmbeddingIndex(root / "index").metadata(np.asarray(ids))]
    assert drawn["values"] == by_row and all(by_row)  # each point coloured by its own row's value
    chosen = [p[0] for p in drawn["points"][:10]]
    status, within = _call(base + "/api/search", {"text": "a red circle", "k": 5, "ids": chosen})
    assert status == 200 and {h["id"] for h in within["hits"]} <= set(chosen) and len(within["hits"]) == 5
    status, page = _call(base + "/api/search?q=a+red+circle&k=5")
    assert status == 200 and len(page["hits"]) == 5
    # the same rows, in the same order, as the library call on the same index
    index = EmbeddingIndex(root / "index")
    expected = index.search(load_encoder().encode_texts(["a red circle"])[0], 5)
    assert [h["id"] for h in page["hits"]] == [h["row"] for h in expected]
    first = page["hits"][0]
    assert first["path"].endswith(".png") and first["caption"] and first["metadata"]["key"]
    status, more = _call(base + "/api/search", {"image_id": first["id"], "k": 3})
    assert status == 200 and first["id"] not in [h["id"] for h in more["hits"]]
    status, paged = _call(base + "/api/search", {"text": "a red circle", "k": 2, "offset": 2})
    assert [h["id"] for h in paged["hits"]] == [h["id"] for h in page["hits"][2:4]]
    status, item = _call(base + f"/api/items/{first['id']}")
    assert status == 200 and item["path"] == first["path"] and item["captions"] == [first["caption"]]
    status, thumb = _call(base + first["thumbnail_url"])
    assert status == 200 and thumb[:2] == b"\xff\xd8"  # a JPEG
    image = Path(first["path"]).read_bytes()
    boundary = "clipdexboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    status, by_image = _call(base + "/api/search", data=form,
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and by_image["hits"][0]["score"] > 0.99  # the uploaded image finds itself


@pytest.mark.parametrize(("body", "reason"), [
    ({"text": "a red circle", "mode": "lexical"}, "need a collection"),
    ({"text": "a red circle", "diversity": 0.5}, "diversity need a collection"),
    ({"text": "a red circle", "where": {"label": "clean"}}, "metadata filters need a collection"),
    ({"text": "   "}, "blank"),
    ({"image_id": 10_000}, "no item with id 10000"),
])
def test_what_an_index_cannot_answer_is_a_clear_4xx(index_server: tuple[str, Path], body: dict[str, Any],
                                                    reason: str) -> None:
    base, _ = index_server
    status, answer = _call(base + "/api/search", body)
    assert 400 <= status < 500 and reason in answer["detail"], answer


def test_search_index_cli_uses_the_recorded_model(index_server: tuple[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from clipdex.cli import app_main

    _, root = index_server
    assert app_main(["search-index", str(root / "index"), "a blue star", "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 4 and np.all(np.diff([h["score"] for h in hits]) <= 1e-6)
    # the encoder comes from the manifest, not a default: a copy recording another model loads that one
    shutil.copytree(root / "index", tmp_path / "index")
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    (tmp_path / "index" / "manifest.json").write_text(json.dumps({**manifest, "model": f"onnx:{tmp_path}/gone"}))
    assert app_main(["search-index", str(tmp_path / "index"), "a blue star"]) != 0
    assert f"{tmp_path}/gone" in capsys.readouterr().err
