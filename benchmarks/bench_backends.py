"""Every image-tower backend on the real architectures' shapes, side by side, on this CPU.

For CLIP ViT-B/32, B/16, L/14 and SigLIP base (random weights of each shape, exported here to ONNX;
random weights are the only ones on this machine), :func:`clipdex.encoders.backends.calibrate` measures
ONNX Runtime fp32 / dynamic int8 / static QDQ int8 and OpenVINO fp32 / bf16 / int8 (NNCF) on real
photos (scikit-learn's and scikit-image's, cut to several crops): images per second at the batch given
(median of rounds, after a warm-up) and the cosine of each image's vector to ONNX Runtime fp32. A
backend is accepted at cosine >= 0.999 on every image, and ``auto`` picks the fastest accepted one,
exactly as ``clipdex index --backend auto`` does.

    python benchmarks/bench_backends.py [--only clip-vit-b32] [--images 24] [--batch 16]

Prints one JSON document and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import bench_models  # noqa: E402  (the architectures' shapes and their export)

SHAPES = {"clip-vit-b32": "ViT-B-32", "clip-vit-b16": "ViT-B-16", "clip-vit-l14": "ViT-L-14", "siglip-base": None}


def photos(n: int) -> list[Any]:
    """n real-photo crops: scikit-learn's two photos and six of scikit-image's, cut at several places."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    whole = [Image.fromarray(a) for a in load_sample_images().images] + [
        Image.fromarray(getattr(data, name)()).convert("RGB")
        for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")]
    crops = []
    for i in range(n):
        im = whole[i % len(whole)]
        w, h = im.size
        f = 0.6 + 0.4 * ((i // len(whole)) % 3) / 2
        cw, ch = int(w * f), int(h * f)
        x, y = (w - cw) * ((i * 7) % 5) // 4, (h - ch) * ((i * 3) % 4) // 3
        crops.append(im.crop((x, y, x + cw, y + ch)))
    return crops


def measure(name: str, work: Path, images: int, batch: int, rounds: int) -> dict[str, Any]:
    from clipdex.encoders.backends import calibrate
    from clipdex.encoders.onnx_runtime import OnnxEncoder

    arch = SHAPES[name]
    if arch:
        image, text, cfg = bench_models._clip_shape(arch)
        dim = cfg["embed_dim"]
    else:
        image, text, dim = bench_models._siglip_base()
    folder = bench_models._export(name, image, text, dim, 224, 64 if name == "siglip-base" else 77, work)
    del image, text
    encoder = OnnxEncoder(folder)
    pixels = np.stack([encoder.preprocess(im) for im in photos(images)])
    started = time.perf_counter()
    result = calibrate(encoder.files.visual, pixels, cache_dir=work / "cache", batch=batch, rounds=rounds,
                       spec=name)
    out = result.to_dict()
    out["calibration_seconds"] = round(time.perf_counter() - started, 1)
    out["speedup_of_choice_over_ort_fp32"] = round(
        next(r.images_per_second for r in result.results if r.backend == result.choice)
        / next(r.images_per_second for r in result.results if r.backend == "ort-fp32"), 2)
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    backends = [r["backend"] for r in next(iter(results.values()))["results"]]
    lines = ["| model | " + " | ".join(backends) + " | auto picks |", "|---" * (len(backends) + 2) + "|"]
    for name, res in results.items():
        cells = []
        for r in res["results"]:
            mark = "" if r["accepted"] else (" ✗" if not r["error"] else " (failed)")
            cells.append(f"{r['images_per_second']:.1f} img/s, cos {r['cosine_min']:.4f}{mark}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {res['choice']} "
                     f"({res['speedup_of_choice_over_ort_fp32']}x fp32) |")
    lines.append("cos: the lowest cosine to ONNX Runtime fp32 over the images; ✗: below 0.999, not accepted")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=list(SHAPES))
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(SHAPES):
            results[name] = measure(name, Path(tmp), args.images, args.batch, args.rounds)
            print(json.dumps({name: results[name]["choice"]}), file=sys.stderr, flush=True)
    print(json.dumps({"images": args.images, "batch": args.batch, "models": results}, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
