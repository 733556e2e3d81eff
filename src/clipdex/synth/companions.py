"""Companion sets with ground truth: composed-retrieval triplets and a noisy curation pool.

Composed (CIRR's JSON layout): a reference scene, a modification text ("make
the star green"), the target scene it describes, and a set of six look-alike
images (target, reference, distractors) for Recall_subset.

Noisy pool: a known share of samples is damaged the way web pools are
(mismatched caption, near-duplicate, blank or tiny image, non-English or
boilerplate caption), and each row says what was done to it.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageFilter

from clipdex.errors import ClipdexError, UsageError
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
from clipdex.synth.writers import ProgressFn, SynthReport, add_sample, write_scenes

__all__ = ["DATASET_KINDS", "NOISE_KINDS", "NOISY_POOL_FORMATS", "modify_scene", "write_composed", "write_dataset",
           "write_noisy_pool"]

NOISE_KINDS = ("clean", "mismatched", "near_duplicate", "exact_duplicate", "blank", "tiny", "non_english",
               "boilerplate")


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
    triplets, files, gallery_captions = [], {}, {}
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
            gallery_captions[name] = captions_for(scene, 2, random.Random(f"{pair_id}-{tag}"))
            members.append(name)
        triplets.append({
            "pairid": pair_id, "reference": members[0], "target_hard": members[1],
            "target_soft": {members[1]: 1.0}, "caption": text,
            "img_set": {"id": pair_id, "members": members},
            "reference_caption": captions_for(reference, 1, random.Random(pair_id))[0],
        })
    (out / "captions" / f"cap.rc2.{split}.json").write_text(json.dumps(triplets, indent=1))
    # the gallery's stored captions (what a collection would hold), for caption-fusion
    (out / "captions" / "gallery_captions.json").write_text(json.dumps(gallery_captions))
    (out / "image_splits" / f"split.rc2.{split}.json").write_text(json.dumps(files, indent=1))
    return SynthReport(str(out), "cirr", len(files), n)


# Word-for-word Spanish for every word the grammar uses, so a "non_english"
# caption holds no English word a language identifier could latch onto.
_SPANISH = {
    "a": "un", "an": "un", "the": "el", "and": "y", "of": "de", "in": "en", "on": "sobre", "at": "en",
    "above": "encima", "below": "debajo", "left": "izquierda", "right": "derecha", "top": "arriba",
    "bottom": "abajo", "center": "centro", "middle": "medio", "two": "dos", "three": "tres", "four": "cuatro",
    "small": "pequeño", "medium": "mediano", "large": "grande",
    "red": "rojo", "orange": "naranja", "yellow": "amarillo", "green": "verde", "cyan": "cian", "blue": "azul",
    "purple": "morado", "pink": "rosado", "brown": "marrón", "black": "negro",
    "circle": "círculo", "circles": "círculos", "square": "cuadrado", "squares": "cuadrados",
    "triangle": "triángulo", "triangles": "triángulos", "star": "estrella", "stars": "estrellas",
    "hexagon": "hexágono", "hexagons": "hexágonos", "diamond": "rombo", "diamonds": "rombos",
    "cross": "cruz", "crosses": "cruces", "heart": "corazón", "hearts": "corazones",
    "with": "con", "sign": "letrero", "that": "que", "says": "dice", "background": "fondo",
}
_BOILERPLATE = ("click here to download this image", "stock photo id 4829103 royalty free",
                "image may contain: text", "untitled", "IMG_2041.JPG", "free shipping on all orders",
                "DSC_0042.jpg", "photo photo photo photo photo")
NOISY_POOL_FORMATS = ("parquet", "webdataset", "folder")


def _spanish(caption: str) -> str:
    words = caption.replace(",", " ,").split()
    return " ".join(_SPANISH.get(w, w) for w in words).replace(" ,", ",")


@dataclass
class _PoolSample:
    key: str
    image: bytes
    caption: str
    label: str
    duplicate_of: str


def write_noisy_pool(out: str | Path, n: int, seed: int, size: int = 64,
                     shares: dict[str, float] | None = None, fmt: str = "parquet",
                     shard_size: int = 1000) -> SynthReport:
    """Write a pool of ``n`` samples whose damage is known, in a pool format curation reads.

    ``fmt``: ``parquet`` (``pool.parquet`` with key, path, caption, label,
    duplicate_of), ``webdataset`` (tar shards of key.png/key.txt/key.json, the
    label in the json) or ``folder`` (images + sidecar .txt). Every format also
    gets ``labels.parquet`` (key, label, duplicate_of): the ground truth.
    ``shares`` gives the fraction of each damage kind (the rest is clean); by
    default 10% each of six kinds and 5% exact duplicates, so 35% is clean.
    """
    if fmt not in NOISY_POOL_FORMATS:
        raise ClipdexError(f"unknown pool format {fmt!r}. Available: {', '.join(NOISY_POOL_FORMATS)}")
    out = _fresh(out)
    samples = _noisy_samples(n, seed, size, shares or dict(_DEFAULT_SHARES))
    {"parquet": _pool_parquet, "webdataset": _pool_webdataset, "folder": _pool_folder}[fmt](out, samples, shard_size)
    _write_table(out / "labels.parquet", {"key": [s.key for s in samples], "label": [s.label for s in samples],
                                          "duplicate_of": [s.duplicate_of for s in samples]})
    return SynthReport(str(out), "noisy-pool", n, n)


_DEFAULT_SHARES = {**{k: 0.1 for k in NOISE_KINDS if k not in ("clean", "exact_duplicate")}, "exact_duplicate": 0.05}


def _noisy_samples(n: int, seed: int, size: int, shares: dict[str, float]) -> list[_PoolSample]:
    unknown = set(shares) - set(NOISE_KINDS)
    if unknown:
        raise ClipdexError(f"unknown noise kinds {sorted(unknown)}. Available: {', '.join(NOISE_KINDS)}")
    rng = random.Random(seed)
    labels = [k for k, share in shares.items() for _ in range(round(share * n))][:n]
    labels += ["clean"] * (n - len(labels))
    rng.shuffle(labels)
    scenes = _distinct_scenes(n, rng, size)
    clean = [i for i, label in enumerate(labels) if label == "clean"] or [0]
    samples = []
    for i, (label, scene) in enumerate(zip(labels, scenes, strict=True)):
        caption = captions_for(scene, 1, random.Random(seed + i))[0]
        image = render_scene(scene, size)
        duplicate_of = ""
        if label == "mismatched":
            caption = captions_for(scenes[(i + 1 + rng.randrange(n - 1)) % n], 1, rng)[0]
        elif label in ("near_duplicate", "exact_duplicate"):
            j = rng.choice(clean)
            image = render_scene(scenes[j], size)
            if label == "near_duplicate":
                image = _near_copy(image, rng)
            caption = captions_for(scenes[j], 2, random.Random(seed + j))[-1]
            duplicate_of = f"{j:06d}"
        elif label == "blank":
            image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))  # type: ignore[arg-type]
        elif label == "tiny":
            image = image.resize((8, 8))
        elif label == "non_english":
            caption = _spanish(caption)
        elif label == "boilerplate":
            caption = rng.choice(_BOILERPLATE)
        samples.append(_PoolSample(f"{i:06d}", _png_bytes(image), caption, label, duplicate_of))
    return samples


def _distinct_scenes(n: int, rng: random.Random, size: int) -> list[Scene]:
    """Scenes whose renderings all differ, so the only duplicates in a pool are the labelled ones."""
    scenes: list[Scene] = []
    seen: set[bytes] = set()
    attempt = 0
    while len(scenes) < n:
        scene = sample_scene(rng, WorldConfig(), seed=attempt)
        attempt += 1
        digest = hashlib.sha1(render_scene(scene, size).tobytes()).digest()
        if digest in seen:
            continue  # e.g. the same single shape in the same cell: an unlabelled exact duplicate
        seen.add(digest)
        scenes.append(scene)
    return scenes


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _write_table(path: Path, columns: dict[str, list[object]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)


def _pool_parquet(out: Path, samples: list[_PoolSample], shard_size: int) -> None:
    (out / "images").mkdir()
    for s in samples:
        (out / "images" / f"{s.key}.png").write_bytes(s.image)
    _write_table(out / "pool.parquet", {
        "key": [s.key for s in samples], "path": [f"images/{s.key}.png" for s in samples],
        "caption": [s.caption for s in samples], "label": [s.label for s in samples],
        "duplicate_of": [s.duplicate_of for s in samples]})


def _pool_folder(out: Path, samples: list[_PoolSample], shard_size: int) -> None:
    for s in samples:
        (out / f"{s.key}.png").write_bytes(s.image)
        (out / f"{s.key}.txt").write_text(s.caption + "\n", encoding="utf-8")


def _pool_webdataset(out: Path, samples: list[_PoolSample], shard_size: int) -> None:
    for start in range(0, len(samples), shard_size):
        with tarfile.open(out / f"{start // shard_size:05d}.tar", "w") as tar:
            for s in samples[start:start + shard_size]:
                meta = {"key": s.key, "caption": s.caption, "label": s.label, "duplicate_of": s.duplicate_of}
                add_sample(tar, s.key, s.image, s.caption, meta)


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


DATASET_KINDS = ("scenes", "composed", "noisy-pool")


def write_dataset(kind: str, out: str | Path, n: int, seed: int, fmt: str = "folder", size: int = 64,
                  world: WorldConfig = WorldConfig(), progress: ProgressFn | None = None) -> SynthReport:
    """Write one kind of synthetic dataset (``clipdex synth``): captioned scenes, CIRR triplets or a noisy pool.

    Raises:
        UsageError: an unknown kind, or a format the kind does not write.
        ClipdexError: bad size, or ``out`` not empty.
    """
    if kind == "scenes":
        return write_scenes(out, n, seed, fmt, size, world=world, progress=progress)
    if kind == "composed":
        if fmt not in ("cirr", "folder"):
            raise UsageError("--kind composed writes --format cirr")
        return write_composed(out, n, seed, size)
    if kind == "noisy-pool":
        return write_noisy_pool(out, n, seed, size, fmt=fmt)
    raise UsageError(f"unknown --kind {kind!r}. Available: {', '.join(DATASET_KINDS)}")
