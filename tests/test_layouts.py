"""Ready ONNX layouts of other tools load as they are and give the reference implementation's vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clipdex.encoders import load_encoder
from clipdex.encoders.text import openai_bpe
from clipdex.errors import ModelNotFoundError
from model_layouts import SIDE, WORDS, tiny_clip, write_fastembed, write_immich, write_rclip, write_transformers_js

pytestmark = pytest.mark.integration


def real_photos() -> list[Image.Image]:
    """scikit-learn's two sample photos and a few of scikit-image's (one grey), plus awkward shapes and a CMYK one."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    photos += [Image.fromarray(data.astronaut()), Image.fromarray(data.coffee()), Image.fromarray(data.camera())]
    return photos + [Image.new("RGB", (8, 8), (200, 30, 30)), photos[0].resize((900, 60)), photos[1].resize((50, 700)),
                     photos[3].convert("CMYK")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("layouts")
    model, tokenizer, processor = tiny_clip(root)
    return {"model": model, "tokenizer": tokenizer, "processor": processor, "root": root, "folders": {
        "transformers.js": write_transformers_js(model, tokenizer, processor, root / "tjs"),
        "fastembed": write_fastembed(model, tokenizer, processor, root / "fastembed"),
        "immich": write_immich(model, tokenizer, root / "immich"),
        "rclip": write_rclip(model, root / "bpe", root / "rclip"),
    }}


def _reference(clip: dict[str, Any], images: list[Image.Image], processor: Any) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        pixels = torch.from_numpy(processor(images=images, return_tensors="np")["pixel_values"])
        image = clip["model"].get_image_features(pixel_values=pixels)
        tokens = clip["tokenizer"](list(WORDS), padding=True, return_tensors="pt")
        text = clip["model"].get_text_features(**tokens)
    unit = lambda x: (lambda a: a / np.linalg.norm(a, axis=1, keepdims=True))(  # noqa: E731
        np.asarray(x if hasattr(x, "shape") else x.pooler_output, np.float32))
    return unit(image), unit(text)


@pytest.mark.parametrize("layout", ["transformers.js", "fastembed", "immich", "rclip"])
def test_layout_gives_the_reference_vectors(clip: dict[str, Any], layout: str) -> None:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    enc = load_encoder(f"onnx:{clip['folders'][layout]}")
    assert enc.files.layout == layout and enc.dim == 16 and enc.image_size == SIDE
    photos = real_photos()
    processor = clip["processor"]
    if layout in ("immich", "rclip"):
        # open_clip's transform: the short side straight to the input size, then the centre crop; 4:3 photos
        # keep the crop offset whole, where torchvision's rounding and transformers' flooring agree
        processor = CLIPImageProcessorPil(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE})
        photos = [p.resize((640, 480)) for p in photos[:5]] + [photos[5]]
    image_ref, text_ref = _reference(clip, photos, processor)
    image_cos = np.sum(enc.encode_images(photos) * image_ref, axis=1)
    text_cos = np.sum(enc.encode_texts(list(WORDS)) * text_ref, axis=1)
    assert image_cos.min() >= 0.99999, image_cos
    assert text_cos.min() >= 0.99999, text_cos


def test_openai_bpe_ids_equal_the_transformers_tokenizer(clip: dict[str, Any]) -> None:
    ours = openai_bpe(clip["root"] / "bpe" / "bpe_simple_vocab_16e6.txt.gz")
    ids, mask = ours(list(WORDS))
    theirs = clip["tokenizer"](list(WORDS), padding="max_length", max_length=77)
    assert ids.tolist() == [[t if m else 0 for t, m in zip(row, ms, strict=True)]
                            for row, ms in zip(theirs["input_ids"], theirs["attention_mask"], strict=True)]
    assert mask.tolist() == theirs["attention_mask"]
    long = ours(["red " * 200])[0][0]  # cut at 77 and still ended by the end token, as OpenAI's tokenizer does
    assert len(long) == 77 and long[-1] == clip["tokenizer"].eos_token_id


def test_a_folder_in_no_layout_says_what_it_found(tmp_path: Path, clip: dict[str, Any]) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="found weights/model.onnx.*expected one of"):
        load_encoder(f"onnx:{tmp_path}")
    broken = clip["root"] / "immich-no-tokenizer"
    (broken / "visual").mkdir(parents=True)
    (broken / "textual").mkdir()
    for part in ("visual", "textual"):
        (broken / part / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="immich export but has no textual/tokenizer.json"):
        load_encoder(f"onnx:{broken}")


def test_fastembed_repos_given_as_two_folders(clip: dict[str, Any]) -> None:
    root = clip["folders"]["fastembed"]
    pair = load_encoder(f"onnx:{root / 'clip-tiny-vision'}+{root / 'clip-tiny-text'}")
    whole = load_encoder(f"onnx:{root}")
    np.testing.assert_allclose(pair.encode_texts(["a red circle"]), whole.encode_texts(["a red circle"]), atol=1e-6)


def test_every_layout_loads_and_encodes_without_torch(clip: dict[str, Any], tmp_path: Path) -> None:
    """The loader in a fresh interpreter where importing torch, transformers or open_clip fails."""
    from model_layouts import encode_without_torch, write_mclip_immich

    write_mclip_immich(tmp_path / "mclip")
    specs = {k: f"onnx:{v}" for k, v in clip["folders"].items()} | {"multilingual": f"onnx:{tmp_path / 'mclip'}"}
    assert encode_without_torch(specs) == {k: [16, 16, False] for k in specs}


def test_immich_multilingual_layout_matches_its_text_tower(tmp_path: Path) -> None:
    """immich's M-CLIP export: XLM-R tokens (pad <pad>, int32, fixed 77, with a mask), mean-pooled."""
    import torch

    from model_layouts import write_mclip_immich

    text, tokenizer, _image = write_mclip_immich(tmp_path / "mclip")
    enc = load_encoder(f"onnx:{tmp_path / 'mclip'}")
    assert enc.files.layout == "immich" and enc.dim == 16
    captions = ["un chat rouge sur le canapé", "ein roter Kreis links von einem Stern", "a photo of a cat", "два кота"]
    tokens = tokenizer(captions, padding="max_length", max_length=77, return_tensors="pt")
    assert enc.tokenize(captions)[0].tolist() == tokens["input_ids"].tolist()
    with torch.no_grad():
        reference = text(tokens["input_ids"], tokens["attention_mask"]).numpy()
    cos = np.sum(enc.encode_texts(captions) * reference, axis=1)
    assert cos.min() >= 0.99999, cos
