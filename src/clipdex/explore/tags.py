"""Zero-shot tags: the concepts of a vocabulary each image shows, above a threshold calibrated per concept.

Each concept's text vector averages a prompt ensemble (the field's templates: "a photo of a
{}.", "a drawing of a {}." ...). An image's score for a concept is its cosine to that vector
minus the image's mean cosine over the vocabulary (so an image that is close to every prompt
does not get every tag). Each concept's threshold is calibrated on the collection itself: a
two-component Gaussian mixture over that concept's scores, cut where the upper component
becomes the likelier, and never below the concept's mean plus half a standard deviation (a
concept nobody shows still splits in two). An image keeps its ``top`` best concepts above their
thresholds, stored as the ``tags`` list metadata (``--where tags=dog``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.encoders.base import Encoder
from clipdex.errors import SourceError
from clipdex.store.store import Store

__all__ = ["TEMPLATES", "TagReport", "calibrated_cuts", "concept_vectors", "load_vocabulary", "tag_items",
           "tag_scores"]

TEMPLATES = ("a photo of a {}.", "a drawing of a {}.", "an image of a {}.", "a picture with a {}.", "a {}.",
             "a close-up photo of a {}.")
_MIN_FOR_MIXTURE = 20  # fewer images than this: the guard cut alone (mean + 1 std)


@dataclass
class TagReport:
    vocabulary: str
    concepts: int
    items: int
    tagged: int  # items with at least one tag
    counts: dict[str, int]  # items per concept, most first
    thresholds: dict[str, float]
    seconds: float
    tags: dict[int, list[str]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "concepts": self.concepts, "items": self.items, "tagged": self.tagged,
                "counts": self.counts, "thresholds": {k: round(v, 4) for k, v in self.thresholds.items()},
                "seconds": round(self.seconds, 3)}


def load_vocabulary(spec: str = "builtin") -> list[str]:
    """Concepts, one per line (``#`` comments and blank lines skipped): ``builtin`` or a text file.

    Raises:
        SourceError: the file cannot be read or holds no concept.
    """
    try:
        text = (resources.files("clipdex.explore") / "vocab.txt").read_text("utf-8") if spec == "builtin" \
            else Path(spec).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot read the vocabulary {spec}: {e}") from e
    concepts = list(dict.fromkeys(line.split("#")[0].strip() for line in text.splitlines()))
    concepts = [c for c in concepts if c]
    if not concepts:
        raise SourceError(f"the vocabulary {spec} holds no concept (one per line)")
    return concepts


def concept_vectors(encoder: Encoder, concepts: list[str], templates: tuple[str, ...] = TEMPLATES) -> np.ndarray:
    """Unit vectors ``(len(concepts), dim)``: each concept's prompt ensemble, averaged."""
    texts = [t.format(c) for c in concepts for t in templates]
    vectors = encoder.encode_texts(texts).reshape(len(concepts), len(templates), -1).mean(axis=1)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def tag_scores(images: np.ndarray, concepts: np.ndarray) -> np.ndarray:
    """Image-centred concept scores ``(n images, n concepts)``."""
    scores = images @ concepts.T
    return scores - scores.mean(axis=1, keepdims=True)


def calibrated_cuts(scores: np.ndarray) -> np.ndarray:
    """Each concept's threshold (see the module doc)."""
    mean, std = scores.mean(axis=0), scores.std(axis=0) + 1e-9
    if len(scores) < _MIN_FOR_MIXTURE:
        return mean + std
    mixture = np.array([_mixture_cut(scores[:, j]) for j in range(scores.shape[1])])
    return np.maximum(mixture, mean + 0.5 * std)


def tag_items(store: Store, encoder: Encoder, vocabulary: str = "builtin", top: int = 5,
              write: bool = True) -> TagReport:
    """Tag every item of a collection (the ``tags`` metadata; earlier tags are replaced).

    Raises:
        SourceError: the vocabulary cannot be read.
        CollectionError: the encoder is not the collection's.
    """
    started = time.perf_counter()
    store.check_encoder(encoder.spec)
    concepts = load_vocabulary(vocabulary)
    ids, images = store.item_vectors()
    report = TagReport(vocabulary, len(concepts), len(ids), 0, {}, {}, 0.0)
    if len(ids):
        scores = tag_scores(images, concept_vectors(encoder, concepts))
        cuts = calibrated_cuts(scores)
        report.thresholds = {c: float(t) for c, t in zip(concepts, cuts, strict=True)}
        counts: dict[str, int] = {}
        for item_id, row in zip(ids.tolist(), scores, strict=True):
            above = np.flatnonzero(row >= cuts)
            best = above[np.argsort(-(row[above] - cuts[above]))][:top]
            report.tags[int(item_id)] = [concepts[j] for j in best]
            for j in best:
                counts[concepts[j]] = counts.get(concepts[j], 0) + 1
        report.tagged = sum(1 for t in report.tags.values() if t)
        report.counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    if write:
        store.set_metadata({i: {"tags": t} for i, t in report.tags.items() if t}, drop=["tags"])
    report.seconds = time.perf_counter() - started
    return report


def _mixture_cut(x: np.ndarray, steps: int = 60) -> float:
    """Where the upper of two Gaussians fitted to ``x`` (by EM) becomes the likelier component."""
    low, high = np.percentile(x, 25), np.percentile(x, 90)
    means = np.array([low, high], np.float64)
    sds = np.full(2, x.std() / 2 + 1e-6)
    weights = np.array([0.7, 0.3])
    for _ in range(steps):
        density = weights / sds * np.exp(-0.5 * ((x[:, None] - means) / sds) ** 2) + 1e-300
        resp = density / density.sum(axis=1, keepdims=True)
        weights = resp.mean(axis=0)
        means = (resp * x[:, None]).sum(axis=0) / (resp.sum(axis=0) + 1e-12)
        sds = np.sqrt((resp * (x[:, None] - means) ** 2).sum(axis=0) / (resp.sum(axis=0) + 1e-12)) + 1e-6
    upper = int(means.argmax())
    grid = np.linspace(means.min(), means.max(), 400)
    density = weights / sds * np.exp(-0.5 * ((grid[:, None] - means) / sds) ** 2) + 1e-300
    posterior = density[:, upper] / density.sum(axis=1)
    return float(grid[int(np.argmax(posterior >= 0.5))])
