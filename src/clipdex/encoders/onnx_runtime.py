"""The ONNX Runtime encoder: every spec ends here, so inference never needs torch."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clipdex.encoders.backends import (
    MIN_CALIBRATION_IMAGES,
    Calibration,
    cached_choice,
    calibrate,
    canonical_backend,
    first_error_line,
    open_session,
    ort_session,
)
from clipdex.encoders.base import l2_normalize
from clipdex.encoders.layouts import find_model
from clipdex.encoders.preprocess import ModelConfig, preprocess_image
from clipdex.encoders.text import TextTokenizer, load_text_tokenizer
from clipdex.errors import BadQueryError, EncoderSpecError, ModelNotFoundError

__all__ = ["PRECISIONS", "OnnxEncoder", "check_model_folder"]

PRECISIONS = ("fp32", "int8")

# Graph input and output names, most specific first (clipdex, transformers, immich, rclip, open_clip exports).
_ID_INPUTS = ("input_ids", "text", "input", "ids", "tokens")
_OUTPUTS = {"image": ("image_embeds", "embedding", "embeddings", "image_embedding", "image_features", "output"),
            "text": ("text_embeds", "embedding", "embeddings", "text_embedding", "text_features", "output")}


def check_model_folder(folder: str | Path, spec: str) -> Path:
    """Raise a clear error unless ``folder`` holds a model in a layout clipdex reads."""
    find_model(str(folder), spec)
    return Path(folder)


@dataclass
class _Graph:
    """An ONNX Runtime session and what its own signature says: input names and types, batch, output."""

    session: Any
    feeds: dict[str, str]  # role ("pixels", "ids", "mask", "type_ids") -> input name
    types: dict[str, str]  # input name -> ONNX element type, e.g. "tensor(int32)"
    fixed_batch: bool
    output: str
    shape: list[Any]  # the main input's shape, dims as ints where the graph fixes them

    def run(self, arrays: dict[str, np.ndarray], spec: str) -> np.ndarray:
        feed = {}
        for role, name in self.feeds.items():
            value = arrays[role]
            kind = self.types[name]
            feed[name] = value.astype(np.int32 if kind == "tensor(int32)" else
                                      np.float16 if kind == "tensor(float16)" else value.dtype, copy=False)
        try:
            if not self.fixed_batch:
                return np.asarray(self.session.run([self.output], feed)[0], np.float32)
            rows = [self.session.run([self.output], {k: v[i : i + 1] for k, v in feed.items()})[0]
                    for i in range(len(next(iter(feed.values()))))]
            return np.asarray(np.concatenate(rows), np.float32)
        except Exception as e:  # onnxruntime raises its own pybind classes
            raise EncoderSpecError(f"{spec}: the model graph refused its inputs: {first_error_line(e)}") from e


def _graph(session: Any, kind: str, spec: str) -> _Graph:
    inputs = session.get_inputs()
    types = {i.name: i.type for i in inputs}
    if kind == "image":
        main = next((i for i in inputs if "float" in i.type), None)
        if main is None or len(inputs) != 1:
            raise EncoderSpecError(f"{spec}: the image graph's inputs are {_describe(inputs)}; expected one "
                                   "float image tensor")
        feeds = {"pixels": main.name}
    else:
        names = [i.name for i in inputs]
        ids = next((n for n in _ID_INPUTS if n in names), None) or next(
            (i.name for i in inputs if "int" in i.type), None)
        if ids is None:
            raise EncoderSpecError(f"{spec}: the text graph's inputs are {_describe(inputs)}; expected token ids")
        main = next(i for i in inputs if i.name == ids)
        feeds = {"ids": ids}
        for role, name in (("mask", "attention_mask"), ("type_ids", "token_type_ids")):
            if name in names:
                feeds[role] = name
        unknown = set(names) - set(feeds.values())
        if unknown:
            raise EncoderSpecError(f"{spec}: the text graph wants inputs clipdex cannot fill: {sorted(unknown)} "
                                   f"(all inputs: {_describe(inputs)})")
    outputs = session.get_outputs()
    by_name = {o.name: o for o in outputs}
    output = next((n for n in _OUTPUTS[kind] if n in by_name), None) or next(
        (o.name for o in outputs if len(o.shape or ()) == 2), None)
    if output is None:
        raise EncoderSpecError(f"{spec}: no embedding output in the {kind} graph (outputs: "
                               f"{', '.join(o.name for o in outputs)})")
    shape = list(main.shape or ())
    return _Graph(session, feeds, types, bool(shape) and isinstance(shape[0], int), output, shape)


def _describe(inputs: list[Any]) -> str:
    return ", ".join(f"{i.name} {i.type} {list(i.shape or ())}" for i in inputs) or "none"


class OnnxEncoder:
    """A dual encoder on ONNX Runtime from any layout :func:`~clipdex.encoders.layouts.find_model` reads.

    Sessions load on first use (or at once, when the files do not give the
    image size or width). Each graph's inputs, element types, batch dimension
    and output are read from the graph itself. ``backend`` picks the image
    tower's runtime and format (:mod:`clipdex.encoders.backends`): ``auto``
    uses the fastest one measured for this model on this machine, measuring
    once on the first batch of at least eight images it is given (fp32 until
    then); ``precision`` is the older name (``int8`` = ``ort-int8``).
    """

    def __init__(
        self,
        folder: str | Path,
        spec: str | None = None,
        precision: str = "fp32",
        threads: int | None = None,
        batch_size: int = 32,
        cache_dir: str | Path | None = None,
        backend: str | None = None,
        quick_start: bool = False,
    ) -> None:
        if backend is None and precision not in PRECISIONS:
            raise EncoderSpecError(f"unknown precision {precision!r}. Available: {', '.join(PRECISIONS)}")
        self.backend = canonical_backend(backend or precision)
        self.calibration: Calibration | None = None  # set when ``auto`` resolved by measuring or from the cache
        self._backend_in_use: str | None = None
        self.calibration_seconds = 0.0  # spent measuring backends in this process
        self.quick_start = quick_start  # sessions for a process that encodes once (see backends.ort_session)
        self.spec = spec or f"onnx:{folder}"
        self.files = find_model(str(folder), self.spec)
        self.folder = self.files.visual.parent if self.files.layout == "fastembed" else Path(str(folder))
        self.precision = "int8" if "int8" in self.backend or "qdq" in self.backend else "fp32"
        self.threads = threads or os.cpu_count() or 1
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._visual: _Graph | None = None
        self._textual: _Graph | None = None
        self._tokenizer: TextTokenizer | None = None
        self.config = self._complete(self.files.config)
        self.dim = self.config.dim
        self.image_size = self.config.image_size

    def _complete(self, config: ModelConfig) -> ModelConfig:
        """Fill what the files left open (image size, width) from the graphs.

        Read once per model file and cached: opening a graph costs far more than a text query, so a later
        process (a search, a no-op re-index) loads no graph it does not run.
        """
        if config.image_size and config.dim:
            return config
        from clipdex.encoders.cache import cache_path_for

        facts_file = cache_path_for(self.files.visual, "facts", self.cache_dir) / "facts.json"
        try:
            facts = json.loads(facts_file.read_text())
            image_size, dim = int(facts["image_size"]), int(facts["dim"])
        except (OSError, ValueError, KeyError, TypeError):
            image_size, dim = self._read_facts(config)
            try:
                facts_file.parent.mkdir(parents=True, exist_ok=True)
                facts_file.write_text(json.dumps({"image_size": image_size, "dim": dim}))
            except OSError:
                pass  # a read-only cache: read from the graphs again next time
        return replace(config, image_size=config.image_size or image_size, dim=config.dim or dim)

    def _read_facts(self, config: ModelConfig) -> tuple[int, int]:
        """The image side the visual graph fixes and the embedding width (its output's, else the text graph's)."""
        session = ort_session(self.files.visual, 1, self.spec)  # a throwaway: the backend opens its own
        visual = _graph(session, "image", self.spec)
        side = visual.shape[-1]
        if not config.image_size and not isinstance(side, int):
            raise ModelNotFoundError(f"{self.spec}: the image size is neither in the files nor fixed by the "
                                     "graph; use a folder with its preprocessing config")
        width = next((o.shape[-1] for o in session.get_outputs() if o.name == visual.output), None)
        if not isinstance(width, int):
            graph = self._textual_graph()
            ids = np.zeros((1, config.context_length), np.int64)
            width = graph.run({"ids": ids, "mask": np.ones_like(ids), "type_ids": np.zeros_like(ids)},
                              self.spec).shape[-1]
        return int(config.image_size or side), int(width)

    # -- images ---------------------------------------------------------
    def preprocess(self, image: Image.Image) -> np.ndarray:
        return preprocess_image(image, self.config)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        expected = (3, self.image_size, self.image_size)
        if pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ValueError(f"expected pixels of shape (n, {expected}), got {pixels.shape}")
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        graph = self._visual_graph(pixels)
        outs = [graph.run({"pixels": pixels[i : i + self.batch_size]}, self.spec)
                for i in range(0, len(pixels), self.batch_size)]
        return l2_normalize(np.concatenate(outs))

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))

    # -- texts ----------------------------------------------------------
    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, padded to the longest text (or the model's fixed length)."""
        return self._tok()(list(texts))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise BadQueryError("encode_texts takes a list of strings, not one string")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        graph = self._textual_graph()
        outs = []
        for i in range(0, len(texts), self.batch_size):
            ids, mask = self.tokenize(texts[i : i + self.batch_size])
            outs.append(graph.run({"ids": ids, "mask": mask, "type_ids": np.zeros_like(ids)}, self.spec))
        return l2_normalize(np.concatenate(outs))

    # -- lazy loading ---------------------------------------------------
    def _tok(self) -> TextTokenizer:
        if self._tokenizer is None:
            config = self.config
            fixed = self._textual_graph().shape[1:2] if self.files.layout != "clipdex" else []
            length = fixed[0] if fixed and isinstance(fixed[0], int) else config.context_length
            self._tokenizer = load_text_tokenizer(self.files.tokenizer, length,
                                                  None if config.pad_id < 0 else config.pad_id,
                                                  config.pad_to_context or length != config.context_length, self.spec,
                                                  config.text_canonical)
        return self._tokenizer

    # -- backends -------------------------------------------------------
    @property
    def backend_in_use(self) -> str:
        """The backend the image tower runs on now (``auto`` resolved; ``ort-fp32`` before any image)."""
        return self._backend_in_use or ("ort-fp32" if self.backend == "auto" else self.backend)

    @property
    def will_calibrate(self) -> bool:
        """Whether the first batch of images will measure the backends first (``auto``, nothing cached)."""
        return self.backend == "auto" and self.calibration is None and \
            cached_choice(self.files.visual, self.cache_dir) is None

    def calibrate(self, pixels: np.ndarray, progress: Callable[[str], None] | None = None) -> Calibration:
        """Measure every available backend on these preprocessed images, cache the fastest accepted one for
        this model and machine, and use it from now on (see :func:`clipdex.encoders.backends.calibrate`)."""
        started = time.perf_counter()
        self.calibration = calibrate(self.files.visual, np.asarray(pixels, np.float32), self.threads,
                                     self.cache_dir, batch=self.batch_size, spec=self.spec, progress=progress)
        self._use_backend(self.calibration.choice, pixels)
        self.calibration_seconds += time.perf_counter() - started
        return self.calibration

    def _resolve_auto(self, pixels: np.ndarray | None) -> str:
        cached = cached_choice(self.files.visual, self.cache_dir)
        if cached is not None:
            self.calibration = cached
            return cached.choice
        if pixels is not None and len(pixels) >= MIN_CALIBRATION_IMAGES:
            return self.calibrate(pixels).choice
        return "ort-fp32"  # too few images to measure on: exact fp32 until a batch arrives

    def _use_backend(self, backend: str, pixels: np.ndarray | None) -> None:
        session = open_session(self.files.visual, backend, self.threads, self.spec, self.cache_dir,
                               None if pixels is None else pixels[::2], self.quick_start)
        self._visual = _graph(session, "image", self.spec)
        self._backend_in_use = backend

    def _visual_graph(self, pixels: np.ndarray | None = None) -> _Graph:
        provisional = self.backend == "auto" and self.calibration is None
        if self._visual is None or (provisional and pixels is not None and len(pixels) >= MIN_CALIBRATION_IMAGES):
            backend = self._resolve_auto(pixels) if self.backend == "auto" else self.backend
            if self._visual is None or backend != self._backend_in_use:
                self._use_backend(backend, pixels)
        assert self._visual is not None
        return self._visual

    def _textual_graph(self) -> _Graph:
        if self._textual is None:
            session = ort_session(self.files.textual, self.threads, self.spec, self.quick_start)
            self._textual = _graph(session, "text", self.spec)
        return self._textual
