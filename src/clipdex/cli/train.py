"""Training commands: train and export."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from clipdex.cli.output import JsonOpt, emit, progress_printer
from clipdex.train.config import TrainConfig

# With --config, the file sets every training option; these are the ones that still go with it.
_WITH_CONFIG = {"config", "out", "init", "resume", "as_json"}


def train_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, log.jsonl, train_config.json")],
    config: Annotated[Path | None, typer.Option(
        help="Take every option from a train_config.json (a recipe's, or a recorded run's to run it again); "
             "only --out and --init may go with it")] = None,
    data: Annotated[str, typer.Option(help="'synth' or a clipdex source (folder, table, Karpathy JSON)")] = "synth",
    model: Annotated[str, typer.Option(help="'builtin' (the tiny architecture) or hf:DIR to fine-tune")] = "builtin",
    loss: Annotated[str, typer.Option(help="clip or siglip")] = "clip",
    steps: Annotated[int, typer.Option(min=1)] = 1000,
    epochs: Annotated[int | None, typer.Option(min=1, help="For a source: epochs instead of --steps")] = None,
    batch_size: Annotated[int, typer.Option(min=2)] = TrainConfig.batch_size,
    accum: Annotated[int, typer.Option(min=1, help="Gradient accumulation steps")] = 1,
    lr: float = 2e-3,
    warmup: int = 100,
    hard_negatives: Annotated[int, typer.Option(min=0, help="Wrong captions per sample (NegCLIP)")] = 3,
    binding_weight: Annotated[float, typer.Option(help="Weight of the per-sample hard-negative loss")] = 1.0,
    p_relation: Annotated[float, typer.Option(help="Synthetic data: share of two-object relation captions")] = 0.5,
    counterfactuals: Annotated[float, typer.Option(help="Synthetic data: share of the batch made of minimally "
                                                   "edited scene pairs (colours or places swapped)")] = 0.0,
    stem: Annotated[str, typer.Option(help="Built-in image tower: patch (ViT), conv (conv stem + ViT) or cnn "
                                           "(a small CNN + 2 attention blocks)")] = "patch",
    text_conv: Annotated[int, typer.Option(min=0, help="Built-in text tower: residual word convolutions "
                                                     "before the transformer")] = 0,
    grid_readout: Annotated[bool, typer.Option(help="Built-in image tower: the embedding also reads each grid "
                                                   "position through its own weights (what x where)")] = False,
    embed_dim: Annotated[int, typer.Option(min=8, help="Built-in model: width of the joint embedding space "
                                                     "(room for what x where of every object)")] = 64,
    p_cross: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Synthetic data: share of one-object captions whose negatives recombine the "
                               "scene's own colours, shapes and places")] = 0.0,
    p_position: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Synthetic data: share of captions naming one object, its place and how many "
                               "others there are, against negatives with another place, count or object")] = 0.0,
    styles: Annotated[str, typer.Option(
        help="Synthetic data: draw each image in a rendering style picked at random: train (the training "
             "styles) or names; empty: the plain renderer")] = "",
    scene_weight: Annotated[float, typer.Option(
        min=0.0, help="Synthetic data: weight of the scene-graph read-outs (each cell's object from the image "
                      "features; colour-shape pairs and left/right/above/below roles from both embeddings)")] = 0.0,
    role_weight: Annotated[float, typer.Option(
        min=0.0, help="With --scene-weight: weight of the left/right/above/below roles against the other "
                      "read-outs")] = 1.0,
    place_weight: Annotated[float, typer.Option(
        min=0.0, help="With --scene-weight: weight of each pair's grid cell and the object count, read from "
                      "the image embedding and from captions that name them (0: off)")] = 0.0,
    init: Annotated[Path | None, typer.Option(help="Start from this run's newest weights (same architecture; "
                                                  "fresh optimiser and schedule): a second training stage")] = None,
    twin_margin: Annotated[float | None, typer.Option(help="Push captions below this cosine to their "
                                                      "word-swapped twins (off by default)")] = None,
    seed: int = 0,
    val_every: Annotated[int, typer.Option(help="Validate every N steps (0: never)")] = 200,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 100,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (only where the CPU/GPU supports it fast)")] = False,
    freeze: Annotated[str, typer.Option(help="none, text or image (LiT-style locked tower)")] = "none",
    image_col: str | None = None,
    caption_col: str | None = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its checkpoint")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train or fine-tune a dual encoder with a contrastive loss."""
    from clipdex.train import config_from_options, resume_config, train

    if config is not None:
        cfg = _config_from_file(ctx, config, out, init)
    elif resume:
        given = {name: ctx.params[name] for name in ctx.params if name not in _WITH_CONFIG and _typed(ctx, name)}
        cfg = resume_config(out, given)
    else:
        cfg = config_from_options(ctx.params)
    show = progress_printer("train")
    result = train(cfg, resume=resume, on_log=lambda r: show(r["step"], r["total"], 0))
    emit(
        asdict(result),
        as_json,
        f"trained {result.steps} steps in {result.seconds:.0f}s, "
        f"loss {result.last_loss:.4f}, skipped {result.skipped_samples}; {result.validation}",
    )


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (by name: typer ships its own copy of click, whose
    ParameterSource is not click's)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _config_from_file(ctx: typer.Context, config: Path, out: Path, init: Path | None) -> TrainConfig:
    """The run's TrainConfig from ``config``, refusing training flags that the file would silently override."""
    from clipdex.errors import UsageError
    from clipdex.train import load_train_config

    given = sorted(name for name in ctx.params if name not in _WITH_CONFIG and _typed(ctx, name))
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"--config sets every training option; drop {flags} or edit the file")
    overrides: dict[str, object] = {"out": str(out)}
    if init is not None:
        overrides["init"] = str(init)
    return load_train_config(config, **overrides)


def export(
    run: Annotated[Path, typer.Argument(help="A training run folder")],
    out: Annotated[Path, typer.Argument(help="onnx model folder to write")],
    force: Annotated[bool, typer.Option(help="Replace an existing folder")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export a trained run to an onnx: model folder (use it as --model onnx:OUT)."""
    from clipdex.train import export_trained

    folder = export_trained(run, out, force=force)
    emit({"out": str(folder), "spec": f"onnx:{folder}"}, as_json, f"exported to {folder} (spec onnx:{folder})")


