"""The one loop that turns image files (or bytes) into vectors.

Images are decoded and preprocessed on threads (:func:`clipdex.media.decode_stream`)
while the encoder runs on the previous batch, with one set of decode options for
every caller: reduced JPEG decoding to the model's input size unless a caller
needs every pixel. Indexing, curation, evaluation, the embedding folders, the
model re-ranker and the Ray workers all call this module; none keeps a loop of
its own. A file that cannot be decoded is a per-item failure with its reason,
never an exception.

Example:
    >>> vectors, ok = embed_images(encoder, ["a.jpg", "b.png"])   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from clipdex.encoders.backends import MIN_CALIBRATION_IMAGES, Calibration
from clipdex.encoders.base import Encoder
from clipdex.errors import EncoderSpecError, SourceError
from clipdex.media.decode import DecodeOptions, ImageInput
from clipdex.media.pipeline import Decoded, decode_stream
from clipdex.media.sources import walk_images

__all__ = ["calibration_images", "decode_options", "decoded_batches", "embed_images", "embed_stream",
           "measure_backends"]

T = TypeVar("T")


def decode_options(encoder: Encoder, base: DecodeOptions = DecodeOptions(), full_size: bool = False) -> DecodeOptions:
    """The decode options for embedding with ``encoder``.

    JPEGs are decoded at a reduced scale no smaller than the model's input
    (``draft_size``), which the encoder's resize would throw away anyway;
    ``full_size`` keeps every pixel (OCR and image measurements want them), and
    a ``base`` that sets its own draft size is kept as it is.
    """
    if base.draft_size is not None or full_size:
        return base
    return DecodeOptions(base.max_pixels, encoder.image_size, base.max_bytes)


def decoded_batches(items: Iterable[T], path_of: Callable[[T], ImageInput], encoder: Encoder | None,
                    options: DecodeOptions | None = None, batch_size: int = 64, workers: int | None = None,
                    transform: Callable[[Any], Any] | None = None) -> Iterator[list[Decoded[T]]]:
    """Items decoded and preprocessed on threads, in input order, ``batch_size`` at a time.

    Args:
        items: anything; ``path_of(item)`` names its image file or gives its bytes.
        encoder: whose ``preprocess`` (and input size) prepares the pixels; None when a caller only
            measures images (then ``options`` and ``transform`` are required).
        options: decode limits (default: :func:`decode_options` for ``encoder``).
        batch_size: items per batch, failed ones included (a batch is a unit of commit for indexing).
        workers: decode threads (default: from the machine).
        transform: replaces ``encoder.preprocess`` in the decode threads (e.g. to also cut crops).

    Yields:
        Lists of :class:`Decoded`; a failed item carries its reason in ``error``.

    Raises:
        ValueError: no encoder, and no ``options`` or ``transform`` to stand for it.
    """
    if encoder is None and (options is None or transform is None):
        raise ValueError("decoded_batches without an encoder needs both options and transform")
    options = options or decode_options(encoder)  # type: ignore[arg-type]
    transform = transform or encoder.preprocess  # type: ignore[union-attr]
    batch: list[Decoded[T]] = []
    # One batch decoded ahead while the encoder runs on the last is all the overlap needs; more only holds
    # memory (a 256 px float image is 0.8 MB).
    stream = decode_stream(items, path_of, options, transform, workers, prefetch=batch_size + 8)
    for decoded in stream:
        batch.append(decoded)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_stream(encoder: Encoder, items: Iterable[T], path_of: Callable[[T], ImageInput],
                 options: DecodeOptions | None = None, batch_size: int = 64,
                 workers: int | None = None) -> Iterator[tuple[T, np.ndarray | None, str | None]]:
    """``(item, unit vector, None)`` per item in input order, or ``(item, None, reason)`` when its image
    cannot be decoded (see :func:`decoded_batches` for the arguments)."""
    for batch in decoded_batches(items, path_of, encoder, options, batch_size, workers):
        good = [d.value for d in batch if d.error is None]
        vectors = iter(encoder.encode_pixels(np.stack(good)) if good else ())
        for d in batch:
            yield (d.item, None, d.error) if d.error is not None else (d.item, next(vectors), None)


def embed_images(encoder: Encoder, paths: list[str], workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors ``(len(paths), dim)`` of the images that decode (zero rows elsewhere), and the mask of which did."""
    emb = np.zeros((len(paths), encoder.dim), np.float32)
    ok = np.zeros(len(paths), bool)
    for i, vector, _error in embed_stream(encoder, range(len(paths)), lambda i: paths[i], workers=workers):
        if vector is not None:
            emb[i] = vector
            ok[i] = True
    return emb, ok


def calibration_images(encoder: Encoder, sources: Iterable[str | os.PathLike[str]], limit: int = 32) -> np.ndarray:
    """Up to ``limit`` images from ``sources`` (image files, or folders walked in order), decoded and
    preprocessed for ``encoder`` exactly as indexing does; files that do not decode are passed over.

    Raises:
        SourceError: fewer than the calibration minimum decode.
    """
    paths = (p for source in sources for p in (walk_images(source) if os.path.isdir(source) else [os.fspath(source)]))
    pixels = []
    for batch in decoded_batches(paths, str, encoder, batch_size=limit):
        pixels += [d.value for d in batch if d.error is None]
        if len(pixels) >= limit:
            break
    if len(pixels) < MIN_CALIBRATION_IMAGES:
        raise SourceError(f"backend calibration needs at least {MIN_CALIBRATION_IMAGES} readable images, "
                          f"found {len(pixels)}")
    return np.stack(pixels[:limit])


def measure_backends(encoder: Encoder, sources: Iterable[str | os.PathLike[str]], limit: int = 32,
                     progress: Callable[[str], None] | None = None) -> Calibration:
    """Measure every backend for ``encoder``'s model on up to ``limit`` of these images and cache the fastest
    accepted one (see :func:`clipdex.encoders.backends.calibrate`); ``index --backend auto`` then uses it.

    Raises:
        EncoderSpecError: the encoder does not run on ONNX graphs (it has no backends to choose from).
        SourceError: too few readable images.
    """
    calibrate = getattr(encoder, "calibrate", None)
    if calibrate is None:
        raise EncoderSpecError(f"{encoder.spec}: this encoder has no backends to measure")
    result: Calibration = calibrate(calibration_images(encoder, sources, limit), progress=progress)
    return result
