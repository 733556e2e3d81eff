"""Serve: the FastAPI app and the static web page (needs the serve extra)."""

from clipdex.serve.app import create_app
from clipdex.serve.config import ServeConfig, resolve_collections

__all__ = ["ServeConfig", "create_app", "resolve_collections"]
