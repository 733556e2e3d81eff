"""Whether third-party libraries may talk: their progress bars, warnings and log lines.

clipdex draws its own progress and says what matters in its own words, so Ray's, faiss's and
transformers' chatter is kept out of a command's output unless the user asks for it with
``clipdex --verbose`` (which sets ``CLIPDEX_VERBOSE=1`` for the process and its workers).
"""

from __future__ import annotations

import os

__all__ = ["VERBOSE_ENV", "verbose"]

VERBOSE_ENV = "CLIPDEX_VERBOSE"


def verbose() -> bool:
    """True when third-party output should be let through (``CLIPDEX_VERBOSE`` set to 1, true or yes)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")
