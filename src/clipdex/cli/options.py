"""Option types the CLI's topic modules share (pools, engines)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["AddressOpt", "CaptionColOpt", "EmbedEngineOpt", "EngineOpt", "GpusOpt", "ImageColOpt", "KeyColOpt",
           "NumWorkersOpt"]

EngineOpt = Annotated[str, typer.Option(help="local (this process, or --workers processes) or ray (Ray Data actors)")]
EmbedEngineOpt = Annotated[str, typer.Option(help="local (this process) or ray (Ray Data actors)")]
AddressOpt = Annotated[str | None, typer.Option(
    help="Ray: the cluster to join (auto, or ray://host:10001); default: start Ray on this machine")]
NumWorkersOpt = Annotated[int, typer.Option(min=1, help="Ray: actors, each with its own encoder")]
GpusOpt = Annotated[float, typer.Option(min=0, help="Ray: GPUs reserved per actor")]
ImageColOpt = Annotated[str | None, typer.Option(help="Table column with the image path")]
CaptionColOpt = Annotated[str | None, typer.Option(help="Table column with the caption")]
KeyColOpt = Annotated[str | None, typer.Option(help="Table column with a unique sample key")]
