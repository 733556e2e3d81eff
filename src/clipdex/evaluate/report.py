"""Result files: JSON (with everything needed to reproduce), a markdown table, a PNG plot; and compare."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from clipdex.errors import ClipdexError, SourceError
from clipdex.evaluate.bootstrap import paired_difference
from clipdex.evaluate.runner import EvalResult

__all__ = ["compare_results", "load_result", "markdown_table", "save_result"]


def save_result(result: EvalResult, out: str | Path) -> dict[str, Path]:
    """Write ``out`` (JSON) and, beside it, ``.md`` (table) and ``.png`` (plot)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(result), indent=1, sort_keys=True) + "\n")
    md = out.with_suffix(".md")
    md.write_text(markdown_table(result) + "\n")
    png = out.with_suffix(".png")
    plot(result).save(png)
    return {"json": out, "markdown": md, "png": png}


def load_result(path: str | Path) -> EvalResult:
    try:
        raw = json.loads(Path(path).read_text())
        return EvalResult(raw["kind"], raw["metrics"], raw["per_query"], raw.get("meta", {}))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SourceError(f"{path} is not a clipdex eval result ({e})") from e


def markdown_table(result: EvalResult) -> str:
    model = result.meta.get("model") or result.meta.get("collection", "")
    rows = ["| metric | value | 95% CI | n |", "|---|---:|---|---:|"]
    for name, m in result.metrics.items():
        ci = f"[{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]" if m.get("ci95") else ""
        rows.append(f"| {name} | {m['value']:.4f} | {ci} | {m.get('n') or ''} |")
    return f"**{result.kind}** · `{model}` · {result.meta.get('data', '')}\n\n" + "\n".join(rows)


def _k(name: str) -> int | None:
    found = re.search(r"@(\d+)$", name)
    return int(found.group(1)) if found else None


def plot(result: EvalResult, width: int = 640, height: int = 400) -> Image.Image:
    """Recall@K curves (one line per metric family) with 95% intervals; bars when there is no K."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    left, top, right, bottom = 50, 30, width - 150, height - 40
    draw.rectangle([left, top, right, bottom], outline="black")
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - frac * (bottom - top)
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((8, y - 7), f"{frac:.2f}", fill="black", font=font)
    draw.text((left, 8), f"{result.kind}: {result.meta.get('model') or ''}", fill="black", font=font)
    families: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    flat: list[tuple[str, dict[str, Any]]] = []
    for name, m in result.metrics.items():
        k = _k(name)
        if k is None or not 0 <= m["value"] <= 1:
            flat.append((name, m))
        else:
            families.setdefault(name.rsplit("@", 1)[0], []).append((k, m))
    colors = ["#1f5fd1", "#d1451f", "#2a9d3c", "#8a2be2", "#c08a00", "#444444"]
    ks = sorted({k for fam in families.values() for k, _ in fam})
    xs = {k: left + (i + 0.5) * (right - left) / max(len(ks), 1) for i, k in enumerate(ks)}
    for k, x in xs.items():
        draw.text((x - 6, bottom + 6), f"@{k}", fill="black", font=font)
    for i, (family, points) in enumerate(families.items()):
        color = colors[i % len(colors)]
        pts = [(xs[k], bottom - m["value"] * (bottom - top)) for k, m in sorted(points, key=lambda p: p[0])]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        for k, m in points:
            x = xs[k]
            if m.get("ci95"):
                lo, hi = m["ci95"]
                draw.line([x, bottom - lo * (bottom - top), x, bottom - hi * (bottom - top)], fill=color)
            y = bottom - m["value"] * (bottom - top)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
        draw.text((right + 10, top + 16 * i), family, fill=color, font=font)
    for j, (name, m) in enumerate(flat):  # name and value on two lines: a long name fits the legend's width
        y = top + 16 * (len(families) + 1) + 32 * j
        draw.text((right + 10, y), name, fill="black", font=font)
        draw.text((right + 10, y + 14), f"= {m['value']:.3f}", fill="black", font=font)
    return image


def compare_results(a: str | Path, b: str | Path, seed: int = 0) -> dict[str, Any]:
    """Each shared metric's difference (b - a) with a paired bootstrap 95% interval.

    Raises:
        ClipdexError: the two results are of different kinds or different queries.
    """
    ra, rb = load_result(a), load_result(b)
    if ra.kind != rb.kind:
        raise ClipdexError(f"cannot compare a {ra.kind} result with a {rb.kind} result")
    if ra.meta.get("data_hash") != rb.meta.get("data_hash"):
        raise ClipdexError("the two results were computed on different annotation files")
    out: dict[str, Any] = {"a": str(a), "b": str(b), "kind": ra.kind, "metrics": {}}
    for name in ra.per_query:
        if name in rb.per_query:
            diff = paired_difference(ra.per_query[name], rb.per_query[name], seed=seed)
            out["metrics"][name] = {"a": ra.value(name), "b": rb.value(name), **diff}
    return out
