"""Curation: pools in three formats, filters measured against the noisy pool's labels, resume, bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipdex.curate import CurateOptions, PoolOptions, curate, load_config, parse_filter
from clipdex.curate.measure import measure_against_labels
from clipdex.errors import FilterSpecError, SourceError

pytestmark = pytest.mark.integration

CHEAP_CHAIN = ["blank", "size:min_side=16", "caption-quality", "basic:min_side=16", "dedup:mode=exact"]


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from clipdex.synth.companions import write_noisy_pool

    root = tmp_path_factory.mktemp("pools")
    out = {}
    for fmt in ("parquet", "webdataset", "folder"):
        write_noisy_pool(root / fmt, 120, seed=4, size=32, fmt=fmt, shard_size=50)
        out[fmt] = root / fmt
    return out


@pytest.fixture(scope="module")
def big_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 samples at 64 px: enough for the built-in model's clip scores to be meaningful."""
    from clipdex.synth.companions import write_noisy_pool

    out = tmp_path_factory.mktemp("big") / "pool"
    write_noisy_pool(out, 400, seed=9, size=64)
    return out


def _pool_arg(pools: dict[str, Path], fmt: str) -> Path:
    return pools[fmt] / "pool.parquet" if fmt == "parquet" else pools[fmt]


def _kept_keys_in_output(out: Path, fmt: str) -> list[str]:
    if fmt == "parquet":
        return [str(k) for k in pq.read_table(out / "pool.parquet").column("key").to_pylist()]
    if fmt == "webdataset":
        keys = []
        for shard in sorted(out.glob("*.tar")):
            with tarfile.open(shard) as tar:
                keys += [m.name[:-4] for m in tar.getmembers() if m.name.endswith(".png")]
        return keys
    return sorted(p.stem for p in out.glob("*.png"))


