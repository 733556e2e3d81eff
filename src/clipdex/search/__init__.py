"""Search: queries, and the pipeline that answers them."""

from clipdex.search.query import Hit, Query, Target
from clipdex.search.searcher import embed_query, search
from clipdex.search.topk import exact_topk, merge_topk

__all__ = ["Hit", "Query", "Target", "embed_query", "exact_topk", "merge_topk", "search"]
