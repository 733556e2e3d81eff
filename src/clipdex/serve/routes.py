"""HTTP routes: each a thin wrapper over library calls."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from clipdex.errors import BadQueryError, CollectionError, DamagedError, DecodeError, NotFoundError
from clipdex.media.thumbnails import image_response
from clipdex.search.query import Query as SearchQuery
from clipdex.search.query import Target
from clipdex.serve.schemas import (
    CollectionOut,
    DuplicatesOut,
    ErrorOut,
    ExportIn,
    ItemOut,
    MapOut,
    ProbeIn,
    SearchIn,
    SearchOut,
)
from clipdex.serve.state import ServerState
from clipdex.store.filters import Condition, is_location_key

__all__ = ["HTTPError", "api"]


class HTTPError(Exception):
    """An error answered as ``{"error": code, "detail": ...}`` with ``status``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def get_state(request: Request) -> ServerState:
    return request.app.state.clipdex  # type: ignore[no-any-return]


StateDep = Annotated[ServerState, Depends(get_state)]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403, 404, 413, 422, 504)}
api = APIRouter(prefix="/api", responses=ERRORS)


@api.get("/collections", response_model=list[CollectionOut])
def list_collections(state: StateDep) -> list[CollectionOut]:
    """Names, model spec and counts of the served collections."""
    out = []
    for name in state.names():
        info = state.collection(name).info(max_errors=0)
        out.append(CollectionOut(name=name, model=info.encoder, dim=info.dim, items=info.ok, errors=info.errors,
                                 captions=info.captions, index=info.index, features=state.features(name),
                                 share_location=state.config.share_location))
    return out


def _store(state: ServerState, collection: str | None, what: str) -> Any:
    """A served collection (not an index), for the routes that read or write its items' metadata."""
    from clipdex.store.store import Store

    coll = state.collection(collection)
    if not isinstance(coll, Store):
        raise HTTPError(400, "bad_query", f"{what} need a collection; an index answers plain vector searches")
    return coll


@api.get("/map", response_model=MapOut)
async def get_map(state: StateDep, collection: str | None = None,
                  color: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """The embeddings map: every image as a point (cached layout, extended as items come), optionally with
    one metadata field's value per point to colour it by."""
    from clipdex.explore.layout import map_layout

    coll = state.collection(collection)  # a collection or a served index: both have item vectors
    layout = await run_in_threadpool(map_layout, coll)
    fields = [f for f in coll.metadata_fields() if state.config.share_location or not is_location_key(f)]
    if color is not None and not state.config.share_location and is_location_key(color):
        raise HTTPError(403, "location_private", "this server keeps where photos were taken private")
    values = coll.field_values(color, layout.ids.tolist()) if color else None
    return {**layout.to_dict(), "field": color, "values": values, "fields": fields}


@api.post("/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def post_export(body: ExportIn, state: StateDep) -> Response:
    """A selection as a table: id, path, captions and metadata (JSON) per item, as CSV."""
    import csv
    import io

    coll = state.collection(body.collection)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "path", "captions", "metadata"])
    for item_id in sorted(set(body.ids)):
        try:
            record = coll.item(item_id)
        except NotFoundError:
            continue  # removed since the selection was made
        meta = _shown(record.metadata, state.config.share_location) or {}
        writer.writerow([item_id, record.path, " | ".join(record.captions), json.dumps(meta, ensure_ascii=False)])
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="selection.csv"'})


@api.post("/probes")
async def post_probe(body: ProbeIn, state: StateDep) -> dict[str, Any]:
    """Train a probe from marked items (ids) and score every item with it (metadata named after it)."""
    from clipdex.explore.probes import apply_probe, train_probe

    coll = _store(state, body.collection, "probes")

    def work() -> dict[str, Any]:
        head = train_probe(coll, state.encoder(coll), body.name, [str(i) for i in body.positives],
                           [str(i) for i in body.negatives])
        applied = apply_probe(coll, body.name)
        return {"name": body.name, "cv_accuracy": head.cv_accuracy, "cv_auc": head.cv_auc,
                "threshold": round(head.threshold, 4), "above_threshold": applied.above_threshold,
                "items": applied.items}

    return await run_in_threadpool(work)


