"""clip-retrieval embedding folders: embed, import-embeddings, build-index, merge-index, search-index."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from clipdex.cli.options import (
    AddressOpt,
    CaptionColOpt,
    EmbedEngineOpt,
    GpusOpt,
    ImageColOpt,
    KeyColOpt,
    NumWorkersOpt,
)
from clipdex.cli.output import JsonOpt, emit, progress_printer
from clipdex.errors import ClipdexError

__all__ = ["build_index_cmd", "embed_cmd", "import_embeddings_cmd", "merge_index_cmd", "search_index_cmd"]


def embed_cmd(
    pool: Annotated[str, typer.Argument(help="A table, webdataset .tar shards, or a folder with .txt captions")],
    out: Annotated[Path, typer.Option(help="Folder for img_emb/, text_emb/, metadata/ (clip-retrieval's layout)")],
    model: Annotated[str | None, typer.Option(help="Encoder spec (default: the built-in model)")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Rows or files per part (tables, folders)")] = 10_000,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    image_col: ImageColOpt = None,
    caption_col: CaptionColOpt = None,
    key_col: KeyColOpt = None,
    engine: EmbedEngineOpt = "local",
    address: AddressOpt = None,
    num_workers: NumWorkersOpt = 1,
    gpus_per_worker: GpusOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Embed a pool into clip-retrieval's layout (resumable: run the same command again)."""
    from clipdex.embeddings.embed import embed_pool
    from clipdex.encoders import DEFAULT_SPEC, load_encoder
    from clipdex.media.pools import PoolOptions
    from clipdex.scale.ray_engine import engine_options, ray_runner

    ray = engine_options(engine, address, num_workers, gpus_per_worker)
    options = PoolOptions(image_col=image_col, caption_col=caption_col, key_col=key_col, shard_size=shard_size)
    report = embed_pool(pool, out, load_encoder(model or DEFAULT_SPEC), options, batch_size,
                        progress=progress_printer("embed parts"), runner=ray_runner(ray) if ray else None)
    emit(asdict(report), as_json, f"embedded {report.samples:,} samples ({report.failed:,} failed) in "
          f"{report.parts_done_now} parts, {report.parts_reused} already done -> {report.out}"
          + "".join(f"\n  unreadable shard {name}: {why}" for name, why in report.failed_shards.items()))


def import_embeddings_cmd(
    emb: Annotated[Path, typer.Argument(help="An embedding folder (img_emb/ + metadata/), e.g. from clipdex embed")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder (created if new)")],
    model: Annotated[str | None, typer.Option(
        help="The encoder the vectors were made with (default: the one clipdex embed recorded)")] = None,
    skip_bad_parts: Annotated[bool, typer.Option(help="Leave out unreadable parts instead of stopping")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store an embedding folder's vectors, captions and metadata in a collection (no model is run)."""
    from clipdex.embeddings.embed import import_embeddings

    report = import_embeddings(emb, collection, model, skip_bad_parts, progress=progress_printer("import parts"))
    emit(report, as_json, f"imported {report['items']:,} items from {report['parts']} part(s) into {collection}"
          + "".join(f"\n  skipped {name}: {why}" for name, why in report["skipped_parts"].items()))


def build_index_cmd(
    emb: Annotated[Path, typer.Argument(help="An embedding folder (img_emb/ + metadata/), e.g. from clipdex embed")],
    out: Annotated[Path, typer.Option(help="Index folder to write")],
    memory_budget: Annotated[str, typer.Option(help="RAM the index may use at query time, e.g. 2G")] = "2G",
    factory: Annotated[str | None, typer.Option(help="A FAISS factory string instead of the planned one")] = None,
    shards: Annotated[int, typer.Option(min=1, help="Index files, each over a run of parts (searched together "
                                                    "or joined by merge-index)")] = 1,
    skip_bad_parts: Annotated[bool, typer.Option(help="Leave out missing, truncated or wrong-schema parts "
                                                      "(counted in the output) instead of stopping")] = False,
    target_recall: Annotated[float, typer.Option(
        min=0.1, max=1.0, help="Recall@10 the calibrated re-ranking depth must reach")] = 0.95,
    best_effort: Annotated[bool, typer.Option(
        "--best-effort", help="Accept an index that misses the recall target or the budget (warned, exit 0)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build a FAISS index that fits a memory budget; searches re-rank exactly from the float16 vectors.

    An index that misses its recall target or its budget is an error (exit 1) unless --best-effort.
    """
    from clipdex.embeddings.index import build_index, index_shortfalls, parse_size

    bar = progress_printer("index parts")
    manifest = build_index(emb, out, parse_size(memory_budget), factory, shards, skip_bad_parts,
                           progress=lambda done, total: bar(done, total, 0), target_recall=target_recall)
    skipped = manifest["skipped_parts"]
    calibration = manifest["calibration"]
    shortfalls = index_shortfalls(manifest)
    if best_effort:
        for problem in shortfalls:
            typer.echo(f"warning: {problem}", err=True)
    emit(manifest, as_json, f"{manifest['factory']} over {manifest['vectors']:,} vectors in "
          f"{len(manifest['shards'])} file(s): {manifest['index_bytes']:,} bytes, built in "
          f"{manifest['build_seconds']} s -> {out}\n  recall@10 "
          f"{calibration['recall_at_depth'][str(manifest['rerank'])]:.3f} re-ranking {manifest['rerank']} "
          f"candidates (measured on {calibration['queries']} sampled vectors)"
          + (f"\n  {len(skipped)} part(s) skipped:" if skipped else "")
          + "".join(f"\n  {name}: {why}" for name, why in skipped.items()))
    if shortfalls and not best_effort:
        raise ClipdexError(f"the index at {out} was written but not accepted: {'; '.join(shortfalls)}; "
                           "pass --best-effort to accept it")


def merge_index_cmd(
    index: Annotated[Path, typer.Argument(help="An index folder built with --shards")],
    as_json: JsonOpt = False,
) -> None:
    """Join the shards of an IVF index into one index.faiss."""
    from clipdex.embeddings.index import merge_index

    manifest = merge_index(index)
    emit(manifest, as_json, f"merged into {index / 'index.faiss'}: {manifest['vectors']:,} vectors, "
          f"{manifest['index_bytes']:,} bytes")


def search_index_cmd(
    index: Annotated[Path, typer.Argument(help="An index folder from clipdex build-index")],
    text: Annotated[str, typer.Argument(help="Text query")],
    model: Annotated[str | None, typer.Option(
        help="The encoder the embeddings were made with (default: the one clipdex embed recorded)")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Number of results")] = 10,
    rerank: Annotated[int | None, typer.Option(
        min=0, help="Candidates re-ranked exactly (0: none; default: the depth build-index calibrated)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search an index folder by text; results come with their metadata row."""
    from clipdex.embeddings.index import search_index_text

    hits = search_index_text(index, text, k, rerank, model)
    rows = [f"{i + 1:>3}  {h['score']:.4f}  {h.get('image_path') or h.get('key')}  {h.get('caption') or ''}"
            for i, h in enumerate(hits)]
    emit({"query": text, "hits": hits}, as_json, "\n".join(rows) if rows else "no results")
