"""Collection commands: index, search, heatmap, info, remove."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from clipdex.cli.output import JsonOpt, emit, printable, progress_printer
from clipdex.errors import ClipdexError, CollectionError, UsageError

__all__ = ["compact", "duplicates", "heatmap", "index", "info", "remove", "repair", "search", "verify"]

_SHOWN_FAILURES = 20  # failure lines printed after an index run; `info` lists them all


def index(
    source: Annotated[Path, typer.Argument(help="Folder, .csv/.tsv/.parquet/.jsonl table, or Karpathy .json")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder (created if missing)")],
    model: Annotated[str | None, typer.Option(help="Encoder spec (default: the collection's, or the built-in)")] = None,
    image_col: Annotated[str | None, typer.Option(help="Table column with image paths")] = None,
    caption_col: Annotated[str | None, typer.Option(help="Table column with captions")] = None,
    image_root: Annotated[str | None, typer.Option(help="Folder that relative image paths start from")] = None,
    allow_outside_root: Annotated[bool, typer.Option(
        help="Tables and JSON: also index files outside the image root (refused by default)")] = False,
    prune: Annotated[bool, typer.Option(help="Remove items of this source whose files are gone")] = False,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    workers: Annotated[int | None, typer.Option(min=1, help="Decode threads")] = None,
    backend: Annotated[str | None, typer.Option(
        help="Image tower runtime: auto (the fastest measured for this model on this CPU, once; default, or "
             "$CLIPDEX_BACKEND), ort-fp32, ort-int8, ort-qdq, ov-fp32, ov-bf16, ov-int8")] = None,
    precision: Annotated[str | None, typer.Option(hidden=True, help="Older name: fp32 or int8")] = None,
    index_factory: Annotated[str | None, typer.Option(help="FAISS factory string, or 'exact'")] = None,
    no_captions: Annotated[bool, typer.Option("--no-captions", help="Do not embed captions")] = False,
    ocr: Annotated[bool, typer.Option("--ocr", help="Read words in images (RapidOCR) for lexical search")] = False,
    regions: Annotated[str | None, typer.Option(
        help="Also embed overlapping crops on these grids, e.g. 2,3 (4 + 9 crops per image)")] = None,
    video_every: Annotated[float | None, typer.Option(
        help="Index videos of a folder as frames sampled every this many seconds")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another writer")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Embed new or changed images (and their captions) into a collection."""
    from clipdex.collection import index_into
    from clipdex.indexing import IndexOptions, parse_grids
    from clipdex.media import SourceOptions

    options = IndexOptions(batch_size=batch_size, workers=workers, prune=prune, wait=wait,
                           index_factory=index_factory, embed_captions=not no_captions, ocr=ocr,
                           regions=parse_grids(regions), video_every=video_every,
                           source=SourceOptions(image_col, caption_col, image_root, allow_outside_root))
    from clipdex.encoders.backends import default_backend

    chosen = backend or (None if precision else default_backend())
    report = index_into(collection, source, model, precision or "fp32", options,
                        progress=progress_printer("index"), backend=chosen,
                        notice=lambda line: typer.echo(line, err=True))
    data = {**asdict(report), "images_per_second": round(report.images_per_second, 2),
            "model_busy": round(report.model_busy, 3)}
    busy = f" (model busy {report.model_busy:.0%} of the time)" if report.added + report.updated else ""
    lines = [f"indexed {_counts(report)}; {report.captions} captions; "
             f"{report.images_per_second:.1f} img/s{busy}; backend {report.backend}; search: {report.index}"]
    if report.calibration_seconds:
        lines.append(f"  measured the backends for this model on this CPU in {report.calibration_seconds:.1f} s "
                     "(once; `clipdex models backends` shows the figures)")
    if report.gone:
        lines.append(f"  the files of {report.gone} items are gone: they no longer show in results; "
                     "index again with --prune to remove them")
    lines += [f"  failed: {e['path']}: {e['error']}" for e in report.errors[:_SHOWN_FAILURES]]
    if len(report.errors) > _SHOWN_FAILURES:
        lines.append(f"  ... and {len(report.errors) - _SHOWN_FAILURES} more (`clipdex info {collection}` lists them)")
    emit(data, as_json, "\n".join(lines))
    if report.failed and not report.added + report.updated:
        first = report.errors[0]
        raise ClipdexError(f"none of the {report.failed} images could be indexed "
                           f"(first: {first['path']}: {first['error']})")