@api.get("/duplicates", response_model=DuplicatesOut)
async def get_duplicates(state: StateDep, collection: str | None = None,
                         threshold: Annotated[float, Query(gt=0.0, le=1.0)] = 0.95,
                         exact_only: bool = False) -> dict[str, Any]:
    """Groups of duplicate photos (the same bytes, or image vectors at or above `threshold`), largest first."""
    from clipdex.curate.duplicates import find_duplicates

    coll = _store(state, collection, "duplicates")
    name = collection or state.names()[0]
    found = await run_in_threadpool(find_duplicates, coll, None if exact_only else threshold)
    out = found.to_dict()
    for group in out["groups"]:
        for member in group["members"]:
            member["thumbnail_url"] = _thumb_url(name, member["id"])
    return out


_SEARCH_BODY = {"requestBody": {"content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/SearchIn"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}, "collection": {"type": "string"},
        "k": {"type": "integer", "minimum": 1, "maximum": 1000}, "offset": {"type": "integer", "minimum": 0},
        "min_score": {"type": "number"}, "target": {"type": "string", "enum": ["images", "captions"]}}}},
}, "required": True}}


@api.post("/search", response_model=SearchOut, openapi_extra=_SEARCH_BODY)
async def post_search(request: Request, state: StateDep) -> dict[str, Any]:
    """Search by JSON (`text`, `image_id` or `embedding`) or by a multipart image upload."""
    cap = state.config.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise HTTPError(413, "too_large", f"request body over the {cap:,} byte limit")
    raw = await _capped_body(request, cap)  # counted as it arrives: chunked bodies are capped too
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, image = await _multipart(request, raw, cap)
    else:
        body, image = _json_body(raw, cap), None
    try:
        parsed = SearchIn.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPError(422, "invalid_request", f"{where}: {first['msg']}") from None
    return await _run_search(request, state, parsed, image)


