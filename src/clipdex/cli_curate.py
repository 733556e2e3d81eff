"""CLI for curation: ``clipdex curate`` (a thin wrapper over :func:`clipdex.curate.curate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from clipdex.cli import JsonOpt, _emit, _progress_printer, app

EngineOpt = Annotated[str, typer.Option(help="local (this process, or --workers processes) or ray (Ray Data actors)")]
AddressOpt = Annotated[str | None, typer.Option(
    help="Ray: the cluster to join (auto, or ray://host:10001); default: start Ray on this machine")]
NumWorkersOpt = Annotated[int, typer.Option(min=1, help="Ray: actors, each with its own encoder")]
GpusOpt = Annotated[float, typer.Option(min=0, help="Ray: GPUs reserved per actor")]
ImageColOpt = Annotated[str | None, typer.Option(help="Table column with the image path")]
CaptionColOpt = Annotated[str | None, typer.Option(help="Table column with the caption")]
KeyColOpt = Annotated[str | None, typer.Option(help="Table column with a unique sample key")]


def ray_options(engine: str, address: str | None, num_workers: int, gpus_per_worker: float) -> Any:
    """The RayOptions for ``--engine ray``, ``None`` for ``local``.

    Raises:
        ClipdexError: an unknown engine, or Ray-only options with the local engine.
    """
    from clipdex.errors import ClipdexError
    from clipdex.scale.ray_engine import RayOptions

    if engine not in ("local", "ray"):
        raise ClipdexError(f"unknown engine {engine!r}: use local or ray")
    if engine == "local":
        if address or num_workers != 1 or gpus_per_worker:
            raise ClipdexError("--address, --num-workers and --gpus-per-worker need --engine ray")
        return None
    return RayOptions(address=address, num_workers=num_workers, gpus_per_worker=gpus_per_worker)


@app.command("curate")
def curate_cmd(
    pool: Annotated[str, typer.Argument(help="A .parquet/.csv/.tsv table, webdataset .tar shards (a folder or one "
                                             "tar), or a folder of images with .txt captions")],
    out: Annotated[Path, typer.Option(help="Output folder: kept samples, decisions.parquet, report.html")],
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", "-f", help="NAME[:k=v,...] in order, e.g. basic, clip-score:top=0.3, dedup:cos=0.95")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with [[filter]] tables and options")] = None,
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
    from clipdex.curate import CurateOptions, PoolOptions, curate, load_config

    specs: list[Any] = []
    settings: dict[str, Any] = {}
    if config:
        specs, settings = load_config(config)
    specs += filters or []
    pool_options = PoolOptions(image_col=image_col, caption_col=caption_col, key_col=key_col, image_root=image_root,
                               shard_size=shard_size or settings.get("shard_size", PoolOptions().shard_size))
    options = CurateOptions(
        model=model or settings.get("model", CurateOptions().model),
        embeddings=embeddings or settings.get("embeddings"),
        workers=workers or settings.get("workers", 1),
        ray=ray_options(engine, address, num_workers, gpus_per_worker),
        copy_images=copy_images or settings.get("copy_images", False),
        language_accuracy=settings.get("language_accuracy", "high"), report=report, pool=pool_options)
    printers: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        printer = printers.setdefault(stage, _progress_printer(f"{stage} shards"))
        printer(done, total, 0)

    result = curate(pool, out, specs, options, progress=progress)
    lines = [f"{result.kept:,} of {result.samples:,} samples kept ({result.kept / max(result.samples, 1):.1%}) "
             f"in {result.seconds:.1f} s -> {result.out}"]
    lines += [f"  {s.filter:<40} in {s.reached:>9,}  rejected {s.rejected:>9,}  out {s.kept:>9,}"
              for s in result.steps]
    lines += [f"  unreadable shard {name}: {why}" for name, why in result.failed_shards.items()]
    if result.report_html:
        lines.append(f"report: {result.report_html}")
    _emit(result.to_dict(), as_json, "\n".join(lines))


@app.command("embed")
def embed_cmd(
    pool: Annotated[str, typer.Argument(help="A table, webdataset .tar shards, or a folder with .txt captions")],
    out: Annotated[Path, typer.Option(help="Folder for img_emb/, text_emb/, metadata/ (clip-retrieval's layout)")],
    model: Annotated[str | None, typer.Option(help="Encoder spec (default: the built-in model)")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Rows or files per part (tables, folders)")] = 10_000,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    image_col: ImageColOpt = None,
    caption_col: CaptionColOpt = None,
    key_col: KeyColOpt = None,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    num_workers: NumWorkersOpt = 1,
    gpus_per_worker: GpusOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Embed a pool into clip-retrieval's layout (resumable: run the same command again)."""
    from dataclasses import asdict

    from clipdex.curate import PoolOptions
    from clipdex.encoders import load_encoder
    from clipdex.encoders.registry import DEFAULT_SPEC
    from clipdex.scale.embed import embed_pool

    options = PoolOptions(image_col=image_col, caption_col=caption_col, key_col=key_col, shard_size=shard_size)
    report = embed_pool(pool, out, load_encoder(model or DEFAULT_SPEC), options, batch_size,
                        progress=_progress_printer("embed parts"),
                        ray=ray_options(engine, address, num_workers, gpus_per_worker))
    _emit(asdict(report), as_json, f"embedded {report.samples:,} samples ({report.failed:,} failed) in "
          f"{report.parts_done_now} parts, {report.parts_reused} already done -> {report.out}"
          + "".join(f"\n  unreadable shard {name}: {why}" for name, why in report.failed_shards.items()))


