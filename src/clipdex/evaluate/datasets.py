"""Readers of evaluation annotation files; every problem names the file and the first bad entry."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipdex.errors import SourceError
from clipdex.media.sources import IMAGE_EXTENSIONS, read_jsonl

__all__ = ["AlignmentSet", "ClassSet", "ComposedSet", "RankingSet", "RetrievalSet", "load_alignment",
           "load_classes", "load_composed", "load_ranking", "load_retrieval"]


@dataclass
class RetrievalSet:
    images: list[str]
    captions: list[str]
    caption_image: list[int]
    skipped: dict[str, int] = field(default_factory=dict)
    unknown_fields: dict[str, int] = field(default_factory=dict)


def count_unknown(row: dict[str, Any], known: set[str], counts: dict[str, int]) -> None:
    """Tally fields a reader does not use, so results can warn instead of ignoring them silently."""
    for key in row:
        if key not in known:
            counts[key] = counts.get(key, 0) + 1


_KARPATHY_FIELDS = {"filename", "filepath", "sentences", "split", "imgid", "cocoid", "sentids", "id"}
_RANKING_FIELDS = {"query", "relevant", "candidates", "id"}
_ALIGNMENT_FIELDS = {"prompt", "images", "best", "id"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SourceError(f"cannot read {path}: {e}") from e


def load_retrieval(path: str | Path, images_root: str | Path | None = None, split: str | None = "test") -> RetrievalSet:
    """A Karpathy-split JSON (COCO / Flickr30K layout); ``split=None`` takes every image.

    Missing image files and empty captions are skipped and counted; duplicate
    image ids or a wrong layout are errors.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise SourceError(f"{path}: not a Karpathy-split JSON (expected a top-level 'images' list)")
    root = Path(images_root) if images_root else path.parent
    out = RetrievalSet([], [], [], {"missing_image": 0, "empty_caption": 0, "other_split": 0})
    seen: set[Any] = set()
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "filename" not in entry or "sentences" not in entry:
            raise SourceError(f"{path}: images[{n}] lacks 'filename' or 'sentences'")
        count_unknown(entry, _KARPATHY_FIELDS, out.unknown_fields)
        ident = entry.get("imgid", entry.get("cocoid", entry["filename"]))
        if ident in seen:
            raise SourceError(f"{path}: images[{n}] repeats image id {ident!r}")
        seen.add(ident)
        if split is not None and entry.get("split", split) != split:
            out.skipped["other_split"] += 1
            continue
        full = root / entry.get("filepath", "") / entry["filename"]
        if not full.exists():
            out.skipped["missing_image"] += 1
            continue
        captions = [str(s.get("raw", "")).strip() for s in entry["sentences"]]
        out.skipped["empty_caption"] += sum(1 for c in captions if not c)
        captions = [c for c in captions if c]
        if not captions:
            continue
        out.images.append(str(full))
        for c in captions:
            out.captions.append(c)
            out.caption_image.append(len(out.images) - 1)
    if not out.images:
        raise SourceError(f"{path}: no usable images (split {split!r}; skipped {out.skipped})")
    return out


@dataclass
class ClassSet:
    paths: list[str]
    labels: list[int]
    classnames: list[str]


def load_classes(path: str | Path) -> ClassSet:
    """A folder of class subfolders, or a CSV with ``path,label`` columns."""
    path = Path(path)
    pairs: list[tuple[str, str]] = []
    if path.is_dir():
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            for image in sorted(sub.rglob("*")):
                if image.suffix.lower() in IMAGE_EXTENSIONS:
                    pairs.append((str(image), sub.name.replace("_", " ")))
    elif path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f)):
                if not row.get("path") or not row.get("label"):
                    raise SourceError(f"{path}: row {n + 1} needs 'path' and 'label'")
                full = row["path"] if os.path.isabs(row["path"]) else str(path.parent / row["path"])
                pairs.append((full, row["label"]))
    else:
        raise SourceError(f"{path}: expected a folder of class folders or a .csv with path,label")
    if not pairs:
        raise SourceError(f"{path}: no labelled images found")
    names = sorted({label for _, label in pairs})
    index = {name: i for i, name in enumerate(names)}
    return ClassSet([p for p, _ in pairs], [index[label] for _, label in pairs], names)