def search(
    collection: Annotated[str | None, typer.Argument(
        help="Collection folder; or a photo folder (or nothing: this folder), indexed first, then searched")] = None,
    text: Annotated[str | None, typer.Argument(help="Text query")] = None,
    image: Annotated[Path | None, typer.Option("--image", "-i", help="Query image (image -> image)")] = None,
    captions: Annotated[bool, typer.Option("--captions", help="Rank stored captions (image/text -> text)")] = False,
    k: Annotated[int, typer.Option("-k", help="Number of results")] = 10,
    where: Annotated[list[str] | None, typer.Option(
        help="Metadata filter: key=value, key!=value, key>=value, key<value... (dates: taken>=2024-06-01); "
             "repeatable, all must hold")] = None,
    near: Annotated[str | None, typer.Option(help="LAT,LON,KM: photos taken within KM of a point (EXIF GPS)")] = None,
    min_score: Annotated[float | None, typer.Option(help="Drop results below this cosine")] = None,
    terms: Annotated[str | None, typer.Option(
        help="Weighted terms: '\"golden retriever\" + 2:query.jpg - \"leash\"' (text, image path, item:ID)")] = None,
    diversity: Annotated[float | None, typer.Option(help="MMR: weight of relevance in [0, 1] (1 = plain)")] = None,
    collapse: Annotated[float | None, typer.Option(help="Hide results within this cosine of a better one")] = None,
    item: Annotated[int | None, typer.Option("--item", help="A stored item as the query (more like this)")] = None,
    compose: Annotated[str | None, typer.Option(
        help="Composed query: TEXT modifies the --image/--item reference with sum, pdv or caption-fusion")] = None,
    regions: Annotated[bool, typer.Option("--regions", help="Also match region crops (index --regions)")] = False,
    rerank: Annotated[str | None, typer.Option(help="Second stage: prf (Rocchio) or model:SPEC")] = None,
    rerank_depth: Annotated[int, typer.Option(help="Candidates the second stage rescores")] = 100,
    mode: Annotated[str, typer.Option(help="dense, lexical (BM25 over captions, file names, OCR) or hybrid")] = "dense",
    fusion: Annotated[str, typer.Option(help="hybrid: rrf (reciprocal rank, k=60) or convex")] = "rrf",
    alpha: Annotated[float, typer.Option(help="convex fusion: dense share in [0, 1]")] = 0.5,
    paths_only: Annotated[bool, typer.Option("--paths-only", help="Print only the paths, one per line "
                                             "(for xargs, feh)")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="Show the top results' pictures in the terminal "
                                          "(kitty, iTerm2 / WezTerm, sixel; CLIPDEX_PREVIEW picks one)")] = False,
    no_index: Annotated[bool, typer.Option("--no-index", help="Photo folder: search what was indexed, "
                                           "without looking for new files first")] = False,
    model: Annotated[str | None, typer.Option(help="Photo folder: the model of its new collection")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search a collection, or a photo folder (default: this one), by text, by image, or by weighted terms.

    A photo folder (or no collection at all) is searched the way rclip does: its own collection, kept
    under CLIPDEX_DATA_DIR (default ~/.local/share/clipdex), is brought up to date first.
    """
    from clipdex.collection import Collection, search_folder
    from clipdex.encoders import load_encoder
    from clipdex.indexing import IndexOptions
    from clipdex.search import Query, Target
    from clipdex.search.query import parse_near, parse_where
    from clipdex.search.terms import parse_terms

    if paths_only and as_json:
        raise UsageError("give --paths-only or --json, not both")
    folder, text = _search_target(collection, text)
    query = Query(text=text, image=str(image) if image else None, k=k, where=parse_where(where or []),
                  near=parse_near(near) if near else None,
                  min_score=min_score, target=Target.CAPTIONS if captions else Target.IMAGES,
                  terms=tuple(parse_terms(terms)) if terms is not None else None, diversity=diversity,
                  collapse=collapse, mode=mode, fusion=fusion, alpha=alpha, item_id=item, compose=compose,
                  rerank=rerank, rerank_depth=rerank_depth, regions=regions)
    query.validate()
    if folder is not None:
        hits, report, where_to = search_folder(folder, query, model, refresh=not no_index,
                                               options=IndexOptions(prune=True), progress=progress_printer("index"))
        if report is not None and (report.added or report.updated or report.pruned or report.moved):
            typer.echo(f"{folder}: {_counts(report)}", err=True)
    else:
        where_to = Path(str(collection))
        with Collection.open(where_to) as coll:
            # one search per process: sessions built for a fast start (they load lazily, if at all)
            coll.use_encoder(load_encoder(coll.encoder_spec, quick_start=True))
            coll.one_shot = True
            hits = coll.search(query)
    why = _why_no_results(where_to, query) if not hits and query.filtered else ""
    if paths_only:
        if hits:
            typer.echo(printable("\n".join(h.path for h in hits)))
        return
    rows = [f"{i + 1:>3}  {h.score:.4f}  {h.path}" + (f"  | {h.caption}" if h.caption else "")
            for i, h in enumerate(hits)]
    emit({"query": text or terms or str(image), "hits": [h.to_dict() for h in hits]}, as_json,
         "\n".join(rows) if rows else "no results" + why)
    if preview and hits and not as_json:
        _preview(where_to, hits)


def _search_target(first: str | None, text: str | None) -> tuple[Path | None, str | None]:
    """``(photo folder or None, text)`` from search's two positional arguments: a collection and a
    text; a photo folder and a text; or the text alone (this folder)."""
    from clipdex.collection import is_collection

    if first is None:
        return Path.cwd(), text
    if is_collection(first) or (Path(first) / "manifest.json").is_file():
        return None, text
    if Path(first).is_dir():
        return Path(first), text
    if text is None:
        return Path.cwd(), first  # `clipdex search "a red car"`: this folder
    raise CollectionError(f"no collection or photo folder at {first}")


def _counts(report: Any) -> str:
    """What an index run found, in the words of a photo library: new, changed, moved, deleted."""
    parts = [f"{report.added} new", f"{report.updated} changed", f"{report.moved} moved",
             f"{report.skipped} unchanged", f"{report.failed} failed"]
    if report.pruned:
        parts.append(f"{report.pruned} deleted (removed)")
    if report.gone:
        parts.append(f"{report.gone} deleted (hidden from results)")
    return ", ".join(parts)


def _preview(collection: Path, hits: list[Any], shown: int = 10) -> None:
    """The top hits' thumbnails drawn in the terminal, or one line saying why they cannot be."""
    import io
    import sys

    from PIL import Image

    from clipdex.collection import Collection
    from clipdex.media.terminal import detect_protocol, image_escape

    protocol = detect_protocol()
    if protocol is None:
        typer.echo("--preview: this terminal shows no pictures that clipdex knows of (kitty, iTerm2, WezTerm "
                   "and sixel terminals do); set CLIPDEX_PREVIEW=kitty, iterm or sixel if yours does", err=True)
        return
    with Collection.open(collection) as coll:
        for rank, hit in enumerate(hits[:shown], 1):
            try:
                picture = Image.open(io.BytesIO(coll.thumbnail(hit.id, 256)))
            except ClipdexError as e:
                typer.echo(printable(f"{rank:>3}  {hit.path}: no preview ({e})"))
                continue
            typer.echo(printable(f"{rank:>3}  {hit.score:.4f}  {hit.path}"))
            sys.stdout.write(image_escape(picture, protocol) + "\n")
            sys.stdout.flush()


def _why_no_results(collection: Path, query: Any) -> str:
    """For a filter that matched nothing: which field has no such value, and some values it has."""
    from clipdex.collection import Collection

    with Collection.open(collection) as coll:
        for cond in query.where:
            if len(coll.filter_item_ids([cond])):
                continue
            values = coll.metadata_values(cond.key)
            if not values:
                return f": no item has a {cond.key!r} field"
            return f": no item has {cond.key}{cond.op}{cond.value!r} (some values here: {', '.join(values)})"
        if query.near is not None and not len(coll.filter_item_ids((), query.near)):
            located = len(coll.filter_item_ids((), type(query.near)(0.0, 0.0, 20_100.0)))
            return (f": no photo was taken within {query.near.km:g} km of {query.near.lat}, {query.near.lon} "
                    f"({located} items have a GPS position)")
    return ""


def heatmap(
    collection: Annotated[Path, typer.Argument(help="Collection folder")],
    item: Annotated[int, typer.Argument(help="Item id (from search results)")],
    text: Annotated[str, typer.Argument(help="What to look for in the image")],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("heatmap.png"),
    grid: Annotated[int, typer.Option(min=2, max=8, help="Windows per side")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Write the item's image with a heat map of where TEXT matches (red = most alike)."""
    from clipdex.collection import Collection
    from clipdex.search.heatmap import item_heatmap

    with Collection.open(collection) as coll:
        data = item_heatmap(coll, item, text, coll.encoder(), grid)
    out.write_bytes(data)
    emit({"item": item, "out": str(out), "bytes": len(data)}, as_json, f"wrote {out}")


def info(collection: Annotated[Path, typer.Argument(help="Collection folder")], as_json: JsonOpt = False) -> None:
    """Model, counts, errors and disk size of a collection."""
    from clipdex.collection import Collection

    with Collection.open(collection) as coll:
        facts = coll.info()
    human = [f"collection  {facts.path}", f"model       {facts.encoder} (dim {facts.dim}, {facts.vector_dtype})",
             f"items       {facts.items} ({facts.ok} ok, {facts.errors} failed)",
             f"vectors     {facts.image_vectors} image, {facts.caption_vectors} caption, {facts.dead_vectors} dead",
             f"captions    {facts.captions}", f"search      {facts.index}",
             f"disk        {facts.disk_bytes / 1e6:.2f} MB"]
    human += [f"  failed: {e['path']}: {e['error']}" for e in facts.error_list]
    emit(asdict(facts), as_json, "\n".join(human))


def duplicates(
    collection: Annotated[Path, typer.Argument(help="Collection folder")],
    threshold: Annotated[float, typer.Option(help="Near duplicates: image vectors at or above this cosine")] = 0.95,
    exact_only: Annotated[bool, typer.Option("--exact-only", help="Only copies with the same bytes")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List groups of duplicate photos: exact copies (the same bytes) and near duplicates (resized, re-encoded)."""
    from clipdex.collection import Collection
    from clipdex.curate.duplicates import find_duplicates

    with Collection.open(collection) as coll:
        found = find_duplicates(coll, None if exact_only else threshold)
    how = "exact copies only" if found.threshold is None else f"exact copies and cosine >= {found.threshold}"
    groups = f"{len(found.groups)} group" + ("" if len(found.groups) == 1 else "s")
    human = [f"{groups}, {found.duplicates} duplicates among {found.items} items ({how})"]
    for n, group in enumerate(found.groups, 1):
        human.append(f"group {n} ({group.kind}, {len(group.members)} items)")
        human += [f"  {m.id:>6}  {m.similarity:.4f}  {'same bytes' if m.identical else '          '}  {m.path}"
                  for m in group.members]
    emit(found.to_dict(), as_json, "\n".join(human))


def remove(
    collection: Annotated[Path, typer.Argument(help="Collection folder")],
    path: Annotated[str, typer.Option("--path", help="Glob over item paths, e.g. 'old/*'")],
    source: Annotated[Path | None, typer.Option(help="Only items of this source folder (as indexed)")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for another writer")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Remove items whose path matches a glob (relative to their source folder, or absolute)."""
    from clipdex.collection import Collection

    with Collection.open(collection) as coll:
        n = coll.remove(path, wait=wait, source=source)
    emit({"removed": n}, as_json, f"removed {n} items")


def verify(collection: Annotated[Path, typer.Argument(help="Collection folder")], as_json: JsonOpt = False) -> None:
    """Check every file of a collection (database, vector shards and their checksums, index); exit 1 on damage."""
    from clipdex.store import verify_collection

    problems = verify_collection(collection)
    emit({"collection": str(collection), "problems": [asdict(p) | {"bad_vec_ids": len(p.bad_vec_ids)}
                                                       for p in problems]}, as_json,
         "\n".join(f"{p.file}: {p.what}" + ("" if p.repairable else " (repair cannot mend this)") for p in problems)
         or f"{collection}: no problems found")
    if problems:
        raise ClipdexError(f"{len(problems)} problem(s) in {collection}; `clipdex repair {collection}` mends "
                           f"{sum(p.repairable for p in problems)} of them")


def repair(collection: Annotated[Path, typer.Argument(help="Collection folder")],
           wait: Annotated[float, typer.Option(help="Seconds to wait for another writer")] = 0.0,
           as_json: JsonOpt = False) -> None:
    """Mend a damaged collection: drop damaged vectors (their items are re-embedded by the next index), rebuild
    the index; never drops a good row."""
    from clipdex.store import repair_collection

    report = repair_collection(collection, wait)
    emit({**asdict(report), "left": [p.what for p in report.left]}, as_json,
         f"{report.problems_found} problem(s) found; {report.vectors_dropped} vectors dropped, "
         f"{report.items_to_reembed} items to embed again (run `clipdex index` on their source); "
         f"search: {report.index or 'unchanged'}" + "".join(f"\n  left: {p.file}: {p.what}" for p in report.left))
    if report.left:
        raise ClipdexError(f"{len(report.left)} problem(s) left in {collection}: restore it from a backup or "
                           "index into a new collection")


def compact(collection: Annotated[Path, typer.Argument(help="Collection folder")],
            wait: Annotated[float, typer.Option(help="Seconds to wait for another writer")] = 0.0,
            as_json: JsonOpt = False) -> None:
    """Rewrite the vector shards without the vectors of removed or replaced items, and rebuild the index."""
    from clipdex.collection import Collection
    from clipdex.store import compact as compact_store

    with Collection.open(collection) as coll:
        report = compact_store(coll, wait)
    emit(asdict(report), as_json, f"kept {report.live:,} vectors, dropped {report.dropped:,}; shards "
         f"{report.bytes_before / 1e6:.2f} MB -> {report.bytes_after / 1e6:.2f} MB; search: {report.index}")