@api.get("/search", response_model=SearchOut)
async def get_search(request: Request, state: StateDep, q: Annotated[str, Query(min_length=1, max_length=2000)],
                     collection: str | None = None, k: Annotated[int, Query(ge=1, le=1000)] = 20,
                     offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> dict[str, Any]:
    """Quick text search: `/api/search?q=a+red+car&k=10`."""
    parsed = SearchIn.model_validate({"collection": collection, "text": q, "k": k, "offset": offset})
    return await _run_search(request, state, parsed, None)


async def _capped_body(request: Request, cap: int) -> bytes:
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise HTTPError(413, "too_large", f"request body over the {cap:,} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _multipart(request: Request, raw: bytes, cap: int) -> tuple[dict[str, Any], bytes]:
    from starlette.formparsers import MultiPartParser

    async def once() -> Any:
        yield raw

    try:  # parsed from the capped bytes in memory: nothing is spooled to disk
        form = await MultiPartParser(request.headers, once(), max_files=1, max_fields=20, max_part_size=cap).parse()
    except Exception as e:  # starlette raises its own parse errors
        raise HTTPError(400, "bad_multipart", f"cannot parse the upload: {e}") from None
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise HTTPError(422, "invalid_request", "multipart search needs a file field named 'image'")
    data = await upload.read(cap + 1)
    if len(data) > cap:
        raise HTTPError(413, "too_large", f"image over the {cap:,} byte limit")
    fields: dict[str, Any] = {k: v for k, v in form.items() if k != "image" and isinstance(v, str)}
    for key in ("k", "offset"):
        if key in fields:
            fields[key] = _number(fields[key], int, key)
    if "min_score" in fields:
        fields["min_score"] = _number(fields["min_score"], float, "min_score")
    return fields, data


def _number(value: str, kind: type, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise HTTPError(422, "invalid_request", f"{name} must be a number, got {value!r}") from None


def _json_body(raw: bytes, cap: int) -> dict[str, Any]:
    if len(raw) > cap:
        raise HTTPError(413, "too_large", f"request body over the {cap:,} byte limit")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, "malformed_json", f"the body is not valid JSON ({e})") from None
    except RecursionError:
        raise HTTPError(400, "malformed_json", "the body nests too deeply") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "malformed_json", "the body must be a JSON object")
    return body


async def _run_search(request: Request, state: StateDep, req: SearchIn, image: bytes | None) -> dict[str, Any]:
    state.collection(req.collection)  # an unknown name answers 404 before any work
    if req.rerank and req.rerank != "prf" and req.rerank.removeprefix("model:") not in state.config.rerank_models:
        allowed = ", ".join(["prf", *(f"model:{m}" for m in state.config.rerank_models)])
        raise HTTPError(400, "bad_query", f"rerank {req.rerank!r} is not allowed here. Available: {allowed}")
    name = req.collection or state.names()[0]
    picture, vector = None, None if req.embedding is None else _vector(req.embedding)
    if image is not None and vector is not None:
        raise HTTPError(400, "bad_query", "give one of text, image, vector, item_id or terms, not image and vector")
    plain = req.text is None and req.compose is None and req.terms is None and not (req.rerank or "").startswith(
        "model:")
    if image is not None and plain:  # the common upload: only its vector outlives the decode slot
        vector = await run_in_threadpool(state.query_image_vector, name, image)
    elif image is not None:  # composed, or re-ranked by another model: the picture itself is needed
        picture = await run_in_threadpool(state.query_image, name, image)
    where, near = _filters(req, state.config.share_location)
    query = SearchQuery(text=req.text, image=picture, item_id=req.image_id, vector=vector, k=req.k,
                        offset=req.offset, where=where, near=near, ids=tuple(req.ids) if req.ids is not None else None,
                        min_score=req.min_score, target=Target(req.target), terms=_terms(req),
                        diversity=req.diversity, collapse=req.collapse, mode=req.mode, fusion=req.fusion,
                        alpha=req.alpha, compose=req.compose, rerank=req.rerank, rerank_depth=req.rerank_depth,
                        regions=req.regions)
    try:
        page = await asyncio.wait_for(run_in_threadpool(state.search, name, query), state.config.request_timeout_s)
    except TimeoutError:
        raise HTTPError(504, "timeout", f"the search took longer than {state.config.request_timeout_s}s") from None
    fields = req.return_fields
    hits = []
    for hit in page.hits:
        full = {**hit.to_dict(), "thumbnail_url": _thumb_url(name, hit.id)}
        full["metadata"] = _shown(full["metadata"], state.config.share_location)
        hits.append({k: v for k, v in full.items() if fields is None or k in fields or k == "id"})
    return {"hits": hits, "took_ms": round(page.took_ms, 3), "total_considered": page.total_considered,
            "stages_ms": {k: round(v, 3) for k, v in page.stages_ms.items()}}


def _filters(req: SearchIn, share_location: bool) -> tuple[tuple[Condition, ...], Any]:
    """The request's metadata conditions and place; a place (or a GPS field) is refused unless shared."""
    from clipdex.search.query import parse_near, parse_where

    if isinstance(req.where, dict):
        where = tuple(Condition(k, "=", str(v)) for k, v in req.where.items())
    else:
        where = parse_where(req.where)
    if not share_location and (req.near is not None or any(is_location_key(c.key) for c in where)):
        raise HTTPError(403, "location_private", "this server keeps where photos were taken private: its owner "
                        "can start it with --share-location")
    return where, parse_near(req.near) if req.near is not None else None


def _shown(metadata: dict[str, Any] | None, share_location: bool) -> dict[str, Any] | None:
    """Metadata as served: without where the photo was taken unless the server shares it."""
    if metadata is None or share_location:
        return metadata
    return {k: v for k, v in metadata.items() if not is_location_key(k)}


def _terms(req: SearchIn) -> tuple[Any, ...] | None:
    from clipdex.search.terms import Term

    if req.terms is None:
        return None
    return tuple(Term(text=t.text, item_id=t.image_id, vector=None if t.embedding is None else tuple(t.embedding),
                      weight=t.weight) for t in req.terms)


def _vector(values: list[float]) -> Any:
    import numpy as np

    return np.asarray(values, dtype=np.float32)


def _thumb_url(collection: str, item_id: int, size: int = 256) -> str:
    return f"/api/items/{item_id}/thumbnail?collection={collection}&size={size}"


@api.get("/items/{item_id}", response_model=ItemOut)
def get_item(item_id: int, state: StateDep, request: Request, collection: str | None = None) -> ItemOut:
    """One item's path, captions and metadata."""
    coll = state.collection(collection)
    name = collection or state.names()[0]
    record = coll.item(item_id)
    return ItemOut(id=record.id, path=record.path, status=record.status, captions=record.captions,
                   metadata=_shown(record.metadata, state.config.share_location) or {},
                   image_url=f"/api/items/{item_id}/image?collection={name}",
                   thumbnail_url=_thumb_url(name, item_id))


_CACHE = {"Cache-Control": "private, max-age=86400"}


@api.get("/items/{item_id}/image", response_class=Response,
         responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def get_image(item_id: int, state: StateDep, collection: str | None = None) -> Response:
    """The item's image, decoded and encoded again here: no byte of a file leaves unless it decoded as an
    image, and items that failed to index (a link to a text file, a table row naming another file) are 404."""
    coll = state.collection(collection)
    if coll.item(item_id).status != "ok":
        raise HTTPError(404, "not_an_image", "this item failed to index: it has no image to send")
    try:
        data, media = image_response(os.fsdecode(coll.item_path_bytes(item_id)))
    except DecodeError as e:
        raise HTTPError(404, "file_gone", f"the item's image can no longer be read: {e}") from None
    return Response(data, media_type=media, headers=_CACHE)


@api.get("/items/{item_id}/heatmap", response_class=Response,
         responses={200: {"content": {"image/png": {}}}})
async def get_heatmap(item_id: int, state: StateDep, q: Annotated[str, Query(min_length=1, max_length=2000)],
                      collection: str | None = None, grid: Annotated[int, Query(ge=2, le=8)] = 5) -> Response:
    """Where in the item's image the text matches: a PNG with the hot windows blended in red."""
    from clipdex.search.heatmap import item_heatmap

    coll = state.collection(collection)
    try:
        data = await run_in_threadpool(item_heatmap, coll, item_id, q, state.encoder(coll), grid)
    except DecodeError as e:
        raise HTTPError(404, "no_image", f"the item's image cannot be decoded: {e}") from None
    return Response(data, media_type="image/png")


@api.get("/items/{item_id}/thumbnail", response_class=Response,
         responses={200: {"content": {"image/jpeg": {}}}})
def get_thumbnail(item_id: int, state: StateDep, collection: str | None = None,
                  size: Annotated[int, Query(ge=16, le=1024)] = 256) -> Response:
    """A cached JPEG thumbnail (size clamped to the configured sizes)."""
    sizes = state.config.thumbnail_sizes
    size = min(sizes, key=lambda s: (s < size, abs(s - size)))
    try:
        data = state.collection(collection).thumbnail(item_id, size)
    except DecodeError as e:
        raise HTTPError(404, "no_image", f"the item's image cannot be decoded: {e}") from None
    return Response(data, media_type="image/jpeg", headers=_CACHE)


def error_status(exc: Exception) -> tuple[int, str]:
    """The status and code a library error maps to."""
    if isinstance(exc, BadQueryError):
        return 400, "bad_query"
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, DamagedError):
        return 503, "collection_damaged"
    if isinstance(exc, CollectionError):
        return 400, "collection"
    return 400, "bad_request"
