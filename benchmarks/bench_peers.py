"""clipdex beside rclip on this machine: indexing a photo folder and one text query, as whole commands.

Both tools run the same ViT-B/32-shaped CLIP (random weights, 256 px, exported here into rclip's own
layout: ``visual.onnx`` / ``textual.onnx`` with input ``input``, OpenAI's BPE vocabulary from the
open_clip_torch wheel) on the same folder of 1024x768 JPEGs made from real photos. rclip 3.3.0 is
installed in its own venv (it needs no torch) and finds its model files under ``RCLIP_DATADIR``, so it
downloads nothing (``HF_HUB_OFFLINE=1``). clipdex reads the very same folder as ``onnx:DIR``; a second,
224 px export measures clipdex at CLIP's usual input size too.

The tools run interleaved, round after round, each round waiting for a quiet machine (load average
under 0.6). Per round and tool: a cold index (an empty database), a no-op re-index (nothing changed),
and one text query as a whole process (start, load, encode, search). rclip indexes as part of a query,
so its index time is the cold query minus a query with ``--no-indexing``. Peak RSS is the process's
own (``wait4``). clipdex's backends are measured once before the rounds (``clipdex models backends``,
cached), as rclip's model download is done before its.

    python benchmarks/bench_peers.py [--n 500] [--rounds 3] [--work /tmp/clipdex-peers]

Prints one JSON document (per-round figures, medians, ratios to rclip, where clipdex's time goes) and a
markdown table. ``make bench-peers`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RCLIP = "rclip==3.3.0"
OPEN_CLIP_WHEEL = "open_clip_torch==3.3.0"
RCLIP_MODEL = "ViT-B-32-256-datacomp_s34b_b86k"  # the folder name rclip 3.3.0 looks for
QUERY = "a photo of a dog on the beach"


# -- set-up -----------------------------------------------------------------------------------------

def rclip_venv(work: Path) -> Path:
    """rclip 3.3.0 in a venv of its own (PyPI), made once."""
    venv = work / "rclip-venv"
    exe = venv / "bin" / "rclip"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", RCLIP], check=True)
    return exe


def openai_bpe(work: Path) -> Path:
    """OpenAI's BPE merges, taken from the open_clip_torch wheel (downloaded from PyPI, never imported)."""
    target = work / "bpe_simple_vocab_16e6.txt.gz"
    if not target.exists():
        import zipfile

        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", OPEN_CLIP_WHEEL, "-d",
                        str(wheels)], check=True)
        with zipfile.ZipFile(next(wheels.glob("open_clip_torch-*.whl"))) as wheel:
            target.write_bytes(wheel.read("open_clip/bpe_simple_vocab_16e6.txt.gz"))
    return target


def export_model(folder: Path, image_size: int, bpe: Path) -> Path:
    """A random-weight ViT-B/32 CLIP in rclip's layout (torch is needed here only)."""
    if (folder / "visual.onnx").exists() and (folder / "textual.onnx").exists():
        return folder
    import torch

    from clipdex.encoders.open_clip import ARCHS
    from clipdex.encoders.open_clip_vit import Text, Visual

    cfg = json.loads(json.dumps(ARCHS["ViT-B-32"]))
    cfg["vision_cfg"]["image_size"] = image_size
    torch.manual_seed(0)
    visual, text = Visual(cfg["vision_cfg"], cfg["embed_dim"], False), Text(cfg["text_cfg"], cfg["embed_dim"], False)
    with torch.no_grad():
        for module in (visual, text):
            for name, p in module.named_parameters():
                if "ln" not in name and "norm" not in name:
                    p.normal_(0, 0.02)
            module.eval()
    folder.mkdir(parents=True, exist_ok=True)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(visual, (torch.zeros(1, 3, image_size, image_size),), str(folder / "visual.onnx"),
                          dynamo=False, input_names=["input"], output_names=["output"], dynamic_axes=axes,
                          opset_version=17)
        torch.onnx.export(text, (torch.ones(1, 77, dtype=torch.long),), str(folder / "textual.onnx"), dynamo=False,
                          input_names=["input"], output_names=["output"], dynamic_axes=axes, opset_version=17)
    shutil.copy(bpe, folder / bpe.name)
    return folder


