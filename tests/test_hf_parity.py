"""``hf:`` checkpoints against transformers itself: its processor's pixels, its tokenizer's ids, its vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clipdex.cli import app_main
from clipdex.encoders import load_encoder
from clipdex.errors import ModelNotFoundError
from model_layouts import WORDS, tiny_clip, tiny_siglip
from test_layouts import real_photos

pytestmark = pytest.mark.integration


def _unit(x: Any) -> np.ndarray:
    a = np.asarray(x if hasattr(x, "shape") else x.pooler_output, np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def siglip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any, Path]:
    root = tmp_path_factory.mktemp("siglip")
    model, tokenizer, processor = tiny_siglip(root)
    return model, tokenizer, processor, root


@pytest.mark.parametrize("layout", ["google", "converted"])
def test_siglip_matches_transformers_in_both_tokenizer_layouts(siglip: tuple[Any, Any, Any, Path],
                                                               layout: str, tmp_path: Path) -> None:
    import torch

    model, tokenizer, processor, root = siglip
    enc = load_encoder(f"hf:{root / layout}", cache_dir=tmp_path)
    texts = [*WORDS, "A Photo Of A CAT", "a photo of a cat"]
    ids = tokenizer(texts, padding="max_length", max_length=64, return_tensors="pt")["input_ids"]
    assert enc.tokenize(texts)[0].tolist() == ids.tolist()  # pad </s>, canonicalised, eos-terminated
    photos = real_photos()
    pixels = processor(images=photos, return_tensors="np")["pixel_values"]
    assert np.abs(np.stack([enc.preprocess(p) for p in photos]) - pixels).max() <= 1e-4
    with torch.no_grad():
        text_ref = _unit(model.get_text_features(input_ids=ids))
        image_ref = _unit(model.get_image_features(pixel_values=torch.from_numpy(pixels)))
    assert np.sum(enc.encode_texts(texts) * text_ref, axis=1).min() >= 0.99999
    assert np.sum(enc.encode_images(photos) * image_ref, axis=1).min() >= 0.99999


def test_clip_checkpoint_uses_its_processor_and_tokenizer(tmp_path: Path) -> None:
    """A 40-px resize with a 32-px crop: both read from preprocessor_config.json, as transformers does."""
    import torch

    model, tokenizer, processor = tiny_clip(tmp_path / "clip")
    enc = load_encoder(f"hf:{tmp_path / 'clip' / 'hf'}", cache_dir=tmp_path / "cache")
    photos = real_photos()
    pixels = processor(images=photos, return_tensors="np")["pixel_values"]
    assert np.abs(np.stack([enc.preprocess(p) for p in photos]) - pixels).max() <= 1e-4
    tokens = tokenizer(list(WORDS), padding=True, return_tensors="pt")
    with torch.no_grad():
        text_ref = _unit(model.get_text_features(**tokens))
        image_ref = _unit(model.get_image_features(pixel_values=torch.from_numpy(pixels)))
    assert enc.tokenize(list(WORDS))[0].tolist() == tokens["input_ids"].tolist()
    assert np.sum(enc.encode_texts(list(WORDS)) * text_ref, axis=1).min() >= 0.99999
    assert np.sum(enc.encode_images(photos) * image_ref, axis=1).min() >= 0.99999


def test_cached_exports_load_without_torch(siglip: tuple[Any, Any, Any, Path], tmp_path: Path) -> None:
    from model_layouts import encode_without_torch

    tiny_clip(tmp_path / "clip")
    root = siglip[3]
    specs = {"clip": f"hf:{tmp_path / 'clip' / 'hf'}", "siglip-google": f"hf:{root / 'google'}",
             "siglip-converted": f"hf:{root / 'converted'}"}
    for spec in specs.values():
        load_encoder(spec, cache_dir=tmp_path / "cache")  # exported once, here, with torch
    found = encode_without_torch(specs, tmp_path / "cache")
    assert found == {"clip": [16, 16, False], "siglip-google": [32, 32, False], "siglip-converted": [32, 32, False]}


def test_folders_that_are_not_clip_or_siglip_fail_in_one_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    no_weights = tmp_path / "noweights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps({"model_type": "clip"}))
    cases = {empty: "no config.json", bert: "model type 'bert' is not a dual encoder", no_weights: "no weights"}
    for folder, message in cases.items():
        with pytest.raises(ModelNotFoundError, match=message):
            load_encoder(f"hf:{folder}", cache_dir=tmp_path / "cache")
        Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
        assert app_main(["index", str(tmp_path / "x.png"), "--collection", str(tmp_path / "c"),
                         "--model", f"hf:{folder}"]) == 3
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_siglip_in_the_transformers_js_layout(siglip: tuple[Any, Any, Any, Path], tmp_path: Path) -> None:
    """Xenova's SigLIP export: onnx/ graphs, the converted tokenizer.json, SigLIP's tokenizer_config."""
    import shutil

    import torch

    from model_layouts import write_transformers_js

    model, tokenizer, processor, root = siglip
    out = write_transformers_js(model, tokenizer, processor, tmp_path / "tjs")
    (out / "spiece.model").unlink()
    shutil.copy(root / "converted" / "tokenizer.json", out / "tokenizer.json")
    enc = load_encoder(f"onnx:{out}")
    texts = [*WORDS, "A Photo Of A CAT"]
    ids = tokenizer(texts, padding="max_length", max_length=64, return_tensors="pt")["input_ids"]
    assert enc.files.layout == "transformers.js" and enc.tokenize(texts)[0].tolist() == ids.tolist()
    with torch.no_grad():
        reference = _unit(model.get_text_features(input_ids=ids))
    assert np.sum(enc.encode_texts(texts) * reference, axis=1).min() >= 0.99999
