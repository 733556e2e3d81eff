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
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from clipdex.errors import DecodeError
from clipdex.media.decode import DecodeOptions, ImageInput, decode_image

if TYPE_CHECKING:
    from clipdex.encoders.base import Encoder

__all__ = ["Decoded", "decode_stream", "default_workers", "embed_stream"]

T = TypeVar("T")


@dataclass
class Decoded(Generic[T]):
    """One item after decoding: ``value`` is set on success, ``error`` otherwise."""

    item: T
    value: Any = None
    error: str | None = None


def default_workers() -> int:
    """Decode threads: enough to keep one encoder fed on a small machine."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


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


def embed_stream(
    encoder: Encoder,
    items: Iterable[T],
    path_of: Callable[[T], ImageInput],
    options: DecodeOptions = DecodeOptions(),
    batch_size: int = 64,
    workers: int | None = None,
) -> Iterator[tuple[T, np.ndarray | None, str | None]]:
    """Decode, preprocess and encode images in batches: ``(item, unit vector, None)`` in input order,
    or ``(item, None, reason)`` for an image that cannot be decoded.

    The one loop that turns image files or bytes into vectors outside indexing
    (which commits its batches to the store as it goes).
    """
    pending: list[Decoded[T]] = []
    for decoded in decode_stream(items, path_of, options, encoder.preprocess, workers,
                                 prefetch=max(2 * batch_size, 32)):
        pending.append(decoded)
        if sum(d.error is None for d in pending) >= batch_size:
            yield from _encode_pending(encoder, pending)
            pending = []
    yield from _encode_pending(encoder, pending)


def _encode_pending(encoder: Encoder, pending: list[Decoded[T]]) -> Iterator[tuple[T, np.ndarray | None, str | None]]:
    good = [d.value for d in pending if d.error is None]
    vectors = iter(encoder.encode_pixels(np.stack(good)) if good else ())
    for d in pending:
        yield (d.item, None, d.error) if d.error is not None else (d.item, next(vectors), None)
