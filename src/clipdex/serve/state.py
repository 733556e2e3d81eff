"""What the running server holds: open collections (or indexes served like them), shared encoders, metrics."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from typing import Any

import numpy as np
from PIL import Image

from clipdex.collection import Collection
from clipdex.embeddings.served import ServedIndex, is_index_folder
from clipdex.encoders.base import Encoder
from clipdex.encoders.registry import load_encoder
from clipdex.errors import BadQueryError, DecodeError, NotFoundError
from clipdex.media.decode import DecodeOptions, decode_image
from clipdex.search.query import Query, SearchPage
from clipdex.serve.config import ServeConfig
from clipdex.serve.searchable import Searchable

__all__ = ["Metrics", "ServerState"]


class Metrics:
    """Request counts and per-stage latency over the last ``window`` requests (bounded memory)."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, int] = defaultdict(int)
        self._latency: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))

    def count(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[route] += 1
            self.statuses[f"{status // 100}xx"] += 1

    def observe(self, stage: str, ms: float) -> None:
        with self._lock:
            self._latency[stage].append(ms)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            latency = {}
            for stage, values in self._latency.items():
                arr = np.asarray(values)
                latency[stage] = {"count": len(arr), "mean": round(float(arr.mean()), 3),
                                  "p50": round(float(np.percentile(arr, 50)), 3),
                                  "p99": round(float(np.percentile(arr, 99)), 3)} if len(arr) else {"count": 0}
            return {"requests": dict(self.requests), "statuses": dict(self.statuses), "latency_ms": latency}


class ServerState:
    """Collections opened once, one encoder per model spec, shared by all requests."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self._lock = threading.Lock()
        self._decode_slots = threading.BoundedSemaphore(max(1, config.query_decodes))
        self._collections: dict[str, Searchable] = {}
        self._encoders: dict[str, Encoder] = {}
        for name, path in config.collections.items():
            self._collections[name] = ServedIndex(path, config.index_model) if is_index_folder(path) \
                else Collection.open(path)

    def names(self) -> list[str]:
        return list(self._collections)

    def features(self, name: str) -> list[str]:
        """What a served collection answers, for the page to offer only that (an index: plain vector search)."""
        if isinstance(self.collection(name), ServedIndex):
            return ["text", "image", "similar", "map"]
        return ["text", "image", "similar", "captions", "lexical", "hybrid", "filters", "terms", "compose",
                "rerank", "diversity", "regions", "heatmap", "duplicates", "map", "probes"]

    def collection(self, name: str | None) -> Searchable:
        """A served collection by name (the first one when ``name`` is None).

        Raises:
            NotFoundError: unknown name.
        """
        if name is None:
            return next(iter(self._collections.values()))
        try:
            return self._collections[name]
        except KeyError:
            raise NotFoundError(f"unknown collection {name!r}. Available: {', '.join(self._collections)}") from None

    def encoder(self, coll: Searchable) -> Encoder:
        with self._lock:
            enc = self._encoders.get(coll.encoder_spec)
            if enc is None:
                enc = self._encoders[coll.encoder_spec] = load_encoder(coll.encoder_spec)
            return enc

    def query_image(self, name: str | None, data: bytes) -> Image.Image:
        """An uploaded query image decoded as indexing decodes (reduced JPEG decoding to the model's size),
        under the query pixel cap, at most ``config.query_decodes`` at a time.

        Raises:
            BadQueryError: not a readable image, or larger than the cap.
        """
        encoder = self.encoder(self.collection(name))
        options = DecodeOptions(self.config.max_query_pixels, encoder.image_size, self.config.max_upload_bytes)
        with self._decode_slots:
            try:
                return decode_image(data, options)
            except DecodeError as e:
                raise BadQueryError(f"query image: {e}") from e
            finally:
                release_memory()

    def query_image_vector(self, name: str | None, data: bytes) -> np.ndarray:
        """The unit vector of an uploaded query image, made inside the decode slot: the decoded picture is
        dropped (and its memory handed back) before the search runs.

        Raises:
            BadQueryError: as :meth:`query_image`.
        """
        encoder = self.encoder(self.collection(name))
        options = DecodeOptions(self.config.max_query_pixels, encoder.image_size, self.config.max_upload_bytes)
        with self._decode_slots:
            try:
                return np.asarray(encoder.encode_images([decode_image(data, options)])[0], np.float32)
            except DecodeError as e:
                raise BadQueryError(f"query image: {e}") from e
            finally:
                release_memory()  # the decoded picture is already gone: only the vector left the call

    def search(self, name: str | None, query: Query) -> SearchPage:
        coll = self.collection(name)
        encoder = self.encoder(coll)
        page = coll.search_page(query, encoder)
        for stage, ms in page.stages_ms.items():
            self.metrics.observe(stage, ms)
        self.metrics.observe("total", page.took_ms)
        return page

    def close(self) -> None:
        for coll in self._collections.values():
            coll.close()


def release_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise, and the process looks like it leaks)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc: nothing to trim
