"""``clipdex synth``: the synthetic world as a dataset on disk."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from clipdex.cli.output import JsonOpt, emit, progress_printer

__all__ = ["synth"]


def synth(
    out: Annotated[Path, typer.Option(help="Folder to write (must be new or empty)")],
    kind: Annotated[str, typer.Option(help="scenes, composed (CIRR triplets) or noisy-pool")] = "scenes",
    n: Annotated[int, typer.Option(min=1, help="Number of images")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="scenes: folder, parquet, webdataset, karpathy; "
                                     "composed: cirr; noisy-pool: parquet, webdataset, folder")] = "folder",
    size: Annotated[int, typer.Option(help="Image size in pixels")] = 64,
    words: Annotated[float, typer.Option(help="Share of scenes with a rendered word on a sign")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Write a synthetic image-caption dataset (deterministic from --seed)."""
    from clipdex.synth import WorldConfig, write_dataset

    report = write_dataset(kind, out, n, seed, fmt, size, world=WorldConfig(p_word=words),
                           progress=progress_printer("synth"))
    emit(asdict(report), as_json, f"wrote {report.images} images, {report.captions} captions to {report.out}")
