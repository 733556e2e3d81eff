"""Curation of image–text pools: filters, dedup, decontamination, the two-pass pipeline and its report."""

from clipdex.curate.filters import FILTERS, Filter, parse_filter
from clipdex.curate.pipeline import CurateOptions, CurateReport, Step, curate, load_config, resolve_options
from clipdex.media.pools import POOL_FORMATS, PoolOptions, open_pool

__all__ = ["FILTERS", "POOL_FORMATS", "CurateOptions", "CurateReport", "Filter", "PoolOptions", "Step", "curate",
           "load_config", "open_pool", "parse_filter", "resolve_options"]
