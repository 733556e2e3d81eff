"""One writer at a time: an advisory ``flock`` on ``write.lock`` in the collection.

The kernel drops the lock when the holder dies, so ``kill -9`` never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from clipdex.errors import CollectionLockedError

__all__ = ["WriteLock"]


class WriteLock:
    """Exclusive writer lock; waits up to ``wait`` seconds, then fails clearly."""

    def __init__(self, folder: Path, wait: float = 0.0) -> None:
        self.path = folder / "write.lock"
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise CollectionLockedError(
                        f"{self.path.parent} is being written by another process (pid {holder}); "
                        "wait for it to finish or pass --wait SECONDS"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
