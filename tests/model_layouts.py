"""A tiny random-weight CLIP (transformers) written out in the layouts other tools ship.

Each writer follows the layout its project's export code produces (file names,
input and output names, element types, fixed or dynamic batch): immich
(open_clip export: ``image`` / ``text`` int32, batch 1, ``embedding``),
transformers.js (``onnx/vision_model.onnx`` / ``onnx/text_model.onnx`` with
``image_embeds`` / ``text_embeds``), fastembed (a vision repo and a text repo)
and rclip (``visual.onnx`` / ``textual.onnx`` with input ``input`` and OpenAI's
BPE merges file). The tokenizer is a small BPE learned here in OpenAI's merges
format, so the same merges serve OpenAI-style and transformers-style folders.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

WORDS = ("a red circle left of a blue star", "two green squares above a yellow triangle",
         "a photo of a cat on a sofa", "the purple hexagon is below the orange square",
         "A Photo Of A CAT!", "a dog, a cat and a bird")
SIDE = 32  # the vision tower's input
RESIZE = 40  # the processor's shortest edge before the centre crop


def _alphabet() -> list[str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


def learn_merges(words: list[str], count: int = 120) -> list[tuple[str, str]]:
    """Greedy BPE merges over ``words`` (end-of-word marked with ``</w>``), most frequent pair first."""
    corpus = Counter(tuple(w[:-1]) + (w[-1] + "</w>",) for w in words if w)
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, n in corpus.items():
            for pair in zip(word, word[1:], strict=False):
                pairs[pair] += n
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, n in corpus.items():
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        corpus = merged
    return merges


def write_bpe(folder: Path) -> dict[str, int]:
    """OpenAI's merges file (``bpe_simple_vocab_16e6.txt.gz``) and transformers' vocab.json + merges.txt."""
    from clipdex.synth.world import vocabulary

    words = [w.lower() for text in WORDS for w in text.replace(",", " ").replace("!", " ").split()]
    merges = learn_merges(words + list(vocabulary()))
    alphabet = _alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    folder.mkdir(parents=True, exist_ok=True)
    text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    with gzip.open(folder / "bpe_simple_vocab_16e6.txt.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    (folder / "merges.txt").write_text(text, encoding="utf-8")
    vocab = {t: i for i, t in enumerate(tokens + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    return vocab


def tiny_clip(folder: Path) -> tuple[Any, Any, Any]:
    """(CLIPModel, CLIPTokenizerFast, CLIPImageProcessorPil) with random weights, saved to ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizerFast
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    vocab = write_bpe(folder / "bpe")
    torch.manual_seed(0)
    eos = vocab["<|endoftext|>"]
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=77, bos_token_id=eos - 1, eos_token_id=eos,
                pad_token_id=eos)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=SIDE, patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    model.requires_grad_(False)
    tokenizer = CLIPTokenizerFast(vocab=str(folder / "bpe" / "vocab.json"), merges=str(folder / "bpe" / "merges.txt"))
    assert len(tokenizer) == len(vocab), "the tokenizer did not take the vocabulary"
    processor = CLIPImageProcessorPil(size={"shortest_edge": RESIZE}, crop_size={"height": SIDE, "width": SIDE})
    model.save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    processor.save_pretrained(folder / "hf")
    return model, tokenizer, processor


def _export(module: Any, args: tuple[Any, ...], path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]] | None) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                      dynamic_axes=dynamic, opset_version=17)


def _towers(model: Any, normalize: bool, text_mask: bool, int32: bool = False) -> tuple[Any, Any]:
    import torch

    def unit(x: Any) -> Any:
        x = x if hasattr(x, "shape") else x.pooler_output
        return torch.nn.functional.normalize(x, dim=-1) if normalize else x

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # a submodule, so the export sees the weights as parameters

        def forward(self, pixels: Any) -> Any:
            return unit(self.model.get_image_features(pixel_values=pixels))

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Any, mask: Any = None) -> Any:
            ids = ids.long() if int32 else ids
            return unit(self.model.get_text_features(input_ids=ids, attention_mask=mask if text_mask else None))

    return Image(), Text()