@pytest.mark.parametrize("fmt", ["parquet", "webdataset", "folder"])
def test_curate_writes_kept_samples_in_the_pool_format(pools: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "cur"
    report = curate(_pool_arg(pools, fmt), out, CHEAP_CHAIN)
    decisions = pq.read_table(out / "decisions.parquet").to_pylist()
    assert len(decisions) == report.samples == 120
    assert len({d["key"] for d in decisions}) == 120
    kept = sorted(str(d["key"]).removesuffix(".png") for d in decisions if d["kept"])
    assert sorted(_kept_keys_in_output(out, fmt)) == kept
    assert report.kept == len(kept) and report.steps[-1].kept == len(kept)
    for d in decisions:
        assert d["kept"] == (d["rejected_by"] is None) == (d["reason"] is None)
    labels = {r["key"]: r["label"] for r in pq.read_table(pools[fmt] / "labels.parquet").to_pylist()}
    by = {str(d["key"]).removesuffix(".png"): d for d in decisions}
    for key, label in labels.items():
        expected = {"blank": "blank", "tiny": "size:min_side=16", "boilerplate": "caption-quality",
                    "non_english": "basic:min_side=16"}.get(label)
        if expected:
            assert by[key]["rejected_by"] == expected, (key, label, by[key]["reason"])
    if fmt == "folder":  # captions travel with the images
        first = kept[0]
        assert (out / f"{first}.txt").read_text() == (pools[fmt] / f"{first}.txt").read_text()


def test_exact_duplicates_are_found_exactly(pools: dict[str, Path], tmp_path: Path) -> None:
    curate(pools["parquet"] / "pool.parquet", tmp_path / "c", ["dedup:mode=exact"])
    (quality,) = measure_against_labels(tmp_path / "c" / "decisions.parquet", pools["parquet"] / "labels.parquet")
    assert quality.labelled == 6
    assert quality.precision == 1.0 and quality.recall == 1.0


def test_clip_score_finds_mismatched_captions_with_the_builtin_model(big_pool: Path, tmp_path: Path) -> None:
    # Thresholds are per model (LAION used 0.28 for ViT-B/32). The built-in model's matched captions score
    # 0.29-0.60 on this pool, mismatched ones -0.26-0.12 (measured with the previous 64-d model; with the
    # current one min=0.2 and min=0.15 both give precision 1.0, recall 0.975).
    curate(big_pool / "pool.parquet", tmp_path / "c", ["clip-score:min=0.2"])
    (quality,) = measure_against_labels(tmp_path / "c" / "decisions.parquet", big_pool / "labels.parquet")
    assert quality.precision >= 0.9 and quality.recall >= 0.9, quality.to_dict()


def test_top_fraction_keeps_that_share_of_what_reaches_it(big_pool: Path, tmp_path: Path) -> None:
    report = curate(big_pool / "pool.parquet", tmp_path / "c", ["blank", "clip-score:top=0.3"])
    step = report.steps[-1]
    assert step.kept == int(np.ceil(0.3 * step.reached))
    decisions = pq.read_table(tmp_path / "c" / "decisions.parquet").to_pylist()
    kept = [d["clip_score"] for d in decisions if d["kept"]]
    dropped = [d["clip_score"] for d in decisions if d["rejected_by"] == "clip-score:top=0.3"]
    assert min(kept) >= max(dropped)


def test_near_duplicates_by_embedding_keep_one_per_group(big_pool: Path, tmp_path: Path) -> None:
    # With the built-in model, measured on this pool: cos 0.90 -> precision 0.98, recall 0.88
    # (0.93 -> 1.0, 0.80; 0.88 -> 0.98, 0.95): the model tells distinct scenes further apart than copies
    curate(big_pool / "pool.parquet", tmp_path / "c", ["dedup:cos=0.9"])
    (quality,) = measure_against_labels(tmp_path / "c" / "decisions.parquet", big_pool / "labels.parquet")
    assert quality.recall >= 0.85 and quality.precision >= 0.9, quality.to_dict()
    decisions = {d["key"]: d for d in pq.read_table(tmp_path / "c" / "decisions.parquet").to_pylist()}
    for d in decisions.values():
        if d["rejected_by"]:
            keeper = decisions[d["duplicate_of"]]
            assert keeper["kept"] and keeper["clip_score"] >= d["clip_score"]  # keep=clip_score
    # the report shows each shown pair side by side: the kept copy, then the rejected one with its cosine
    text = (tmp_path / "c" / "report.html").read_text()
    pairs = text.split("id='duplicates'")[1].split("<div class='pair'>")[1:]
    assert len(pairs) == 12
    for pair in pairs:
        assert pair.count("data:image/jpeg;base64") == 2 and "<i>kept</i>" in pair and "duplicate of" in pair


def test_report_is_self_contained_and_has_every_section(pools: dict[str, Path], tmp_path: Path) -> None:
    report = curate(pools["webdataset"], tmp_path / "c", ["blank", "size:min_side=16", "clip-score:top=0.8"])
    text = Path(report.report_html or "").read_text()
    for section in ("id='summary'", "id='step-counts'", "id='plots'", "id='examples'", "CLIP score",
                    "caption length", "image short side", "Kept fraction", "size:min_side=16"):
        assert section in text, section
    assert text.count("data:image/png;base64") >= 4  # funnel + histograms
    assert text.count("data:image/jpeg;base64") >= 8  # thumbnails (tar members included)
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_precomputed_clip_retrieval_embeddings_are_used_instead_of_images(big_pool: Path, tmp_path: Path) -> None:
    from clipdex.embeddings.layout import write_clip_retrieval
    from clipdex.encoders import load_encoder

    rows = pq.read_table(big_pool / "pool.parquet").to_pylist()[:120]
    enc = load_encoder()
    images = enc.encode_images([Image.open(big_pool / r["path"]).convert("RGB") for r in rows])
    texts = enc.encode_texts([r["caption"] for r in rows])
    write_clip_retrieval(tmp_path / "emb", images, {"key": [r["key"] for r in rows],
                                                    "caption": [r["caption"] for r in rows]}, texts)
    # the pool's images are gone: only the stored vectors can give clip scores
    pool = tmp_path / "pool"
    (pool / "images").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), pool / "pool.parquet")
    report = curate(pool / "pool.parquet", tmp_path / "c", ["clip-score:min=0.5"],
                    CurateOptions(embeddings=str(tmp_path / "emb")))
    decisions = pq.read_table(tmp_path / "c" / "decisions.parquet").to_pylist()
    expected = np.einsum("ij,ij->i", images, texts)
    got = np.array([d["clip_score"] for d in decisions])
    np.testing.assert_allclose(got, expected, atol=3e-3)  # float16 storage
    assert report.steps[0].rejected == 0  # no image was read, so none failed


