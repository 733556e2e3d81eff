"""Metadata filters: ``key=value``, ranges (``taken>=2024-06-01``) and a place (``near``), as SQL.

A value that reads as a number compares numerically with numeric fields (``width>=1000``,
``gps_lat<0``) and as text with text fields; any other value compares as text, which for ISO 8601 dates is date order
(``taken<2024-09-01`` keeps everything taken before September). ``!=`` also keeps items
that do not have the field at all, as a user excluding one camera expects. A list field
(``tags``) equals a value when one of its elements does (``tags=circle``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipdex.errors import BadQueryError

__all__ = ["OPERATORS", "Condition", "Near", "condition_sql", "haversine_km", "is_location_key", "json_path"]

OPERATORS = ("!=", ">=", "<=", "=", ">", "<")  # two-character operators first: `a>=b` is not `a>` `=b`
_EARTH_KM = 6371.0088


@dataclass(frozen=True)
class Condition:
    """One metadata test: ``key op value`` (op one of :data:`OPERATORS`)."""

    key: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


@dataclass(frozen=True)
class Near:
    """Items whose GPS position (``gps_lat`` / ``gps_lon``) lies within ``km`` of a point."""

    lat: float
    lon: float
    km: float


def is_location_key(key: str) -> bool:
    """Whether a metadata field says where a photo was taken (private unless the user shares it)."""
    return key.lower().startswith("gps")


def json_path(key: str) -> str:
    """The SQLite JSON path of metadata field ``key``.

    Raises:
        BadQueryError: a key no path can name (a quote, a backslash, a control character).
    """
    if not key or any(c in key for c in '"\\') or not key.isprintable():
        raise BadQueryError(f"{key!r} cannot name a metadata field")
    return f'$."{key}"'


def condition_sql(cond: Condition) -> tuple[str, list[Any]]:
    """The SQL test of one condition over ``items.metadata`` and its bound arguments."""
    path = json_path(cond.key)
    number = _number(cond.value)
    text = "CAST(json_extract(metadata, ?) AS TEXT)"
    is_num = "json_type(metadata, ?) IN ('integer', 'real')"
    if cond.op in ("=", "!="):
        # a list field (tags) holds the value when any of its elements is it
        member = "EXISTS (SELECT 1 FROM json_each(metadata, ?) WHERE CAST(value AS TEXT) = ?)"
        same = (f"({text} = ? OR (json_type(metadata, ?) = 'array' AND {member})"
                + (f" OR ({is_num} AND json_extract(metadata, ?) = ?))" if number is not None else ")"))
        args: list[Any] = [path, cond.value, path, path, cond.value] + (
            [path, path, number] if number is not None else [])
        if cond.op == "=":
            return same, args
        return f"NOT COALESCE({same}, 0)", args
    if number is not None:  # a number against a numeric field, as text against a text one (`taken>=2024`)
        return (f"(({is_num} AND json_extract(metadata, ?) {cond.op} ?) OR "
                f"(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) {cond.op} ?))",
                [path, path, number, path, path, cond.value])
    return f"(json_extract(metadata, ?) IS NOT NULL AND {text} {cond.op} ?)", [path, path, cond.value]


def haversine_km(lat: np.ndarray, lon: np.ndarray, near: Near) -> np.ndarray:
    """Great-circle distance in km from ``near``'s point to each ``(lat, lon)``."""
    p1, p2 = math.radians(near.lat), np.radians(lat)
    dlat, dlon = p2 - p1, np.radians(lon) - math.radians(near.lon)
    a = np.sin(dlat / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * _EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
