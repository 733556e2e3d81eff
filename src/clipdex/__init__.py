"""clipdex: an engine for image-text collections.

Example:
    >>> import clipdex
    >>> c = clipdex.Collection.open("photos.clipdex")   # doctest: +SKIP
    >>> c.search("a red car at night", k=10)            # doctest: +SKIP
"""

from clipdex.encoders import DEFAULT_SPEC, Encoder, load_encoder
from clipdex.errors import ClipdexError
from clipdex.search import Hit, Query, Target, search
from clipdex.store import Collection, IndexOptions, IndexReport

__version__ = "0.1.0"

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