def make_photos(folder: Path, n: int, seed: int = 0) -> Path:
    """n different 1024x768 JPEGs cut from real photos (scikit-learn's and scikit-image's), jittered."""
    if folder.exists() and len(list(folder.glob("*.jpg"))) == n:
        return folder
    import numpy as np
    from PIL import Image, ImageEnhance
    from skimage import data
    from sklearn.datasets import load_sample_images

    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.fromarray(a) for a in load_sample_images().images] + [
        Image.fromarray(getattr(data, name)()).convert("RGB")
        for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")]
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    for i in range(n):
        photo = sources[i % len(sources)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im = photo.crop((x, y, x + cw, y + ch)).resize((1024, 768), Image.Resampling.BICUBIC)
        im = ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4))
        pixels = np.asarray(im, np.int16) + noise.integers(-6, 7, (768, 1024, 3), dtype=np.int16)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)
    return folder


# -- measuring ----------------------------------------------------------------------------------------

def run_measured(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> dict[str, Any]:
    """Wall seconds, peak RSS (MB) and stdout of one whole command; the RSS is this command's alone, as it
    runs under a fresh helper process whose only child it is."""
    probe = ("import os, resource, subprocess, sys, time, json; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True); s = time.perf_counter() - t; "
             "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "sys.stderr.buffer.write(p.stderr); sys.stdout.buffer.write(p.stdout); "
             "open(os.environ['PEERS_STATS'], 'w').write(json.dumps([p.returncode, s, u.ru_maxrss]))")
    stats = Path(env["PEERS_WORK"]) / "stats.json"
    done = subprocess.run([sys.executable, "-c", probe, *cmd], env={**env, "PEERS_STATS": str(stats)}, cwd=cwd,
                          capture_output=True)
    code, seconds, rss_kb = json.loads(stats.read_text())
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({code}): {done.stderr.decode()[-800:]}")
    return {"seconds": seconds, "rss_mb": rss_kb / 1024, "stdout": done.stdout.decode()}


def wait_quiet(limit: float = 0.6, most: float = 90.0) -> float:
    """Wait (at most ``most`` seconds) for the 1-minute load average to fall under ``limit``; returns it."""
    deadline = time.time() + most
    load = os.getloadavg()[0]
    while load > limit and time.time() < deadline:
        time.sleep(3)
        load = os.getloadavg()[0]
    return load


def rclip_round(exe: Path, photos: Path, env: dict[str, str]) -> dict[str, float]:
    db = Path(env["RCLIP_DATADIR"]) / "db.sqlite3"
    for leftover in db.parent.glob("db.sqlite3*"):
        leftover.unlink()
    cold = run_measured([str(exe), "-f", "-t", "5", QUERY], env, photos)
    noop = run_measured([str(exe), "-f", "-t", "5", QUERY], env, photos)
    query = run_measured([str(exe), "--no-indexing", "-f", "-t", "5", QUERY], env, photos)
    index_seconds = max(cold["seconds"] - query["seconds"], 1e-6)
    # rclip has no index-only command: its no-op re-index is a whole command that also answers a query
    return {"index_seconds": index_seconds, "index_rss_mb": cold["rss_mb"], "noop_seconds": noop["seconds"],
            "noop_beyond_query_seconds": max(noop["seconds"] - query["seconds"], 0.0),
            "query_seconds": query["seconds"], "query_rss_mb": query["rss_mb"]}


def clipdex_round(model: Path, photos: Path, env: dict[str, str], backend: str, work: Path) -> dict[str, Any]:
    exe = str(Path(sys.executable).parent / "clipdex")
    coll = work / f"coll-{model.name}-{backend}"
    shutil.rmtree(coll, ignore_errors=True)
    index = [exe, "index", str(photos), "-c", str(coll), "--model", f"onnx:{model}", "--backend", backend,
             "--no-captions", "--json"]
    cold = run_measured(index, env)
    report = json.loads(cold["stdout"])
    noop = run_measured(index, env)
    query = run_measured([exe, "search", str(coll), QUERY, "-k", "5", "--json"], env)
    return {"index_seconds": cold["seconds"], "index_rss_mb": cold["rss_mb"], "noop_seconds": noop["seconds"],
            "query_seconds": query["seconds"], "query_rss_mb": query["rss_mb"], "backend": report["backend"],
            "model_busy": report["model_busy"], "model_seconds": report["model_seconds"],
            "inside_img_s": report["images_per_second"]}


def where_time_goes(model: Path, photos: Path, backend: str) -> dict[str, float]:
    """Single-thread decode and preprocess rates and the encoder alone, for the chosen backend (in process)."""
    import numpy as np

    from clipdex.encode import decode_options
    from clipdex.encoders import load_encoder
    from clipdex.media import decode_image

    encoder = load_encoder(f"onnx:{model}", backend=backend)
    paths = sorted(photos.glob("*.jpg"))[:64]
    options = decode_options(encoder)
    t = time.perf_counter()
    images = [decode_image(p, options) for p in paths]
    decode = time.perf_counter() - t
    t = time.perf_counter()
    pixels = np.stack([encoder.preprocess(im) for im in images])
    preprocess = time.perf_counter() - t
    encoder.encode_pixels(pixels[:32])
    t = time.perf_counter()
    encoder.encode_pixels(pixels)
    encode = time.perf_counter() - t
    return {"decode_img_s_1thread": round(len(paths) / decode, 1),
            "preprocess_img_s_1thread": round(len(paths) / preprocess, 1),
            "encoder_img_s": round(len(paths) / encode, 1)}


_QUERY_STAGES = """
import json, sys, time
t0 = time.perf_counter()
from clipdex.collection import Collection
from clipdex.encoders import load_encoder
from clipdex.search import Query
t1 = time.perf_counter()
coll = Collection.open(sys.argv[1])
encoder = load_encoder(coll.encoder_spec, quick_start=True)
t2 = time.perf_counter()
encoder._textual_graph()
t3 = time.perf_counter()
encoder.tokenize(["x"])
t4 = time.perf_counter()
vector = encoder.encode_texts([sys.argv[2]])
t5 = time.perf_counter()
coll.use_encoder(encoder)
coll.search(Query(text=sys.argv[2], k=5))
t6 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "open_collection": t2 - t1, "text_session": t3 - t2, "tokenizer": t4 - t3,
                  "encode": t5 - t4, "search_incl_encode": t6 - t5}))
"""


def query_stages(coll: Path, env: dict[str, str], rounds: int = 3) -> dict[str, float]:
    """Where one command-line text query's time goes, stage by stage, in a fresh process (medians)."""
    runs = [json.loads(subprocess.run([sys.executable, "-c", _QUERY_STAGES, str(coll), QUERY], env=env,
                                      capture_output=True, check=True).stdout) for _ in range(rounds)]
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


# -- report -----------------------------------------------------------------------------------------------

def summarise(rounds: list[dict[str, dict[str, Any]]], n: int) -> dict[str, dict[str, Any]]:
    tools = list(rounds[0])
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        rows = [r[tool] for r in rounds]
        med = {key: statistics.median(row[key] for row in rows) for key in rows[0] if
               isinstance(rows[0][key], float | int)}
        med["img_s"] = n / med["index_seconds"]
        out[tool] = {k: round(v, 3) for k, v in med.items()}
        if "backend" in rows[0]:
            out[tool]["backend"] = rows[0]["backend"]
    base = out["rclip"]
    for figures in out.values():
        figures["img_s_vs_rclip"] = round(figures["img_s"] / base["img_s"], 2)
        figures["rss_vs_rclip"] = round(figures["index_rss_mb"] / base["index_rss_mb"], 2)
        figures["query_vs_rclip"] = round(figures["query_seconds"] / base["query_seconds"], 2)
        figures["noop_vs_rclip"] = round(figures["noop_seconds"] / max(base["noop_seconds"], 1e-3), 2)
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| tool / config | img/s end to end | vs rclip | peak RSS MB (vs rclip) | no-op re-index s (whole "
             "command; rclip's also answers a query) | text query s, whole process (vs rclip) | model busy |",
             "|---|---|---|---|---|---|---|"]
    for tool, f in summary.items():
        busy = f"{f['model_busy']:.0%}" if "model_busy" in f else "-"
        lines.append(f"| {tool} | {f['img_s']:.1f} | {f['img_s_vs_rclip']:.2f}x | {f['index_rss_mb']:.0f} "
                     f"({f['rss_vs_rclip']:.2f}x) | {f['noop_seconds']:.2f} | {f['query_seconds']:.2f} "
                     f"({f['query_vs_rclip']:.2f}x) | {busy} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/clipdex-peers"))
    parser.add_argument("--configs", default="fp32-256,auto-256,auto-224",
                        help="clipdex configs BACKEND-SIZE, comma-separated")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    exe = rclip_venv(work)
    bpe = openai_bpe(work)
    datadir = work / "rclip-data"
    models = {256: export_model(datadir / RCLIP_MODEL, 256, bpe), 224: export_model(work / "vit-b32-224", 224, bpe)}
    (datadir / "tokenizer").mkdir(exist_ok=True)
    shutil.copy(bpe, datadir / "tokenizer" / bpe.name)
    photos = make_photos(work / "photos", args.n)
    env = {**os.environ, "RCLIP_DATADIR": str(datadir), "HF_HUB_OFFLINE": "1", "PEERS_WORK": str(work),
           "CLIPDEX_CACHE": str(work / "clipdex-cache"), "CLIPDEX_DATA_DIR": str(work / "clipdex-data")}
    configs = [(c.split("-")[0], int(c.split("-")[1])) for c in args.configs.split(",")]
    calibrations = {}
    for size in sorted({s for b, s in configs if b == "auto"}):
        done = run_measured([str(Path(sys.executable).parent / "clipdex"), "models", "backends",
                             f"onnx:{models[size]}", str(photos), "--json"], env)
        calibrations[f"{size}px"] = json.loads(done["stdout"])
    rounds = []
    loads = []
    for _ in range(args.rounds):
        loads.append(round(wait_quiet(), 2))
        row = {"rclip": rclip_round(exe, photos, env)}
        for backend, size in configs:
            row[f"clipdex {backend} {size}px"] = clipdex_round(models[size], photos, env, backend, work)
        rounds.append(row)
        print(json.dumps({"round": len(rounds), **{k: round(v["index_seconds"], 2) for k, v in row.items()}}),
              file=sys.stderr, flush=True)
    summary = summarise(rounds, args.n)
    chosen = {size: summary.get(f"clipdex auto {size}px", {}).get("backend", "ort-fp32") for size in (224, 256)}
    result = {"images": args.n, "image_size": "1024x768 JPEG q90", "cpu": calibrations.get("256px", {}).get(
        "machine", ""), "rounds": args.rounds, "load_before_rounds": loads, "query": QUERY,
        "median": summary, "per_round": rounds, "calibration": calibrations,
        "where_time_goes": {f"{size}px {backend}": where_time_goes(models[size], photos, backend)
                            for size, backend in chosen.items()},
        "query_stages_s": query_stages(work / f"coll-{models[256].name}-fp32", env)}
    print(json.dumps(result, indent=2))
    print(table(summary))


if __name__ == "__main__":
    main()
