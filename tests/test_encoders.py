from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdex.encoders import OnnxEncoder, load_encoder
from clipdex.errors import EncoderSpecError, ModelNotFoundError
from helpers import make_tiny_hf, solid

pytestmark = pytest.mark.integration


def test_onnx_encoder_returns_unit_float32_rows(tiny_spec: str) -> None:
    enc = load_encoder(tiny_spec)
    images = enc.encode_images([solid((255, 0, 0)), solid((0, 0, 255), (20, 90))])
    texts = enc.encode_texts(["a red circle", "two blue stars left of a green heart", "x"])
    for arr, n in ((images, 2), (texts, 3)):
        assert arr.dtype == np.float32 and arr.shape == (n, enc.dim)
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, rtol=1e-5)
    assert enc.encode_texts([]).shape == (0, enc.dim)


def test_text_batches_pad_only_to_the_longest(tiny_spec: str) -> None:
    enc = load_encoder(tiny_spec)
    assert isinstance(enc, OnnxEncoder)
    ids, mask = enc.tokenize(["a red circle", "a red circle left of a blue star"])
    assert ids.shape[1] == mask.sum(axis=1).max() < enc.config.context_length


def test_embedding_of_a_text_does_not_depend_on_its_batch(tiny_spec: str) -> None:
    enc = load_encoder(tiny_spec)
    alone = enc.encode_texts(["a red circle"])[0]
    padded = enc.encode_texts(["a red circle", "a very long caption with many many words in it"])[0]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_int8_fast_path_stays_close_to_fp32(tiny_spec: str) -> None:
    images = [solid((i * 40 % 255, 80, 200 - i * 20)) for i in range(6)]
    fp32 = load_encoder(tiny_spec).encode_images(images)
    int8 = load_encoder(tiny_spec, precision="int8").encode_images(images)
    assert (fp32 * int8).sum(axis=1).mean() > 0.98


