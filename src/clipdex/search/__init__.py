"""Search: queries, and the pipeline that answers them."""

from clipdex.search.query import Hit, Query, SearchPage, Target
from clipdex.search.query_vector import embed_query
from clipdex.search.searcher import search, search_page
from clipdex.search.topk import exact_topk, merge_topk

__all__ = ["Hit", "Query", "SearchPage", "Target", "embed_query", "exact_topk", "merge_topk", "search", "search_page"]
