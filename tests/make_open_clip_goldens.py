"""Write the open_clip golden files the suite compares clipdex's ``open_clip:`` export against.

Run once, by hand, in a separate virtualenv that has open_clip (the suite never imports it):

    python3 -m venv /tmp/oc && /tmp/oc/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        open_clip_torch==3.3.0 tokenizers scikit-learn
    PYTHONPATH=src /tmp/oc/bin/python tests/make_open_clip_goldens.py

It builds a tiny ViT CLIP with open_clip itself (random weights rounded to float16, QuickGELU, the real
49,408-token vocabulary at width 8 so the file stays small), and records with open_clip's own code:
its token ids for a set of captions, its text embeddings of them, its preprocessed pixels and image
embeddings of scikit-learn's photos and a few awkward shapes. It also checks, against the real OpenAI
vocabulary shipped in the open_clip wheel, that clipdex's BPE gives open_clip's token ids, and records
how many captions it compared.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "data" / "open_clip_tiny"
CAPTIONS = ["a red circle left of a blue star", "A Photo Of A CAT!", "two dogs playing in the snow",
            "the café's menü, 3 items", "  lots   of   spaces  ", "emoji 🙂 and symbols #1 @home",
            "a very long caption " + "that keeps going " * 20, ""]
MODEL_CFG = {"embed_dim": 16, "quick_gelu": True,
             "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 8, "heads": 2, "layers": 2}}


def photos() -> list:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    real = [Image.fromarray(a) for a in load_sample_images().images]
    return real + [real[0].resize((641, 427)), real[1].resize((300, 40)), Image.new("RGB", (8, 8), (200, 30, 30))]


def main() -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(7)
    model = open_clip.CLIP(MODEL_CFG["embed_dim"], MODEL_CFG["vision_cfg"], MODEL_CFG["text_cfg"],
                           quick_gelu=True).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)  # larger than the init, so every layer matters
            p.copy_(p.half().float())  # what the stored float16 file gives back
    preprocess_cfg = {"size": 32, "mode": "RGB", "mean": list(open_clip.OPENAI_DATASET_MEAN),
                      "std": list(open_clip.OPENAI_DATASET_STD), "interpolation": "bicubic",
                      "resize_mode": "shortest", "fill_color": 0}
    transform = open_clip.image_transform(32, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
                                          std=open_clip.OPENAI_DATASET_STD, resize_mode="shortest")
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    ids = tokenizer(CAPTIONS)
    images = photos()
    pixels = torch.stack([transform(im) for im in images])
    with torch.no_grad():
        text = model.encode_text(ids).numpy()
        image = model.encode_image(pixels).numpy()
    OUT.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k != "attn_mask"}
    save_file(state, str(OUT / "open_clip_model.safetensors"))
    (OUT / "open_clip_config.json").write_text(json.dumps({"model_cfg": MODEL_CFG,
                                                           "preprocess_cfg": preprocess_cfg}, indent=2) + "\n")
    np.savez_compressed(OUT / "goldens.npz", ids=ids.numpy(), text=text, image=image, pixels=pixels.numpy())
    checked = check_tokenizer(tokenizer)
    (OUT / "README.md").write_text(
        "Golden outputs of a tiny random-weight open_clip ViT CLIP, written by tests/make_open_clip_goldens.py\n"
        f"with open_clip {open_clip.__version__} and torch {torch.__version__}. clipdex's OpenAI BPE gave open_clip's\n"
        f"token ids for all {checked} captions compared there with the real vocabulary.\n")
    print(json.dumps({"out": str(OUT), "tokenizer_captions_compared": checked}))


def check_tokenizer(tokenizer) -> int:
    """clipdex's BPE against open_clip's on the real vocabulary; exits non-zero on the first difference."""
    import open_clip

    from clipdex.encoders.text import openai_bpe

    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    ours = openai_bpe(vocab)


    lines = CAPTIONS + [f"{a} {b} {c}" for a in ("a", "two", "The") for b in ("red", "Grüne", "x-ray", "don't")
                        for c in ("cat", "çà", "42nd street", "...!!!", "hello\tworld")]
    for line in lines:
        theirs = tokenizer([line])[0].tolist()
        mine = ours([line])[0][0].tolist()
        if mine != theirs:
            sys.exit(f"tokenizer differs on {line!r}: {mine[:20]} vs {theirs[:20]}")
    return len(lines)


if __name__ == "__main__":
    main()
