"""Where clipdex keeps a user's own things: photo-folder collections, registered probes."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_home"]


def data_home() -> Path:
    """``$CLIPDEX_DATA_DIR``, else ``$XDG_DATA_HOME/clipdex``, else ``~/.local/share/clipdex``."""
    explicit = os.environ.get("CLIPDEX_DATA_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")) / "clipdex"
