"""Speed and int8 fidelity of the catalog's architectures, measured here on random weights of each shape.

For every model of ``clipdex models`` (CLIP ViT-B/32, B/16, L/14, SigLIP base, M-CLIP's XLM-R large text
tower on ViT-B/32) a random-weight model of the same shape is exported to ONNX and measured with clipdex's
own runtime: image throughput at batch 32 (fp32 and dynamic int8, median of rounds), one text query's
latency, and how close int8 stays to fp32 (cosine of each image vector, and the overlap of image->image
top-10 neighbours over a 64-image gallery). Random weights are the only ones on this machine: the
figures say what the architecture costs, not how well a trained model ranks.

    python benchmarks/bench_models.py [--out src/clipdex/encoders/catalog_measured.json] [--only NAME]

Prints one JSON document; with --out it also writes it where ``clipdex models`` reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores"


def _randomise(module: Any, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "ln" in name.split(".")[-2:][0] or "norm" in name.lower():
                continue  # keep LayerNorms at their identity init
            p.normal_(0, 0.02)


def _clip_shape(arch: str) -> tuple[Any, Any, Any]:
    import torch

    from clipdex.encoders.open_clip import ARCHS
    from clipdex.encoders.open_clip_vit import Text, Visual

    cfg = ARCHS[arch]
    visual, text = Visual(cfg["vision_cfg"], cfg["embed_dim"], False), Text(cfg["text_cfg"], cfg["embed_dim"], False)
    for i, m in enumerate((visual, text)):
        _randomise(m, i)
        m.eval()
    torch.set_grad_enabled(False)
    return visual, text, cfg


def _siglip_base() -> tuple[Any, Any, int]:
    import torch
    from transformers import SiglipConfig, SiglipModel

    model = SiglipModel(SiglipConfig(
        text_config=dict(vocab_size=32000, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=64),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=16))).eval()
    model.requires_grad_(False)

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, pixels: Any) -> Any:
            out = self.m.get_image_features(pixel_values=pixels)
            return out if hasattr(out, "shape") else out.pooler_output

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, ids: Any, mask: Any) -> Any:
            out = self.m.get_text_features(input_ids=ids)
            return out if hasattr(out, "shape") else out.pooler_output

    return Image(), Text(), 768


def _mclip_large() -> tuple[Any, Any, int]:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    visual, _, _ = _clip_shape("ViT-B-32")
    encoder = XLMRobertaModel(XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                                               num_attention_heads=16, intermediate_size=4096,
                                               max_position_embeddings=514)).eval()
    encoder.requires_grad_(False)

    class Text(torch.nn.Module):  # M-CLIP: mean of the token states over the mask, then a linear map
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(1024, 512)

        def forward(self, ids: Any, mask: Any) -> Any:
            states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            return self.head(pooled)

    return visual, Text().eval(), 512


def _export(name: str, image: Any, text: Any, dim: int, size: int, context: int, out: Path) -> Path:
    from clipdex.encoders.export import export_onnx_folder
    from clipdex.encoders.preprocess import ModelConfig
    from clipdex.synth.world import vocabulary
    from clipdex.train.tokenizer import build_word_tokenizer

    config = ModelConfig(image_size=size, dim=dim, context_length=context, name=name)
    return export_onnx_folder(image, text, build_word_tokenizer(vocabulary()), config, out / name, force=True)


def _images(size: int, n: int) -> list[Any]:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from clipdex.synth import render_scene, sample_scenes

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    crops = [p.crop((x, y, x + 300, y + 300)) for p in photos for x in (0, 150, 300) for y in (0, 100)]
    scenes = [render_scene(s, size) for s in sample_scenes(n, seed=5)]
    return (crops + scenes)[:n]


def _measure(folder: Path, rounds: int) -> dict[str, Any]:
    from clipdex.encoders.onnx_runtime import OnnxEncoder

    fp32, int8 = OnnxEncoder(folder), OnnxEncoder(folder, precision="int8")
    images = _images(fp32.image_size, 64)
    pixels = np.stack([fp32.preprocess(im) for im in images])
    figures: dict[str, Any] = {}
    for label, enc in (("fp32", fp32), ("int8", int8)):
        enc.encode_pixels(pixels[:2])  # sessions load (and int8 quantises) outside the timing
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            enc.encode_pixels(pixels[:32])
            times.append(time.perf_counter() - t0)
        figures[f"{label}_img_s"] = round(32 / statistics.median(times), 2)
    fp32.encode_texts(["warm up"])
    text_times = []
    for _ in range(max(rounds, 5)):
        t0 = time.perf_counter()
        fp32.encode_texts(["a red circle left of a blue star on a sunny beach"])
        text_times.append(time.perf_counter() - t0)
    figures["text_ms"] = round(1000 * statistics.median(text_times), 2)
    a, b = fp32.encode_pixels(pixels), int8.encode_pixels(pixels)
    cos = np.sum(a * b, axis=1)
    figures["int8_cos_min"], figures["int8_cos_median"] = round(float(cos.min()), 5), round(float(np.median(cos)), 5)
    top_a, top_b = np.argsort(-(a @ a.T), axis=1)[:, 1:11], np.argsort(-(a @ b.T), axis=1)[:, 1:11]
    figures["int8_top10_overlap"] = round(float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top_a, top_b,
                                                                                                  strict=True)])), 3)
    # graphs over 2 GB keep their weights in external data files beside the .onnx
    figures["onnx_fp32_mb"] = round(sum(f.stat().st_size for f in folder.iterdir()
                                        if f.suffix not in (".json",) and f.name != "tokenizer.json") / 1e6, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", action="append")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shapes = {
        "clip-vit-b32": lambda: _clip_shape("ViT-B-32"), "clip-vit-b16": lambda: _clip_shape("ViT-B-16"),
        "clip-vit-l14": lambda: _clip_shape("ViT-L-14"), "siglip-base": _siglip_base,
        "mclip-xlmr-large-b32": _mclip_large,
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in shapes.items():
            if args.only and name not in args.only:
                continue
            image, text, extra = build()
            dim = extra["embed_dim"] if isinstance(extra, dict) else extra
            size = 224
            context = 64 if name == "siglip-base" else 77
            started = time.perf_counter()
            folder = _export(name, image, text, dim, size, context, Path(tmp))
            del image, text
            results[name] = {**_measure(folder, args.rounds), "export_s": round(time.perf_counter() - started, 1)}
            print(json.dumps({name: results[name]}), flush=True)
    if args.only and args.out and args.out.exists():  # a partial run updates the models it measured
        results = {**json.loads(args.out.read_text()).get("models", {}), **results}
    results["laion-vit-b32"] = {**results.get("clip-vit-b32", {}), "same_shape_as": "clip-vit-b32"}
    doc = {"machine": {"cpu": _cpu(), "date": time.strftime("%Y-%m-%d"), "onnxruntime": _version("onnxruntime"),
                       "weights": "random, each architecture's shape"}, "models": results}
    print(json.dumps(doc, indent=2))
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2) + "\n")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
