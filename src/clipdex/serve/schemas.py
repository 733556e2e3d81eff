"""Pydantic models: only at the HTTP edge."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    error: str = Field(description="A short machine-readable code")
    detail: str = Field(description="What went wrong and what to do")


class CollectionOut(BaseModel):
    name: str
    model: str
    dim: int
    items: int
    errors: int
    captions: int
    index: str
    features: list[str] = Field(description="What this collection answers (an index: plain vector searches only)")
    share_location: bool = Field(description="Whether GPS metadata is served and place filters are accepted")


class MapOut(BaseModel):
    method: str
    items: int
    fitted_on: int
    placed: int = Field(description="Items placed among their neighbours since the last full fit")
    dropped: int
    refitted: bool
    seconds: float
    points: list[list[float]] = Field(description="[id, x, y] per image, x and y in [0, 1]")
    field: str | None = Field(description="The metadata field of `values`")
    values: list[Any] | None = Field(description="That field's value per point (null where an item has none)")
    fields: list[str] = Field(description="Metadata fields the points can be coloured by")


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    ids: list[int] = Field(max_length=200_000)


class ProbeIn(BaseModel):
    """Train a probe from items marked on the page, then score every item with it."""

    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    name: str = Field(min_length=1, max_length=64)
    positives: list[int] = Field(min_length=2, max_length=10_000)
    negatives: list[int] = Field(min_length=2, max_length=10_000)


class DuplicateMemberOut(BaseModel):
    id: int
    path: str
    similarity: float
    identical: bool
    thumbnail_url: str


class DuplicateGroupOut(BaseModel):
    kind: Literal["exact", "near"]
    members: list[DuplicateMemberOut]


class DuplicatesOut(BaseModel):
    threshold: float | None
    items: int
    duplicates: int
    groups: list[DuplicateGroupOut]


class TermIn(BaseModel):
    """One weighted query term: exactly one of text, image_id or embedding."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, max_length=2000)
    image_id: int | None = None
    embedding: list[float] | None = None
    weight: float = Field(1.0, ge=-100.0, le=100.0, description="Negative pushes results away")


class SearchIn(BaseModel):
    """Exactly one of text, image_id, embedding or terms."""

    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(None, description="Collection name (default: the first served)")
    text: str | None = Field(None, description="Text query", max_length=2000)
    image_id: int | None = Field(None, description="'More like this': an item id of the collection")
    embedding: list[float] | None = Field(None, description="A query vector of the collection's dimension")
    k: int = Field(20, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=100_000)
    min_score: float | None = Field(None, ge=-1.0, le=1.0)
    where: dict[str, str | int | float | bool] | list[str] = Field(
        default_factory=dict, max_length=32, description="Metadata filter: an object of key: value (equality), or a "
        "list of conditions such as \"taken>=2024-06-01\", \"camera!=X100V\" (at most 32)")
    ids: list[int] | None = Field(None, max_length=200_000, description="Only these items (a selection "
                                  "made on the embeddings map)")
    near: str | None = Field(None, max_length=100, description="LAT,LON,KM: photos taken within KM of a point "
                             "(only when the server shares locations)")
    target: Literal["images", "captions"] = "images"
    terms: list[TermIn] | None = Field(None, max_length=32, description="Weighted / negative terms")
    diversity: float | None = Field(None, ge=0.0, le=1.0, description="MMR weight of relevance (1 = plain)")
    collapse: float | None = Field(None, ge=-1.0, le=1.0, description="Hide near-duplicates above this cosine")
    mode: Literal["dense", "lexical", "hybrid"] = Field("dense", description="Vectors, BM25 words, or both")
    fusion: Literal["rrf", "convex"] = "rrf"
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="Convex fusion: dense share")
    regions: bool = Field(False, description="Also match region crops stored at index time")
    rerank: str | None = Field(None, max_length=500, description="Second stage: prf (Rocchio pseudo-relevance "
                               "feedback) or model:SPEC for a spec the server allows (--rerank-model)")
    rerank_depth: int = Field(100, ge=1, le=1000)
    compose: Literal["sum", "pdv", "caption-fusion"] | None = Field(
        None, description="Composed query: `text` modifies the reference (`image_id` or an uploaded image)")
    return_fields: list[Literal["id", "score", "path", "caption", "metadata", "thumbnail_url"]] | None = Field(
        None, alias="return", description="Fields to return per hit (default: all)")


class HitOut(BaseModel):
    id: int
    region: list[float] | None = None
    score: float | None = None
    path: str | None = None
    caption: str | None = None
    metadata: dict[str, Any] | None = None
    thumbnail_url: str | None = None


class SearchOut(BaseModel):
    hits: list[dict[str, Any]]
    took_ms: float
    total_considered: int
    stages_ms: dict[str, float]


class ItemOut(BaseModel):
    id: int
    path: str
    status: str
    captions: list[str]
    metadata: dict[str, Any]
    image_url: str
    thumbnail_url: str
