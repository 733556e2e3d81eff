"""Evaluate: retrieval metrics."""

from clipdex.evaluate.metrics import recall_at_k, relevant_recall_at_k

__all__ = ["recall_at_k", "relevant_recall_at_k"]
