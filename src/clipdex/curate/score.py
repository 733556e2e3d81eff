"""Pass 1 of a curation run: every per-sample score the chosen filters need, shard by shard.

Each shard's scores land in ``WORK/scores-NNNNN.parquet`` (written last, so its
presence means the shard is done) beside its image and caption vectors as
float16 ``.npy``. A killed run re-scores only the shards without that file;
nothing is written twice because every file is replaced atomically.

Only what a filter asks for is computed: with precomputed embeddings and
width/height columns in the pool, no image is opened at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipdex.curate.language import detect_languages
from clipdex.curate.precomputed import Precomputed, open_precomputed
from clipdex.embeddings.layout import npy_bytes, save_atomic
from clipdex.encode import decoded_batches
from clipdex.encoders.base import Encoder
from clipdex.errors import DecodeError, SourceError
from clipdex.media.decode import DecodeOptions, read_image_bytes
from clipdex.media.pools import Pool, PoolOptions, Sample, Shard, open_pool, text_if_mixed
from clipdex.scale.ray_engine import RayOptions, ShardResult, run_shards

__all__ = ["NEEDS", "perceptual_hash", "ScoreConfig", "ScoreReport", "ScoreWorker", "score_pool", "score_shard",
           "scores_path"]

# bytes: content hash; size: width/height; pixels: blankness and perceptual hash;
# image_emb / text_emb: vectors; language: caption language.
NEEDS = ("bytes", "size", "pixels", "image_emb", "text_emb", "language")
_DCT = np.cos(np.pi / 32 * (np.arange(32)[:, None]) * (np.arange(32)[None, :] + 0.5))  # DCT-II basis, 32 points


def perceptual_hash(im: Image.Image) -> bytes:
    """64-bit pHash: signs of the 8x8 lowest DCT frequencies (DC excluded) of a 32x32 grey copy vs their median.

    Re-encoding, light blur and small shifts move few bits; different images differ in about half.
    """
    grey = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return np.packbits(bits).tobytes()


_CHUNK = 256
_SIZE_COLUMNS = (("width", "height"), ("original_width", "original_height"))


@dataclass(frozen=True)
class ScoreConfig:
    """What pass 1 computes; its fingerprint names the work folder, so changing it never mixes results."""

    needs: frozenset[str]
    model: str
    embeddings: str | None = None
    language_accuracy: str = "high"
    max_pixels: int = DecodeOptions().max_pixels
    max_bytes: int = DecodeOptions().max_bytes

    def fingerprint(self, pool: Pool) -> str:
        data = {**asdict(self), "needs": sorted(self.needs), "pool": str(pool.location.resolve()),
                "format": pool.format, "shard_size": pool.options.shard_size}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def scores_path(workdir: Path, shard: Shard) -> Path:
    return workdir / f"scores-{shard.index:05d}.parquet"


@dataclass
class _Resources:
    """Encoder and precomputed vectors, loaded on first use and kept for every shard of this process."""

    config: ScoreConfig
    threads: int | None = None
    _encoder: Encoder | None = None
    _precomputed: Precomputed | None = None

    def encoder(self) -> Encoder:
        if self._encoder is None:
            from clipdex.encoders.registry import load_encoder

            self._encoder = load_encoder(self.config.model, threads=self.threads)
        return self._encoder

    def precomputed(self) -> Precomputed | None:
        if self.config.embeddings and self._precomputed is None:
            self._precomputed = open_precomputed(self.config.embeddings)
        return self._precomputed


@dataclass
class _Row:
    sample: Sample
    caption: str | None = None
    caption_error: str | None = None
    error: str | None = None
    data: bytes | None = None
    width: int = -1
    height: int = -1
    blank_std: float = math.nan
    phash: bytes | None = None
    sha256: str | None = None
    pixels: np.ndarray | None = None
    image_vec: np.ndarray | None = None
    text_vec: np.ndarray | None = None


def score_shard(pool: Pool, shard: Shard, config: ScoreConfig, workdir: Path,
                resources: _Resources | None = None) -> int:
    """Score one shard and write its files atomically; returns the number of samples.

    Raises:
        SourceError: the shard cannot be read at all (e.g. a truncated tar).
    """
    res = resources or _Resources(config)
    needs = config.needs
    reads_images = bool(needs & {"bytes", "size", "pixels", "image_emb"})
    rows: list[_Row] = []
    for chunk in _batched(pool.read(shard, with_images=reads_images), _CHUNK):
        part = [_caption_row(s) for s in chunk]
        _fill_precomputed(part, res, needs)
        if reads_images:
            _inspect_images(part, res, needs)
        if "text_emb" in needs:
            _encode_texts([r for r in part if r.caption is not None and r.text_vec is None], res)
        for r in part:
            r.data = r.pixels = None  # keep only scores in memory
        rows += part
    _write_shard(rows, shard, needs, workdir, res)
    return len(rows)


def _batched(items: Iterable[Sample], n: int) -> Iterator[list[Sample]]:
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk


def _caption_row(sample: Sample) -> _Row:
    row = _Row(sample)
    row.error = sample.error
    value = sample.caption
    if sample.caption_error:
        row.caption_error = sample.caption_error
    elif value is None:
        row.caption_error = "no caption"
    elif not isinstance(value, str):
        row.caption_error = f"caption is not text ({type(value).__name__})"
    elif not value.strip():
        row.caption_error = "empty caption"
    else:
        row.caption = " ".join(value.split())
    return row


def _fill_precomputed(rows: list[_Row], res: _Resources, needs: frozenset[str]) -> None:
    pre = res.precomputed()
    if pre is None:
        return
    keys = [r.sample.key for r in rows]
    paths = [r.sample.image_path for r in rows]
    if "image_emb" in needs:
        for r, v in zip(rows, pre.images(keys, paths), strict=True):
            r.image_vec = v
    if "text_emb" in needs:
        with_text = [r for r in rows if r.caption is not None]
        found = pre.texts([r.sample.key for r in with_text], [r.sample.image_path for r in with_text],
                          [r.caption or "" for r in with_text])
        for r, v in zip(with_text, found, strict=True):
            r.text_vec = v


def _size_from_columns(sample: Sample) -> tuple[int, int] | None:
    for w_col, h_col in _SIZE_COLUMNS:
        try:
            return int(sample.columns[w_col]), int(sample.columns[h_col])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _inspect_images(rows: list[_Row], res: _Resources, needs: frozenset[str]) -> None:
    """Read bytes, hash, decode, measure and preprocess the images this chunk needs."""
    todo = []
    for r in rows:
        known_size = _size_from_columns(r.sample) if "size" in needs else None
        if known_size:
            r.width, r.height = known_size
        must_decode = ("pixels" in needs or ("size" in needs and not known_size)
                       or ("image_emb" in needs and r.image_vec is None))
        if not (must_decode or "bytes" in needs):
            continue
        r.data = _read_bytes(r, res.config.max_bytes)
        if r.data is None:
            continue
        if "bytes" in needs:
            r.sha256 = hashlib.sha256(r.data).hexdigest()
        if must_decode:
            todo.append(r)
    if not todo:
        return
    options = DecodeOptions(max_pixels=res.config.max_pixels, max_bytes=res.config.max_bytes)
    wants_pixels = "image_emb" in needs
    encoder = res.encoder() if wants_pixels and any(r.image_vec is None for r in todo) else None

    wants_hash = "pixels" in needs

    def inspect(im: Image.Image) -> tuple[int, int, float, bytes | None, np.ndarray | None]:
        small = np.asarray(im.resize((32, 32), Image.Resampling.BILINEAR), np.float32).reshape(-1, 3)
        pixels = encoder.preprocess(im) if encoder is not None else None
        phash = perceptual_hash(im) if wants_hash else None
        return im.width, im.height, float(small.std(axis=0).max()), phash, pixels

    # one pass of the shared loop: decode threads measure each image (full size) and preprocess it for the
    # encoder; each batch is encoded as soon as it is decoded
    for batch in decoded_batches(todo, lambda r: r.data or b"", encoder, options, batch_size=64,
                                 transform=inspect):
        for decoded in batch:
            r = decoded.item
            if decoded.error:
                r.error = decoded.error
                continue
            r.width, r.height, r.blank_std, r.phash, r.pixels = decoded.value
        if encoder is not None:
            pending = [d.item for d in batch if d.item.pixels is not None and d.item.image_vec is None]
            if pending:
                vectors = encoder.encode_pixels(np.stack([r.pixels for r in pending]))  # type: ignore[misc]
                for r, v in zip(pending, vectors, strict=True):
                    r.image_vec = v
                    r.pixels = None  # the batch's pixels are not needed any more


def _read_bytes(r: _Row, max_bytes: int) -> bytes | None:
    """The sample's image bytes (for hashing and decoding), or None with ``r.error`` set."""
    if r.sample.error:
        r.error = r.sample.error
        return None
    if r.sample.image_bytes is not None:
        if not r.sample.image_bytes:
            r.error = "empty file (0 bytes)"
            return None
        return r.sample.image_bytes
    if not r.sample.image_path:
        r.error = "no image in this sample"
        return None
    try:
        return read_image_bytes(r.sample.image_path, max_bytes)
    except DecodeError as e:
        r.error = str(e)
    except OSError as e:
        r.error = f"cannot read the image: {e.strerror or e}"
    return None


