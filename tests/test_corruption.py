"""Every file of a collection x {truncate, garbage, delete, NaN row}: verify names it, search answers in one line
or correctly, and repair brings back a state verify accepts with every undamaged item intact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clipdex import Collection, IndexOptions, load_encoder
from clipdex.errors import ClipdexError
from clipdex.store import repair_collection, verify_collection

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, tiny_spec: str, scenes_folder: Path) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "c"
    enc = load_encoder(tiny_spec)
    with Collection.create(out, enc.spec, enc.dim) as coll:
        coll.add(scenes_folder, enc, IndexOptions(batch_size=16, index_factory="Flat"))  # 4 shards and an index
    assert verify_collection(out) == []
    return out


def _files(c: Path) -> dict[str, Path]:
    unit = c / "index" / json.loads((c / "index" / "manifest.json").read_text())["unit"]
    shard = sorted((c / "vectors").glob("shard-*.npy"))[1]
    return {"collection.json": c / "collection.json", "items.sqlite": c / "items.sqlite", "shard": shard,
            "index file": unit / "images.faiss", "index ids": unit / "vec_ids.npy",
            "index manifest": c / "index" / "manifest.json"}


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        rng = np.random.default_rng(0)
        at = 0 if path.suffix in (".json", ".sqlite") else len(data) - 200  # headers, or the data at the end
        path.write_bytes(data[:at] + rng.integers(0, 256, 64, dtype=np.uint8).tobytes() + data[at + 64:])
    elif how == "delete":
        path.unlink()
    elif how == "nan":
        rows = np.load(path)
        rows[3] = np.nan
        with open(path, "wb") as f:
            np.save(f, rows)


CASES = [(f, how) for f in ("collection.json", "items.sqlite", "shard", "index file", "index ids", "index manifest")
         for how in ("truncate", "garbage", "delete")] + [("shard", "nan")]


@pytest.mark.parametrize(("target", "how"), CASES)
def test_damage_is_named_answered_and_repaired(pristine: Path, tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                              target: str, how: str) -> None:
    c = tmp_path / "c"
    shutil.copytree(pristine, c)
    _damage(_files(c)[target], how)
    problems = verify_collection(c)
    assert problems, f"verify missed {how} of {target}"
    # search: correct results from what is intact, or one clear error, never a traceback of another kind
    try:
        with Collection.open(c) as coll:
            hits = coll.search("a red circle", k=5)
        assert all(np.isfinite(h.score) for h in hits)
    except ClipdexError as e:
        assert "\n" not in str(e)
    report = repair_collection(c)
    if target in ("collection.json", "items.sqlite"):
        assert report.left and not report.left[0].repairable  # said plainly: restore or index anew
        return
    assert report.left == [] and verify_collection(c) == []
    with Collection.open(c) as coll:
        alive = len(set(coll.vectors("image").item_ids.tolist()))
        assert alive == 60 - report.items_to_reembed  # every undamaged item kept its vector
        coll.add(scenes_folder, load_encoder(tiny_spec))  # the next index embeds the dropped ones again
        assert len(set(coll.vectors("image").item_ids.tolist())) == 60 and coll.info().items == 60
    assert verify_collection(c) == []


def test_cli_verify_and_repair_and_the_server_answer_a_damaged_shard(pristine: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from fastapi.testclient import TestClient

    from clipdex.cli import app_main
    from clipdex.serve import ServeConfig, create_app

    c = tmp_path / "c"
    shutil.copytree(pristine, c)
    assert app_main(["verify", str(c)]) == 0
    capsys.readouterr()
    _damage(_files(c)["shard"], "truncate")
    with TestClient(create_app(ServeConfig(collections={"c": c}))) as client:
        got = client.get("/api/search", params={"q": "a red circle"})
        assert got.status_code == 503 and got.json()["error"] == "collection_damaged"
    assert app_main(["verify", str(c), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)["problems"]
    assert len(found) == 1 and found[0]["file"].startswith("vectors/shard-") and "checksum" in found[0]["what"]
    assert app_main(["repair", str(c)]) == 0
    assert "16 items to embed again" in capsys.readouterr().out
    assert app_main(["verify", str(c)]) == 0
