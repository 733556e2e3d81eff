"""The curation pipeline: score every shard (pass 1), decide over the whole pool (pass 2), write.

``OUT`` receives the kept samples in the pool's own format, ``decisions.parquet``
(one row per sample: every score, kept or not, the first filter that rejected
it and why) and ``report.html``. ``OUT/.curate/`` holds the resumable work:
a killed run started again skips every shard already scored or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.curate.context import Context
from clipdex.curate.filters import Filter, parse_filter
from clipdex.curate.outcome import CurateReport, Step
from clipdex.curate.report import write_report
from clipdex.curate.score import ScoreConfig, score_pool, scores_path
from clipdex.encoders.base import Encoder
from clipdex.encoders.registry import DEFAULT_SPEC
from clipdex.errors import ClipdexError, FilterSpecError, MissingExtraError
from clipdex.media.pools import Pool, PoolOptions, Shard, open_pool
from clipdex.scale.ray_engine import RayOptions

__all__ = ["CurateOptions", "CurateReport", "Step", "curate", "load_config"]

WORK_DIR = ".curate"
INPUT_STEP = "input"  # the implicit first step: samples whose image or caption could not be read


@dataclass
class CurateOptions:
    """How a run computes scores and writes its output (filters are passed separately)."""

    model: str = DEFAULT_SPEC
    embeddings: str | None = None
    workers: int = 1
    ray: RayOptions | None = None  # score the shards on Ray instead of local processes
    copy_images: bool = False
    language_accuracy: str = "high"
    report: bool = True
    pool: PoolOptions = field(default_factory=PoolOptions)


ProgressFn = Callable[[str, int, int], None]


def load_config(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read a TOML config: ``[[filter]]`` tables (``name`` + parameters) and top-level options.

    Raises:
        ClipdexError: unreadable TOML or no filters.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise FilterSpecError(f"cannot read config {path}: {e}") from e
    filters = data.pop("filter", [])
    if not isinstance(filters, list) or not all(isinstance(f, dict) and "name" in f for f in filters):
        raise FilterSpecError(f"{path}: filters are [[filter]] tables, each with a name")
    unknown = set(data) - {"model", "embeddings", "workers", "copy_images", "shard_size", "language_accuracy"}
    if unknown:
        raise FilterSpecError(f"{path}: unknown option(s) {', '.join(sorted(unknown))}")
    return filters, data


def resolve_options(config: str | os.PathLike[str] | None, filters: Sequence[str], pool: PoolOptions = PoolOptions(),
                    *, model: str | None = None, embeddings: str | None = None, workers: int | None = None,
                    shard_size: int | None = None, copy_images: bool = False, report: bool = True,
                    ray: RayOptions | None = None) -> tuple[list[str | dict[str, Any]], CurateOptions]:
    """The filters and options of a run from a TOML ``config`` (optional) and explicit settings.

    The config's ``[[filter]]`` tables come first, then ``filters``; an explicit
    setting (not None / not False) wins over the config's, which wins over the default.
    ``shard_size`` (rows or files per shard) replaces ``pool``'s when given, else the config's does.

    Raises:
        FilterSpecError: the config cannot be read or names unknown options.
    """
    specs: list[str | dict[str, Any]] = []
    settings: dict[str, Any] = {}
    if config:
        table_specs, settings = load_config(config)
        specs += table_specs
    specs += list(filters)
    shard_size = shard_size or settings.get("shard_size", pool.shard_size)
    options = CurateOptions(
        model=model or settings.get("model", CurateOptions().model),
        embeddings=embeddings or settings.get("embeddings"),
        workers=workers or settings.get("workers", 1), ray=ray,
        copy_images=copy_images or settings.get("copy_images", False),
        language_accuracy=settings.get("language_accuracy", "high"), report=report,
        pool=replace(pool, shard_size=shard_size))
    return specs, options


def curate(pool_location: str | os.PathLike[str], out: str | os.PathLike[str],
           filters: Sequence[str | dict[str, Any] | Filter], options: CurateOptions = CurateOptions(),
           progress: ProgressFn | None = None, encoder: Encoder | None = None) -> CurateReport:
    """Curate a pool into ``out`` with ``filters`` applied in order.

    Args:
        pool_location: a table, webdataset tar shards or a folder (see :func:`open_pool`).
        out: output folder (new, or the output of an earlier run to resume).
        filters: filter specs (``"clip-score:top=0.3"``), TOML tables or :class:`Filter` objects.
        options: model, precomputed embeddings, workers, output options.
        progress: called with (stage, done, total).
        encoder: an already loaded encoder to use in this process (else ``options.model`` is loaded).

    Raises:
        ClipdexError: bad filters, an unreadable pool, or ``out`` holding something else.
    """
    started = time.perf_counter()
    chain = [f if isinstance(f, Filter) else parse_filter(f) for f in filters]
    if not chain:
        raise FilterSpecError("no filters given: pass --filter NAME[:k=v,...] or --config FILE")
    pool = open_pool(pool_location, options.pool)
    needs = frozenset().union(*(f.needs() for f in chain))
    _check_extras(needs, options.report)
    out = _prepare_out(Path(out), pool)
    config = ScoreConfig(needs, options.model if encoder is None else encoder.spec, options.embeddings,
                         options.language_accuracy)
    workdir = out / WORK_DIR / config.fingerprint(pool)
    stages: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        stages[name] = round(now - clock, 2)
        clock = now

    scored = score_pool(pool, config, workdir, options.workers,
                        (lambda d, t, _f: progress("score", d, t)) if progress else None, encoder, options.ray)
    lap("score")
    shards = [s for s in pool.shards() if s.name not in scored.failed_shards]
    ctx = _context(workdir, shards, config, encoder)
    lap("load")
    steps, rejected_by, reasons, alive = _decide(ctx, chain, needs)
    nothing_kept = _why_nothing_kept(ctx, chain, steps, rejected_by) if ctx.n and not alive.any() else None
    lap("decide")
    decisions = _write_decisions(out, ctx, rejected_by, reasons, alive)
    _write_output(out, pool, shards, ctx, alive, options.copy_images, workdir, progress)
    lap("write")
    report = CurateReport(
        pool=str(pool.location), format=pool.format, out=str(out), model=config.model, samples=ctx.n,
        kept=int(alive.sum()), steps=steps, shards=scored.shards, shards_scored_now=scored.scored_now,
        shards_reused=scored.reused, failed_shards=scored.failed_shards, seconds=time.perf_counter() - started,
        decisions=str(decisions), report_html=None, stage_seconds=stages, nothing_kept=nothing_kept)
    if options.report:

        report.report_html = str(write_report(out, pool, ctx, report, rejected_by, reasons, alive))
        lap("report")
        report.seconds = time.perf_counter() - started
    _write_json(out / WORK_DIR / "last_run.json", report.to_dict())
    return report


def _check_extras(needs: frozenset[str], report: bool) -> None:
    """Fail before any work when an optional package a step needs is missing."""
    import importlib.util

    wanted = ([("lingua", "language identification")] if "language" in needs else []) + \
        ([("matplotlib", "report.html (or pass --no-report)")] if report else [])
    for module, what in wanted:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(f"{what} needs {module}: pip install 'clipdex[curate]'")


def _prepare_out(out: Path, pool: Pool) -> Path:
    if out.resolve() == pool.location.resolve() or pool.location.resolve() in out.resolve().parents:
        raise ClipdexError(f"--out {out} is inside the pool; choose a folder outside it")
    if out.exists() and any(out.iterdir()) and not (out / WORK_DIR).is_dir():
        raise ClipdexError(f"{out} is not empty and is not the output of an earlier curate run; choose a new --out")
    (out / WORK_DIR).mkdir(parents=True, exist_ok=True)
    return out


def _context(workdir: Path, shards: list[Shard], config: ScoreConfig, encoder: Encoder | None) -> Context:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(scores_path(workdir, s)) for s in shards]
    if not tables:
        raise ClipdexError("no shard of the pool could be read")
    table = pa.concat_tables(tables, promote_options="permissive")
    keys = table.column("key")
    if len(keys.unique()) != len(keys):
        raise ClipdexError("sample keys are not unique in this pool; pass --key-col with a unique column "
                           "(or none, to key table rows by position)")
    loaded: list[Encoder] = [encoder] if encoder is not None else []

    def get_encoder() -> Encoder:
        if not loaded:
            from clipdex.encoders.registry import load_encoder

            loaded.append(load_encoder(config.model))
        return loaded[0]

    return Context(table, workdir, [s.index for s in shards], [t.num_rows for t in tables], get_encoder)


def _decide(ctx: Context, chain: list[Filter], needs: frozenset[str]
            ) -> tuple[list[Step], np.ndarray, np.ndarray, np.ndarray]:
    """Apply the filters in order; each sees only the survivors of the ones before."""
    alive = np.ones(ctx.n, bool)
    rejected_by = np.full(ctx.n, None, dtype=object)
    reasons = np.full(ctx.n, None, dtype=object)
    steps: list[Step] = []
    caption_error, image_error = ctx.col("caption_error"), ctx.col("error")
    bad = np.array([c is not None for c in caption_error]) | np.array([e is not None for e in image_error])
    _record(steps, INPUT_STEP, np.flatnonzero(bad), [caption_error[i] or f"image: {image_error[i]}"
                                                     for i in np.flatnonzero(bad)], alive, rejected_by, reasons)
    for f in chain:
        started = time.perf_counter()
        rows, why = f.apply(ctx, alive.copy())
        _record(steps, f.describe(), rows, why, alive, rejected_by, reasons)
        steps[-1].seconds = round(time.perf_counter() - started, 3)
    return steps, rejected_by, reasons, alive


def _why_nothing_kept(ctx: Context, chain: list[Filter], steps: list[Step], rejected_by: np.ndarray) -> str:
    """Why a run kept nothing: the step that removed the most, and a value of it that would keep some."""
    worst = max(range(len(steps)), key=lambda i: steps[i].rejected)
    step = steps[worst]
    text = (f"the filters kept none of the {ctx.n:,} samples: {step.filter} removed the most ({step.rejected:,} of the "
            f"{step.reached:,} that reached it)")
    if worst == 0:
        return text + "; their images or captions could not be read (decisions.parquet says why, row by row)"
    later = {s.filter for s in steps[worst:]}
    reached = np.array([r is None or r in later for r in rejected_by], bool)
    hint = chain[worst - 1].loosen(ctx, reached)
    return text + (f"; {hint}" if hint else "; loosen it or drop it")


def _record(steps: list[Step], name: str, rows: np.ndarray, why: list[str], alive: np.ndarray,
            rejected_by: np.ndarray, reasons: np.ndarray) -> None:
    reached = int(alive.sum())
    if len(rows) and not alive[rows].all():
        raise AssertionError(f"filter {name} rejected a sample that had already been rejected")
    rejected_by[rows] = name
    reasons[rows] = np.asarray(why, dtype=object) if len(why) else reasons[rows]
    alive[rows] = False
    steps.append(Step(name, reached, len(rows), reached - len(rows)))


def _write_decisions(out: Path, ctx: Context, rejected_by: np.ndarray, reasons: np.ndarray,
                     alive: np.ndarray) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    hidden = {"image_ref"}
    table = ctx.table.select([c for c in ctx.table.column_names if not c.startswith("col.") and c not in hidden])
    table = table.append_column("kept", pa.array(alive))
    table = table.append_column("rejected_by", pa.array(list(rejected_by), pa.string()))
    table = table.append_column("reason", pa.array(list(reasons), pa.string()))
    for name, values in ctx.extra.items():
        table = table.append_column(name, pa.array(list(values) if values.dtype == object else values))
    target = out / "decisions.parquet"
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, target)
    return target


def _write_output(out: Path, pool: Pool, shards: list[Shard], ctx: Context, alive: np.ndarray,
                  copy_images: bool, workdir: Path, progress: ProgressFn | None) -> None:
    keys = ctx.col("key")
    kept_keys = keys[alive]
    digest = hashlib.sha256("\0".join(map(str, kept_keys)).encode() + bytes([copy_images])).hexdigest()[:16]
    marks = workdir / f"written-{digest}"
    if not marks.exists():
        _clear_output(out)  # another decision set was written here before: none of it may linger
        marks.mkdir()
    for position, shard in enumerate(shards):
        mark = marks / f"{shard.index:05d}"
        if not mark.exists():
            lo, hi = ctx.offsets[position], ctx.offsets[position + 1]
            keep = {str(k) for k in keys[lo:hi][alive[lo:hi]]}
            pool.write(out, shard, keep, copy_images)
            mark.touch()
        if progress:
            progress("write", position + 1, len(shards))
    pool.finish(out, shards)


def _clear_output(out: Path) -> None:
    """Remove earlier kept samples from ``out`` (it is known to be a curate output: it has the work folder)."""
    import shutil

    for entry in out.iterdir():
        if entry.name in (WORK_DIR, "decisions.parquet"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for stale in (out / WORK_DIR).glob("*/written-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)

