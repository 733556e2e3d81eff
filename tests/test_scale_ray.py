"""The Ray engine on a local Ray (two CPUs): embedding and curation over shards, resume, failures,
and a worker killed mid-job."""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipdex.curate import PoolOptions
from clipdex.embeddings.embed import embed_pool
from clipdex.encoders import load_encoder
from clipdex.scale.ray_engine import RayOptions, ray_runner
from clipdex.synth.companions import write_noisy_pool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def parquet_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 samples, one of them pointing at a file that is not an image."""
    folder = tmp_path_factory.mktemp("pool")
    write_noisy_pool(folder, 120, seed=5, size=32, shares={"mismatched": 0.3})
    (folder / pq.read_table(folder / "pool.parquet").column("path")[7].as_py()).write_bytes(b"this is not a png")
    return folder / "pool.parquet"


def _keys(out: Path) -> list[str]:
    return [k for f in sorted((out / "metadata").glob("*.parquet")) for k in pq.read_table(f).column("key").to_pylist()]


def test_ray_embedding_matches_the_local_path(local_ray: None, parquet_pool: Path, tmp_path: Path) -> None:
    encoder = load_encoder()
    options = PoolOptions(shard_size=15)
    local = embed_pool(parquet_pool, tmp_path / "local", encoder, options)
    seen: list[int] = []
    on_ray = embed_pool(parquet_pool, tmp_path / "ray", encoder, options, runner=ray_runner(RayOptions(num_workers=2)),
                        progress=lambda done, total, failed: seen.append(done))
    assert (on_ray.parts, on_ray.parts_done_now, on_ray.samples, on_ray.failed) == (8, 8, 119, 1)
    assert (local.samples, local.failed) == (119, 1)
    assert seen == list(range(1, 9))  # one step per shard, in completion order
    for sub, pattern in (("img_emb", "img_emb_{}.npy"), ("text_emb", "text_emb_{}.npy")):
        for part in range(8):
            a = np.load(tmp_path / "local" / sub / pattern.format(part))
            b = np.load(tmp_path / "ray" / sub / pattern.format(part))
            assert a.dtype == b.dtype == np.float16 and np.allclose(a, b, atol=2e-3)
    assert _keys(tmp_path / "ray") == _keys(tmp_path / "local")
    failures = pq.read_table(tmp_path / "ray" / "failures" / "failures_0.parquet").to_pylist()
    assert len(failures) == 1 and "not an image" in failures[0]["error"]


def test_ray_skips_finished_parts_and_names_unreadable_shards(local_ray: None, tmp_path: Path) -> None:
    write_noisy_pool(tmp_path / "wds", 60, seed=2, size=32, shares={"mismatched": 0.3}, fmt="webdataset", shard_size=10)
    tars = sorted((tmp_path / "wds").glob("*.tar"))
    with tarfile.open(tars[2]) as tar:
        member = tar.getmembers()[4]
    tars[2].write_bytes(tars[2].read_bytes()[:member.offset_data + member.size // 2])  # cut inside a member
    out = tmp_path / "emb"
    first = embed_pool(tmp_path / "wds", out, load_encoder(), runner=ray_runner(RayOptions(num_workers=2)))
    assert list(first.failed_shards) == [tars[2].name] and first.parts_done_now == 5
    assert "00002.tar" in first.failed_shards[tars[2].name]
    (out / "metadata" / "metadata_4.parquet").unlink()  # as if the run died before finishing that part
    again = embed_pool(tmp_path / "wds", out, load_encoder(), runner=ray_runner(RayOptions(num_workers=2)))
    assert (again.parts_reused, again.parts_done_now) == (4, 1)
    assert len(_keys(out)) == len(set(_keys(out))) == 50


def _kill_one_worker(out: Path, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL one Ray Data actor process once the job has written its first part."""
    while not stop.is_set() and not killed:
        if glob.glob(str(out / "metadata" / "*.parquet")):
            for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
                try:
                    text = Path(cmdline).read_bytes().decode(errors="replace")
                except OSError:
                    continue
                if "MapWorker(MapBatches(ShardActor))" in text:
                    os.kill(int(cmdline.split("/")[2]), signal.SIGKILL)
                    killed.append(int(cmdline.split("/")[2]))
                    return
        time.sleep(0.05)


def test_a_killed_worker_still_gives_every_row_once(local_ray: None, parquet_pool: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_one_worker, args=(out, killed, stop))
    watcher.start()
    try:
        report = embed_pool(parquet_pool, out, load_encoder(), PoolOptions(shard_size=4),
                            runner=ray_runner(RayOptions(num_workers=2)))
    finally:
        stop.set()
        watcher.join()
    assert killed, "no Ray worker was running when the first part landed"
    assert report.parts == report.parts_done_now == 30 and not report.failed_shards
    keys = _keys(out)
    expected = pq.read_table(parquet_pool).column("key").to_pylist()
    assert len(keys) == len(set(keys)) == 119 and set(keys) < set(expected)


def test_curate_on_ray_keeps_what_the_local_run_keeps(local_ray: None, parquet_pool: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.cli import app_main

    args = [str(parquet_pool), "--filter", "clip-score:min=0.3", "--filter", "dedup", "--shard-size", "30",
            "--no-report", "--json"]
    assert app_main(["curate", *args, "--out", str(tmp_path / "local")]) == 0
    local = json.loads(capsys.readouterr().out)
    assert app_main(["curate", *args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--num-workers", "2"]) == 0
    on_ray = json.loads(capsys.readouterr().out)
    assert on_ray["shards_scored_now"] == 4 and 0 < on_ray["kept"] == local["kept"] < 120
    kept = [[r["key"] for r in pq.read_table(tmp_path / d / "decisions.parquet").to_pylist() if r["kept"]]
            for d in ("local", "ray")]
    assert sorted(kept[0]) == sorted(kept[1])


def test_ray_options_need_the_ray_engine(parquet_pool: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.cli import app_main

    assert app_main(["embed", str(parquet_pool), "--out", str(tmp_path / "e"), "--num-workers", "2"]) == 2
    assert "need --engine ray" in capsys.readouterr().err
    assert app_main(["embed", str(parquet_pool), "--out", str(tmp_path / "e"), "--engine", "spark"]) == 2
    assert "unknown engine 'spark'" in capsys.readouterr().err


def test_the_ray_engine_keeps_rays_own_output_out_unless_verbose(parquet_pool: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*extra: str) -> str:
        out = tmp_path / f"emb{len(extra)}"
        done = subprocess.run([sys.executable, "-m", "clipdex", *extra, "embed", str(parquet_pool), "--out", str(out),
                               "--engine", "ray"], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "CLIPDEX_VERBOSE": ""})
        assert done.returncode == 0, done.stderr
        return done.stderr

    quiet = run()
    assert quiet.strip() and all(line.startswith("embed parts: ") for line in quiet.strip().splitlines()), quiet
    assert "Ray" in run("--verbose")  # asked for: Ray's own start-up lines come through
