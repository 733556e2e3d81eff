"""Write synthetic scenes to disk in the layouts real datasets use.

``folder`` (images + sidecar .txt), ``parquet`` (path, caption, metadata),
``webdataset`` (tar shards of key.png/key.txt/key.json, as img2dataset writes
them) and ``karpathy`` (COCO/Flickr-style JSON with train/val/test splits and
5 captions per image). Every layout also gets ``scenes.jsonl``: the ground truth.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from clipdex.errors import ClipdexError, UsageError
from clipdex.synth.render import render_scene
from clipdex.synth.world import Scene, WorldConfig, captions_for, sample_scenes

__all__ = ["Format", "SynthReport", "write_scenes"]


class Format(StrEnum):
    FOLDER = "folder"
    PARQUET = "parquet"
    WEBDATASET = "webdataset"
    KARPATHY = "karpathy"


@dataclass
class SynthReport:
    out: str
    format: str
    images: int
    captions: int


ProgressFn = Callable[[int, int, int], None]


def _split(i: int, n: int) -> str:
    # 80 / 10 / 10 by position, so splits are stable whatever the seed
    frac = i / max(n, 1)
    return "train" if frac < 0.8 else ("val" if frac < 0.9 else "test")


def write_scenes(out: str | Path, n: int, seed: int, fmt: str = "folder", size: int = 64,
                 captions_per_image: int = 5, world: WorldConfig = WorldConfig(),
                 progress: ProgressFn | None = None, shard_size: int = 1000) -> SynthReport:
    """Render ``n`` scenes with captions into ``out`` in the given layout.

    Raises:
        ClipdexError: unknown format, bad size, or ``out`` not empty.
    """
    if fmt not in tuple(Format):
        raise UsageError(f"unknown format {fmt!r}. Available: {', '.join(Format)}")
    if not 16 <= size <= 1024:
        raise ClipdexError(f"--size must be between 16 and 1024 pixels, got {size}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ClipdexError(f"{out} is not empty; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    scenes = sample_scenes(n, seed, world)
    caps = [captions_for(s, captions_per_image, random.Random(seed * 31 + i)) for i, s in enumerate(scenes)]
    writer = {Format.FOLDER: _folder, Format.PARQUET: _parquet, Format.WEBDATASET: _webdataset,
              Format.KARPATHY: _karpathy}[Format(fmt)]
    writer(out, scenes, caps, size, progress, shard_size)
    with (out / "scenes.jsonl").open("w") as f:
        for i, s in enumerate(scenes):
            f.write(json.dumps({"key": f"{i:06d}", "split": _split(i, n), **s.to_dict()}) + "\n")
    return SynthReport(str(out), fmt, n, sum(len(c) for c in caps))


def _png(scene: Scene, size: int) -> bytes:
    buf = io.BytesIO()
    render_scene(scene, size).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _tick(progress: ProgressFn | None, i: int, n: int) -> None:
    if progress and ((i + 1) % 500 == 0 or i + 1 == n):
        progress(i + 1, n, 0)


def _images(out: Path, scenes: list[Scene], size: int, progress: ProgressFn | None) -> list[str]:
    (out / "images").mkdir(exist_ok=True)
    names = []
    for i, scene in enumerate(scenes):
        name = f"images/{i:06d}.png"
        (out / name).write_bytes(_png(scene, size))
        names.append(name)
        _tick(progress, i, len(scenes))
    return names


def _folder(out: Path, scenes: list[Scene], caps: list[list[str]], size: int, progress: ProgressFn | None,
            shard_size: int) -> None:
    for name, c in zip(_images(out, scenes, size, progress), caps, strict=True):
        (out / name).with_suffix(".txt").write_text("\n".join(c) + "\n")


def _parquet(out: Path, scenes: list[Scene], caps: list[list[str]], size: int, progress: ProgressFn | None,
             shard_size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = _images(out, scenes, size, progress)
    rows: dict[str, list[object]] = {"path": [], "caption": [], "split": [], "n_objects": [], "background": []}
    for i, (name, scene, c) in enumerate(zip(names, scenes, caps, strict=True)):
        for text in c:
            rows["path"].append(name)
            rows["caption"].append(text)
            rows["split"].append(_split(i, len(scenes)))
            rows["n_objects"].append(len(scene.objects))
            rows["background"].append(scene.background)
    pq.write_table(pa.table(rows), out / "captions.parquet")


def _webdataset(out: Path, scenes: list[Scene], caps: list[list[str]], size: int, progress: ProgressFn | None,
                shard_size: int) -> None:
    for start in range(0, len(scenes), shard_size):
        with tarfile.open(out / f"{start // shard_size:05d}.tar", "w") as tar:
            for i in range(start, min(start + shard_size, len(scenes))):
                key = f"{i:06d}"
                meta = {"key": key, "caption": caps[i][0], "scene": scenes[i].to_dict()}
                add_sample(tar, key, _png(scenes[i], size), caps[i][0], meta)
                _tick(progress, i, len(scenes))


def add_sample(tar: tarfile.TarFile, key: str, png: bytes, caption: str, meta: Mapping[str, object]) -> None:
    """One webdataset sample as img2dataset writes it: ``key.png``, ``key.txt``, ``key.json``."""
    for ext, data in (("png", png), ("txt", caption.encode()), ("json", json.dumps(meta).encode())):
        info = tarfile.TarInfo(f"{key}.{ext}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _karpathy(out: Path, scenes: list[Scene], caps: list[list[str]], size: int, progress: ProgressFn | None,
              shard_size: int) -> None:
    names = _images(out, scenes, size, progress)
    images = []
    for i, (name, c) in enumerate(zip(names, caps, strict=True)):
        folder, _, filename = name.partition("/")
        images.append({"filepath": folder, "filename": filename, "imgid": i, "split": _split(i, len(scenes)),
                       "sentences": [{"raw": t, "tokens": t.split()} for t in c]})
    (out / "dataset.json").write_text(json.dumps({"dataset": "clipdex-synth", "images": images}))
