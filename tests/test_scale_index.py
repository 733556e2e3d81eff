"""Indexes built for a memory budget from an embedding folder, searched with exact re-ranking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipdex.embeddings.index import EmbeddingIndex, build_index, merge_index, parse_size
from clipdex.embeddings.layout import write_clip_retrieval
from clipdex.errors import ClipdexError
from clipdex.store.ann import plan_index

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, 64)).astype(np.float32)
    x = centres[rng.integers(0, 200, 20_000)] + 0.6 * rng.standard_normal((20_000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    folder = tmp_path_factory.mktemp("emb")
    for part, rows in enumerate((slice(0, 12_000), slice(12_000, 20_000))):
        keys = [f"k{i}" for i in range(rows.start, rows.stop)]
        write_clip_retrieval(folder, x[rows], {"key": keys, "caption": keys}, part=part)
    return folder, x.astype(np.float16).astype(np.float32)


def test_plans_follow_the_budget() -> None:
    assert plan_index(20_000, 64, 100 << 20).factory == "Flat"
    assert plan_index(20_000, 64, 3 << 20).factory.endswith("SQfp16")
    assert plan_index(20_000, 64, 1 << 20).factory == "IVF512,PQ32x4fs"
    # LAION-5B's index spends about 137 bytes per vector; 10M x 512 in 2 GB gets 136
    plan = plan_index(10_000_000, 512, 2 << 30)
    assert plan.factory == "IVF12649_HNSW32,PQ256x4fs" and plan.bytes_per_vector == 136
    with pytest.raises(ClipdexError, match="too small for 20,000 vectors.*needs [0-9,]+ bytes"):
        plan_index(20_000, 64, 100_000)
    assert parse_size("2G") == 2 << 30 and parse_size("512m") == 512 << 20
    with pytest.raises(ClipdexError, match="cannot read the size"):
        parse_size("lots")


def test_compressed_index_with_rerank_finds_the_exact_neighbours(emb: tuple[Path, np.ndarray],
                                                                  tmp_path: Path) -> None:
    folder, x = emb
    manifest = build_index(folder, tmp_path / "index", parse_size("1M"))
    assert manifest["factory"].endswith("x4fs") and manifest["vectors"] == 20_000
    assert manifest["index_bytes"] <= 1 << 20
    # build-index measured how deep to re-rank for recall 0.95, and searches use that depth by default
    calibration = manifest["calibration"]
    assert calibration["reached"] and calibration["recall_at_depth"][str(manifest["rerank"])] >= 0.95
    assert calibration["recall_at_depth"]["20"] < 0.95 <= calibration["recall_at_depth"]["1000"]
    index = EmbeddingIndex(tmp_path / "index")
    assert index.rerank == manifest["rerank"]
    queries = np.random.default_rng(1).choice(20_000, 100, replace=False)
    recall = []
    for q in queries:
        exact = set(np.argsort(-(x @ x[q]))[:10].tolist())
        hits = index.search(x[q], k=10)
        recall.append(len(exact & {h["row"] for h in hits}) / 10)
        assert hits[0]["key"] == f"k{hits[0]['row']}"  # hydrated from the right metadata part and row
    assert np.mean(recall) >= 0.95, np.mean(recall)


def _recall(index: EmbeddingIndex, x: np.ndarray, rerank: int = 200) -> float:
    recall = []
    for q in np.random.default_rng(1).choice(len(x), 100, replace=False):
        exact = set(np.argsort(-(x @ x[q]))[:10].tolist())
        recall.append(len(exact & {h["row"] for h in index.search(x[q], k=10, rerank=rerank)}) / 10)
    return float(np.mean(recall))


def test_shards_searched_together_and_merged(emb: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, x = emb
    manifest = build_index(folder, tmp_path / "index", parse_size("1M"), shards=2)
    assert [s["file"] for s in manifest["shards"]] == ["shard_0.faiss", "shard_1.faiss"]
    assert [s["first_row"] for s in manifest["shards"]] == [0, 12_000]
    together = EmbeddingIndex(tmp_path / "index")
    assert _recall(together, x) >= 0.95
    row = 15_432  # in the second shard: its local id must come back as the global row
    assert together.search(x[row], k=1, rerank=50)[0] == {"row": row, "score": pytest.approx(1.0, abs=1e-3),
                                                          "key": f"k{row}", "caption": f"k{row}"}
    merged = merge_index(tmp_path / "index")
    assert [s["file"] for s in merged["shards"]] == ["index.faiss"]
    assert not (tmp_path / "index" / "shard_0.faiss").exists()
    one = EmbeddingIndex(tmp_path / "index")
    assert one.shards[0][0].ntotal == 20_000 and _recall(one, x) >= 0.95
    assert one.search(x[row], k=1, rerank=50)[0]["row"] == row
    with pytest.raises(ClipdexError, match="in one piece already"):
        merge_index(tmp_path / "index")


def _copy_emb(folder: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(folder, target)
    return target


def test_bad_parts_are_named_or_skipped(emb: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    from clipdex.embeddings.index import read_parts
    from clipdex.errors import SourceError

    folder, _ = emb
    truncated = _copy_emb(folder, tmp_path / "truncated")
    data = (truncated / "img_emb" / "img_emb_1.npy").read_bytes()
    (truncated / "img_emb" / "img_emb_1.npy").write_bytes(data[:len(data) // 2])
    with pytest.raises(SourceError, match="img_emb_1.npy: truncated"):
        read_parts(truncated)
    parts, skipped = read_parts(truncated, skip_bad=True)
    assert [p.rows for p in parts] == [12_000] and list(skipped) == ["img_emb_1.npy"]
    manifest = build_index(truncated, tmp_path / "ix", parse_size("1M"), skip_bad=True)
    assert manifest["vectors"] == 12_000 and "truncated" in manifest["skipped_parts"]["img_emb_1.npy"]

    missing = _copy_emb(folder, tmp_path / "missing")
    (missing / "metadata" / "metadata_0.parquet").unlink()
    with pytest.raises(SourceError, match="img_emb_0.npy: missing its metadata part"):
        read_parts(missing)

    wrong = _copy_emb(folder, tmp_path / "wrong")
    np.save(wrong / "img_emb" / "img_emb_1.npy", np.zeros((8_000, 32), np.float16))
    with pytest.raises(SourceError, match="wrong schema: 32-d vectors where the first part has 64"):
        read_parts(wrong)
    np.save(wrong / "img_emb" / "img_emb_1.npy", np.zeros((10, 64), np.float16))
    with pytest.raises(SourceError, match="8,000 metadata rows for 10 vectors"):
        read_parts(wrong)
    np.save(wrong / "img_emb" / "img_emb_1.npy", np.array(["a", "b"]))
    with pytest.raises(SourceError, match="wrong schema"):
        read_parts(wrong)


def test_cli_build_and_search(emb: tuple[Path, np.ndarray], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from clipdex.cli import app_main

    folder, _ = emb
    assert app_main(["build-index", str(folder), "--out", str(tmp_path / "i"), "--memory-budget", "3M",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["factory"].endswith("SQfp16")
    assert app_main(["build-index", str(folder), "--out", str(tmp_path / "j"), "--memory-budget", "10K"]) == 2
    assert "too small" in capsys.readouterr().err


def test_embed_build_and_search_a_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from clipdex.cli import app_main
    from clipdex.synth.companions import write_noisy_pool

    write_noisy_pool(tmp_path / "pool", 60, seed=4, size=64)
    assert app_main(["embed", str(tmp_path / "pool" / "pool.parquet"), "--out", str(tmp_path / "emb")]) == 0
    assert app_main(["build-index", str(tmp_path / "emb"), "--out", str(tmp_path / "ix")]) == 0
    capsys.readouterr()
    assert app_main(["search-index", str(tmp_path / "ix"), "a red circle", "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 3 and all("caption" in h and h["image_path"].endswith(".png") for h in hits)
    assert hits[0]["score"] >= hits[-1]["score"]


def test_an_index_that_misses_its_goals_fails_unless_best_effort(emb: tuple[Path, np.ndarray], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.cli import app_main

    folder, _ = emb
    over = ["build-index", str(folder), "--out", str(tmp_path / "flat"), "--factory", "Flat", "--memory-budget", "1M"]
    assert app_main(over) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: the index at") and "5,120,045 bytes, 388% over the 1,048,576-byte budget" in err
    assert "--best-effort" in err
    assert app_main([*over, "--best-effort", "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning: the index is 5,120,045 bytes" in captured.err and json.loads(captured.out)["factory"] == "Flat"
    # vectors without clusters: an inverted-file index cannot find most neighbours whatever the depth
    x = np.random.default_rng(0).standard_normal((20_000, 64)).astype(np.float32)
    keys = [f"k{i}" for i in range(len(x))]
    write_clip_retrieval(tmp_path / "noise", x / np.linalg.norm(x, axis=1, keepdims=True),
                         {"key": keys, "caption": keys})
    short = ["build-index", str(tmp_path / "noise"), "--out", str(tmp_path / "pq"), "--memory-budget", "2M"]
    assert app_main(short) == 1
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err  # faiss's own training chatter stays out
    err = captured.err.strip().splitlines()[-1]
    assert "no re-ranking depth reached recall@10 0.95: the best measured is 0." in err
