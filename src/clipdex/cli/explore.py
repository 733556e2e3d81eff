"""Exploring a collection: map, clusters, scores, tag, probe (over :mod:`clipdex.explore`)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from clipdex.cli.output import JsonOpt, emit
from clipdex.errors import UsageError

__all__ = ["clusters_cmd", "map_cmd", "probe_app", "scores_cmd", "tag_cmd"]

CollectionArg = Annotated[Path, typer.Argument(help="Collection folder")]
VocabOpt = Annotated[str, typer.Option("--vocab", help="builtin, or a text file with one concept per line")]


def map_cmd(
    source: Annotated[Path, typer.Argument(help="Collection folder, or an embedding folder (img_emb/ + metadata/)")],
    method: Annotated[str, typer.Option(help="auto (UMAP where umap-learn is installed, else PCA), umap or pca")]
    = "auto",
    refit: Annotated[bool, typer.Option("--refit", help="Fit the whole layout again instead of extending it")]
    = False,
    out: Annotated[Path | None, typer.Option(help="Write the points (id, x, y) to this .csv or .json")] = None,
    seed: Annotated[int, typer.Option(help="UMAP's random seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The 2-D embeddings map (every image a point), cached beside the vectors and extended as items come."""
    from clipdex.explore.layout import map_layout

    layout = map_layout(source, method, refit, seed)
    if out is not None:
        _write_points(out, layout.to_dict()["points"])
    how = "fitted" if layout.refitted else f"extended ({layout.placed} placed since the fit, {layout.dropped} gone)"
    emit(layout.to_dict(points=False) | {"out": str(out) if out else None}, as_json,
         f"map of {len(layout.ids):,} images by {layout.method}: {how} in {layout.seconds:.2f} s"
         + (f" -> {out}" if out else ""))


def _write_points(out: Path, points: list[list[float]]) -> None:
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps({"points": points}))
    elif out.suffix.lower() == ".csv":
        with out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "x", "y"])
            writer.writerows(points)
    else:
        raise UsageError(f"--out must end in .csv or .json, got {out.name}")


