"""Server configuration: which collections, and the limits of the HTTP edge."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from clipdex.errors import ClipdexError, CollectionError, UsageError

__all__ = ["ServeConfig", "resolve_collections"]


@dataclass(frozen=True)
class ServeConfig:
    """Everything the app needs; passed down, never global.

    Attributes:
        collections: public name -> collection folder, in display order.
        api_key: when set, every ``/api`` call and ``/metrics``, ``/docs``, ``/openapi.json`` need header
            ``X-API-Key`` (image routes, which ``<img>`` tags load, also take ``?key=``); an empty key is refused.
        allowed_hosts: Host header values accepted (DNS rebinding defence); empty: the loopback names,
            or any host when bound to all interfaces.
        cors_origins: origins allowed by CORS (none by default).
        max_upload_bytes: largest accepted query image / request body (counted as it streams in).
        max_query_pixels: largest query image, in pixels (a small PNG can decode to gigabytes).
        query_decodes: query images decoded at once; others wait (bounds the memory uploads take).
        request_timeout_s: a search that takes longer answers 504.
        thumbnail_sizes: sizes a client may ask for (others are clamped).
        rerank_models: encoder specs a request may name as ``rerank: "model:SPEC"``
            (a request can never make the server load any other model).
        index_model: the encoder of served index folders whose manifest does not name one.
        share_location: serve where photos were taken (EXIF GPS metadata) and accept place filters;
            off by default, so a shared server never tells where its owner lives.
    """

    collections: dict[str, Path] = field(default_factory=dict)
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    bound_host: str | None = None  # the address uvicorn binds (set by ``clipdex serve``)
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = 10 * 1024 * 1024
    max_query_pixels: int = 24_000_000
    query_decodes: int = 2
    request_timeout_s: float = 30.0
    thumbnail_sizes: tuple[int, ...] = (128, 256, 512)
    rerank_models: tuple[str, ...] = ()
    index_model: str | None = None
    share_location: bool = False

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise UsageError("the API key is set but empty (CLIPDEX_API_KEY=?): give a real key, or unset it")


def resolve_collections(args: list[str]) -> dict[str, Path]:
    """Collection or index folders, or a JSON file ``{"name": "path", ...}``, to a name -> path map.

    Names default to the folder name; clashes get a numeric suffix.

    Raises:
        ClipdexError: a path is neither a collection nor a JSON file naming collections.
    """
    named: dict[str, Path] = {}
    for arg in args:
        path = Path(arg).expanduser()
        if path.suffix == ".json" and path.is_file():
            try:
                mapping = json.loads(path.read_text())
            except ValueError as e:
                raise ClipdexError(f"{path}: not valid JSON ({e})") from e
            if not isinstance(mapping, dict):
                raise ClipdexError(f"{path}: expected an object of name -> collection path")
            for name, target in mapping.items():
                named[_unique(str(name), named)] = (path.parent / os.path.expanduser(str(target))).resolve()
            continue
        if not (path / "collection.json").exists() and not (path / "manifest.json").exists():
            raise CollectionError(f"no collection or index at {path}; create one with `clipdex index SOURCE "
                               f"--collection {path}` or `clipdex build-index EMB --out {path}`")
        named[_unique(path.resolve().name.removesuffix(".clipdex") or "collection", named)] = path.resolve()
    if not named:
        raise ClipdexError("give at least one collection to serve")
    return named


def _unique(name: str, taken: dict[str, Path]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate
