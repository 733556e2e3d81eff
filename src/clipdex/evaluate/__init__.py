"""Evaluate: the field's metrics, dataset readers, runners, reports and comparisons."""

from clipdex.evaluate.bootstrap import bootstrap_ci, paired_difference
from clipdex.evaluate.report import compare_results, load_result, markdown_table, save_result
from clipdex.evaluate.runner import (
    EvalResult,
    run_alignment,
    run_binding,
    run_composed,
    run_ranking,
    run_retrieval,
    run_retrieval_embeddings,
    run_zeroshot,
)
from clipdex.metrics import (
    ap_at_k,
    clipscore,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    relevant_recall_at_k,
    retrieval_recalls,
    zero_shot_accuracy,
)

__all__ = [
    "EvalResult",
    "ap_at_k",
    "bootstrap_ci",
    "clipscore",
    "compare_results",
    "load_result",
    "markdown_table",
    "ndcg_at_k",
    "paired_difference",
    "precision_at_k",
    "recall_at_k",
    "relevant_recall_at_k",
    "retrieval_recalls",
    "run_alignment",
    "run_binding",
    "run_composed",
    "run_ranking",
    "run_retrieval",
    "run_retrieval_embeddings",
    "run_zeroshot",
    "save_result",
    "zero_shot_accuracy",
]
