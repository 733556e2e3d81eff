"""Parallel decoding: images are decoded (and preprocessed) in worker threads
while the caller encodes the previous batch, so the encoder never waits.

Pillow releases the GIL while decoding and resizing, so threads give real
parallelism here without the cost of pickling pixels between processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from clipdex.errors import DecodeError
from clipdex.media.decode import DecodeOptions, ImageInput, decode_image

__all__ = ["Decoded", "decode_stream", "default_workers"]

T = TypeVar("T")


@dataclass
class Decoded(Generic[T]):
    """One item after decoding: ``value`` is set on success, ``error`` otherwise."""

    item: T
    value: Any = None
    error: str | None = None


def default_workers() -> int:
    """Decode threads: enough to keep one encoder fed on a small machine."""
    return max(2, min(8, os.cpu_count() or 2))


def decode_stream(
    items: Iterable[T],
    path_of: Callable[[T], ImageInput],
    options: DecodeOptions = DecodeOptions(),
    transform: Callable[[Any], Any] | None = None,
    workers: int | None = None,
    prefetch: int = 64,
) -> Iterator[Decoded[T]]:
    """Decode items in order with a bounded window of work in flight.

    Args:
        items: anything; ``path_of(item)`` names its image file (or gives its bytes).
        options: decoding limits.
        transform: applied to the decoded RGB image in the worker (e.g. the
            encoder's resize + normalise), so that work is parallel too.
        workers: decode threads (default: :func:`default_workers`).
        prefetch: most items decoded ahead of the consumer (bounds memory).

    Yields:
        :class:`Decoded` in input order; a failed item carries its reason.
    """
    transform = transform or (lambda im: im)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        window: deque[tuple[T, Future[Any]]] = deque()
        for item in items:
            window.append((item, pool.submit(_work, path_of(item), options, transform)))
            if len(window) >= prefetch:
                yield _result(*window.popleft())
        while window:
            yield _result(*window.popleft())


def _work(path: ImageInput, options: DecodeOptions, transform: Callable[[Any], Any]) -> Any:
    return transform(decode_image(path, options))


def _result(item: T, future: Future[Any]) -> Decoded[T]:
    try:
        return Decoded(item, value=future.result())
    except DecodeError as e:
        return Decoded(item, error=str(e))
    except (OSError, ValueError, MemoryError) as e:  # transform failures stay per item
        return Decoded(item, error=f"{type(e).__name__}: {e}")
