"""Companion sets with ground truth: composed-retrieval triplets and a noisy curation pool.

Composed (CIRR's JSON layout): a reference scene, a modification text ("make
the star green"), the target scene it describes, and a set of six look-alike
images (target, reference, distractors) for Recall_subset.

Noisy pool: a known share of samples is damaged the way web pools are
(mismatched caption, near-duplicate, blank or tiny image, non-English or
boilerplate caption), and each row says what was done to it.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageFilter

from clipdex.errors import ClipdexError
from clipdex.synth.render import render_scene
from clipdex.synth.world import (
    CELLS,
    COLORS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    WorldConfig,
    article,
    captions_for,
    sample_scene,
)
from clipdex.synth.writers import SynthReport

__all__ = ["NOISE_KINDS", "modify_scene", "write_composed", "write_noisy_pool"]

NOISE_KINDS = ("clean", "mismatched", "near_duplicate", "blank", "tiny", "non_english", "boilerplate")


def modify_scene(scene: Scene, rng: random.Random) -> tuple[Scene, str]:
    """One edit of a scene and the instruction that describes it."""
    objects = list(scene.objects)
    choices = ["color", "shape", "add"] + (["remove"] if len(objects) >= 2 else [])
    kind = rng.choice(choices) if len(objects) < 4 else rng.choice(["color", "shape", "remove"])
    i = rng.randrange(len(objects))
    obj = objects[i]
    if kind == "color":
        new = rng.choice([c for c in COLORS if c != obj.color])
        objects[i] = replace(obj, color=new)
        text = f"make the {obj.color} {obj.shape} {new}"
    elif kind == "shape":
        new = rng.choice([s for s in SHAPES if s != obj.shape])
        objects[i] = replace(obj, shape=new)
        text = f"change the {obj.color} {obj.shape} into {article(new)}"
    elif kind == "add":
        free = [c for c in CELLS if c not in {o.cell for o in objects}]
        added = Obj(rng.choice(SHAPES), rng.choice(tuple(COLORS)), rng.choice(tuple(SIZES)), rng.choice(free))
        objects.append(added)
        text = f"add {article(added.phrase(False))}"
    else:
        objects.pop(i)
        text = f"remove the {obj.color} {obj.shape}"
    return replace(scene, objects=tuple(objects)), text


def _save(scene: Scene, path: Path, size: int) -> None:
    render_scene(scene, size).save(path, format="PNG", compress_level=1)


def write_composed(out: str | Path, n: int, seed: int, size: int = 64, split: str = "val") -> SynthReport:
    """Write ``n`` triplets in CIRR's layout: ``images/``, ``captions/cap.rc2.SPLIT.json``,
    ``image_splits/split.rc2.SPLIT.json``."""
    out = _fresh(out)
    for sub in ("images", "captions", "image_splits"):
        (out / sub).mkdir()
    rng = random.Random(seed)
    world = WorldConfig(min_objects=1, max_objects=3, p_repeat=0.0)
    triplets, files = [], {}
    for pair_id in range(n):
        reference = sample_scene(rng, world, seed=rng.randrange(1 << 30))
        target, text = modify_scene(reference, rng)
        distractors = [modify_scene(reference, rng)[0] for _ in range(2)]
        distractors += [modify_scene(target, rng)[0] for _ in range(2)]
        names = {"ref": reference, "tgt": target, **{f"d{j}": s for j, s in enumerate(distractors)}}
        members = []
        for tag, scene in names.items():
            name = f"p{pair_id:05d}-{tag}"
            _save(scene, out / "images" / f"{name}.png", size)
            files[name] = f"./images/{name}.png"
            members.append(name)
        triplets.append({
            "pairid": pair_id, "reference": members[0], "target_hard": members[1],
            "target_soft": {members[1]: 1.0}, "caption": text,
            "img_set": {"id": pair_id, "members": members},
            "reference_caption": captions_for(reference, 1, random.Random(pair_id))[0],
        })
    (out / "captions" / f"cap.rc2.{split}.json").write_text(json.dumps(triplets, indent=1))
    (out / "image_splits" / f"split.rc2.{split}.json").write_text(json.dumps(files, indent=1))
    return SynthReport(str(out), "cirr", len(files), n)


_SPANISH = {"a": "un", "red": "rojo", "blue": "azul", "green": "verde", "circle": "círculo", "star": "estrella",
            "and": "y", "two": "dos", "left": "izquierda", "of": "de", "square": "cuadrado", "yellow": "amarillo"}
_BOILERPLATE = ("click here to download this image", "stock photo id 4829103 royalty free",
                "image may contain: text", "untitled", "IMG_2041.JPG", "free shipping on all orders")


def write_noisy_pool(out: str | Path, n: int, seed: int, size: int = 64,
                     shares: dict[str, float] | None = None) -> SynthReport:
    """Write a pool of ``n`` samples, ``pool.parquet`` with path, caption, label and ``duplicate_of``.

    ``shares`` gives the fraction of each damage kind (the rest is clean);
    by default 10% each of six kinds, so 40% of the pool is clean.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = _fresh(out)
    (out / "images").mkdir()
    shares = shares or {k: 0.1 for k in NOISE_KINDS if k != "clean"}
    unknown = set(shares) - set(NOISE_KINDS)
    if unknown:
        raise ClipdexError(f"unknown noise kinds {sorted(unknown)}. Available: {', '.join(NOISE_KINDS)}")
    rng = random.Random(seed)
    labels = [k for k, share in shares.items() for _ in range(round(share * n))][:n]
    labels += ["clean"] * (n - len(labels))
    rng.shuffle(labels)
    scenes = [sample_scene(rng, WorldConfig(), seed=i) for i in range(n)]
    rows: dict[str, list[object]] = {"path": [], "caption": [], "label": [], "duplicate_of": []}
    for i, (label, scene) in enumerate(zip(labels, scenes, strict=True)):
        name = f"images/{i:06d}.png"
        caption = captions_for(scene, 1, random.Random(seed + i))[0]
        image = render_scene(scene, size)
        duplicate_of = ""
        if label == "mismatched":
            caption = captions_for(scenes[(i + 1 + rng.randrange(n - 1)) % n], 1, rng)[0]
        elif label == "near_duplicate":
            j = rng.randrange(n)
            while j == i or labels[j] != "clean":
                j = rng.randrange(n)
            image = _near_copy(render_scene(scenes[j], size), rng)
            caption = captions_for(scenes[j], 2, random.Random(seed + j))[-1]
            duplicate_of = f"images/{j:06d}.png"
        elif label == "blank":
            image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))  # type: ignore[arg-type]
        elif label == "tiny":
            image = image.resize((8, 8))
        elif label == "non_english":
            caption = " ".join(_SPANISH.get(w, w) for w in caption.split())
        elif label == "boilerplate":
            caption = rng.choice(_BOILERPLATE)
        image.save(out / name, format="PNG", compress_level=1)
        for key, value in (("path", name), ("caption", caption), ("label", label), ("duplicate_of", duplicate_of)):
            rows[key].append(value)
    pq.write_table(pa.table(rows), out / "pool.parquet")
    return SynthReport(str(out), "noisy-pool", n, n)


def _near_copy(image: Image.Image, rng: random.Random) -> Image.Image:
    # JPEG round trip + slight blur + one-pixel shift: what re-uploads do to an image
    buf = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(0.6)).save(buf, format="JPEG", quality=rng.randint(60, 85))
    copy = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return copy.transform(copy.size, Image.Transform.AFFINE, (1, 0, rng.choice((-1, 1)), 0, 1, 0),
                          fillcolor=copy.getpixel((0, 0)))


def _fresh(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ClipdexError(f"{out} is not empty; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    return out
