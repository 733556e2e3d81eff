"""Linear heads: a logistic regression with cross-validated figures and a calibrated threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipdex.heads import find_head, load_head, train_head
from clipdex.metrics import roc_auc

pytestmark = pytest.mark.unit


def _clusters(n_pos: int, n_neg: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    centre = np.random.default_rng(99).standard_normal(32)  # one concept; the seed draws its examples
    rng = np.random.default_rng(seed)
    pos = centre + spread * rng.standard_normal((n_pos, 32))
    neg = -centre + spread * rng.standard_normal((n_neg, 32))
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    return norm(pos), norm(neg)


def test_separable_examples_give_a_perfect_head_and_a_threshold_between_them(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pos, neg = _clusters(20, 20, 0.3)
    head = train_head("demo", pos, neg, "builtin:shapes-tiny")
    assert head.cv_accuracy == 1.0 and head.cv_auc == 1.0
    assert (head.score(pos) >= head.threshold).all() and (head.score(neg) < head.threshold).all()
    monkeypatch.setenv("CLIPDEX_DATA_DIR", str(tmp_path))
    head.save(tmp_path / "probes" / "demo.json")
    again = find_head("demo")  # by registered name
    assert np.allclose(again.score(pos), head.score(pos))
    assert load_head(tmp_path / "probes" / "demo.json").name == "demo"
    with pytest.raises(ValueError, match="no probe 'other'"):
        find_head("other")


def test_overlapping_classes_are_measured_honestly_and_unbalanced_classes_count_equally() -> None:
    pos, neg = _clusters(50, 500, 6.0, seed=1)  # ten negatives for each positive, overlapping
    head = train_head("noisy", pos, neg, "m")
    assert 0.6 < head.cv_auc < 1.0 and 0.55 < head.cv_accuracy < 1.0
    fresh_pos, fresh_neg = _clusters(200, 200, 6.0, seed=2)
    scores = head.score(np.concatenate([fresh_pos, fresh_neg]))
    labels = np.r_[np.ones(200), np.zeros(200)]
    assert abs(roc_auc(scores, labels) - head.cv_auc) < 0.1  # cross-validation predicts fresh data
    predicted = scores >= head.threshold
    # balanced: neither class is sacrificed to the larger one
    assert predicted[:200].mean() > 0.55 and (~predicted[200:]).mean() > 0.55


def test_many_examples_train_quickly_and_bad_inputs_are_refused() -> None:
    pos, neg = _clusters(4000, 4000, 1.0, seed=3)
    head = train_head("big", pos, neg, "m")  # the threshold search is one pass over sorted scores
    assert head.positives == 4000 and 0.5 < head.cv_auc <= 1.0
    with pytest.raises(ValueError, match="at least 2 positives"):
        train_head("x", pos[:1], neg, "m")
    assert roc_auc(np.array([0.1, 0.9, 0.5, 0.5]), np.array([0, 1, 1, 0])) == 0.875
