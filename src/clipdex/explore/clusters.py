"""Clusters of a collection's images (spherical k-means), each named by the vocabulary words nearest to it.

A cluster's label is the two concepts whose text vectors its centroid scores highest against,
each score taken relative to that concept's mean over all images (so words every image is near
do not name every cluster). Stored as ``cluster`` (a number) and ``cluster_label`` metadata.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipdex.encoders.base import Encoder
from clipdex.errors import BadQueryError
from clipdex.explore.tags import concept_vectors, load_vocabulary
from clipdex.store.store import Store

__all__ = ["Cluster", "ClusterReport", "cluster_items", "kmeans"]


@dataclass
class Cluster:
    id: int
    size: int
    label: str
    words: list[str]


@dataclass
class ClusterReport:
    k: int
    items: int
    clusters: list[Cluster]
    seconds: float
    assignment: dict[int, int] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "items": self.items, "seconds": round(self.seconds, 3),
                "clusters": [c.__dict__ for c in self.clusters]}


def kmeans(vectors: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, unit centroids)`` of spherical k-means (faiss), best of several starts."""
    import faiss

    model = faiss.Kmeans(vectors.shape[1], k, niter=25, nredo=3, seed=seed, spherical=True, verbose=False,
                         min_points_per_centroid=1)
    model.train(np.ascontiguousarray(vectors, np.float32))
    labels = model.index.search(np.ascontiguousarray(vectors, np.float32), 1)[1][:, 0]
    centroids = np.asarray(model.centroids, np.float32)
    return labels.astype(np.int64), centroids / np.linalg.norm(centroids, axis=1, keepdims=True)


def cluster_items(store: Store, encoder: Encoder, k: int | None = None, vocabulary: str = "builtin",
                  seed: int = 0, write: bool = True) -> ClusterReport:
    """Cluster a collection's images; ``k`` defaults to √(n/2), between 2 and 50.

    Raises:
        BadQueryError: ``k`` below 2 or above the number of items.
    """
    started = time.perf_counter()
    store.check_encoder(encoder.spec)
    ids, vectors = store.item_vectors()
    k = k if k is not None else max(2, min(50, round(math.sqrt(len(ids) / 2))))
    if not 2 <= k <= max(len(ids), 2) or len(ids) < 2:
        raise BadQueryError(f"clusters: k must be between 2 and the number of items ({len(ids)}), got {k}")
    labels, centroids = kmeans(vectors, k, seed)
    concepts = load_vocabulary(vocabulary)
    words = concept_vectors(encoder, concepts)
    baseline = (vectors @ words.T).mean(axis=0)  # each word's mean score over the images
    relative = centroids @ words.T - baseline
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")  # cluster 0 is the largest
    renumber = {int(old): new for new, old in enumerate(order)}
    clusters = []
    for old in order:
        best = [concepts[j] for j in np.argsort(-relative[old])[:2]]
        clusters.append(Cluster(renumber[int(old)], int((labels == old).sum()), " ".join(best), best))
    report = ClusterReport(k, len(ids), clusters, 0.0,
                           {int(i): renumber[int(c)] for i, c in zip(ids.tolist(), labels, strict=True)})
    if write:
        label_of = {c.id: c.label for c in clusters}
        store.set_metadata({i: {"cluster": c, "cluster_label": label_of[c]} for i, c in report.assignment.items()},
                           drop=["cluster", "cluster_label"])
    report.seconds = time.perf_counter() - started
    return report
