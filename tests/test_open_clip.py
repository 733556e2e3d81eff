"""``open_clip:`` checkpoints exported without open_clip, compared with open_clip's own outputs.

The goldens in tests/data/open_clip_tiny were written by tests/make_open_clip_goldens.py in a separate
environment with open_clip 3.3.0 installed; open_clip is never imported here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdex.encoders import load_encoder
from clipdex.errors import ModelNotFoundError
from model_layouts import write_bpe

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent / "data" / "open_clip_tiny"


def photos() -> list[Image.Image]:
    """The images the goldens were made from (see make_open_clip_goldens.photos)."""
    from sklearn.datasets import load_sample_images

    real = [Image.fromarray(a) for a in load_sample_images().images]
    return real + [real[0].resize((641, 427)), real[1].resize((300, 40)), Image.new("RGB", (8, 8), (200, 30, 30))]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("oc") / "tiny"
    shutil.copytree(GOLDEN, folder)
    write_bpe(tmp_path_factory.mktemp("bpe"))  # any merges file: the goldens' token ids are fed directly
    shutil.copy(next(tmp_path_factory.getbasetemp().glob("bpe*/bpe_simple_vocab_16e6.txt.gz")), folder)
    return folder / "open_clip_model.safetensors"


def test_export_matches_open_clip(checkpoint: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    golden = np.load(GOLDEN / "goldens.npz")
    enc = load_encoder(f"open_clip:tiny/{checkpoint}", cache_dir=tmp_path)
    assert enc.dim == 16 and enc.image_size == 32
    images = photos()
    pixels = np.stack([enc.preprocess(im) for im in images])
    assert np.abs(pixels - golden["pixels"]).max() <= 1e-4  # torchvision's resize and crop placement
    image_cos = np.sum(enc.encode_images(images) * _unit(golden["image"]), axis=1)
    assert image_cos.min() >= 0.99999, image_cos
    session = ort.InferenceSession(str(enc.folder / "textual.onnx"), providers=["CPUExecutionProvider"])
    ids = golden["ids"].astype(np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}  # the causal graph drops the unused mask
    text = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
    text_cos = np.sum(_unit(text) * _unit(golden["text"]), axis=1)
    assert text_cos.min() >= 0.99999, text_cos


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_an_exported_checkpoint_loads_without_torch(checkpoint: Path, tmp_path: Path) -> None:
    from model_layouts import encode_without_torch

    spec = f"open_clip:tiny/{checkpoint}"
    load_encoder(spec, cache_dir=tmp_path)  # exported once, here, with torch
    assert encode_without_torch({"open_clip": spec}, tmp_path) == {"open_clip": [16, 16, False]}


def test_open_clip_specs_that_cannot_load_say_why(checkpoint: Path, tmp_path: Path) -> None:
    cases = {
        "open_clip:ViT-B-32": "expected open_clip:ARCH/TAG",
        "open_clip:ViT-B-32/nonsense_tag": "Available tags: datacomp_xl_s13b_b90k, laion2b_s34b_b79k, openai",
        f"open_clip:RN50/{tmp_path / 'w.bin'}": "no known tag",
    }
    for spec, message in cases.items():
        with pytest.raises(ModelNotFoundError, match=message):
            load_encoder(spec, cache_dir=tmp_path)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(checkpoint, bare / checkpoint.name)
    with pytest.raises(ModelNotFoundError, match="unknown architecture 'tiny'"):
        load_encoder(f"open_clip:tiny/{bare / checkpoint.name}", cache_dir=tmp_path)
    shutil.copy(checkpoint.parent / "open_clip_config.json", bare)
    with pytest.raises(ModelNotFoundError, match="no tokenizer beside"):
        load_encoder(f"open_clip:tiny/{bare / checkpoint.name}", cache_dir=tmp_path)


def test_a_tag_resolves_through_the_hugging_face_cache_offline(checkpoint: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A pre-populated HF cache in the layout huggingface_hub writes; HF_HUB_OFFLINE keeps it offline."""
    repo = tmp_path / "hub" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for f in checkpoint.parent.iterdir():
        if f.name != "goldens.npz":
            shutil.copy(f, snapshot / f.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = load_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k", cache_dir=tmp_path / "cache")
    assert enc.dim == 16  # the snapshot's own open_clip_config.json decides the architecture