def _encode_texts(rows: list[_Row], res: _Resources) -> None:
    if not rows:
        return
    encoder = res.encoder()
    for start in range(0, len(rows), 256):
        batch = rows[start:start + 256]
        for r, v in zip(batch, encoder.encode_texts([r.caption or "" for r in batch]), strict=True):
            r.text_vec = v


def _write_shard(rows: list[_Row], shard: Shard, needs: frozenset[str], workdir: Path, res: _Resources) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {
        "key": [r.sample.key for r in rows],
        "shard": [shard.index] * len(rows),
        "image_ref": [r.sample.image_path or f"{shard.name}#{r.sample.key}" for r in rows],
        "caption": [r.caption for r in rows],
        "caption_error": [r.caption_error for r in rows],
        "error": [r.error for r in rows],
        "caption_words": [len(r.caption.split()) if r.caption else 0 for r in rows],
        "caption_chars": [len(r.caption) if r.caption else 0 for r in rows],
        "width": [r.width for r in rows],
        "height": [r.height for r in rows],
        "blank_std": [r.blank_std for r in rows],
        "sha256": [r.sha256 for r in rows],
        "phash": [r.phash.hex() if r.phash else None for r in rows],
    }
    if "language" in needs:
        found = iter(detect_languages([r.caption for r in rows if r.caption], res.config.language_accuracy))
        columns["language"] = [next(found) if r.caption else "" for r in rows]
    matrices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, attr in (("image", "image_vec"), ("text", "text_vec")):
        if f"{kind}_emb" not in needs:
            continue
        matrix, has = _stack([getattr(r, attr) for r in rows])
        matrices[kind] = (matrix, has)
        columns[f"has_{kind}_emb"] = has
        save_atomic(workdir / f"{kind}-{shard.index:05d}.npy", npy_bytes(matrix))
    if "image" in matrices and "text" in matrices:
        (images, has_image), (texts, has_text) = matrices["image"], matrices["text"]
        columns["clip_score"] = np.where(has_image & has_text, np.einsum("ij,ij->i", images, texts), np.nan)
    meta_names = sorted({k for r in rows for k in r.sample.columns})
    for name in meta_names:
        values = [r.sample.columns.get(name) for r in rows]
        columns[f"col.{name}"] = text_if_mixed(values)
    target = scores_path(workdir, shard)
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, target)


