from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clipdex.evaluate import (
    ap_at_k,
    bootstrap_ci,
    clipscore,
    ndcg_at_k,
    paired_difference,
    precision_at_k,
    recall_at_k,
    retrieval_recalls,
    zero_shot_accuracy,
)
from clipdex.metrics import rank_of_targets, relevant_hits, topk_indices

pytestmark = pytest.mark.unit


def test_recall_hand_computed_with_ties() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1], [0.3, 0.6, 0.6]])
    # query 0: target 2 is 2nd; query 1: target 1 ties with 0 -> ranks first; query 2: target 0 is 3rd
    assert rank_of_targets(scores, np.array([2, 1, 0])).tolist() == [1, 0, 2]
    assert recall_at_k(scores, np.array([2, 1, 0]), (1, 2, 3)) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3),
                                                                   3: 1.0}
    assert recall_at_k(scores, np.array([2, 1, 0]), (10,)) == {10: 1.0}  # k larger than the gallery


def test_retrieval_with_several_captions_per_image() -> None:
    image = np.eye(3)
    # captions 0,1 belong to image 0; caption 2 to image 1; caption 3 to image 2 but points at image 1
    text = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 1, 0], [0, 0.9, 0.1]])
    per = retrieval_recalls(text, image, np.array([0, 0, 1, 2]), ks=(1, 2))
    assert per["t2i_R@1"].tolist() == [1, 0, 1, 0] and per["t2i_R@2"].tolist() == [1, 1, 1, 1]
    # image 0: its best caption (0) ranks first; image 2: its caption 3 is below caption 1? sims col 2: [0,0,0,.1]
    assert per["i2t_R@1"].tolist() == [1, 1, 1]


def clip_benchmark_recall(scores: np.ndarray, positive: np.ndarray, k: int) -> np.ndarray:
    """A direct transcription of clip_benchmark's recall_at_k: (nb_true_positive / nb_positive > 0)."""
    topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    onehot = np.zeros_like(scores, dtype=bool)
    np.put_along_axis(onehot, topk, True, axis=1)
    nb_positive = positive.sum(axis=1)
    nb_true_positive = (onehot & positive).sum(axis=1)
    return (nb_true_positive / nb_positive > 0).astype(np.float64)


def test_agrees_with_clip_benchmark_formula() -> None:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((40, 8))
    texts = rng.standard_normal((200, 8))
    owner = rng.integers(0, 40, 200)
    owner[:40] = np.arange(40)  # every image has a caption
    per = retrieval_recalls(texts, images, owner, ks=(1, 5, 10))
    positive_t2i = owner[:, None] == np.arange(40)[None, :]
    positive_i2t = positive_t2i.T
    for k in (1, 5, 10):
        ref_t2i = clip_benchmark_recall(texts @ images.T, positive_t2i, k)
        ref_i2t = clip_benchmark_recall(images @ texts.T, positive_i2t, k)
        assert abs(per[f"t2i_R@{k}"].mean() - ref_t2i.mean()) < 1e-9
        assert abs(per[f"i2t_R@{k}"].mean() - ref_i2t.mean()) < 1e-9


def test_ap_and_ndcg_against_sklearn() -> None:
    from sklearn.metrics import average_precision_score, ndcg_score

    rng = np.random.default_rng(1)
    for _ in range(20):
        n = 30
        relevance = (rng.random(n) < 0.3).astype(int)
        relevance[0] = 1
        scores = rng.random(n)
        order = np.argsort(-scores)
        ranked = relevance[order][None, :]
        # with k >= n and min(#rel, k) = #rel, INQUIRE's AP equals sklearn's average precision
        assert ap_at_k(ranked, np.array([relevance.sum()]), n)[0] == pytest.approx(
            average_precision_score(relevance, scores), abs=1e-12)
        assert ndcg_at_k(ranked, [relevance.astype(float)], 10)[0] == pytest.approx(
            ndcg_score(relevance[None, :], scores[None, :], k=10), abs=1e-12)


def test_ap_at_k_denominator_and_edge_cases() -> None:
    ranked = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 0, 0, 0]])
    ap = ap_at_k(ranked, np.array([10, 0, 2]), 5)
    # query 0: (1/1 + 2/3) / min(10, 5); query 1: no relevant -> 0; query 2: perfect -> 1
    assert ap.tolist() == pytest.approx([(1 + 2 / 3) / 5, 0.0, 1.0])
    assert precision_at_k(ranked, 2).tolist() == [0.5, 0.0, 1.0]


