"""The one small error hierarchy of clipdex.

Library code raises these; only the CLI and the HTTP layer turn them into exit
codes or status codes. Every message says what went wrong and what to do.
"""

from __future__ import annotations

__all__ = [
    "BadQueryError",
    "ClipdexError",
    "CollectionError",
    "CollectionLockedError",
    "DamagedError",
    "DecodeError",
    "EncoderSpecError",
    "MissingExtraError",
    "ModelNotFoundError",
    "NotFoundError",
    "SourceError",
    "UsageError",
]


class ClipdexError(Exception):
    """Base class of every error clipdex raises on purpose."""

    exit_code = 1


class EncoderSpecError(ClipdexError):
    """A model spec string that clipdex cannot resolve."""

    exit_code = 3


class MissingExtraError(EncoderSpecError):
    """A spec that needs an optional dependency that is not installed."""


class ModelNotFoundError(EncoderSpecError):
    """A model that is neither on disk nor downloadable."""


class CollectionError(ClipdexError):
    """A collection that is missing, damaged, or used the wrong way."""

    exit_code = 4


class NotFoundError(CollectionError):
    """A named thing that does not exist: an item id, a served collection (HTTP 404)."""


class DamagedError(CollectionError):
    """A collection file that is damaged (``clipdex verify`` names it, ``clipdex repair`` mends what it can)."""


class CollectionLockedError(CollectionError):
    """Another process is writing to the collection."""

    exit_code = 5


class BadQueryError(ClipdexError):
    """A query that cannot be answered as asked (empty, k <= 0, bad image)."""

    exit_code = 2


class UsageError(ClipdexError):
    """Options that cannot be used as given: an unknown choice, a combination that does not go together."""

    exit_code = 2


class SourceError(ClipdexError):
    """A source (folder, table, JSON) that cannot be read at all."""

    exit_code = 2


class FilterSpecError(ClipdexError):
    """A curation filter or config that cannot be used as written (unknown name, parameter or value)."""

    exit_code = 2


class DecodeError(ClipdexError):
    """One image that cannot be decoded; recorded per item, never fatal for a batch."""