def test_precomputed_collection_vectors_match_fresh_ones(pools: dict[str, Path], tmp_path: Path) -> None:
    from clipdex import Collection

    shutil.copytree(pools["parquet"], tmp_path / "pool")
    table = tmp_path / "pool" / "pool.parquet"
    with Collection.create(tmp_path / "coll", "builtin:shapes-tiny", 256) as coll:
        coll.add(table)
    fresh = curate(table, tmp_path / "a", ["clip-score:min=0.5"])
    # with the images gone, only the collection's stored vectors can give these scores
    shutil.rmtree(tmp_path / "pool" / "images")
    reused = curate(table, tmp_path / "b", ["clip-score:min=0.5"], CurateOptions(embeddings=str(tmp_path / "coll")))
    a = pq.read_table(tmp_path / "a" / "decisions.parquet").column("clip_score").to_numpy()
    b = pq.read_table(tmp_path / "b" / "decisions.parquet").column("clip_score").to_numpy()
    np.testing.assert_allclose(a, b, atol=3e-3)
    assert fresh.kept == reused.kept and reused.steps[0].rejected == 0


def test_bad_samples_are_rejected_with_a_reason(tmp_path: Path) -> None:
    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "ok.png")
    (tmp_path / "not_image.png").write_bytes(b"this is text")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("RGB", (40, 40), (10, 10, 200)).save(tmp_path / "ok2.png")
    rows = {"path": ["ok.png", "missing.png", "not_image.png", "empty.png", "ok.png", "ok2.png"],
            "caption": ["a red square", "a blue star", "a green circle", "a red circle", None, "   "]}
    pq.write_table(pa.table(rows), tmp_path / "pool.parquet")
    report = curate(tmp_path / "pool.parquet", tmp_path / "out", ["size:min_side=10"])
    decisions = pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist()
    reasons = [d["reason"] for d in decisions]
    assert reasons[0] is None
    assert reasons[1] == "image: file not found"
    assert reasons[2] == "image: not an image (unrecognised format)"
    assert reasons[3] == "image: empty file (0 bytes)"
    assert reasons[4] == "no caption" and reasons[5] == "empty caption"
    assert report.kept == 1 and report.steps[0].rejected == 5


def test_non_text_captions_and_truncated_shards(tmp_path: Path) -> None:
    pool = tmp_path / "wds"
    pool.mkdir()
    png = io.BytesIO()
    Image.new("RGB", (40, 40), (0, 200, 0)).save(png, format="PNG")
    for shard, keys in (("00000", ("a", "b")), ("00001", ("c", "d"))):
        with tarfile.open(pool / f"{shard}.tar", "w") as tar:
            for key, caption in zip(keys, (b"a green square", b"\xff\xfe\x00bad"), strict=True):
                for ext, data in (("png", png.getvalue()), ("txt", caption)):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    whole = (pool / "00001.tar").read_bytes()
    (pool / "00001.tar").write_bytes(whole[:700])  # cut inside the first member's data
    report = curate(pool, tmp_path / "out", ["size:min_side=10"])
    assert list(report.failed_shards) == ["00001.tar"]
    decisions = pq.read_table(tmp_path / "out" / "decisions.parquet").to_pylist()
    assert [d["reason"] for d in decisions] == [None, "caption is not text (bytes)"]