@dataclass
class RankingSet:
    queries: list[str]
    relevant: list[set[str]]
    candidates: list[list[str] | None]
    unknown_fields: dict[str, int] = field(default_factory=dict)


def load_ranking(path: str | Path) -> RankingSet:
    """JSONL: ``{"query": text, "relevant": [paths], "candidates": [paths]?}`` per line."""
    path = Path(path)
    out = RankingSet([], [], [])
    for n, row in read_jsonl(path):
        count_unknown(row, _RANKING_FIELDS, out.unknown_fields)
        if not str(row.get("query", "")).strip() or not isinstance(row.get("relevant", []), list):
            raise SourceError(f"{path}:{n}: needs a non-empty 'query' and a 'relevant' list")
        out.queries.append(str(row["query"]))
        out.relevant.append({os.path.normpath(str(p)) for p in row.get("relevant", [])})
        cands = row.get("candidates")
        out.candidates.append([os.path.normpath(str(p)) for p in cands] if cands else None)
    if not out.queries:
        raise SourceError(f"{path}: no queries")
    return out


@dataclass
class ComposedSet:
    """Composed-retrieval queries: reference image + modification text -> target image(s)."""

    fmt: str
    references: list[str]
    texts: list[str]
    targets: list[list[str]]
    subsets: list[list[str]]
    gallery: dict[str, str]
    reference_captions: list[str | None] = field(default_factory=list)  # for pdv, when the format has them
    gallery_captions: dict[str, list[str]] = field(default_factory=dict)  # for caption-fusion


def load_composed(captions: str | Path, images_root: str | Path | None = None) -> ComposedSet:
    """A CIRR, FashionIQ or CIRCO annotation file, recognised by its fields.

    * CIRR: ``captions/cap.rc2.SPLIT.json`` beside ``image_splits/split.rc2.SPLIT.json``.
    * FashionIQ: ``captions/cap.CATEGORY.SPLIT.json`` (candidate, target, two captions) beside
      ``image_splits/split.CATEGORY.SPLIT.json``; images in ``images/NAME.{png,jpg}``.
    * CIRCO: ``annotations/SPLIT.json`` (reference_img_id, relative_caption, gt_img_ids); the
      gallery is every image in ``images_root`` named by its numeric id.
    """
    captions = Path(captions)
    rows = _read_json(captions)
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise SourceError(f"{captions}: expected a non-empty list of composed-retrieval entries")
    if "reference_img_id" in rows[0]:
        return _circo(captions, rows, images_root)
    if "candidate" in rows[0]:
        return _fashioniq(captions, rows, images_root)
    return _cirr(captions, rows, images_root)


def _split_file(captions: Path) -> Path:
    return captions.parent.parent / "image_splits" / captions.name.replace("cap.", "split.")


def _cirr(captions: Path, rows: list[Any], images_root: str | Path | None) -> ComposedSet:
    split_file = _split_file(captions)
    files = _read_json(split_file)
    root = Path(images_root) if images_root else split_file.parent.parent
    if not isinstance(files, dict):
        raise SourceError(f"{split_file}: expected an object of image name -> relative path")
    gallery = {name: str(root / rel) for name, rel in files.items()}
    out = ComposedSet("cirr", [], [], [], [], gallery)
    for n, t in enumerate(rows):
        missing = [k for k in ("reference", "target_hard", "caption") if k not in t]
        if missing or t["reference"] not in gallery or t["target_hard"] not in gallery:
            raise SourceError(f"{captions}: entry {n} is incomplete or names images not in {split_file.name}")
        out.references.append(t["reference"])
        out.targets.append([t["target_hard"]])
        out.texts.append(t["caption"])
        out.subsets.append(list(t.get("img_set", {}).get("members", [])))
        out.reference_captions.append(t.get("reference_caption"))
    out.gallery_captions = _gallery_captions(captions.parent / "gallery_captions.json")
    return out


def _gallery_captions(path: Path) -> dict[str, list[str]]:
    """Optional ``{image name: [captions]}`` beside the annotations (stored captions of the gallery)."""
    if not path.exists():
        return {}
    data = _read_json(path)
    if not isinstance(data, dict):
        raise SourceError(f"{path}: expected an object of image name -> list of captions")
    return {str(k): [str(c) for c in v] for k, v in data.items() if isinstance(v, list)}


