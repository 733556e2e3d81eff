"""The CLI's one output module: JSON or human lines, progress, and errors -> exit codes.

Exit codes: 0 ok · 1 other failure · 2 bad input (usage, query, source) · 3 model spec
· 4 collection · 5 collection locked by another writer · 130 interrupted.
"""

from __future__ import annotations

import errno
import json
import math
import sqlite3
import sys
from typing import Annotated, Any

import typer

from clipdex.errors import ClipdexError

__all__ = ["JsonOpt", "emit", "printable", "progress_printer", "run"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def emit(data: Any, as_json: bool, human: str) -> None:
    """One JSON document (``--json``; NaN and infinities become null, so it stays JSON) or the human
    lines on stdout (control characters in them, from a file name say, shown escaped)."""
    if as_json:
        typer.echo(json.dumps(_finite(data), ensure_ascii=False, indent=2, default=str, allow_nan=False))
    else:
        typer.echo(printable(human))


def printable(text: str) -> str:
    """``text`` with terminal control characters (escape sequences, bells) shown as ``\\x1b`` etc."""
    return "".join(c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode() for c in text)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
        typer.echo(f"error: {printable(str(e))}", err=True)
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
    except OSError as e:  # the machine's side: a full disk, a read-only folder, a path that is a file
        typer.echo(f"error: {printable(_os_message(e))}", err=True)
        return 1
    except sqlite3.Error as e:  # SQLite reports a full disk in its own words
        full = "full" in str(e)
        typer.echo("error: the disk is full (the database could not grow); what was committed before is kept: free "
                   "some space and run the same command again" if full else f"error: database: {e}", err=True)
        return 1


def _os_message(e: OSError) -> str:
    where = f" ({e.filename})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        return (f"the disk is full{where}; what was committed before is kept: free some space and run the same "
                "command again")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write{where}: {e.strerror}; choose a writable folder"
    return f"{e.strerror or e}{where}"