@app.command("import-embeddings")
def import_embeddings_cmd(
    emb: Annotated[Path, typer.Argument(help="An embedding folder (img_emb/ + metadata/), e.g. from clipdex embed")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder (created if new)")],
    model: Annotated[str | None, typer.Option(
        help="The encoder the vectors were made with (default: the one clipdex embed recorded)")] = None,
    skip_bad_parts: Annotated[bool, typer.Option(help="Leave out unreadable parts instead of stopping")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store an embedding folder's vectors, captions and metadata in a collection (no model is run)."""
    from clipdex.scale.embed import import_embeddings

    report = import_embeddings(emb, collection, model, skip_bad_parts, progress=_progress_printer("import parts"))
    _emit(report, as_json, f"imported {report['items']:,} items from {report['parts']} part(s) into {collection}"
          + "".join(f"\n  skipped {name}: {why}" for name, why in report["skipped_parts"].items()))


@app.command("build-index")
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
    as_json: JsonOpt = False,
) -> None:
    """Build a FAISS index that fits a memory budget; searches re-rank exactly from the float16 vectors."""
    from clipdex.scale.index import build_index, parse_size

    bar = _progress_printer("index parts")
    manifest = build_index(emb, out, parse_size(memory_budget), factory, shards, skip_bad_parts,
                           progress=lambda done, total: bar(done, total, 0), target_recall=target_recall)
    skipped = manifest["skipped_parts"]
    calibration = manifest["calibration"]
    _emit(manifest, as_json, f"{manifest['factory']} over {manifest['vectors']:,} vectors in "
          f"{len(manifest['shards'])} file(s): {manifest['index_bytes']:,} bytes, built in "
          f"{manifest['build_seconds']} s -> {out}\n  recall@10 "
          f"{calibration['recall_at_depth'][str(manifest['rerank'])]:.3f} re-ranking {manifest['rerank']} "
          f"candidates (measured on {calibration['queries']} sampled vectors)"
          + (f"\n  {len(skipped)} part(s) skipped:" if skipped else "")
          + "".join(f"\n  {name}: {why}" for name, why in skipped.items()))


@app.command("merge-index")
def merge_index_cmd(
    index: Annotated[Path, typer.Argument(help="An index folder built with --shards")],
    as_json: JsonOpt = False,
) -> None:
    """Join the shards of an IVF index into one index.faiss."""
    from clipdex.scale.index import merge_index

    manifest = merge_index(index)
    _emit(manifest, as_json, f"merged into {index / 'index.faiss'}: {manifest['vectors']:,} vectors, "
          f"{manifest['index_bytes']:,} bytes")


@app.command("search-index")
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
    from clipdex.encoders import load_encoder
    from clipdex.encoders.registry import DEFAULT_SPEC
    from clipdex.errors import BadQueryError
    from clipdex.scale.index import EmbeddingIndex

    if not text.strip():
        raise BadQueryError("empty query: the text is blank")
    opened = EmbeddingIndex(index)
    encoder = load_encoder(model or opened.manifest.get("model") or DEFAULT_SPEC)
    if encoder.dim != opened.manifest["dim"]:
        raise BadQueryError(f"{encoder.spec} makes {encoder.dim}-d vectors but the index holds "
                            f"{opened.manifest['dim']}-d ones: pass the --model the embeddings were made with")
    hits = opened.search(encoder.encode_texts([text.strip()])[0], k, rerank)
    rows = [f"{i + 1:>3}  {h['score']:.4f}  {h.get('image_path') or h.get('key')}  {h.get('caption') or ''}"
            for i, h in enumerate(hits)]
    _emit({"query": text, "hits": hits}, as_json, "\n".join(rows) if rows else "no results")