def test_zero_shot_and_clipscore() -> None:
    classes = np.eye(3)
    images = np.array([[1, 0.1, 0], [0, 1, 0], [0.9, 0, 0.1], [0, 0, 1]])
    res = zero_shot_accuracy(images, classes, np.array([0, 1, 2, 2]), ks=(1, 2))
    assert res["top1"].tolist() == [1, 1, 0, 1]
    assert res["mean_per_class_recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert clipscore(a, np.array([[1.0, 0.0], [0.0, -1.0]])).tolist() == [2.5, 0.0]


def test_blockwise_topk_matches_full_sort() -> None:
    rng = np.random.default_rng(2)
    s = rng.standard_normal((50, 300))
    assert np.array_equal(topk_indices(s, 7, block=8), np.argsort(-s, axis=1, kind="stable")[:, :7])


def test_bootstrap_intervals() -> None:
    values = np.r_[np.ones(60), np.zeros(40)]
    lo, hi = bootstrap_ci(values, seed=0)
    assert lo < 0.6 < hi and hi - lo < 0.25
    assert bootstrap_ci(values, seed=0) == bootstrap_ci(values, seed=0)  # reproducible
    better = paired_difference(np.zeros(100), np.r_[np.ones(30), np.zeros(70)])
    assert better["difference"] == pytest.approx(0.3) and better["significant"]
    same = paired_difference(values, values)
    assert same["difference"] == 0 and not same["significant"]


scores_strategy = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 12)),
                         elements=st.floats(-1, 1, allow_nan=False))


@settings(max_examples=80, deadline=None)
@given(scores=scores_strategy, data=st.data())
def test_metric_properties(scores: np.ndarray, data: st.DataObject) -> None:
    n_q, n_t = scores.shape
    relevant = data.draw(arrays(bool, (n_q, n_t)))
    for v in relevant_hits(scores, relevant, (1, 3)).values():
        assert ((0 <= v) & (v <= 1)).all()
    ranked = np.take_along_axis(relevant, np.argsort(-scores, axis=1, kind="stable"), axis=1)
    ap = ap_at_k(ranked, relevant.sum(axis=1), n_t)
    nd = ndcg_at_k(ranked, [r.astype(float) for r in relevant], n_t)
    assert ((0 <= ap) & (ap <= 1 + 1e-12)).all() and ((0 <= nd) & (nd <= 1 + 1e-12)).all()
    perfect = -np.sort(-relevant.astype(int), axis=1)
    has = relevant.any(axis=1)
    assert np.allclose(ap_at_k(perfect, relevant.sum(axis=1), n_t)[has], 1.0)
    assert np.allclose(ndcg_at_k(perfect, [r.astype(float) for r in relevant], n_t)[has], 1.0)
    # reversing a perfect ranking cannot raise the score
    assert (ap_at_k(perfect[:, ::-1], relevant.sum(axis=1), n_t) <= 1.0 + 1e-12).all()
    assert (ap_at_k(perfect[:, ::-1], relevant.sum(axis=1), n_t) <= ap_at_k(perfect, relevant.sum(axis=1), n_t)
            + 1e-12).all()


def test_synth_retrieval_semantic_relevance_counts_any_scene_the_caption_fits() -> None:
    """A text encoder that lands each caption on the first test image it is true of: strict recall
    counts only its own image, semantic recall counts every fitting one, so it must be perfect."""
    from clipdex.synth import sample_scenes
    from clipdex.synth.probes import synth_retrieval
    from clipdex.synth.world import caption_holds

    n, seed = 120, 5
    scenes = sample_scenes(n, seed)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(n, n)))[0].astype(np.float32)

    def encode_images(images: list[object]) -> np.ndarray:
        assert len(images) == n
        return basis

    def encode_texts(texts: list[str]) -> np.ndarray:
        return basis[[next(j for j, s in enumerate(scenes) if caption_holds(s, t)) for t in texts]]

    out = synth_retrieval(encode_images, encode_texts, n=n, seed=seed)
    assert out["t2i_semantic_R@1"] == 1.0
    assert 0.5 < out["t2i_R@1"] < 1.0  # short captions ("a red circle") also fit an earlier image
