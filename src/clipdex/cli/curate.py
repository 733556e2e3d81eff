"""``clipdex curate``: filter, deduplicate and decontaminate a pool (over :func:`clipdex.curate.curate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipdex.cli.options import (
    AddressOpt,
    CaptionColOpt,
    EngineOpt,
    GpusOpt,
    ImageColOpt,
    KeyColOpt,
    NumWorkersOpt,
)
from clipdex.cli.output import JsonOpt, emit, progress_printer
from clipdex.errors import ClipdexError

__all__ = ["curate_cmd"]


def curate_cmd(
    pool: Annotated[str, typer.Argument(help="A .parquet/.csv/.tsv table, webdataset .tar shards (a folder or one "
                                             "tar), or a folder of images with .txt captions")],
    out: Annotated[Path, typer.Option(help="Output folder: kept samples, decisions.parquet, report.html")],
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", "-f", help="NAME[:k=v,...] in order, e.g. basic, clip-score:top=0.3, dedup:cos=0.95")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with \\[\\[filter]] tables and options")] = None,
    model: Annotated[str | None, typer.Option(help="Encoder spec (default: the built-in model)")] = None,
    embeddings: Annotated[str | None, typer.Option(
        help="Reuse vectors from a clipdex collection or a clip-retrieval folder (img_emb/ + metadata/)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes scoring shards in parallel")] = None,
    shard_size: Annotated[int | None, typer.Option(min=1, help="Rows or files per shard (tables, folders)")] = None,
    copy_images: Annotated[bool, typer.Option(help="Tables: copy kept images into OUT/images")] = False,
    image_col: ImageColOpt = None,
    caption_col: CaptionColOpt = None,
    key_col: KeyColOpt = None,
    image_root: Annotated[str | None, typer.Option(help="Folder that relative image paths start from")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html")] = True,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    num_workers: NumWorkersOpt = 1,
    gpus_per_worker: GpusOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Filter, deduplicate and decontaminate an image-text pool; resumable (run the same command again)."""
    from clipdex.curate import PoolOptions, curate, resolve_options
    from clipdex.scale.ray_engine import engine_options

    pool_options = PoolOptions(image_col=image_col, caption_col=caption_col, key_col=key_col, image_root=image_root)
    specs, options = resolve_options(config, filters or [], pool_options, model=model, embeddings=embeddings,
                                     workers=workers, shard_size=shard_size, copy_images=copy_images, report=report,
                                     ray=engine_options(engine, address, num_workers, gpus_per_worker))
    printers: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        printer = printers.setdefault(stage, progress_printer(f"{stage} shards"))
        printer(done, total, 0)

    result = curate(pool, out, specs, options, progress=progress)
    lines = [f"{result.kept:,} of {result.samples:,} samples kept ({result.kept / max(result.samples, 1):.1%}) "
             f"in {result.seconds:.1f} s -> {result.out}"]
    lines += [f"  {s.filter:<40} in {s.reached:>9,}  rejected {s.rejected:>9,}  out {s.kept:>9,}"
              for s in result.steps]
    lines += [f"  unreadable shard {name}: {why}" for name, why in result.failed_shards.items()]
    if result.report_html:
        lines.append(f"report: {result.report_html}")
    emit(result.to_dict(), as_json, "\n".join(lines))
    if result.nothing_kept:  # a run that kept nothing did not do what it was asked
        raise ClipdexError(result.nothing_kept)