def clusters_cmd(
    collection: CollectionArg,
    k: Annotated[int | None, typer.Option("-k", help="How many clusters (default: √(items/2), 2 to 50)")] = None,
    vocab: VocabOpt = "builtin",
    seed: Annotated[int, typer.Option(help="k-means seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Cluster the images (k-means), name each cluster by its nearest vocabulary words; stored as metadata
    `cluster` and `cluster_label`."""
    from clipdex.collection import Collection
    from clipdex.explore.clusters import cluster_items

    with Collection.open(collection) as coll:
        report = cluster_items(coll, coll.encoder(), k, vocab, seed)
    lines = [f"{report.k} clusters over {report.items:,} items in {report.seconds:.2f} s"]
    lines += [f"  {c.id:>3}  {c.size:>6}  {c.label}" for c in report.clusters]
    emit(report.to_dict(), as_json, "\n".join(lines))


def scores_cmd(
    collection: CollectionArg,
    k: Annotated[int, typer.Option("-k", min=1, help="Neighbours each score looks at")] = 5,
    threshold: Annotated[float, typer.Option(help="Near-duplicate cosine for dup_group")] = 0.95,
    as_json: JsonOpt = False,
) -> None:
    """Store uniqueness, representativeness and the duplicate group of every item as metadata."""
    from clipdex.collection import Collection
    from clipdex.explore.scores import score_items

    with Collection.open(collection) as coll:
        report = score_items(coll, k, threshold)
    emit(report.to_dict(), as_json, f"scored {report.items:,} items (uniqueness, representativeness; "
         f"{report.duplicate_groups} duplicate groups at cosine >= {threshold}) in {report.seconds:.2f} s")


def tag_cmd(
    collection: CollectionArg,
    vocab: VocabOpt = "builtin",
    top: Annotated[int, typer.Option(min=1, help="At most this many tags per image")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Zero-shot tags: each image's concepts above a per-concept calibrated threshold, stored as `tags`."""
    from clipdex.collection import Collection
    from clipdex.explore.tags import tag_items

    with Collection.open(collection) as coll:
        report = tag_items(coll, coll.encoder(), vocab, top)
    common = ", ".join(f"{c} {n}" for c, n in list(report.counts.items())[:12])
    emit(report.to_dict(), as_json, f"tagged {report.tagged:,} of {report.items:,} items with {report.concepts} "
         f"concepts in {report.seconds:.2f} s" + (f"\n  most common: {common}" if common else ""))


probe_app = typer.Typer(no_args_is_help=True, help="Linear probes: train one from a few labelled examples, "
                        "apply it to every item (LAION-style heads on your own labels).")


@probe_app.command("train")
def probe_train(
    name: Annotated[str, typer.Argument(help="The probe's name (and the metadata field it writes)")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder")],
    positives: Annotated[list[str], typer.Option("--positives", "-p", help="Item ids, image files, folders or "
                                                 ".txt lists of those (repeatable)")],
    negatives: Annotated[list[str], typer.Option("--negatives", "-n", help="The same, for the negatives")],
    apply: Annotated[bool, typer.Option(help="Also score every item right away")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train a logistic-regression probe on the collection's vectors, with cross-validated accuracy."""
    from clipdex.collection import Collection
    from clipdex.explore.probes import apply_probe, probe_path, train_probe

    with Collection.open(collection) as coll:
        head = train_probe(coll, coll.encoder(), name, positives, negatives)
        applied = apply_probe(coll, name) if apply else None
        path = probe_path(coll, name)
    data = {"name": name, "path": str(path), "positives": head.positives, "negatives": head.negatives,
            "cv_accuracy": head.cv_accuracy, "cv_auc": head.cv_auc, "threshold": round(head.threshold, 4),
            "applied": applied.to_dict() if applied else None}
    human = (f"probe {name}: {head.positives} positives, {head.negatives} negatives; cross-validated balanced "
             f"accuracy {head.cv_accuracy:.3f}, AUC {head.cv_auc:.3f}, threshold {head.threshold:.3f} -> {path}")
    if applied:
        human += f"\n  {applied.above_threshold:,} of {applied.items:,} items score above it (--where '{name}>=...')"
    emit(data, as_json, human)


@probe_app.command("apply")
def probe_apply(
    name: Annotated[str, typer.Argument(help="A probe trained on this collection")],
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder")],
    as_json: JsonOpt = False,
) -> None:
    """Score every item with the probe; the probability is stored as metadata named after it."""
    from clipdex.collection import Collection
    from clipdex.explore.probes import apply_probe

    with Collection.open(collection) as coll:
        applied = apply_probe(coll, name)
    emit(applied.to_dict(), as_json, f"probe {name}: {applied.above_threshold:,} of {applied.items:,} items above "
         f"its threshold {applied.threshold:.3f}")


@probe_app.command("list")
def probe_list(
    collection: Annotated[Path, typer.Option("--collection", "-c", help="Collection folder")],
    as_json: JsonOpt = False,
) -> None:
    """The probes trained on a collection, with their cross-validated figures."""
    from clipdex.collection import is_collection
    from clipdex.errors import CollectionError
    from clipdex.heads import load_head

    if not is_collection(collection):
        raise CollectionError(f"no collection at {collection}")
    rows = []
    for path in sorted((collection / "probes").glob("*.json")):
        try:
            head = load_head(path)
        except (OSError, ValueError) as e:
            print(f"warning: {path}: {e}", file=sys.stderr)
            continue
        rows.append({"name": head.name, "positives": head.positives, "negatives": head.negatives,
                     "cv_accuracy": head.cv_accuracy, "cv_auc": head.cv_auc, "threshold": round(head.threshold, 4)})
    emit(rows, as_json, "\n".join(f"{r['name']:<24} accuracy {r['cv_accuracy']:.3f}  AUC {r['cv_auc']:.3f}  "
                                  f"({r['positives']} + {r['negatives']} examples)" for r in rows) or "no probes")
