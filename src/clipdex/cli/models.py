"""``clipdex models``: the known ready exports, and ``models pull NAME`` to fetch one (no torch needed)."""

from __future__ import annotations

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
