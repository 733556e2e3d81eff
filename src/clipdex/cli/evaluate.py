"""``clipdex eval ...``: thin wrappers over :mod:`clipdex.evaluate`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from clipdex.cli.output import JsonOpt, emit

evaluate_app = typer.Typer(help="Evaluate models and collections with the field's metrics.", no_args_is_help=True)

ModelOpt = Annotated[str, typer.Option("--model", help="Encoder spec")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Result JSON (a .md table and .png plot go beside it)")]
SeedOpt = Annotated[int, typer.Option(help="Bootstrap seed")]


def _finish(result: Any, out: Path | None, as_json: bool) -> None:
    from clipdex.evaluate.report import markdown_table, save_result

    written = save_result(result, out) if out else {}
    unknown = result.meta.get("unknown_fields")
    if unknown:
        typer.echo(f"warning: fields this reader does not use were ignored: {unknown}", err=True)
    data = {**asdict(result), "written": {k: str(v) for k, v in written.items()}}
    data.pop("per_query")
    emit(data, as_json, markdown_table(result) + ("".join(f"\n{k}: {v}" for k, v in written.items())))


@evaluate_app.command("retrieval")
def retrieval(data: Annotated[Path | None, typer.Option(help="Karpathy-split JSON")] = None,
              model: ModelOpt = "builtin:shapes-tiny",
              images: Annotated[Path | None, typer.Option(help="Image root (default: beside the JSON)")] = None,
              split: Annotated[str, typer.Option(help="Split to evaluate ('all' for every image)")] = "test",
              embeddings: Annotated[Path | None, typer.Option(
                  help="Evaluate vectors already made: an embedding folder (img_emb/ text_emb/ metadata/) "
                       "instead of --data")] = None,
              k: Annotated[list[int] | None, typer.Option(help="K values (repeatable)")] = None,
              out: OutOpt = None, seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """Image-text retrieval Recall@K (Flickr30K / COCO Karpathy layout, or an embedding folder)."""
    from clipdex.encoders import load_encoder
    from clipdex.errors import UsageError
    from clipdex.evaluate import run_retrieval, run_retrieval_embeddings

    ks = tuple(sorted(set(k or [1, 5, 10])))
    if (data is None) == (embeddings is None):
        raise UsageError("give one of --data (a Karpathy JSON) or --embeddings (an embedding folder)")
    if embeddings is not None:
        result = run_retrieval_embeddings(embeddings, ks, seed)
    else:
        assert data is not None
        result = run_retrieval(data, load_encoder(model), images, None if split == "all" else split, ks, seed)
    _finish(result, out, as_json)


@evaluate_app.command("zeroshot")
def zeroshot(data: Annotated[Path, typer.Option(help="Folder of class folders, or CSV path,label")],
             model: ModelOpt = "builtin:shapes-tiny",
             templates: Annotated[Path | None, typer.Option(help="File of prompt templates with {} per line")] = None,
             out: OutOpt = None, seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """Zero-shot classification: top-1, top-5, mean per-class recall."""
    from clipdex.encoders import load_encoder
    from clipdex.evaluate import run_zeroshot
    from clipdex.evaluate.datasets import load_templates

    lines = load_templates(templates) if templates else None
    _finish(run_zeroshot(data, load_encoder(model), lines, seed=seed), out, as_json)


@evaluate_app.command("ranking")
def ranking(data: Annotated[Path, typer.Option(help="queries.jsonl with relevant (and optional candidates)")],
            collection: Annotated[Path, typer.Option(help="Collection to rank")],
            k: Annotated[int, typer.Option(help="Cut-off for AP / nDCG")] = 50,
            out: OutOpt = None, seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """INQUIRE-style ranking: AP@k, mAP@50, nDCG@50, P@k (full rank or rerank)."""
    from clipdex.collection import Collection
    from clipdex.evaluate import run_ranking

    with Collection.open(collection) as coll:
        _finish(run_ranking(data, coll, k, seed), out, as_json)


@evaluate_app.command("composed")
def composed(data: Annotated[Path, typer.Option(help="CIRR captions JSON (cap.rc2.SPLIT.json)")],
             model: ModelOpt = "builtin:shapes-tiny",
             images: Annotated[Path | None, typer.Option(help="Image root")] = None,
             method: Annotated[str, typer.Option(help="image, text, sum, pdv or caption-fusion")] = "sum",
             out: OutOpt = None, seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """Composed image retrieval: CIRR Recall@K and Recall_subset@K."""
    from clipdex.encoders import load_encoder
    from clipdex.evaluate import run_composed

    _finish(run_composed(data, load_encoder(model), method, images, seed=seed), out, as_json)


@evaluate_app.command("alignment")
def alignment(prompts: Annotated[Path, typer.Option(help="prompts.jsonl: prompt, images, best?")],
              model: ModelOpt = "builtin:shapes-tiny",
              images: Annotated[Path | None, typer.Option(help="Image root")] = None,
              out: OutOpt = None, seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """CLIPScore of generated images and best-image ranking accuracy."""
    from clipdex.encoders import load_encoder
    from clipdex.evaluate import run_alignment

    _finish(run_alignment(prompts, load_encoder(model), images, seed), out, as_json)


@evaluate_app.command("compare")
def compare(a: Annotated[Path, typer.Argument(help="Baseline result JSON")],
            b: Annotated[Path, typer.Argument(help="New result JSON")], seed: SeedOpt = 0,
            as_json: JsonOpt = False) -> None:
    """Differences (b - a) with paired-bootstrap 95% intervals."""
    from clipdex.evaluate import compare_results

    res = compare_results(a, b, seed)
    rows = ["| metric | a | b | b - a | 95% CI | significant |", "|---|---:|---:|---:|---|---|"]
    for name, m in res["metrics"].items():
        rows.append(f"| {name} | {m['a']:.4f} | {m['b']:.4f} | {m['difference']:+.4f} | "
                    f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}] | {'yes' if m['significant'] else 'no'} |")
    emit(res, as_json, "\n".join(rows))


@evaluate_app.command("binding")
def binding(model: ModelOpt = "builtin:shapes-tiny",
            styles: Annotated[str, typer.Option(
                help="Rendering styles beside the training renderer: held-out (never trained on), train, all, "
                     "or names (plain, outlined, jittered, gradient, noisy, stripes, hollow, photo, tilted, "
                     "sketchy)")] = "held-out",
            n: Annotated[int, typer.Option(min=20, help="Probe scenes drawn (two objects of two colours)")] = 500,
            probe_seed: Annotated[int, typer.Option(help="Seed of the probe scenes")] = 99_001,
            out: OutOpt = None, seed: SeedOpt = 0, as_json: JsonOpt = False) -> None:
    """Attribute (colour-swap) and relation (relation-flip) binding on the training renderer and on other
    rendering styles, side by side, with bootstrap CIs; text->image R@5 on each."""
    from clipdex.encoders import load_encoder
    from clipdex.evaluate import run_binding

    _finish(run_binding(load_encoder(model), n, probe_seed, styles, seed), out, as_json)