def write_transformers_js(model: Any, tokenizer: Any, processor: Any, out: Path) -> Path:
    import torch

    image, text = _towers(model, normalize=False, text_mask=False)
    batch = {0: "batch"}
    _export(image, (torch.zeros(1, 3, SIDE, SIDE),), out / "onnx" / "vision_model.onnx", ["pixel_values"],
            ["image_embeds"], {"pixel_values": batch, "image_embeds": batch})
    _export(text, (torch.ones(1, 5, dtype=torch.long),), out / "onnx" / "text_model.onnx", ["input_ids"],
            ["text_embeds"], {"input_ids": {0: "batch", 1: "sequence"}, "text_embeds": batch})
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    model.config.save_pretrained(out)
    return out


def write_fastembed(model: Any, tokenizer: Any, processor: Any, out: Path) -> Path:
    import torch

    image, text = _towers(model, normalize=False, text_mask=True)
    vision_dir, text_dir = out / "clip-tiny-vision", out / "clip-tiny-text"
    batch = {0: "batch"}
    _export(image, (torch.zeros(1, 3, SIDE, SIDE),), vision_dir / "model.onnx", ["pixel_values"],
            ["image_embeds"], {"pixel_values": batch, "image_embeds": batch})
    ids = torch.ones(1, 5, dtype=torch.long)
    _export(text, (ids, torch.ones_like(ids)), text_dir / "model.onnx", ["input_ids", "attention_mask"],
            ["text_embeds"], {"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "text_embeds": batch})
    processor.save_pretrained(vision_dir)
    model.config.save_pretrained(vision_dir)
    tokenizer.save_pretrained(text_dir)
    model.config.save_pretrained(text_dir)
    return out


def write_immich(model: Any, tokenizer: Any, out: Path) -> Path:
    """open_clip-style graphs (normalised output, batch fixed at 1, int32 text of 77) with immich's files."""
    import torch

    from clipdex.encoders.preprocess import CLIP_MEAN, CLIP_STD

    image, text = _towers(model, normalize=True, text_mask=False, int32=True)
    _export(image, (torch.zeros(1, 3, SIDE, SIDE),), out / "visual" / "model.onnx", ["image"], ["embedding"], None)
    _export(text, (torch.ones(1, 77, dtype=torch.int32),), out / "textual" / "model.onnx", ["text"], ["embedding"],
            None)
    (out / "visual" / "preprocess_cfg.json").write_text(json.dumps({
        "size": [SIDE, SIDE], "mode": "RGB", "mean": list(CLIP_MEAN), "std": list(CLIP_STD),
        "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}))
    (out / "config.json").write_text(json.dumps({"embed_dim": 16, "vision_cfg": {"image_size": SIDE},
                                                 "text_cfg": {"context_length": 77}}))
    tokenizer.save_pretrained(out / "textual")
    return out


def write_rclip(model: Any, bpe: Path, out: Path) -> Path:
    """rclip's files: ``visual.onnx`` / ``textual.onnx`` (input ``input``) and OpenAI's merges file."""
    import shutil

    import torch

    image, text = _towers(model, normalize=False, text_mask=False)
    _export(image, (torch.zeros(1, 3, SIDE, SIDE),), out / "visual.onnx", ["input"], ["output"],
            {"input": {0: "batch"}, "output": {0: "batch"}})
    _export(text, (torch.ones(1, 77, dtype=torch.long),), out / "textual.onnx", ["input"], ["output"],
            {"input": {0: "batch"}, "output": {0: "batch"}})
    shutil.copy(bpe / "bpe_simple_vocab_16e6.txt.gz", out / "bpe_simple_vocab_16e6.txt.gz")
    return out


def tiny_siglip(folder: Path) -> tuple[Any, Any, Any]:
    """(SiglipModel, SiglipTokenizer, SiglipImageProcessorPil): random weights, a SentencePiece model trained
    here with SigLIP's special ids (pad 0, eos 1, unk 2). ``folder/google`` is Google's layout (spiece.model,
    no tokenizer.json); ``folder/converted`` holds the tokenizer.json transformers converts from it."""
    import sentencepiece
    import torch
    from transformers import SiglipConfig, SiglipModel, SiglipTokenizer
    from transformers.convert_slow_tokenizer import T5Converter
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from clipdex.synth.world import vocabulary

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join([*WORDS, *(" ".join(vocabulary()[i:i + 6]) for i in range(0, 60, 3))] * 20))
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=100, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        minloglevel=2)
    tokenizer = SiglipTokenizer(vocab_file=str(folder / "spiece.model"))
    torch.manual_seed(1)
    text = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=64, pad_token_id=1, eos_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=SIDE, patch_size=8)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval()
    model.requires_grad_(False)
    processor = SiglipImageProcessorPil(size={"height": SIDE, "width": SIDE})
    for layout in ("google", "converted"):
        model.save_pretrained(folder / layout)
        tokenizer.save_pretrained(folder / layout)
        processor.save_pretrained(folder / layout)
    # the converted file is what SigLIP repos with a tokenizer.json ship (a T5-style Unigram + "</s>")
    tokenizer._extra_ids = 0  # what T5's converter reads; SigLIP has no extra ids
    T5Converter(tokenizer).converted().save(str(folder / "converted" / "tokenizer.json"))
    (folder / "converted" / "spiece.model").unlink()
    return model, tokenizer, processor


def write_mclip_immich(out: Path) -> tuple[Any, Any, Any]:
    """immich's M-CLIP layout: a multilingual XLM-R-style text tower (mean over the mask, then a linear map,
    normalised; int32 ``input_ids`` + ``attention_mask`` fixed at 1 x 77) beside an open_clip ViT image tower.

    Returns (text module, tokenizer, image module): the references the test compares against.
    """
    import sentencepiece
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    from clipdex.encoders.open_clip_vit import Visual

    corpus = out / "corpus.txt"
    out.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join([*WORDS, "un chat rouge sur le canapé", "ein roter Kreis links von einem Stern",
                                 "una estrella azul", "два кота"] * 30))
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(out / "sp"), vocab_size=60,
                                             model_type="unigram", minloglevel=2)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(out / "sp.model"))
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(3, sp.get_piece_size())]
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *pieces, ("<mask>", 0.0)]
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    torch.manual_seed(3)
    encoder = XLMRobertaModel(XLMRobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                               num_attention_heads=2, intermediate_size=64,
                                               max_position_embeddings=80, pad_token_id=1)).eval()
    head = torch.nn.Linear(32, 16)

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = encoder, head

        def forward(self, ids: Any, mask: Any) -> Any:
            ids, mask = ids.long(), mask.long()
            states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            return torch.nn.functional.normalize(self.head(pooled), dim=-1)

    visual = Visual({"image_size": SIDE, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32}, 16, True)
    with torch.no_grad():
        for p in visual.parameters():
            p.normal_(0, 0.2)

    class Image(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = visual

        def forward(self, pixels: Any) -> Any:
            return torch.nn.functional.normalize(self.visual(pixels), dim=-1)

    text, image = Text().eval(), Image().eval()
    text.requires_grad_(False)
    image.requires_grad_(False)
    ids = torch.ones(1, 77, dtype=torch.int32)
    _export(text, (ids, torch.ones_like(ids)), out / "textual" / "model.onnx", ["input_ids", "attention_mask"],
            ["embedding"], None)
    _export(image, (torch.zeros(1, 3, SIDE, SIDE),), out / "visual" / "model.onnx", ["image"], ["embedding"], None)
    tokenizer.save_pretrained(out / "textual")
    from clipdex.encoders.preprocess import CLIP_MEAN, CLIP_STD

    (out / "visual" / "preprocess_cfg.json").write_text(json.dumps({
        "size": [SIDE, SIDE], "mode": "RGB", "mean": list(CLIP_MEAN), "std": list(CLIP_STD),
        "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}))
    (out / "config.json").write_text(json.dumps({"embed_dim": 16, "vision_cfg": {"image_size": SIDE},
                                                 "text_cfg": {"context_length": 77}}))
    return text, tokenizer, image


_NO_TORCH = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "open_clip"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
from PIL import Image
from clipdex.encoders import load_encoder
out = {}
for name, spec in json.loads(sys.argv[1]).items():
    enc = load_encoder(spec, cache_dir=sys.argv[2] or None)
    image = enc.encode_images([Image.new("RGB", (48, 40), (10, 200, 30))])
    text = enc.encode_texts(["a red circle"])
    out[name] = [image.shape[1], text.shape[1], "torch" in sys.modules]
print(json.dumps(out))
"""


def encode_without_torch(specs: dict[str, str], cache_dir: Path | None = None) -> dict[str, list[Any]]:
    """Load and run each spec in a fresh interpreter where importing torch, transformers or open_clip fails.

    Returns ``{name: [image width, text width, torch imported?]}``; raises with the child's stderr on failure.
    """
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _NO_TORCH, json.dumps(specs), str(cache_dir or "")],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(done.stderr)
    return dict(json.loads(done.stdout))