@pytest.mark.parametrize(("spec", "error", "message"), [
    ("nonsense", EncoderSpecError, "expected SCHEME:NAME"),
    ("zip:thing", EncoderSpecError, "Available: builtin, onnx, hf, open_clip"),
    ("builtin:nope", ModelNotFoundError, "no such built-in model"),
    ("onnx:/does/not/exist", ModelNotFoundError, "does not exist"),
    ("hf:/does/not/exist", ModelNotFoundError, "not a model folder"),
    ("hf:org/not-downloaded-model", ModelNotFoundError, "could not be downloaded"),
    ("open_clip:ViT-B-32/laion2b", ModelNotFoundError, "no known tag .laion2b. for ViT-B-32. Available tags"),
])
def test_bad_specs_fail_with_one_clear_line(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        load_encoder(spec).encode_texts(["x"])
    assert "\n" not in str(info.value) and spec.split(":")[0] in str(info.value) or spec == "nonsense"


def test_incomplete_onnx_folder_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "visual.onnx").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="found visual.onnx.*expected one of: clipdex, immich"):
        load_encoder(f"onnx:{tmp_path}")
    (tmp_path / "clipdex_model.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="clipdex model folder missing textual.onnx, tokenizer.json"):
        load_encoder(f"onnx:{tmp_path}")


def test_unknown_precision_lists_choices(tiny_spec: str) -> None:
    with pytest.raises(EncoderSpecError, match="Available: fp32, int8"):
        load_encoder(tiny_spec, precision="fp8")


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_hf_model_is_exported_once_and_matches_torch(tmp_path: Path, kind: str) -> None:
    import torch
    from transformers import CLIPModel, SiglipModel

    folder = make_tiny_hf(tmp_path / "hf", kind)
    enc = load_encoder(f"hf:{folder}")
    texts = ["a red circle", "a blue star left of a green heart"]
    got_t = enc.encode_texts(texts)
    got_i = enc.encode_images([solid((255, 0, 0), (32, 32)), solid((0, 90, 255), (32, 32))])
    model = (CLIPModel if kind == "clip" else SiglipModel).from_pretrained(folder).eval()
    assert isinstance(enc, OnnxEncoder)
    with torch.no_grad():
        pixels = torch.from_numpy(np.stack([enc.preprocess(solid((255, 0, 0), (32, 32))),
                                            enc.preprocess(solid((0, 90, 255), (32, 32)))]))
        ref_i = model.get_image_features(pixel_values=pixels)
        ref_i = ref_i if isinstance(ref_i, torch.Tensor) else ref_i.pooler_output
        ids, mask = enc.tokenize(texts)
        kwargs = {} if kind == "siglip" else {"attention_mask": torch.from_numpy(mask)}
        ref_t = model.get_text_features(input_ids=torch.from_numpy(ids), **kwargs)
        ref_t = ref_t if isinstance(ref_t, torch.Tensor) else ref_t.pooler_output
    ref_i = torch.nn.functional.normalize(ref_i, dim=-1).numpy()
    ref_t = torch.nn.functional.normalize(ref_t, dim=-1).numpy()
    assert (1 - (got_i * ref_i).sum(1)).max() < 1e-4
    assert (1 - (got_t * ref_t).sum(1)).max() < 1e-4
    cached = enc.folder
    again = load_encoder(f"hf:{folder}")
    assert isinstance(again, OnnxEncoder) and again.folder == cached  # exported once, then reused


def test_a_relative_model_path_is_recorded_absolute(tmp_path: Path, tiny_model: Path, scenes_folder: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from clipdex.cli import app_main

    shutil.copytree(tiny_model, tmp_path / "work" / "models" / "m")
    monkeypatch.chdir(tmp_path / "work")
    assert app_main(["index", str(scenes_folder), "--collection", "c", "--model", "onnx:models/m"]) == 0
    manifest = json.loads((tmp_path / "work" / "c" / "collection.json").read_text())
    assert manifest["encoder"] == f"onnx:{(tmp_path / 'work' / 'models' / 'm').resolve()}"
    monkeypatch.chdir(tmp_path)  # elsewhere: the collection still finds its model
    assert app_main(["search", "work/c", "a red circle", "-k", "1"]) == 0
    monkeypatch.chdir(tmp_path / "work")  # the same relative spec again names the same model
    assert app_main(["index", str(scenes_folder), "--collection", "c", "--model", "onnx:models/m"]) == 0


def test_a_query_file_gives_the_vector_its_indexed_copy_has(tmp_path: Path) -> None:
    from clipdex import Collection, Query
    from clipdex.encoders import load_encoder

    photo = Image.fromarray((np.random.default_rng(3).random((900, 1200, 3)) * 255).astype(np.uint8))
    (tmp_path / "photos").mkdir()
    photo.save(tmp_path / "photos" / "big.jpg", quality=90)  # large enough for reduced JPEG decoding
    enc = load_encoder()
    with Collection.create(tmp_path / "c", enc.spec, enc.dim, vector_dtype="float32") as coll:
        coll.add(tmp_path / "photos", enc)
        hit = coll.search(Query(image=str(tmp_path / "photos" / "big.jpg"), k=1))[0]
    assert hit.score >= 0.99999


def test_an_opened_image_and_its_file_give_the_same_vector(tmp_path: Path) -> None:
    """Alpha, 16-bit and EXIF-rotated pictures: a PIL image handed over and the same file by path agree."""
    from clipdex.media.decode import decode_image

    enc = load_encoder()
    rgba = Image.new("RGBA", (60, 40), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (10, 10, 30, 30))
    deep = Image.fromarray((np.linspace(0, 65535, 60 * 40).reshape(40, 60)).astype(np.uint16))
    rotated = Image.new("RGB", (60, 40), (0, 200, 0))
    rotated.paste((200, 0, 0), (0, 0, 20, 40))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rgba.save(tmp_path / "alpha.png")
    deep.save(tmp_path / "deep.png")
    rotated.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    for name in ("alpha.png", "deep.png", "rotated.jpg"):
        by_path = enc.encode_images([decode_image(tmp_path / name)])
        with Image.open(tmp_path / name) as opened:
            handed = enc.encode_images([opened])
        assert float(np.sum(by_path * handed)) >= 0.99999, name
