"""Linear probes trained on a collection's own vectors from a few labelled examples, applied to every item.

Examples are given as item ids, image files or folders (an indexed file uses its stored vector,
any other is embedded with the collection's model), or text files listing those one per line.
A probe is saved as ``COLLECTION/probes/NAME.json`` and registered under
``$CLIPDEX_DATA_DIR/probes/NAME.json`` too, so ``clipdex curate -f "probe:NAME>0.5"`` finds it by name.
Applying it stores each item's probability as metadata named after the probe (``--where NAME>0.8``).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.encode import embed_images
from clipdex.encoders.base import Encoder
from clipdex.errors import BadQueryError, SourceError
from clipdex.heads import LinearHead, load_head, registered_heads, train_head
from clipdex.media.sources import IMAGE_EXTENSIONS
from clipdex.store.store import Store

__all__ = ["ProbeApplied", "apply_probe", "probe_path", "resolve_examples", "train_probe"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass
class ProbeApplied:
    name: str
    items: int
    above_threshold: int
    threshold: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "threshold": round(self.threshold, 4), "seconds": round(self.seconds, 3)}


def probe_path(store: Store, name: str) -> Path:
    """The file of a collection's probe ``name``.

    Raises:
        BadQueryError: a name that cannot be a metadata field and a file name.
    """
    if not _NAME.match(name):
        raise BadQueryError(f"a probe name is a letter then letters, digits, - or _ (at most 64), got {name!r}")
    return store.path / "probes" / f"{name}.json"


def resolve_examples(store: Store, encoder: Encoder, specs: list[str]) -> np.ndarray:
    """The unit vectors of the examples ``specs`` name (see the module doc).

    Raises:
        SourceError: a spec that names nothing, or a file that does not decode.
    """
    ids, vectors = store.item_vectors(include_gone=True)
    row_of = {int(i): r for r, i in enumerate(ids.tolist())}
    path_of = {os.path.abspath(r.path): int(i) for i, r in store.items(ids.tolist()).items()}
    rows: list[int] = []
    files: list[str] = []
    for spec in _expand(specs):
        if spec.isdigit():
            if int(spec) not in row_of:
                raise SourceError(f"no indexed image with item id {spec}")
            rows.append(row_of[int(spec)])
        elif os.path.isdir(spec):
            inside = [p for p in path_of if p.startswith(os.path.abspath(spec) + os.sep)]
            found = [str(p) for p in sorted(Path(spec).rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
            if not inside and not found:
                raise SourceError(f"no images in {spec}")
            rows += [row_of[path_of[p]] for p in inside]
            files += [f for f in found if os.path.abspath(f) not in path_of]
        elif os.path.abspath(spec) in path_of:
            rows.append(row_of[path_of[os.path.abspath(spec)]])
        elif os.path.isfile(spec):
            files.append(spec)
        else:
            raise SourceError(f"{spec!r} is neither an item id, an image file, a folder nor a list file")
    out = [vectors[rows]] if rows else []
    if files:
        embedded, ok = embed_images(encoder, files)
        if not ok.all():
            bad = [f for f, good in zip(files, ok, strict=True) if not good]
            raise SourceError(f"{len(bad)} example image(s) do not decode, e.g. {bad[0]}")
        out.append(embedded)
    return np.concatenate(out) if out else np.zeros((0, store.dim), np.float32)


def train_probe(store: Store, encoder: Encoder, name: str, positives: list[str], negatives: list[str]) -> LinearHead:
    """Train, save and register probe ``name`` (a logistic regression, :func:`clipdex.heads.train_head`).

    Raises:
        BadQueryError: a bad name, or too few examples.
        SourceError: an example that names nothing.
    """
    store.check_encoder(encoder.spec)
    target = probe_path(store, name)
    pos = resolve_examples(store, encoder, positives)
    neg = resolve_examples(store, encoder, negatives)
    try:
        head = train_head(name, pos, neg, store.encoder_spec)
    except ValueError as e:
        raise BadQueryError(str(e)) from e
    head.save(target)
    try:
        registered_heads().mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, registered_heads() / target.name)
    except OSError:
        pass  # registering by name is a convenience: the probe beside the collection is what counts
    return head


def apply_probe(store: Store, name: str) -> ProbeApplied:
    """Score every item with probe ``name`` and store the probability as metadata ``name``.

    Raises:
        CollectionError: the probe was trained on another model's vectors.
        NotFoundError: no such probe beside the collection.
    """
    from clipdex.errors import CollectionError, NotFoundError

    started = time.perf_counter()
    path = probe_path(store, name)
    try:
        head = load_head(path)
    except (OSError, ValueError) as e:
        known = sorted(p.stem for p in (store.path / "probes").glob("*.json"))
        raise NotFoundError(f"no probe {name!r} in {store.path} ({e}); known: {', '.join(known) or 'none'}") from e
    if head.model != store.encoder_spec:
        raise CollectionError(f"probe {name!r} was trained on {head.model} vectors, the collection holds "
                              f"{store.encoder_spec} ones")
    ids, vectors = store.item_vectors(include_gone=True)
    scores = head.score(vectors) if len(ids) else np.zeros(0, np.float32)
    store.set_metadata({int(i): {name: round(float(s), 4)} for i, s in zip(ids.tolist(), scores, strict=True)})
    return ProbeApplied(name, len(ids), int((scores >= head.threshold).sum()), head.threshold,
                        time.perf_counter() - started)


def _expand(specs: list[str]) -> list[str]:
    """Specs with list files (``.txt``, ``.lst``: one spec per line) opened."""
    out = []
    for spec in specs:
        if spec.lower().endswith((".txt", ".lst")) and os.path.isfile(spec):
            lines = Path(spec).read_text("utf-8").splitlines()
            base = Path(spec).parent
            out += [line.strip() if line.strip().isdigit() or os.path.isabs(line.strip())
                    else str(base / line.strip()) for line in lines if line.strip()]
        else:
            out.append(spec)
    return out
