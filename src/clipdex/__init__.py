"""clipdex: an engine for image-text collections.

Example:
    >>> import clipdex
    >>> c = clipdex.Collection.open("photos.clipdex")   # doctest: +SKIP
    >>> c.search("a red car at night", k=10)            # doctest: +SKIP
"""

from clipdex.collection import Collection
from clipdex.encoders import DEFAULT_SPEC, Encoder, load_encoder
from clipdex.errors import ClipdexError
from clipdex.indexing import IndexOptions
from clipdex.search import Hit, Query, Target, search
from clipdex.store import IndexReport
from clipdex.version import __version__

__all__ = [
    "DEFAULT_SPEC",
    "ClipdexError",
    "Collection",
    "Encoder",
    "Hit",
    "IndexOptions",
    "IndexReport",
    "Query",
    "Target",
    "__version__",
    "load_encoder",
    "search",
]
