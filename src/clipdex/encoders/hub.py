"""The one way clipdex fetches from the Hugging Face hub: the local cache first, offline when asked.

``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` are read when a fetch is made (huggingface_hub reads them
once, at its import), so a process that sets them later is still obeyed.
"""

from __future__ import annotations

import os
from pathlib import Path

from clipdex.errors import MissingExtraError

__all__ = ["fetch_snapshot"]


def fetch_snapshot(repo: str, allow_patterns: list[str] | None = None, local_dir: str | Path | None = None) -> Path:
    """The folder of ``repo``'s files: from the local cache, else downloaded (unless offline).

    Raises:
        MissingExtraError: huggingface_hub is not installed.
        Exception: huggingface_hub's own errors (not cached and offline, not found, no network);
            callers turn them into one line.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise MissingExtraError(f"fetching {repo} needs huggingface_hub: pip install 'clipdex[models]'") from e
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    folder = snapshot_download(repo, allow_patterns=allow_patterns, local_files_only=offline,
                               cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                               local_dir=str(local_dir) if local_dir else None)
    return Path(folder)
