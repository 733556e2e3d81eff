"""Embedding throughput: decode-only, encoder-only, end to end, vs torch eager fp32.

ViT-B/32 (transformers ``CLIPConfig()`` defaults, random weights) on synthetic
1024x768 JPEGs. Prints one JSON document. Usage:

    python benchmarks/bench_embed.py [--n 500] [--out /tmp/bench-embed]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_jpegs(folder: Path, n: int) -> list[Path]:
    from clipdex.synth import render_scene, sample_scenes

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scene in enumerate(sample_scenes(n, seed=11)):
        path = folder / f"{i:04d}.jpg"
        if not path.exists():
            render_scene(scene, 768, supersample=1).resize((1024, 768)).save(path, quality=90)
        paths.append(path)
    return paths


def sgemm_gflops() -> float:
    """Measured fp32 matmul rate of this machine (the ceiling for the encoder)."""
    a = np.random.rand(2048, 2048).astype(np.float32)
    b = np.random.rand(2048, 2048).astype(np.float32)
    a @ b
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * 2048**3 / statistics.median(times) / 1e9


def export_vit_b32(folder: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel

    from clipdex.train.tokenizer import build_word_tokenizer

    if (folder / "clipdex_model.json").exists():
        return folder
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig())
    src = folder.parent / "vit-b32-hf"
    model.save_pretrained(src)
    build_word_tokenizer(["a", "photo", "of", "cat"]).save(str(src / "tokenizer.json"))
    from clipdex.encoders.hf import hf_onnx_folder

    exported = hf_onnx_folder(str(src), cache_dir=folder.parent / "cache")
    os.symlink(exported, folder)
    return folder


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2)


def bench(n: int, work: Path) -> dict[str, object]:
    import torch
    from transformers import CLIPModel

    from clipdex import Collection, IndexOptions, load_encoder
    from clipdex.encoders import OnnxEncoder
    from clipdex.media import DecodeOptions, decode_image, decode_stream

    paths = make_jpegs(work / "jpegs", n)
    model_dir = export_vit_b32(work / "vit-b32")
    spec = f"onnx:{model_dir}"
    out: dict[str, object] = {"images": n, "cores": os.cpu_count(), "model": "ViT-B/32 (CLIPConfig defaults)"}
    out["sgemm_gflops"] = round(sgemm_gflops(), 1)
    gflop_per_image = 8.8
    out["fp32_matmul_limit_img_s"] = round(out["sgemm_gflops"] / gflop_per_image, 2)  # type: ignore[operator]

    # decode only: full decode vs reduced (draft) decode, one thread
    t = time.perf_counter()
    for p in paths[:150]:
        decode_image(p)
    out["decode_full_img_s_1thread"] = rate(150, time.perf_counter() - t)
    t = time.perf_counter()
    for p in paths[:150]:
        decode_image(p, DecodeOptions(draft_size=224))
    out["decode_draft_img_s_1thread"] = rate(150, time.perf_counter() - t)

    enc32 = load_encoder(spec, batch_size=32)
    assert isinstance(enc32, OnnxEncoder)
    pixels = np.stack([d.value for d in decode_stream(paths, str, DecodeOptions(draft_size=224), enc32.preprocess)])
    t = time.perf_counter()
    decoded = list(decode_stream(paths, str, DecodeOptions(draft_size=224), enc32.preprocess))
    out["decode_preprocess_img_s_pipeline"] = rate(len(decoded), time.perf_counter() - t)

    # torch eager fp32, same weights
    hf = CLIPModel.from_pretrained(work / "vit-b32-hf").eval()
    torch.set_num_threads(os.cpu_count() or 1)
    sub = torch.from_numpy(pixels[:128])
    with torch.no_grad():
        hf.get_image_features(pixel_values=sub[:8])
        t = time.perf_counter()
        for i in range(0, len(sub), 32):
            hf.get_image_features(pixel_values=sub[i : i + 32])
        out["torch_eager_fp32_img_s"] = rate(len(sub), time.perf_counter() - t)

    results = {}
    for precision in ("fp32", "int8"):
        enc = load_encoder(spec, precision=precision, batch_size=32, cache_dir=work / "cache")
        enc.encode_pixels(pixels[:8])
        t = time.perf_counter()
        emb = enc.encode_pixels(pixels)
        out[f"onnx_{precision}_encoder_img_s"] = rate(len(pixels), time.perf_counter() - t)
        results[precision] = emb
        coll = Collection.create(Path(tempfile.mkdtemp(dir=work)) / "c", enc.spec, enc.dim)
        report = coll.add(work / "jpegs", enc, IndexOptions(batch_size=32))
        out[f"end_to_end_{precision}_img_s"] = round(report.images_per_second, 2)
        out[f"end_to_end_over_encoder_{precision}"] = round(
            report.images_per_second / out[f"onnx_{precision}_encoder_img_s"], 3)  # type: ignore[operator]
    out["int8_vs_fp32_mean_cosine"] = round(float((results["fp32"] * results["int8"]).sum(1).mean()), 4)
    out["int8_speedup_vs_torch_fp32"] = round(
        out["onnx_int8_encoder_img_s"] / out["torch_eager_fp32_img_s"], 2)  # type: ignore[operator]
    out["fp32_encoder_share_of_matmul_limit"] = round(
        out["onnx_fp32_encoder_img_s"] / out["fp32_matmul_limit_img_s"], 3)  # type: ignore[operator]
    ids, _ = enc32.tokenize(["a cat", "a photo of a cat"])
    out["text_batch_padded_to"] = int(ids.shape[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "clipdex-bench-embed"))
    args = parser.parse_args()
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(bench(args.n, work), indent=2))


if __name__ == "__main__":
    main()
