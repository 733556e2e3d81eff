"""Builders of tiny models and odd files shared by the tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image


def make_tiny_onnx(folder: Path, seed: int = 0) -> Path:
    """The built-in architecture at toy size, random weights, exported to an onnx: folder."""
    import torch

    from clipdex.encoders.export import export_onnx_folder
    from clipdex.encoders.preprocess import ModelConfig
    from clipdex.synth.world import vocabulary
    from clipdex.train.model import DualEncoder, TinyConfig
    from clipdex.train.tokenizer import build_word_tokenizer

    torch.manual_seed(seed)
    tok = build_word_tokenizer(vocabulary())
    cfg = TinyConfig(image_size=32, patch_size=8, vision_width=32, vision_layers=1, text_width=32,
                     text_layers=1, heads=2, vocab_size=128, context_length=32, embed_dim=16)
    model = DualEncoder(cfg).eval()
    runtime = ModelConfig(image_size=32, dim=16, context_length=32, mean=(0.5,) * 3, std=(0.5,) * 3, name="tiny")
    return export_onnx_folder(model.visual, model.textual, tok, runtime, folder)


def make_tiny_hf(folder: Path, kind: str = "clip") -> Path:
    """A randomly initialised transformers CLIPModel/SiglipModel with a word-level tokenizer.json."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    from clipdex.synth.world import vocabulary
    from clipdex.train.tokenizer import build_word_tokenizer

    torch.manual_seed(0)
    tok = build_word_tokenizer(vocabulary())
    text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=32, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                  patch_size=8)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def solid(color: tuple[int, int, int], size: tuple[int, int] = (48, 40), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def write_bad_folder(root: Path) -> dict[str, str]:
    """The issue's bad-input folder; returns {name: 'good' | 'bad'} for image-named files."""
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    for name, fmt in (("good.jpg", "JPEG"), ("good.png", "PNG"), ("good.webp", "WEBP"), ("good.gif", "GIF"),
                      ("good.tiff", "TIFF")):
        noise.save(root / name, format=fmt)
        kinds[name] = "good"
    full = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 3])
    kinds["truncated.jpg"] = "bad"
    (root / "empty.jpg").write_bytes(b"")
    kinds["empty.jpg"] = "bad"
    (root / "notes.png").write_text("this is not an image")
    kinds["notes.png"] = "bad"
    _png_bomb(root / "bomb.png", 30000, 30000)
    kinds["bomb.png"] = "bad"
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    kinds["cmyk.jpg"] = "good"
    Image.fromarray(np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).save(root / "deep16.png")
    kinds["deep16.png"] = "good"
    pal = Image.new("P", (30, 30), 0)  # index 0 (red) is transparent: the left half
    pal.paste(1, (15, 0, 30, 30))  # index 1: opaque green on the right
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.save(root / "palette.png", transparency=0)
    kinds["palette.png"] = "good"
    rotated = Image.new("RGB", (60, 30), (200, 10, 10))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    rotated.save(root / "rotated.jpg", exif=exif)
    kinds["rotated.jpg"] = "good"
    locked = root / "locked.png"
    noise.save(locked)
    locked.chmod(0)
    kinds["locked.png"] = "bad"
    weird = Path(bytes(root) .decode() + "/caf\udce9.png")  # a Latin-1 byte in the name: not UTF-8
    noise.save(str(weird), format="PNG")
    kinds["caf\udce9.png"] = "good"
    (root / "sub").mkdir(exist_ok=True)
    noise.save(root / "sub" / "nested.png")
    kinds["sub/nested.png"] = "good"
    (root / "sub" / "loop").symlink_to(root)  # a symlink loop back to the top
    return kinds


def _png_bomb(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims width x height (the pixel data is never read)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * width
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def read_json(text: str) -> dict:
    return json.loads(text)


def free_port() -> int:
    """A free TCP port on loopback, for a test server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(*targets: str) -> Iterator[str]:
    """``clipdex serve TARGETS`` in a real process on a free loopback port; yields its base URL, stops it."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clipdex", "serve", *targets, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=30).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {proc.stdout.read() if proc.stdout else ''}") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
