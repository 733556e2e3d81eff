"""Bootstrap confidence intervals over queries, and paired differences for ``compare``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Values = np.ndarray | Sequence[float]

__all__ = ["bootstrap_ci", "paired_difference"]


def bootstrap_ci(values: Values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of per-query ``values``, resampling queries."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for i in range(n_boot):
        means[i] = values[rng.integers(0, len(values), len(values))].mean()
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def paired_difference(a: Values, b: Values, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean of ``b - a`` over the same queries, with a 95% interval (resampling queries jointly)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot pair results over different queries ({len(a)} vs {len(b)})")
    diff = b - a
    lo, hi = bootstrap_ci(diff, n_boot, seed)
    return {"difference": float(diff.mean()), "ci_low": lo, "ci_high": hi,
            "significant": bool(lo > 0 or hi < 0)}
