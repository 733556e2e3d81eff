"""What a search asks for, and what it returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from PIL import Image

from clipdex.errors import BadQueryError
from clipdex.store.filters import OPERATORS, Condition, Near, json_path

__all__ = ["Condition", "Hit", "Near", "Query", "SearchPage", "Target", "check_rerank", "parse_near", "parse_where"]

ImageQuery = str | os.PathLike[str] | bytes | Image.Image


class Target(StrEnum):
    """What is ranked: the images, or the stored captions (image -> text)."""

    IMAGES = "images"
    CAPTIONS = "captions"


@dataclass(frozen=True)
class Query:
    """One search.

    Attributes:
        text: a text query (text -> image or text -> caption).
        image: a query image: path, bytes or PIL image (image -> image / text).
        vector: a query embedding ``(dim,)`` (normalised here).
        item_id: "more like this": the stored image vector of an item (the
            item itself is left out of the results).
        k: how many results.
        offset: skip this many results first (pagination).
        where: metadata conditions that must all hold (:func:`parse_where`); a dict means ``key == value``.
        near: only items whose GPS position lies within a radius of a point.
        ids: only these items (a selection made on the embeddings map).
        min_score: drop results scoring below this cosine similarity.
        target: rank images or captions.
        terms: weighted / negative terms combined into one vector (see :mod:`clipdex.search.terms`).
        diversity: MMR trade-off in [0, 1] over the candidates (1 = plain ranking).
        collapse: drop results within this cosine of a better one (near-duplicates).
        mode: ``dense`` (vectors), ``lexical`` (BM25 over captions, file names, OCR) or ``hybrid``.
        fusion: how hybrid joins the two lists: ``rrf`` (k = 60) or ``convex``.
        alpha: dense share of a convex fusion.
        compose: a composed query: ``text`` modifies the reference ``image`` or ``item_id``
            with this method (``sum``, ``pdv``, ``caption-fusion``; see :mod:`clipdex.search.composed`).
        rerank: a second stage over the top ``rerank_depth``: ``prf`` or ``model:SPEC``.
        rerank_depth: how many candidates the second stage rescores.
        regions: also match the region crops stored at index time (``index --regions``); an
            item scores its best of whole image and crops, and a hit says which crop matched.
    """

    text: str | None = None
    image: ImageQuery | None = None
    vector: np.ndarray | None = None
    item_id: int | None = None
    k: int = 10
    offset: int = 0
    where: tuple[Condition, ...] | dict[str, str] = ()
    near: Near | None = None
    ids: tuple[int, ...] | None = None
    min_score: float | None = None
    target: Target = Target.IMAGES
    terms: tuple[Any, ...] | None = None
    diversity: float | None = None
    collapse: float | None = None
    mode: str = "dense"
    fusion: str = "rrf"
    alpha: float = 0.5
    compose: str | None = None
    rerank: str | None = None
    rerank_depth: int = 100
    regions: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.where, dict):  # the plain form: every key equals its value
            object.__setattr__(self, "where", tuple(Condition(k, "=", str(v)) for k, v in self.where.items()))
        else:
            object.__setattr__(self, "where", tuple(self.where))

    @property
    def filtered(self) -> bool:
        """Whether metadata conditions or a place narrow the items searched."""
        return bool(self.where) or self.near is not None or self.ids is not None

    @property
    def depth(self) -> int:
        """Candidates a plain ranking needs: this page and all before it, plus the reference item it leaves out."""
        return self.k + self.offset + (1 if self.item_id is not None else 0)

    @property
    def page(self) -> slice:
        """The part of the ranked list this query returns."""
        return slice(self.offset, self.offset + self.k)

    def validate(self) -> None:
        """Raise :class:`BadQueryError` with the reason when the query cannot run."""
        given = [name for name in ("text", "image", "vector", "item_id", "terms") if getattr(self, name) is not None]
        if self.compose is not None:
            self._validate_composed(given)
            given = ["composed"]
        if not given:
            raise BadQueryError("empty query: give a text or an image")
        if len(given) > 1:
            raise BadQueryError(f"give one of text, image, vector, item_id or terms, not {' and '.join(given)}")
        if self.diversity is not None and not 0.0 <= self.diversity <= 1.0:
            raise BadQueryError(f"diversity is the MMR weight of relevance in [0, 1], got {self.diversity}")
        if self.rerank is not None:
            check_rerank(self.rerank)
            if not isinstance(self.rerank_depth, int) or not 1 <= self.rerank_depth <= 10_000:
                raise BadQueryError(f"rerank_depth must be in [1, 10000], got {self.rerank_depth!r}")
        if self.mode not in ("dense", "lexical", "hybrid"):
            raise BadQueryError(f"unknown mode {self.mode!r}. Available: dense, lexical, hybrid")
        if self.mode != "dense" and (self.text is None or self.target != Target.IMAGES):
            raise BadQueryError(f"{self.mode} search takes a text query over images")
        if self.fusion not in ("rrf", "convex"):
            raise BadQueryError(f"unknown fusion {self.fusion!r}. Available: rrf, convex")
        if not 0.0 <= self.alpha <= 1.0:
            raise BadQueryError(f"alpha is the dense share in [0, 1], got {self.alpha}")
        if self.collapse is not None and not -1.0 <= self.collapse <= 1.0:
            raise BadQueryError(f"collapse is a cosine similarity in [-1, 1], got {self.collapse}")
        if self.text is not None and not self.text.strip():
            raise BadQueryError("empty query: the text is blank")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k <= 0:
            raise BadQueryError(f"k must be a positive integer, got {self.k!r}")
        if not isinstance(self.offset, int) or self.offset < 0:
            raise BadQueryError(f"offset must be an integer >= 0, got {self.offset!r}")
        if self.min_score is not None and not -1.0 <= self.min_score <= 1.0:
            raise BadQueryError(f"min_score is a cosine similarity in [-1, 1], got {self.min_score}")
        if self.target not in tuple(Target):
            raise BadQueryError(f"unknown target {self.target!r}. Available: images, captions")


    def _validate_composed(self, given: list[str]) -> None:
        from clipdex.search.composed import COMPOSED_METHODS

        if self.compose not in COMPOSED_METHODS[2:]:
            raise BadQueryError(f"unknown compose method {self.compose!r}. Available: "
                                f"{', '.join(COMPOSED_METHODS[2:])}")
        if sorted(given) not in (["image", "text"], ["item_id", "text"]):
            raise BadQueryError("a composed query takes a reference (image or item_id) and a modification text")
        if self.text is not None and not self.text.strip():
            raise BadQueryError("empty query: the modification text is blank")
        if self.target != Target.IMAGES or self.mode != "dense":
            raise BadQueryError("a composed query ranks images by vectors (target images, mode dense)")


@dataclass
class Hit:
    """One result: an item (and, for caption search, the caption that matched)."""

    id: int
    score: float
    path: str
    caption: str | None
    metadata: dict[str, Any]
    captions: list[str] = field(default_factory=list)
    region: tuple[float, float, float, float] | None = None  # the crop that matched (x0, y0, x1, y1 fractions)

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "score": round(float(self.score), 6), "path": self.path,
               "caption": self.caption, "metadata": self.metadata}
        if self.region is not None:
            out["region"] = list(self.region)
        return out


@dataclass
class SearchPage:
    """Hits plus what they cost: per-stage milliseconds and how many vectors were considered."""

    hits: list[Hit]
    took_ms: float
    stages_ms: dict[str, float]
    total_considered: int


def parse_where(pairs: list[str]) -> tuple[Condition, ...]:
    """Metadata conditions from ``key=value``, ``key!=value``, ``key>=value``, ``key<value``... strings
    (``--where``, the page's filters). Dates compare in ISO 8601 order: ``taken>=2024-06-01``.

    Raises:
        BadQueryError: a string without an operator or a key, or a key that cannot name a field.
    """
    out = []
    for pair in pairs:
        at = min(((pair.find(op), -len(op), op) for op in OPERATORS if op in pair), default=None)
        if at is None or at[0] == 0:
            raise BadQueryError(f"--where takes key=value (or !=, >=, <=, >, <), got {pair!r}")
        key, op = pair[: at[0]].strip(), at[2]
        json_path(key)  # a key no metadata field can have is refused here, before any search
        out.append(Condition(key, op, pair[at[0] + len(op):].strip()))
    return tuple(out)


def parse_near(text: str) -> Near:
    """A place filter from ``LAT,LON,KM`` (``--near 48.8566,2.3522,5``: within 5 km of Paris).

    Raises:
        BadQueryError: not three numbers, or out of range.
    """
    try:
        lat, lon, km = (float(p) for p in text.split(","))
    except ValueError:
        raise BadQueryError(f"--near takes LAT,LON,KM (e.g. 48.8566,2.3522,5), got {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 < km <= 20_100):
        raise BadQueryError(f"--near: latitude in [-90, 90], longitude in [-180, 180], km > 0; got {text!r}")
    return Near(lat, lon, km)


def check_rerank(spec: str) -> None:
    """Raise BadQueryError unless ``spec`` is ``prf`` or ``model:SPEC``."""
    if spec != "prf" and not (spec.startswith("model:") and len(spec) > 6):
        raise BadQueryError(f"unknown rerank {spec!r}: use prf or model:SPEC (e.g. model:hf:/models/clip-b32)")
