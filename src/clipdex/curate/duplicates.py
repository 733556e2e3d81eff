"""Duplicates inside a collection: the same bytes under several names, and near-identical pictures.

Exact copies share a content hash (recorded at index time; computed here for items indexed
before clipdex recorded it). Near duplicates are pairs of image vectors with cosine at or above
a threshold (a re-encoded, resized or lightly edited copy). Both relations are joined into
groups, so a chain of copies is one group, listed with each member's cosine to the group's
first item.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from clipdex.curate.dedup import components, equal_value_edges, vector_edges
from clipdex.errors import BadQueryError
from clipdex.store.store import Store
from clipdex.store.writes import content_hash

__all__ = ["DEFAULT_THRESHOLD", "DuplicateGroup", "DuplicateMember", "DuplicateReport", "find_duplicates"]

DEFAULT_THRESHOLD = 0.95  # cosine: resized and re-encoded copies sit above ~0.97, different shots of a scene below


@dataclass
class DuplicateMember:
    id: int
    path: str
    similarity: float  # cosine of its image vector to the group's first member's
    identical: bool  # the same bytes as the group's first member


@dataclass
class DuplicateGroup:
    kind: str  # "exact": every member the same bytes; "near": at least one differs
    members: list[DuplicateMember]


@dataclass
class DuplicateReport:
    threshold: float | None  # None: exact copies only
    items: int
    groups: list[DuplicateGroup] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Items beyond the first of each group: what removing the copies would free."""
        return sum(len(g.members) - 1 for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "items": self.items, "duplicates": self.duplicates,
                "groups": [asdict(g) for g in self.groups]}


def find_duplicates(store: Store, threshold: float | None = DEFAULT_THRESHOLD) -> DuplicateReport:
    """Groups of exact copies and (unless ``threshold`` is None) near duplicates among a collection's items.

    Items whose files are gone are left out. Groups come largest first, then by their first id.

    Raises:
        BadQueryError: a threshold outside (0, 1].
    """
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise BadQueryError(f"the duplicate threshold is a cosine in (0, 1], got {threshold}")
    ids, matrix = store.item_vectors()
    report = DuplicateReport(threshold, len(ids))
    if len(ids) < 2:
        return report
    hashes = _content_hashes(store, ids)
    a, b = equal_value_edges(list(hashes))
    if threshold is not None:
        na, nb = vector_edges(lambda picked: matrix[picked], len(ids), threshold)
        a, b = np.concatenate([a, na]), np.concatenate([b, nb])
    labels = components(len(ids), a, b)
    records = store.items(ids.tolist())
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        head = members[0]
        sims = matrix[members] @ matrix[head]
        group = [DuplicateMember(int(ids[m]), records[int(ids[m])].path, round(float(sim), 4),
                                 bool(hashes[m]) and hashes[m] == hashes[head])
                 for m, sim in zip(members, sims, strict=True)]
        kind = "exact" if all(m.identical for m in group) else "near"
        report.groups.append(DuplicateGroup(kind, group))
    report.groups.sort(key=lambda g: (-len(g.members), g.members[0].id))
    return report


def _content_hashes(store: Store, ids: np.ndarray) -> list[str]:
    """Each item's recorded content hash, or one computed now from its file ('' when it has none)."""
    recorded = store.content_hashes(ids.tolist())
    out = []
    for item_id in ids.tolist():
        digest = recorded.get(int(item_id))
        if digest is None:
            digest = content_hash(os.fsdecode(store.item_path_bytes(int(item_id)))) or ""
        out.append(digest)
    return out
