"""The embeddings map at scale: layout time (PCA, UMAP, and the incremental extension) and the page's
frame time in Chromium, at 10k and 100k points.

The collection holds clustered random unit vectors stored directly (``add_embedded``: no images are
decoded, so the figures are the map's own). The baseline in the same run is the 10k collection: the
100k figures are quoted as ratios to it. Prints one JSON document.

    python benchmarks/bench_map.py [--sizes 10000 100000] [--umap-max 100000] [--frames 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from clipdex.explore.layout import map_layout  # noqa: E402
from clipdex.media.sources import Item  # noqa: E402
from clipdex.store import Store, add_embedded  # noqa: E402
from helpers import serving  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def make_collection(folder: Path, n: int, dim: int = 256, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, n // 500), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    with Store.create(folder, "builtin:shapes-tiny", dim) as store:
        items = [Item(path=f"bench/{i:07d}.png", captions=[], metadata={"cluster": int(i % 12)}) for i in range(n)]
        add_embedded(store, items, vectors)


def layout_times(folder: Path, umap: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    if umap:
        started = time.perf_counter()
        map_layout(folder, "umap", refit=True)
        out["umap_fit_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    map_layout(folder, "pca", refit=True)  # last: the page below draws the PCA layout from the cache
    out["pca_fit_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    map_layout(folder, "auto")
    out["cached_s"] = round(time.perf_counter() - started, 3)
    return out


def extension_time(folder: Path, n_new: int) -> float:
    """Seconds to place ``n_new`` new items into the cached layout (no refit)."""
    map_layout(folder, "pca", refit=True)
    rng = np.random.default_rng(1)
    with Store.open(folder) as store:
        items = [Item(path=f"bench/new{i:07d}.png", captions=[], metadata={}) for i in range(n_new)]
        add_embedded(store, items, rng.standard_normal((n_new, store.dim)).astype(np.float32))
    started = time.perf_counter()
    layout = map_layout(folder, "pca")
    assert not layout.refitted and layout.placed == n_new
    return round(time.perf_counter() - started, 3)


def frame_times(folder: Path, frames: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with serving(str(folder)) as base, sync_playwright() as p:
        started = time.perf_counter()
        with urllib.request.urlopen(base + "/api/map?color=cluster", timeout=600) as r:
            payload = len(r.read())
        api_s = time.perf_counter() - started
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        started = time.perf_counter()
        page.goto(base + "/?view=map&color=cluster")
        page.wait_for_function("window.clipdexMap && window.clipdexMap.state.points.length > 0", timeout=600_000)
        open_s = time.perf_counter() - started
        out = {"api_map_s": round(api_s, 3), "payload_mb": round(payload / 1e6, 2), "page_open_s": round(open_s, 3)}
        # the page's renderer (pixels written in one pass) against the baseline (one fillRect per point),
        # interleaved frame by frame
        times: dict[str, list[float]] = {"pixels": [], "rects": []}
        for _ in range(frames):
            for renderer in times:
                page.evaluate(f"window.clipdexMap.state.renderer = '{renderer}'")
                times[renderer].append(page.evaluate("window.clipdexMap.draw()"))
        zoom = "(() => { window.clipdexMap.state.renderer = 'pixels'; window.clipdexMap.zoom(1.1); " \
               "return window.clipdexMap.state.lastFrameMs; })()"
        zoomed = [page.evaluate(zoom) for _ in range(frames)]
        browser.close()
    return out | {"frame_ms_median": round(statistics.median(times["pixels"]), 2),
                  "frame_ms_rects_baseline": round(statistics.median(times["rects"]), 2),
                  "zoom_frame_ms_median": round(statistics.median(zoomed), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--umap-max", type=int, default=100_000, help="largest size UMAP is timed at")
    parser.add_argument("--frames", type=int, default=15)
    args = parser.parse_args()
    try:
        import umap  # noqa: F401
        has_umap = True
    except ImportError:
        has_umap = False
    work = Path(tempfile.mkdtemp(prefix="bench-map-"))
    runs = []
    try:
        for n in args.sizes:
            folder = work / f"c{n}"
            make_collection(folder, n)
            row = {"points": n, **layout_times(folder, has_umap and n <= args.umap_max),
                   **frame_times(folder, args.frames), "extend_1pct_s": extension_time(folder, max(1, n // 100))}
            runs.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    base, top = runs[0], runs[-1]
    ratios = {f"{key}_ratio": round(top[key] / base[key], 2) for key in
              ("pca_fit_s", "frame_ms_median", "api_map_s", "umap_fit_s") if key in top and base.get(key)}
    ratios["rects_over_pixels_at_largest"] = round(top["frame_ms_rects_baseline"] / top["frame_ms_median"], 2)
    print(json.dumps({"machine_cores": __import__("os").cpu_count(), "runs": runs,
                      f"{top['points']}_vs_{base['points']}": ratios}, indent=2))


if __name__ == "__main__":
    main()
