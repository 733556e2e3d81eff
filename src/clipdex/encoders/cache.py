"""Where derived model files (ONNX exports, quantised copies) are cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["cache_path_for", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$CLIPDEX_CACHE``, else ``$XDG_CACHE_HOME/clipdex``, else ``~/.cache/clipdex``."""
    if os.environ.get("CLIPDEX_CACHE"):
        return Path(os.environ["CLIPDEX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clipdex"


def cache_path_for(source: Path, kind: str, cache_dir: Path | None = None) -> Path:
    """A cache folder keyed by the source's absolute path, size and mtime."""
    source = Path(source).resolve()
    st = source.stat()
    digest = hashlib.sha256(f"{source}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return (cache_dir or default_cache_dir()) / kind / f"{source.name}-{digest}"
