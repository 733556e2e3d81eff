"""Linear heads on embeddings: a logistic regression trained from a few labelled vectors.

The way LAION's watermark, NSFW and aesthetic heads are used (a small linear model over CLIP
image vectors), trained by the user on their own labels. Plain numpy (Newton's method with an
L2 penalty converges in a few steps at these sizes), with k-fold cross-validated accuracy and
ROC AUC, and a threshold calibrated on the held-out folds (the one that maximises balanced
accuracy), so ``score >= threshold`` is the head's yes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.home import data_home
from clipdex.metrics import roc_auc

__all__ = ["LinearHead", "find_head", "load_head", "registered_heads", "train_head"]


@dataclass
class LinearHead:
    """``sigmoid(x @ weights + bias)``: the probability that a vector is a positive."""

    name: str
    weights: list[float]
    bias: float
    threshold: float
    model: str  # the encoder spec the vectors came from: a head means nothing on another model's vectors
    positives: int
    negatives: int
    cv_accuracy: float  # balanced accuracy of held-out folds at the calibrated threshold
    cv_auc: float
    extra: dict[str, Any] = field(default_factory=dict)

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """The probability of each row being a positive, in [0, 1]."""
        return _sigmoid(np.asarray(vectors, np.float64) @ np.asarray(self.weights) + self.bias).astype(np.float32)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the head as JSON (atomically) and return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, target)
        return target


def load_head(path: str | os.PathLike[str]) -> LinearHead:
    """A head written by :meth:`LinearHead.save`.

    Raises:
        ValueError: the file is not a head (the message says what is wrong).
        OSError: it cannot be read.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("weights"), list):
        raise ValueError(f"{path} is not a clipdex probe (no weights)")
    return LinearHead(**{k: data[k] for k in LinearHead.__dataclass_fields__ if k in data})


def registered_heads() -> Path:
    """Where probes are registered by name for every collection and curation run of this user:
    ``$CLIPDEX_DATA_DIR/probes`` (default ``~/.local/share/clipdex/probes``)."""
    return data_home() / "probes"


def find_head(ref: str) -> LinearHead:
    """A head by path (``probes/watermark.json``) or by registered name (``watermark``).

    Raises:
        ValueError: neither names a readable head (the message says where it looked).
    """
    candidates = [Path(ref), Path(ref + ".json"), registered_heads() / f"{ref}.json"]
    for path in candidates:
        if path.is_file():
            try:
                return load_head(path)
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: {e}") from e
    raise ValueError(f"no probe {ref!r}: not a file, nor registered in {registered_heads()} "
                     "(clipdex probe train registers each probe it trains)")


def train_head(name: str, positives: np.ndarray, negatives: np.ndarray, model: str, l2: float = 1.0,
               folds: int = 5, seed: int = 0) -> LinearHead:
    """A logistic regression separating ``positives`` from ``negatives`` (rows: unit vectors).

    Classes are weighted to count equally however many of each are given. Cross-validation
    (stratified, ``folds`` folds, fewer when a class has fewer examples) measures accuracy and AUC
    and calibrates the threshold; the head itself is then fit on everything.

    Raises:
        ValueError: fewer than 2 examples of a class, or vectors of different widths.
    """
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    if len(pos) < 2 or len(neg) < 2:
        raise ValueError(f"a probe needs at least 2 positives and 2 negatives, got {len(pos)} and {len(neg)}")
    if pos.shape[1] != neg.shape[1]:
        raise ValueError(f"positives are {pos.shape[1]}-d, negatives {neg.shape[1]}-d")
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    held_out = _cross_validated_scores(x, y, l2, min(folds, len(pos), len(neg)), seed)
    threshold = _best_threshold(held_out, y)
    predicted = held_out >= threshold
    balanced = 0.5 * (predicted[y == 1].mean() + (~predicted[y == 0]).mean())
    w, b = _fit(x, y, l2)
    return LinearHead(name, w.tolist(), float(b), float(threshold), model, len(pos), len(neg),
                      round(float(balanced), 4), round(roc_auc(held_out, y), 4))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _fit(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 50) -> tuple[np.ndarray, float]:
    """Weighted, L2-penalised logistic regression by Newton's method (bias unpenalised)."""
    n, d = x.shape
    weight = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1)) * n
    xb = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = _sigmoid(xb @ theta)
        grad = xb.T @ (weight * (p - y)) + penalty * theta
        hessian = (xb * (weight * p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])


def _cross_validated_scores(x: np.ndarray, y: np.ndarray, l2: float, folds: int, seed: int) -> np.ndarray:
    """Each example's probability from a head fit without its fold (stratified folds)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), np.int64)
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(y == label))
        fold[members] = np.arange(len(members)) % folds
    out = np.empty(len(y))
    for k in range(folds):
        test = fold == k
        w, b = _fit(x[~test], y[~test], l2)
        out[test] = _sigmoid(x[test] @ w + b)
    return out


def _best_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The cut between held-out scores that maximises balanced accuracy (a midpoint between sorted scores;
    one pass over the sorted scores, so thousands of examples cost nothing)."""
    order = np.argsort(scores, kind="stable")
    ranked, labels = scores[order], y[order].astype(np.float64)
    n, positives = len(ranked), labels.sum()
    below_pos = np.concatenate([[0.0], np.cumsum(labels)])  # positives under each cut position 0..n
    below_neg = np.arange(n + 1) - below_pos
    balanced = 0.5 * ((positives - below_pos) / positives + below_neg / (n - positives))
    valid = np.ones(n + 1, bool)
    valid[1:n] = ranked[1:] != ranked[:-1]  # a cut only between different scores
    best = int(np.flatnonzero(valid)[np.argmax(balanced[valid])])
    if best == 0:
        return float(ranked[0] - 1e-6)
    if best == n:
        return float(ranked[-1] + 1e-6)
    return float((ranked[best - 1] + ranked[best]) / 2)
