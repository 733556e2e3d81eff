"""The FastAPI app: routes, the static page, errors as JSON, API key, CORS, metrics."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipdex.errors import ClipdexError
from clipdex.serve.config import ServeConfig
from clipdex.serve.routes import HTTPError, api, error_status
from clipdex.serve.state import ServerState
from clipdex.version import __version__

__all__ = ["create_app"]


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def create_app(config: ServeConfig) -> FastAPI:
    """Build the app for the collections in ``config`` (opened now, models loaded on first search).

    Example:
        >>> app = create_app(ServeConfig(collections={"photos": Path("photos.clipdex")}))  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)                                   # doctest: +SKIP
    """
    state = ServerState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="clipdex", version=__version__, lifespan=lifespan,
                  description="Search image-text collections by text, by image and by example.")
    app.state.clipdex = state
    app.include_router(api)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    _install_errors(app)
    _install_guard(app, config)
    static = resources.files("clipdex.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(static / "index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "collections": app.state.clipdex.names(), "version": __version__}

    @app.get("/metrics", tags=["meta"])
    def metrics() -> dict[str, Any]:
        return app.state.clipdex.metrics.snapshot()  # type: ignore[no-any-return]

    return app


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(HTTPError)
    async def on_http_error(request: Request, exc: HTTPError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    @app.exception_handler(ClipdexError)
    async def on_library_error(request: Request, exc: ClipdexError) -> JSONResponse:
        status, code = error_status(exc)
        return _error(status, code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return _error(422, "invalid_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def on_starlette(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))


_KEYED = ("/api", "/metrics", "/docs", "/redoc", "/openapi.json")
_IMAGE_ROUTE = re.compile(r"/api/items/\d+/(image|thumbnail|heatmap)")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(config: ServeConfig) -> frozenset[str] | None:
    """The Host names the server answers; None: any (bound to every interface, or an app made in-process
    with no list given). ``clipdex serve`` on loopback answers only the loopback names and its own host."""
    if config.allowed_hosts:
        return frozenset(h.lower() for h in config.allowed_hosts)
    if config.bound_host is None or config.bound_host in ("0.0.0.0", "::"):
        return None
    return frozenset({*LOOPBACK_HOSTS, config.bound_host.lower()})


def _install_guard(app: FastAPI, config: ServeConfig) -> None:
    hosts = allowed_hosts(config)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        path = request.url.path
        # <img> tags cannot send headers: image GETs (only those) may carry the key as ?key=.
        given = request.headers.get("x-api-key")
        if given is None and request.method == "GET" and _IMAGE_ROUTE.fullmatch(path):
            given = request.query_params.get("key")
        host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()
        if hosts is not None and host not in hosts:
            response = _error(421, "wrong_host", f"this server does not answer for host {host!r}")
        elif config.api_key and path.startswith(_KEYED) and given != config.api_key:
            response = _error(401, "unauthorized", "missing or wrong X-API-Key header")
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", None) or ("/static" if path.startswith("/static") else "other")
        state: ServerState = app.state.clipdex
        state.metrics.count(f"{request.method} {name}", response.status_code)
        state.metrics.observe("request", 1000 * (time.perf_counter() - start))
        return response
