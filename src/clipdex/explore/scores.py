"""Per-item scores, stored as metadata and filterable: uniqueness, representativeness, duplicate group.

- ``uniqueness`` in [0, 1]: the mean cosine distance to the item's ``k`` nearest other images,
  divided by the collection's largest (1: the most isolated image; near 0: it has copies).
- ``representativeness`` in [0, 1]: the density around the item, the mean cosine to its ``k``
  nearest images, min-max scaled over the collection (1: the most typical image).
- ``dup_group``: the number of the item's duplicate group, as ``clipdex duplicates`` lists them
  (exact copies and near duplicates at the threshold); absent when it has none.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipdex.curate.duplicates import DEFAULT_THRESHOLD, find_duplicates
from clipdex.explore.neighbours import knn
from clipdex.store.store import Store

__all__ = ["ScoreReport", "score_items"]

FIELDS = ("uniqueness", "representativeness", "dup_group")


@dataclass
class ScoreReport:
    items: int
    k: int
    duplicate_groups: int
    threshold: float
    seconds: float
    values: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "k": self.k, "duplicate_groups": self.duplicate_groups,
                "threshold": self.threshold, "fields": list(FIELDS), "seconds": round(self.seconds, 3)}


def score_items(store: Store, k: int = 5, threshold: float = DEFAULT_THRESHOLD, write: bool = True) -> ScoreReport:
    """Compute the scores of every item (see the module doc) and store them as metadata."""
    started = time.perf_counter()
    ids, vectors = store.item_vectors()
    report = ScoreReport(len(ids), k, 0, threshold, 0.0)
    if len(ids) >= 2:
        sims, _ = knn(vectors, vectors, k, exclude_self=True)
        distance = 1.0 - sims.mean(axis=1)
        uniqueness = distance / max(float(distance.max()), 1e-9)
        density = sims.mean(axis=1)
        span = float(density.max() - density.min())
        typical = (density - density.min()) / span if span > 0 else np.ones_like(density)
        for item_id, u, r in zip(ids.tolist(), uniqueness, typical, strict=True):
            report.values[int(item_id)] = {"uniqueness": round(float(u), 4),
                                           "representativeness": round(float(r), 4)}
        duplicates = find_duplicates(store, threshold)
        report.duplicate_groups = len(duplicates.groups)
        for number, group in enumerate(duplicates.groups, 1):
            for member in group.members:
                report.values.setdefault(member.id, {})["dup_group"] = number
    if write:
        store.set_metadata(report.values, drop=FIELDS)
    report.seconds = time.perf_counter() - started
    return report