def _fashioniq(captions: Path, rows: list[Any], images_root: str | Path | None) -> ComposedSet:
    split_file = _split_file(captions)
    names = _read_json(split_file)
    root = Path(images_root) if images_root else split_file.parent.parent / "images"
    if not isinstance(names, list):
        raise SourceError(f"{split_file}: expected a list of image names")
    gallery = {}
    for name in names:
        found = next((root / f"{name}{ext}" for ext in (".png", ".jpg", ".jpeg") if (root / f"{name}{ext}").exists()),
                     root / f"{name}.png")
        gallery[str(name)] = str(found)
    out = ComposedSet("fashioniq", [], [], [], [], gallery)
    for n, t in enumerate(rows):
        texts = t.get("captions")
        known = t.get("candidate") in gallery and t.get("target") in gallery
        if not isinstance(texts, list) or not texts or not known:
            raise SourceError(f"{captions}: entry {n} needs candidate and target from {split_file.name} and captions")
        out.references.append(t["candidate"])
        out.targets.append([t["target"]])
        # the usual practice: the two relative captions joined into one query
        out.texts.append(" and ".join(str(c).strip().rstrip(".") for c in texts))
        out.subsets.append([])
    return out


def _circo(captions: Path, rows: list[Any], images_root: str | Path | None) -> ComposedSet:
    root = Path(images_root) if images_root else captions.parent.parent / "images"
    if not root.is_dir():
        raise SourceError(f"{captions}: CIRCO needs --images, the folder of gallery images named by id")
    gallery = {str(int(p.stem)): str(p) for p in sorted(root.iterdir())
               if p.suffix.lower() in IMAGE_EXTENSIONS and p.stem.isdigit()}
    out = ComposedSet("circo", [], [], [], [], gallery)
    for n, t in enumerate(rows):
        ref = str(t.get("reference_img_id"))
        gts = [str(g) for g in t.get("gt_img_ids", [t.get("target_img_id")]) if g is not None]
        if ref not in gallery or not gts or not str(t.get("relative_caption", "")).strip():
            raise SourceError(f"{captions}: entry {n} needs a gallery reference, a caption and gt_img_ids")
        out.references.append(ref)
        out.texts.append(str(t["relative_caption"]))
        out.targets.append([g for g in gts if g in gallery])
        out.subsets.append([])
    return out


@dataclass
class AlignmentSet:
    prompts: list[str]
    images: list[list[str]]
    best: list[int | None]
    unknown_fields: dict[str, int] = field(default_factory=dict)


def load_alignment(path: str | Path, images_root: str | Path | None = None) -> AlignmentSet:
    """JSONL: ``{"prompt": text, "images": [paths], "best": index?}`` per line."""
    path = Path(path)
    root = Path(images_root) if images_root else path.parent
    out = AlignmentSet([], [], [])
    for n, row in read_jsonl(path):
        count_unknown(row, _ALIGNMENT_FIELDS, out.unknown_fields)
        images = row.get("images")
        if not isinstance(images, list) or not images or not str(row.get("prompt", "")).strip():
            raise SourceError(f"{path}:{n}: needs a 'prompt' and a non-empty 'images' list")
        out.prompts.append(str(row["prompt"]))
        out.images.append([p if os.path.isabs(p) else str(root / p) for p in images])
        best = row.get("best")
        if best is not None and (not isinstance(best, int) or isinstance(best, bool) or not 0 <= best < len(images)):
            raise SourceError(f"{path}:{n}: 'best' must be the index of one of its {len(images)} images "
                              f"(0 to {len(images) - 1}), not {best!r}")
        out.best.append(best)
    if not out.prompts:
        raise SourceError(f"{path}: no prompts")
    return out


def load_templates(path: str | Path) -> list[str]:
    """Prompt templates, one per line with ``{}`` where the class name goes.

    Raises:
        SourceError: the file cannot be read, or holds no line with ``{}``.
    """
    try:
        lines = [t.strip() for t in Path(path).read_text(encoding="utf-8").splitlines() if "{}" in t]
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot read the templates {path}: {e}") from e
    if not lines:
        raise SourceError(f"{path}: no template line holds {{}} (where the class name goes)")
    return lines
