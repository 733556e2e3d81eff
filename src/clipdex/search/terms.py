"""Weighted and negative query terms: ``"golden retriever" + 2:query.jpg - "leash"``.

Each term is a text, an image file, a stored item (``item:42``) or a vector,
with a weight (negative to push results away). The query vector is the
normalised weighted sum of the terms' unit vectors.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clipdex.errors import BadQueryError

if TYPE_CHECKING:
    pass

__all__ = ["Term", "parse_terms"]

_TOKEN = re.compile(r"""\s*([+-])?\s*(?:(\d+(?:\.\d+)?):)?("[^"]*"|'[^']*'|[^\s+]+(?:\s+(?![+-]\s)[^\s+]+)*)""")


@dataclass(frozen=True)
class Term:
    """One part of a query. Exactly one of ``text``, ``image``, ``item_id``, ``vector``."""

    text: str | None = None
    image: str | bytes | None = None
    item_id: int | None = None
    vector: tuple[float, ...] | None = None
    weight: float = 1.0

    def kind(self) -> str:
        given = [k for k in ("text", "image", "item_id", "vector") if getattr(self, k) is not None]
        if len(given) != 1:
            raise BadQueryError(f"a term needs exactly one of text, image, item_id or vector, got {given or 'none'}")
        return given[0]


def parse_terms(expression: str) -> list[Term]:
    """Parse ``[W:]TERM (+|-) [W:]TERM ...``; a TERM is "quoted text", an image path, ``item:ID`` or bare words.

    Raises:
        BadQueryError: an empty expression, a bad weight, or nothing after an operator.
    """
    text = expression.strip()
    if not text:
        raise BadQueryError("empty query: give at least one term")
    terms: list[Term] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise BadQueryError(f"cannot read the query near {text[pos:pos + 20]!r}")
        sign, weight, body = match.groups()
        if terms and sign is None:
            raise BadQueryError(f"join terms with + or -, near {body!r}")
        value = (float(weight) if weight else 1.0) * (-1.0 if sign == "-" else 1.0)
        terms.append(_term(body.strip(), value))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return terms


def _term(body: str, weight: float) -> Term:
    if body[:1] in "\"'" and body[-1:] == body[:1] and len(body) >= 2:
        inner = body[1:-1].strip()
        if not inner:
            raise BadQueryError("an empty quoted term")
        return Term(text=inner, weight=weight)
    if body.startswith("item:"):
        try:
            return Term(item_id=int(body[5:]), weight=weight)
        except ValueError as e:
            raise BadQueryError(f"item terms are item:ID with a number, got {body!r}") from e
    if os.path.isfile(body):
        return Term(image=body, weight=weight)
    return Term(text=body, weight=weight)