def _stack(vectors: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """(float32 matrix with zero rows where missing, mask of present rows)."""
    has = np.array([v is not None for v in vectors], bool)
    dim = next((len(v) for v in vectors if v is not None), 0)
    matrix = np.zeros((len(vectors), dim), np.float32)
    if has.any():
        matrix[has] = np.stack([v for v in vectors if v is not None])
    return matrix, has


ProgressFn = Callable[[int, int, int], None]


@dataclass
class ScoreReport:
    shards: int = 0
    scored_now: int = 0
    reused: int = 0
    samples_scored: int = 0
    failed_shards: dict[str, str] = field(default_factory=dict)


def score_pool(pool: Pool, config: ScoreConfig, workdir: Path, workers: int = 1,
               progress: ProgressFn | None = None, encoder: Encoder | None = None,
               ray: RayOptions | None = None) -> ScoreReport:
    """Run pass 1 over every shard not already scored in ``workdir``.

    With ``ray`` the shards go to Ray actors (see :mod:`clipdex.scale.ray_engine`); with ``workers > 1``
    to that many local processes, each with its own encoder using its share of the cores; otherwise
    they are scored here (``encoder`` serves this path). A shard that cannot be read is listed in
    ``failed_shards``; the others carry on.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    shards = pool.shards()
    report = ScoreReport(shards=len(shards))
    todo = [s.index for s in shards if not scores_path(workdir, s).exists()]
    report.reused = len(shards) - len(todo)
    names = {s.index: s.name for s in shards}
    if progress:
        progress(report.reused, len(shards), 0)

    def record(result: ShardResult) -> None:
        if result.error:
            report.failed_shards[names[result.shard]] = result.error
        else:
            report.samples_scored += result.samples
            report.scored_now += 1
        if progress:
            progress(report.reused + report.scored_now + len(report.failed_shards), len(shards),
                     len(report.failed_shards))

    worker = ScoreWorker(str(pool.location), pool.options, config, str(workdir))
    if ray is not None:
        run_shards(todo, worker, ray, record)
    elif workers <= 1 or len(todo) <= 1:
        worker.setup(encoder=encoder)
        for index in todo:
            record(worker(index))
    else:
        threads = max(1, (os.cpu_count() or 2) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
            for future in as_completed([ex.submit(_score_in_process, worker, threads, i) for i in todo]):
                record(future.result())
    return report


@dataclass
class ScoreWorker:
    """Scores one shard of a pool into the work folder; picklable until ``setup`` (the state a process
    or a Ray actor keeps between shards: the pool's shard list, the encoder, precomputed vectors)."""

    pool_location: str
    options: PoolOptions
    config: ScoreConfig
    workdir: str

    def setup(self, threads: int | None = None, encoder: Encoder | None = None) -> None:
        self._pool = open_pool(self.pool_location, self.options)
        self._shards = {s.index: s for s in self._pool.shards()}
        self._resources = _Resources(self.config, threads=threads, _encoder=encoder)

    def __call__(self, index: int) -> ShardResult:
        try:
            return ShardResult(index, score_shard(self._pool, self._shards[index], self.config,
                                                  Path(self.workdir), self._resources))
        except SourceError as e:
            return ShardResult(index, error=str(e))


_PROCESS_WORKER: list[ScoreWorker] = []  # the set-up worker of this process, kept between shards


def _score_in_process(worker: ScoreWorker, threads: int, index: int) -> ShardResult:
    if not _PROCESS_WORKER or _PROCESS_WORKER[0] != worker:
        worker.setup(threads)
        _PROCESS_WORKER[:] = [worker]
    return _PROCESS_WORKER[0](index)
