"""``report.html``: one self-contained page (plots and thumbnails embedded) that opens offline."""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.curate.context import Context
from clipdex.curate.outcome import CurateReport
from clipdex.errors import DecodeError
from clipdex.media.decode import decode_image
from clipdex.media.pools import Pool

__all__ = ["write_report"]

EXAMPLES_PER_REASON = 8
_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:.3rem;width:150px;vertical-align:top}
figure img{width:150px;height:150px;object-fit:contain;background:#eee}
figcaption{font-size:11px;word-break:break-word}
.plot{display:inline-block;width:49%;vertical-align:top}.plot img{max-width:100%}.plot h3{margin:.5rem 0 0}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.pair{display:inline-block;border:1px solid #ccc;border-radius:4px;margin:.3rem;padding:.2rem}"""


def write_report(out: Path, pool: Pool, ctx: Context, run: CurateReport, rejected_by: np.ndarray,
                 reasons: np.ndarray, alive: np.ndarray) -> Path:
    """Write ``out/report.html`` and return its path."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>clipdex curate report</title>"
             f"<style>{_STYLE}</style></head><body><h1>Curation report</h1>",
             _summary(run), "<h2 id='steps'>Counts per filter</h2>", _steps_table(run),
             "<h2 id='plots'>Distributions</h2><div class='plots'>", *_plots(ctx, run, alive), "</div>",
             "<h2 id='examples'>Examples per rejection reason</h2>",
             _examples(pool, ctx, rejected_by, reasons), _duplicate_pairs(pool, ctx, reasons), "</body></html>"]
    target = out / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, target)
    return target


def _summary(run: CurateReport) -> str:
    rows = [("pool", f"{run.pool} ({run.format})"), ("model", run.model), ("samples", f"{run.samples:,}"),
            ("kept", f"{run.kept:,} ({run.kept / max(run.samples, 1):.1%})"),
            ("shards", f"{run.shards} ({run.shards_scored_now} scored now, {run.shards_reused} reused)"),
            ("time", f"{run.seconds:.1f} s ({run.samples_per_second:,.0f} samples/s)")]
    rows += [(f"unreadable shard {name}", why) for name, why in run.failed_shards.items()]
    return "<table id='summary'>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                                            for k, v in rows) + "</table>"


def _steps_table(run: CurateReport) -> str:
    head = "<tr><th>step</th><th>in</th><th>rejected</th><th>out</th><th>kept of pool</th></tr>"
    body = "".join(f"<tr><td>{html.escape(s.filter)}</td><td>{s.reached:,}</td><td>{s.rejected:,}</td>"
                   f"<td>{s.kept:,}</td><td>{s.kept / max(run.samples, 1):.1%}</td></tr>" for s in run.steps)
    return f"<table id='step-counts'>{head}{body}</table>"


def _png(fig: Any, title: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return (f"<div class='plot'><h3>{html.escape(title)}</h3>"
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'></div>")


def _plots(ctx: Context, run: CurateReport, alive: np.ndarray) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [s.filter for s in run.steps]
    ax.plot(range(len(names) + 1), [1.0] + [s.kept / max(run.samples, 1) for s in run.steps], marker="o")
    ax.set_xticks(range(len(names) + 1), ["pool"] + names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("kept fraction")
    out.append(_png(fig, "Kept fraction after each step"))
    columns = ctx.table.column_names
    numeric = [("clip_score", "CLIP score", None), ("caption_words", "caption length (words)", None),
               ("short_side", "image short side (px)", None), ("visual_score", "caption visualness", None)]
    for name, title, _ in numeric:
        if name == "short_side":
            values = ctx.short_side().astype(np.float64)
            values[values < 0] = np.nan
        elif name in columns:
            values = ctx.col(name).astype(np.float64)
        elif name in ctx.extra:
            values = ctx.extra[name].astype(np.float64)
        else:
            continue
        if np.isnan(values).all():
            continue
        fig, ax = plt.subplots(figsize=(6, 3.2))
        finite = ~np.isnan(values)
        bins = np.histogram_bin_edges(values[finite], bins=40).tolist()
        ax.hist(values[finite & alive], bins=bins, alpha=0.7, label="kept")
        ax.hist(values[finite & ~alive], bins=bins, alpha=0.6, label="rejected")
        ax.legend()
        out.append(_png(fig, title))
    if "language" in columns:
        counts = Counter(str(v or "unknown") for v in ctx.col("language")).most_common(12)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar([k for k, _ in counts], [v for _, v in counts])
        out.append(_png(fig, "caption language"))
    return out


def _examples(pool: Pool, ctx: Context, rejected_by: np.ndarray, reasons: np.ndarray) -> str:
    wanted: dict[str, list[int]] = {}
    for i in range(ctx.n):
        name = rejected_by[i]
        if name is not None and len(wanted.setdefault(name, [])) < EXAMPLES_PER_REASON:
            wanted[name].append(i)
    if not wanted:
        return "<p>No sample was rejected.</p>"
    images = _fetch_images(pool, ctx, [i for rows in wanted.values() for i in rows])
    captions, keys = ctx.col("caption"), ctx.col("key")
    sections = []
    for name, rows in wanted.items():
        figures = []
        for i in rows:
            thumb = images.get(i)
            img = (f"<img alt='{html.escape(str(keys[i]))}' src='data:image/jpeg;base64,{thumb}'>" if thumb
                   else "<div style='width:150px;height:150px;background:#eee'>no image</div>")
            text = f"<b>{html.escape(str(keys[i]))}</b> {html.escape(str(captions[i] or ''))[:80]}<br>" \
                   f"<i>{html.escape(str(reasons[i]))}</i>"
            figures.append(f"<figure>{img}<figcaption>{text}</figcaption></figure>")
        sections.append(f"<h3>{html.escape(name)}</h3><div class='examples'>{''.join(figures)}</div>")
    return "".join(sections)


def _duplicate_pairs(pool: Pool, ctx: Context, reasons: np.ndarray, shown: int = 12) -> str:
    """Rejected duplicates beside the copy that was kept, so a reviewer sees what the threshold joins."""
    kept_copy = ctx.extra.get("duplicate_of")
    if kept_copy is None:
        return ""
    keys = ctx.col("key")
    row_of = {str(k): i for i, k in enumerate(keys)}
    pairs = [(i, row_of[str(kept_copy[i])]) for i in range(ctx.n)
             if kept_copy[i] is not None and str(kept_copy[i]) in row_of][:shown]
    if not pairs:
        return ""
    images = _fetch_images(pool, ctx, [r for pair in pairs for r in pair])
    blocks = []
    for dup, kept in pairs:
        sides = [_figure(images.get(kept), str(keys[kept]), "kept"),
                 _figure(images.get(dup), str(keys[dup]), str(reasons[dup]))]
        blocks.append(f"<div class='pair'>{''.join(sides)}</div>")
    return "<h2 id='duplicates'>Duplicate pairs (kept, then rejected)</h2>" + "".join(blocks)


def _figure(thumb: str | None, key: str, note: str) -> str:
    img = (f"<img alt='{html.escape(key)}' src='data:image/jpeg;base64,{thumb}'>" if thumb
           else "<div style='width:150px;height:150px;background:#eee'>no image</div>")
    return f"<figure>{img}<figcaption><b>{html.escape(key)}</b><br><i>{html.escape(note)}</i></figcaption></figure>"


def _fetch_images(pool: Pool, ctx: Context, rows: list[int]) -> dict[int, str]:
    """Base64 JPEG thumbnails of some rows: files are read by path, tar members by scanning their shard."""
    refs = ctx.col("image_ref")
    shard_col, keys = ctx.col("shard"), ctx.col("key")
    data: dict[int, bytes | str] = {}
    by_shard: dict[int, dict[str, int]] = {}
    for i in rows:
        if "#" in str(refs[i]) and not os.path.exists(str(refs[i])):
            by_shard.setdefault(int(shard_col[i]), {})[str(keys[i])] = i
        else:
            data[i] = str(refs[i])
    shards = {s.index: s for s in pool.shards()}
    for index, members in by_shard.items():
        for sample in pool.read(shards[index]):
            if sample.key in members and sample.image_bytes:
                data[members[sample.key]] = sample.image_bytes
    out = {}
    for i, source in data.items():
        try:
            im = decode_image(source)
        except DecodeError:
            continue
        im.thumbnail((150, 150))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=80)
        out[i] = base64.b64encode(buf.getvalue()).decode()
    return out
