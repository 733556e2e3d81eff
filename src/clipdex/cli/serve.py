"""``clipdex serve``: collections and indexes over HTTP with the search page."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from clipdex.cli.output import JsonOpt
from clipdex.errors import MissingExtraError

__all__ = ["serve"]


def serve(
    collections: Annotated[list[str], typer.Argument(
        help="Collection folders, index folders (clipdex build-index), or a JSON file naming them")],
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="CLIPDEX_API_KEY", help="Require X-API-Key on /api")] = None,
    cors: Annotated[list[str] | None, typer.Option(help="Allowed CORS origin (repeatable); off by default")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest query image upload")] = 10.0,
    timeout: Annotated[float, typer.Option(help="Seconds before a search answers 504")] = 30.0,
    rerank_model: Annotated[list[str] | None, typer.Option(
        help="Encoder spec requests may use as rerank model:SPEC (repeatable)")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        help="Host names to answer (repeatable); default: the loopback names, or any when bound to 0.0.0.0")] = None,
    model: Annotated[str | None, typer.Option(
        help="Served indexes: the encoder their embeddings were made with, when the index does not record it")] = None,
    share_location: Annotated[bool, typer.Option(
        "--share-location", help="Serve where photos were taken (EXIF GPS) and accept place filters")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Serve collections (or indexes, with the same API) over HTTP with a search page (OpenAPI at /docs)."""
    try:
        import uvicorn

        from clipdex.serve import ServeConfig, create_app, resolve_collections
    except ImportError as e:
        raise MissingExtraError(f"serve needs {e.name}; install it with `pip install 'clipdex[serve]'`") from e
    config = ServeConfig(collections=resolve_collections(collections), api_key=api_key, cors_origins=tuple(cors or ()),
                         allowed_hosts=tuple(allowed_host or ()), bound_host=host,
                         max_upload_bytes=int(max_upload_mb * 1024 * 1024), request_timeout_s=timeout,
                         rerank_models=tuple(rerank_model or ()), index_model=model,
                         share_location=share_location)
    url = f"http://{host}:{port}"
    if as_json:  # one line a script can read before the server blocks
        typer.echo(json.dumps({"url": url, "collections": list(config.collections), "docs": f"{url}/docs"}))
    else:
        typer.echo(f"serving {', '.join(config.collections)} on {url}  (API docs: /docs)", err=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
