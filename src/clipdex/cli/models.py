"""``clipdex models``: the known ready exports, and ``models pull NAME`` to fetch one (no torch needed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from clipdex.cli.output import JsonOpt, emit

__all__ = ["models_app"]

models_app = typer.Typer(help="Known models: ready ONNX exports, their size, speed and quality.",
                         invoke_without_command=True)


@models_app.callback()
def table(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the known models (the default when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    from clipdex.encoders.catalog import list_models

    rows = list_models()
    emit({"models": rows}, as_json, _table(rows))


def _table(rows: list[dict[str, Any]]) -> str:
    def cell(m: dict[str, Any], key: str, fmt: str) -> str:
        value = m.get(key)
        return format(value, fmt) if isinstance(value, int | float) else "-"

    lines = ["| name | family | arch | dim | px | params | fp32 img/s | int8 img/s | text ms | int8 cos | "
             "int8 top-10 | ImageNet 0-shot | repo |", "|" + "---|" * 13]
    for r in rows:
        m = r["measured"]
        quality = f"{r['imagenet_zero_shot']:.1%}" if r["imagenet_zero_shot"] is not None else "-"
        lines.append(f"| {r['name']} | {r['family']} | {r['architecture']} | {r['dim']} | {r['image_size']} | "
                     f"{r['params_m']}M | {cell(m, 'fp32_img_s', '.1f')} | {cell(m, 'int8_img_s', '.1f')} | "
                     f"{cell(m, 'text_ms', '.1f')} | {cell(m, 'int8_cos_min', '.4f')} | "
                     f"{cell(m, 'int8_top10_overlap', '.2f')} | {quality} | {r['repo']} |")
    machine = rows[0]["measured_on"] if rows else {}
    lines.append(f"speed and int8 columns: random weights of each shape, {machine.get('cpu', 'not measured')}, "
                 f"{machine.get('date', '')} (benchmarks/bench_models.py); quality: published figures")
    return "\n".join(lines)


@models_app.command("pull")
def pull(name: Annotated[str, typer.Argument(help="A name from `clipdex models`")],
         directory: Annotated[Path | None, typer.Option("--dir", help="Put the files here instead of the HF cache")]
         = None, as_json: JsonOpt = False) -> None:
    """Fetch a known export (no torch); prints the spec to pass as --model."""
    from clipdex.encoders.catalog import pull_model

    spec = pull_model(name, directory)
    emit({"name": name, "spec": spec}, as_json, f"{name}: use --model {spec}")


@models_app.command("backends")
def backends(model: Annotated[str, typer.Argument(help="Encoder spec, e.g. builtin:shapes-tiny or onnx:DIR")],
             images: Annotated[list[Path], typer.Argument(help="Image files or folders to measure on (your own "
                                                                "photos are best)")],
             limit: Annotated[int, typer.Option(min=8, help="Images to measure on")] = 32,
             as_json: JsonOpt = False) -> None:
    """Measure every image-tower backend for MODEL on this CPU and cache the fastest accurate one.

    A backend is accepted only where each image's vector keeps cosine >= 0.999 to fp32;
    `index --backend auto` (the default) then runs on the one chosen here.
    """
    from clipdex.encode import measure_backends
    from clipdex.encoders import load_encoder

    encoder = load_encoder(model, backend="auto")
    say = None if as_json else (lambda line: print(line, file=sys.stderr, flush=True))
    calibration = measure_backends(encoder, images, limit, progress=say)
    emit(calibration.to_dict(), as_json, _backend_table(calibration.to_dict()))


def _backend_table(data: dict[str, Any]) -> str:
    from clipdex.encoders.backends import MIN_COSINE

    lines = [f"{data['model']} on {data['machine']}: {data['images']} images, batch {data['batch']}",
             "| backend | img/s | cosine min | cosine median | prepare s | accepted |", "|---|---|---|---|---|---|"]
    for r in data["results"]:
        verdict = "yes" if r["accepted"] else (r["error"] or f"no (< {MIN_COSINE})")
        lines.append(f"| {r['backend']} | {r['images_per_second']:.1f} | {r['cosine_min']:.5f} | "
                     f"{r['cosine_median']:.5f} | {r['prepare_seconds']:.1f} | {verdict} |")
    lines.append(f"chosen: {data['choice']}")
    return "\n".join(lines)
