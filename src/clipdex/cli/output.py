"""The CLI's one output module: JSON or human lines, progress, and errors -> exit codes.

Exit codes: 0 ok · 1 other failure · 2 bad input (usage, query, source) · 3 model spec
· 4 collection · 5 collection locked by another writer · 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from clipdex.errors import ClipdexError

__all__ = ["JsonOpt", "emit", "progress_printer", "run"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def emit(data: Any, as_json: bool, human: str) -> None:
    """One JSON document (``--json``) or the human lines on stdout."""
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        typer.echo(human)


def progress_printer(label: str) -> Any:
    """Rich progress bar (items/s, ETA) on a terminal; a log line per ~10% otherwise."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"),
                            TimeRemainingColumn(), transient=True)
        state: dict[str, Any] = {}

        def update(done: int, total: int, failed: int) -> None:
            import time

            if "task" not in state:
                progress.start()
                state["task"] = progress.add_task(label, total=total, rate="")
                state["t0"] = time.perf_counter()
            rate = done / max(time.perf_counter() - state["t0"], 1e-9)
            progress.update(state["task"], completed=done, rate=f"{rate:.1f} img/s, {failed} failed")
            if done >= total:
                progress.stop()

        return update
    last = {"pct": -10}

    def log(done: int, total: int, failed: int) -> None:
        if total == 0:
            return
        pct = 100 * done // max(total, 1)
        if pct >= last["pct"] + 10 or done == total:
            last["pct"] = pct
            typer.echo(f"{label}: {done}/{total} ({pct}%), {failed} failed", err=True)

    return log


def run(app: typer.Typer, argv: list[str] | None = None) -> int:
    """Run ``app`` on ``argv``; every error becomes one line on stderr and its exit code."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="clipdex")
        return result if isinstance(result, int) else 0
    except ClipdexError as e:
        typer.echo(f"error: {e}", err=True)
        return e.exit_code
    except typer.Exit as e:
        return int(getattr(e, "exit_code", 0) or 0)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        return 130
    except typer.TyperException as e:  # usage errors: bad option, missing argument
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        if not message.strip():
            return 0  # bare `clipdex`: the help was printed
        typer.echo(f"error: {message} (see --help)", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130


