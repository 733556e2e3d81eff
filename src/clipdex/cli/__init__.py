"""The ``clipdex`` command line (``clipdex.cli.main``); one module per topic, no logic."""

from clipdex.cli.main import app, app_main, main

__all__ = ["app", "app_main", "main"]
