"""clipdex: an engine for image-text collections.

Example:
    >>> import clipdex
    >>> c = clipdex.Collection.open("photos.clipdex")   # doctest: +SKIP
    >>> c.search("a red car at night", k=10)            # doctest: +SKIP

The names below load on first use (PEP 562), so ``import clipdex.cli`` or one submodule does not pay for
the whole package: a command-line search starts that much sooner.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from clipdex.version import __version__

if TYPE_CHECKING:
    from clipdex.collection import Collection
    from clipdex.encoders import DEFAULT_SPEC, Encoder, load_encoder
    from clipdex.errors import ClipdexError
    from clipdex.indexing import IndexOptions
    from clipdex.search import Hit, Query, Target, search
    from clipdex.store import IndexReport

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

_HOMES = {"Collection": "clipdex.collection", "DEFAULT_SPEC": "clipdex.encoders", "Encoder": "clipdex.encoders",
          "load_encoder": "clipdex.encoders", "ClipdexError": "clipdex.errors", "IndexOptions": "clipdex.indexing",
          "Hit": "clipdex.search", "Query": "clipdex.search", "Target": "clipdex.search", "search": "clipdex.search",
          "IndexReport": "clipdex.store"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'clipdex' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
