"""How well each filter found what it is meant to find, on a pool whose damage is known (the synthetic noisy pool).

A filter's *precision* is the share of its rejections that carry its target
label, counted among clean samples and samples with that label only (a blank
image rejected by clip-score is neither right nor wrong for clip-score: blank
is another filter's job). Its *recall* is the share of the samples with that
label that it rejected (a sample removed earlier by another filter counts as
missed). For dedup the unit is the pair (copy, original): a pair is found when
dedup removed one of the two, and a dedup rejection is correct when it belongs
to a pair.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FilterQuality", "TARGET_LABELS", "measure_against_labels"]

# filter name (before any ':') -> the noisy-pool labels it is meant to catch
TARGET_LABELS = {
    "blank": {"blank"}, "size": {"tiny"}, "caption-quality": {"boilerplate"}, "basic": {"non_english"},
    "clip-score": {"mismatched"}, "dedup": {"near_duplicate", "exact_duplicate"},
}


@dataclass
class FilterQuality:
    filter: str
    labels: list[str]
    rejected: int
    correct: int
    labelled: int
    found: int

    @property
    def precision(self) -> float:
        return self.correct / self.rejected if self.rejected else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.labelled if self.labelled else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": round(self.precision, 4), "recall": round(self.recall, 4)}


def _targets(name: str) -> set[str]:
    base = name.partition(":")[0]
    if base == "dedup" and "mode=exact" in name:
        return {"exact_duplicate"}
    if base == "dedup" and "mode=near" in name:
        return {"near_duplicate"}
    return TARGET_LABELS[base]


def measure_against_labels(decisions: str | os.PathLike[str], labels: str | os.PathLike[str]
                           ) -> list[FilterQuality]:
    """Precision and recall of each filter of a run (``decisions.parquet``) against ``labels.parquet``."""
    import pyarrow.parquet as pq

    rows = pq.read_table(decisions, columns=["key", "rejected_by"]).to_pylist()
    truth = {r["key"]: r for r in pq.read_table(labels).to_pylist()}
    by_filter: dict[str, set[str]] = {}
    for r in rows:
        if r["rejected_by"]:
            by_filter.setdefault(r["rejected_by"], set()).add(r["key"])
    out = []
    for name, rejected in by_filter.items():
        base = name.partition(":")[0]
        if base not in TARGET_LABELS:
            continue
        targets = _targets(name)
        rejected = {k for k in rejected if truth[k]["label"] in targets | {"clean"}}
        if base == "dedup":
            pairs = [(k, t["duplicate_of"]) for k, t in truth.items() if t["label"] in targets]
            members = {k for pair in pairs for k in pair}
            correct = len(rejected & members)
            found = sum(1 for copy, original in pairs if copy in rejected or original in rejected)
            labelled = len(pairs)
        else:
            labelled_keys = {k for k, t in truth.items() if t["label"] in targets}
            correct = found = len(rejected & labelled_keys)
            labelled = len(labelled_keys)
        out.append(FilterQuality(name, sorted(targets), len(rejected), correct, labelled, found))
    return out
