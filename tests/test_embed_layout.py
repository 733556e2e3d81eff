"""`clipdex embed`: clip-retrieval's interchange layout, resumable, and read back by curate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipdex.cli import app_main
from clipdex.curate import CurateOptions, curate
from clipdex.search.query import Query

pytestmark = pytest.mark.integration


def test_embed_writes_the_layout_resumes_and_feeds_curate(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.synth.companions import write_noisy_pool

    write_noisy_pool(tmp_path / "pool", 90, seed=3, size=32, fmt="webdataset", shard_size=40)
    args = ["embed", str(tmp_path / "pool"), "--out", str(tmp_path / "emb"), "--json"]
    assert app_main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["parts"] == 3 and first["parts_done_now"] == 3 and first["samples"] == 90
    files = {str(f.relative_to(tmp_path / "emb")) for f in (tmp_path / "emb").rglob("*") if f.is_file()}
    assert files == {"embed.json", *(f"{sub}/{sub}_{i}.{ext}" for i in range(3) for sub, ext in (
        ("img_emb", "npy"), ("text_emb", "npy"), ("metadata", "parquet"), ("failures", "parquet")))}
    for i, rows in enumerate((40, 40, 10)):
        img = np.load(tmp_path / "emb" / "img_emb" / f"img_emb_{i}.npy")
        txt = np.load(tmp_path / "emb" / "text_emb" / f"text_emb_{i}.npy")
        meta = pq.read_table(tmp_path / "emb" / "metadata" / f"metadata_{i}.parquet")
        assert img.dtype == np.float16 and txt.dtype == np.float16 and img.shape == txt.shape == (rows, 256)
        assert meta.num_rows == rows and {"key", "image_path", "caption"} <= set(meta.column_names)
        np.testing.assert_allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1.0, atol=2e-3)
    assert app_main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["parts_reused"] == 3 and again["parts_done_now"] == 0
    # curate reads the vectors back instead of computing them: the same clip scores
    reused = curate(tmp_path / "pool", tmp_path / "a", ["clip-score:min=0.5"],
                    CurateOptions(embeddings=str(tmp_path / "emb")))
    fresh = curate(tmp_path / "pool", tmp_path / "b", ["clip-score:min=0.5"])
    a = pq.read_table(tmp_path / "a" / "decisions.parquet").column("clip_score").to_numpy()
    b = pq.read_table(tmp_path / "b" / "decisions.parquet").column("clip_score").to_numpy()
    np.testing.assert_allclose(a, b, atol=3e-3)
    assert reused.kept == fresh.kept


def test_failed_images_are_recorded_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    pq.write_table(pa.table({"path": ["ok.png", "bad.png", "gone.png"], "caption": ["a red square", "x", "y"]}),
                   tmp_path / "pool.parquet")
    assert app_main(["embed", str(tmp_path / "pool.parquet"), "--out", str(tmp_path / "emb"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 1 and report["failed"] == 2
    failures = pq.read_table(tmp_path / "emb" / "failures" / "failures_0.parquet").to_pylist()
    assert failures == [{"key": "1", "error": "not an image (unrecognised format)"},
                        {"key": "2", "error": "file not found"}]


def test_one_folder_never_mixes_two_models(tmp_path: Path, tiny_spec: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    from PIL import Image

    Image.new("RGB", (32, 32), (0, 0, 200)).save(tmp_path / "blue.png")
    pq.write_table(pa.table({"path": ["blue.png"], "caption": ["a blue square"]}), tmp_path / "pool.parquet")
    assert app_main(["embed", str(tmp_path / "pool.parquet"), "--out", str(tmp_path / "emb")]) == 0
    assert json.loads((tmp_path / "emb" / "embed.json").read_text()) == {"model": "builtin:shapes-tiny", "dim": 256}
    capsys.readouterr()
    assert app_main(["embed", str(tmp_path / "pool.parquet"), "--out", str(tmp_path / "emb"),
                     "--model", tiny_spec]) == 1
    assert "holds vectors of builtin:shapes-tiny" in capsys.readouterr().err


def test_eval_reads_the_layout_and_matches_the_model_run(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.synth.writers import write_scenes

    write_scenes(tmp_path / "k", 60, seed=3, fmt="karpathy")
    write_scenes(tmp_path / "p", 60, seed=3, fmt="parquet")  # the same scenes, 5 caption rows per image
    assert app_main(["embed", str(tmp_path / "p" / "captions.parquet"), "--out", str(tmp_path / "emb")]) == 0
    capsys.readouterr()
    assert app_main(["eval", "retrieval", "--embeddings", str(tmp_path / "emb"), "--json"]) == 0
    from_layout = json.loads(capsys.readouterr().out)
    assert app_main(["eval", "retrieval", "--data", str(tmp_path / "k" / "dataset.json"), "--split", "all",
                     "--json"]) == 0
    from_model = json.loads(capsys.readouterr().out)
    assert from_layout["meta"]["images"] == 60 and from_layout["meta"]["captions"] == 300
    assert from_layout["meta"]["model"] == "builtin:shapes-tiny"
    for name in ("t2i_R@1", "t2i_R@5", "i2t_R@5"):  # float16 storage moves a few near-ties at most
        assert from_layout["metrics"][name]["value"] == pytest.approx(from_model["metrics"][name]["value"], abs=0.02)
    assert app_main(["eval", "retrieval"]) == 2  # a usage error
    assert "give one of --data" in capsys.readouterr().err


def test_import_into_a_collection_then_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex import Collection
    from clipdex.synth.companions import write_noisy_pool

    write_noisy_pool(tmp_path / "pool", 50, seed=6, size=32, shares={"mismatched": 0.2})
    assert app_main(["embed", str(tmp_path / "pool" / "pool.parquet"), "--out", str(tmp_path / "emb"),
                     "--shard-size", "20"]) == 0
    capsys.readouterr()
    for _ in range(2):  # importing again replaces items, never duplicates them
        assert app_main(["import-embeddings", str(tmp_path / "emb"), "-c", str(tmp_path / "coll"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["items"] == 50
    with Collection.open(tmp_path / "coll") as coll:
        info = coll.info()
        assert (info.ok, info.encoder) == (50, "builtin:shapes-tiny")
        vectors = np.concatenate([np.load(tmp_path / "emb" / "img_emb" / f"img_emb_{i}.npy") for i in range(3)])
        meta = pq.read_table(tmp_path / "emb" / "metadata" / "metadata_1.parquet").to_pylist()[4]
        hits = coll.search(Query(vector=vectors[24].astype(np.float32), k=1))  # row 4 of part 1
        assert hits[0].path.endswith(Path(meta["image_path"]).name) and hits[0].score > 0.999
        assert coll.item(hits[0].id).captions == [meta["caption"]]