def test_kill_9_resumes_without_redoing_or_duplicating(big_pool: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [sys.executable, "-m", "clipdex", "curate", str(big_pool / "pool.parquet"), "--out", str(out),
            "--shard-size", "10", "-f", "blank", "-f", "dedup:cos=0.98", "-f", "clip-score:min=0.5"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob(".curate/*/scores-*.parquet"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob(".curate/*/scores-*.parquet")))
    assert 3 <= done_before < 40, "the run was not interrupted mid-way"
    resumed = curate(big_pool / "pool.parquet", out, ["blank", "dedup:cos=0.98", "clip-score:min=0.5"],
                     CurateOptions(pool=PoolOptions(shard_size=10)))
    assert resumed.shards_reused >= done_before and resumed.shards_scored_now == 40 - resumed.shards_reused
    curate(big_pool / "pool.parquet", tmp_path / "fresh", ["blank", "dedup:cos=0.98", "clip-score:min=0.5"],
                   CurateOptions(pool=PoolOptions(shard_size=10)))
    a = pq.read_table(out / "decisions.parquet").to_pylist()
    b = pq.read_table(tmp_path / "fresh" / "decisions.parquet").to_pylist()
    assert [(r["key"], r["kept"], r["reason"]) for r in a] == [(r["key"], r["kept"], r["reason"]) for r in b]
    kept = pq.read_table(out / "pool.parquet").column("key").to_pylist()
    assert len(kept) == len(set(kept)) == resumed.kept
    assert not list(out.glob("**/*.tmp"))


def test_two_workers_decide_as_one(pools: dict[str, Path], tmp_path: Path) -> None:
    chain = ["blank", "dedup:cos=0.98", "clip-score:top=0.5"]
    one = curate(pools["webdataset"], tmp_path / "one", chain)
    two = curate(pools["webdataset"], tmp_path / "two", chain, CurateOptions(workers=2))
    assert two.shards == 3 and two.shards_scored_now == 3
    a = pq.read_table(tmp_path / "one" / "decisions.parquet").select(["key", "kept"]).to_pylist()
    b = pq.read_table(tmp_path / "two" / "decisions.parquet").select(["key", "kept"]).to_pylist()
    assert a == b and one.kept == two.kept


def test_decontaminate_drops_copies_of_evaluation_images(big_pool: Path, tmp_path: Path) -> None:
    rows = pq.read_table(big_pool / "pool.parquet").to_pylist()
    clean = [r for r in rows if r["label"] == "clean"][:5]
    (tmp_path / "eval").mkdir()
    for r in clean:
        shutil.copy(big_pool / r["path"], tmp_path / "eval" / f"eval_{r['key']}.png")
    curate(big_pool / "pool.parquet", tmp_path / "c", [f"decontaminate:eval={tmp_path / 'eval'},cos=0.999"])
    decisions = {d["key"]: d for d in pq.read_table(tmp_path / "c" / "decisions.parquet").to_pylist()}
    for r in clean:
        assert not decisions[r["key"]]["kept"]
        assert f"eval_{r['key']}.png" in decisions[r["key"]]["reason"]
    assert sum(not d["kept"] for d in decisions.values()) < 30  # copies and look-alikes only


def test_text_match_where_aspect_and_image_cluster(big_pool: Path, tmp_path: Path) -> None:
    report = curate(big_pool / "pool.parquet", tmp_path / "a",
                    ["text-match:terms=red|star", "where:caption_words >= 4 and label != 'tiny'"])
    for d in pq.read_table(tmp_path / "a" / "decisions.parquet").to_pylist():
        words = set(d["caption"].replace(",", " ").split()) if d["caption"] else set()
        matches = bool(words & {"red", "star"})
        if d["kept"]:
            assert matches and d["caption_words"] >= 4
        elif d["rejected_by"].startswith("text-match"):
            assert not matches
    assert report.kept > 0
    # image-cluster: keep the clusters nearest to a few plain-colour images; the pool's blank images (plain
    # colours too, 10% of it) must all survive and dominate what is kept (measured: 40 of 85 kept).
    from PIL import Image

    (tmp_path / "target").mkdir()
    for i, rgb in enumerate([(250, 250, 250), (128, 128, 128), (30, 30, 30), (200, 180, 150)]):
        Image.new("RGB", (64, 64), rgb).save(tmp_path / "target" / f"{i}.png")
    curate(big_pool / "pool.parquet", tmp_path / "b", [f"image-cluster:target={tmp_path / 'target'},k=20"])
    decisions = pq.read_table(tmp_path / "b" / "decisions.parquet").to_pylist()
    blank = {r["key"] for r in pq.read_table(big_pool / "labels.parquet").to_pylist() if r["label"] == "blank"}
    kept = {d["key"] for d in decisions if d["kept"]}
    assert 0 < len(kept) < len(decisions) / 2
    assert blank <= kept
    assert len(kept & blank) / len(kept) > 3 * len(blank) / len(decisions)


def test_aspect_and_config_file_equal_flags(pools: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "filters.toml"
    config.write_text('shard_size = 40\n[[filter]]\nname = "blank"\n[[filter]]\nname = "size"\nmin_side = 16\n'
                      '[[filter]]\nname = "aspect"\nmax = 2.0\n')
    specs, settings = load_config(config)
    assert settings == {"shard_size": 40}
    a = curate(pools["parquet"] / "pool.parquet", tmp_path / "a", specs)
    b = curate(pools["parquet"] / "pool.parquet", tmp_path / "b", ["blank", "size:min_side=16", "aspect:max=2.0"])
    assert [s.rejected for s in a.steps] == [s.rejected for s in b.steps]


@pytest.mark.parametrize(("spec", "message"), [
    ("nope", "unknown filter 'nope'. Available: basic"),
    ("clip-score", "give exactly one of min=COSINE or top=FRACTION"),
    ("clip-score:top=2", "top must be a number in [0.0, 1.0]"),
    ("dedup:cos=0.9,speed=3", "unknown parameter(s) speed. Accepted: mode, method, cos, bits, keep"),
    ("where:width ~ 3", "cannot read 'width ~ 3'"),
    ("text-match", "give terms=a|b|c or vocab=FILE"),
])
def test_bad_filter_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(FilterSpecError) as info:
        parse_filter(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_curate_json_and_errors(pools: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    from clipdex.cli import app_main

    code = app_main(["curate", str(pools["folder"]), "--out", str(tmp_path / "o"), "-f", "blank",
                     "-f", "size:min_side=16", "--json", "--no-report"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["samples"] == 120 and data["report_html"] is None
    assert [s["filter"] for s in data["steps"]] == ["input", "blank", "size:min_side=16"]
    assert app_main(["curate", str(pools["folder"]), "--out", str(tmp_path / "p"), "-f", "bogus"]) == 2
    assert "unknown filter 'bogus'" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.txt").write_text("mine")
    assert app_main(["curate", str(pools["folder"]), "--out", str(tmp_path / "taken"), "-f", "blank"]) == 1
    assert "is not empty and is not the output of an earlier curate run" in capsys.readouterr().err
    with pytest.raises(SourceError):
        curate(tmp_path / "nothing.parquet", tmp_path / "q", ["blank"])


def test_phash_is_stable_under_reencoding_and_differs_between_images() -> None:
    from clipdex.curate.score import perceptual_hash
    from clipdex.synth.render import render_scene
    from clipdex.synth.world import sample_scenes

    a, b = (render_scene(s, 128) for s in sample_scenes(2, seed=5))
    buf = io.BytesIO()
    a.save(buf, format="JPEG", quality=70)
    again = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    def bits(x: bytes, y: bytes) -> int:
        return int(np.unpackbits(np.frombuffer(x, np.uint8) ^ np.frombuffer(y, np.uint8)).sum())

    assert bits(perceptual_hash(a), perceptual_hash(again)) <= 4
    assert bits(perceptual_hash(a), perceptual_hash(b)) >= 12


def test_components_join_chains() -> None:
    from clipdex.curate.dedup import components

    labels = components(6, np.array([0, 1, 4]), np.array([1, 2, 5]))
    assert labels.tolist() == [0, 0, 0, 3, 4, 4]


def test_pool_sniffing_errors(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SourceError, match="unknown pool format '.json'"):
        curate(tmp_path / "x.json", tmp_path / "o", ["blank"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no image files"):
        curate(tmp_path / "empty", tmp_path / "o2", ["blank"])
    assert os.listdir(tmp_path / "empty") == []


def test_rerun_with_other_filters_leaves_no_stale_samples(pools: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o"
    curate(pools["folder"], out, ["blank"])
    first = set(_kept_keys_in_output(out, "folder"))
    second_report = curate(pools["folder"], out, ["blank", "where:caption_words >= 5"])
    second = set(_kept_keys_in_output(out, "folder"))
    assert second < first and len(second) == second_report.kept
    assert second_report.shards_reused == second_report.shards  # same pass-1 needs: scores were reused


def test_table_with_a_shared_id_column_is_keyed_by_row(tmp_path: Path) -> None:
    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "a.png")
    rows = {"id": [7, 7], "path": ["a.png", "a.png"], "caption": ["a red square", "a square that is red"]}
    pq.write_table(pa.table(rows), tmp_path / "pool.parquet")
    report = curate(tmp_path / "pool.parquet", tmp_path / "o", ["size:min_side=10"])
    assert report.kept == 2
    assert pq.read_table(tmp_path / "o" / "pool.parquet").column("caption").to_pylist() == rows["caption"]


def test_ivf_near_duplicate_pairs_agree_with_exact_ones() -> None:
    from clipdex.curate import dedup

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((300, 64)).astype(np.float32)
    x = centres[rng.integers(0, 300, dedup.EXACT_LIMIT + 5000)] + 0.4 * rng.standard_normal(
        (dedup.EXACT_LIMIT + 5000, 64)).astype(np.float32)
    copies = rng.choice(len(x), 2000, replace=False)
    x[copies[1000:]] = x[copies[:1000]] + 0.02 * rng.standard_normal((1000, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    class Vectors:  # the one method of Context the edge finders use
        def col(self, name: str) -> np.ndarray:
            return np.ones(len(x), bool)

        def image_vectors(self, rows: np.ndarray) -> np.ndarray:
            return x[rows]

    rows = np.arange(len(x))
    exact = {(min(a, b), max(a, b)) for a, b in zip(*dedup._exact_edges(x, 0.95), strict=True)}
    ivf = {(min(a, b), max(a, b)) for a, b in zip(*dedup.embedding_edges(Vectors(), rows, 0.95),  # type: ignore[arg-type]
                                                   strict=True)}
    assert len(exact) >= 1000
    assert len(ivf & exact) >= 0.95 * len(exact) and ivf <= exact


def test_csv_pool_round_trips_as_csv(pools: dict[str, Path], tmp_path: Path) -> None:
    import csv

    rows = pq.read_table(pools["parquet"] / "pool.parquet").to_pylist()
    with (tmp_path / "pool.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "path": str(pools["parquet"] / r["path"])})
    report = curate(tmp_path / "pool.csv", tmp_path / "out", ["blank", "size:min_side=16"])
    with (tmp_path / "out" / "pool.csv").open(newline="") as f:
        kept = list(csv.DictReader(f))
    assert len(kept) == report.kept and list(kept[0]) == list(rows[0])
    assert {r["label"] for r in kept}.isdisjoint({"blank", "tiny"})
