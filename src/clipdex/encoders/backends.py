"""Inference backends for the image tower, and the one-time calibration that picks the fastest.

A backend is a runtime plus a numeric format: ONNX Runtime in fp32, with dynamic int8
(weights quantised, activations per batch) or static QDQ int8 (activations calibrated
on real images); OpenVINO in fp32, bf16 (the AMX / AVX-512 BF16 units) or int8
(NNCF post-training quantisation). Which one is fastest depends on the CPU and the
model, so ``auto`` measures every available backend once on the caller's own images,
accepts only those whose vectors stay within :data:`MIN_COSINE` of fp32, and caches
the fastest per model file and machine. Text stays on ONNX Runtime fp32: a query is
one short sequence, where load time and exactness matter more than matrix throughput.

Example:
    >>> report = calibrate(Path("model/visual.onnx"), pixels)   # doctest: +SKIP
    >>> report.choice
    'ov-bf16'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.encoders.cache import cache_path_for
from clipdex.errors import EncoderSpecError, ModelNotFoundError
from clipdex.linalg import l2_normalize
from clipdex.quiet import verbose

__all__ = ["ALIASES", "BACKENDS", "BACKEND_ENV", "MIN_COSINE", "BackendResult", "Calibration", "available_backends",
           "cached_choice", "calibrate", "canonical_backend", "default_backend", "env_backend", "first_error_line",
           "is_available", "machine_key", "open_session", "ort_session"]

BACKENDS = ("ort-fp32", "ort-int8", "ort-qdq", "ov-fp32", "ov-bf16", "ov-int8")
ALIASES = {"fp32": "ort-fp32", "int8": "ort-int8"}  # the names of ``--precision`` before backends existed
MIN_COSINE = 0.999  # a backend is accepted only if every calibration image keeps this cosine to fp32
MIN_CALIBRATION_IMAGES = 8

_OV_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "i64": "tensor(int64)", "i32": "tensor(int32)"}


BACKEND_ENV = "CLIPDEX_BACKEND"


def env_backend() -> str | None:
    """``$CLIPDEX_BACKEND`` when set (unchecked; :func:`canonical_backend` checks it where it is used)."""
    return os.environ.get(BACKEND_ENV, "").strip() or None


def default_backend() -> str:
    """``$CLIPDEX_BACKEND`` when set (checked), else ``auto``: what indexing runs the image tower on."""
    return canonical_backend(env_backend() or "auto")


def canonical_backend(name: str) -> str:
    """``name`` as one of :data:`BACKENDS` (or ``auto``); old precision names are accepted.

    Raises:
        EncoderSpecError: an unknown name; the message lists the choices.
    """
    name = ALIASES.get(name, name)
    if name != "auto" and name not in BACKENDS:
        raise EncoderSpecError(f"unknown backend {name!r}. Available: auto, {', '.join(BACKENDS)} "
                               f"(or the precisions {', '.join(ALIASES)})")
    return name


def available_backends() -> list[str]:
    """The backends this installation can run (see :func:`is_available`)."""
    return [name for name in BACKENDS if is_available(name)]


def is_available(backend: str) -> bool:
    """Whether ``backend`` runs here: OpenVINO's need ``clipdex[openvino]`` (int8 also NNCF), bf16 a CPU with
    bf16 units, the ONNX Runtime int8 ones the ``onnx`` package (the quantiser edits the graph with it).
    Only what the backend itself needs is imported: an ONNX Runtime session never loads OpenVINO."""
    if backend == "ort-fp32":
        return True
    if backend.startswith("ort-"):
        return _importable("onnx")
    if not _importable("openvino") or (backend == "ov-int8" and not _importable("nncf")):
        return False
    return backend != "ov-bf16" or "BF16" in _ov_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# -- sessions -------------------------------------------------------------------------------------

def ort_session(path: Path, threads: int, spec: str, quick_start: bool = False) -> Any:
    """An ONNX Runtime session on the CPU (or CUDA, where a GPU build is given a GPU).

    ``quick_start`` skips the load-time work that pays off only over many calls (the extended graph
    rewrites and the packing of weights for the matrix kernels): for a process that encodes once,
    such as one search from the command line, it saves more at load than the call loses.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if quick_start:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.add_session_config_entry("session.disable_prepacking", "1")
    # Idle kernel threads sleep instead of spinning: the decode threads share these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers() and os.environ.get("CUDA_VISIBLE_DEVICES", "x"):
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # a damaged or foreign file: onnxruntime's own exception classes
        raise ModelNotFoundError(f"{spec}: {path} is not a loadable ONNX graph: {first_error_line(e)}") from e


@dataclass
class _Port:
    """What ONNX Runtime's ``NodeArg`` tells of an input or output, for an OpenVINO port."""

    name: str
    type: str
    shape: list[Any]


class _OvSession:
    """An OpenVINO compiled model behind the slice of ONNX Runtime's session API the encoder uses."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request; the server may encode from several threads

    def get_inputs(self) -> list[_Port]:
        return [_port(p) for p in self._compiled.inputs]

    def get_outputs(self) -> list[_Port]:
        return [_port(p) for p in self._compiled.outputs]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            result = self._request.infer(feed)
            return [np.array(result[self._compiled.output(n)]) for n in names]


def _port(port: Any) -> _Port:
    shape = [d.get_length() if d.is_static else "batch" for d in port.get_partial_shape()]
    return _Port(port.get_any_name(), _OV_TYPES.get(port.get_element_type().get_type_name(), "tensor(float)"), shape)


_CORE: list[Any] = []


def _ov_core() -> Any:
    if not _CORE:
        import openvino as ov

        _CORE.append(ov.Core())
    return _CORE[0]


def open_session(path: Path, backend: str, threads: int, spec: str, cache_dir: Path | None = None,
                 calibration: np.ndarray | None = None, quick_start: bool = False) -> Any:
    """A session for the image graph at ``path`` on ``backend``, preparing (and caching) its graph first.

    Args:
        calibration: preprocessed images ``(n, 3, S, S)``; the static int8 backends need them the first time
            (later their quantised graph comes from the cache).
        quick_start: see :func:`ort_session` (ONNX Runtime backends only).

    Raises:
        EncoderSpecError: the backend is not installed here, or needs calibration images it was not given.
        ModelNotFoundError: the graph cannot be loaded.
    """
    if not is_available(backend):
        raise EncoderSpecError(f"{spec}: backend {backend} is not available here (available: "
                               f"{', '.join(available_backends())}; OpenVINO: pip install 'clipdex[openvino]')")
    graph = prepared_graph(path, backend, cache_dir, calibration, spec)
    if backend.startswith("ort-"):
        return ort_session(graph, threads, spec, quick_start)
    # What NNCF left in float runs in f32, as it was calibrated. Compiled blobs are cached (ViT-B/32 compiles
    # in 0.1 s instead of 0.3 s), one folder per graph and backend: OpenVINO 2026.4 handed a bf16 compile
    # the blob of an f32 compile of the same file (NaNs).
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "bf16" if backend == "ov-bf16" else "f32",
              "CACHE_DIR": str(cache_path_for(path, f"{backend}-compiled", cache_dir))}
    try:
        return _OvSession(_ov_core().compile_model(str(graph), "CPU", config))
    except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own
        raise ModelNotFoundError(f"{spec}: OpenVINO cannot compile {graph}: {first_error_line(e)}") from e


def prepared_graph(path: Path, backend: str, cache_dir: Path | None, calibration: np.ndarray | None,
                   spec: str) -> Path:
    """The graph file ``backend`` runs: the model's own for ONNX Runtime fp32, else a cached copy made once:
    OpenVINO's IR for ``ov-fp32`` / ``ov-bf16`` (bf16 from weights stored as fp16, which OpenVINO maps
    from disk instead of holding a float32 copy), the quantised graph for the int8 backends."""
    if backend == "ort-fp32":
        return path
    suffix = ".xml" if backend.startswith("ov-") else ".onnx"
    target = cache_path_for(path, backend, cache_dir) / (path.stem + suffix)
    if target.exists():
        return target
    if backend in ("ort-qdq", "ov-int8") and (calibration is None or len(calibration) < MIN_CALIBRATION_IMAGES // 2):
        raise EncoderSpecError(f"{spec}: backend {backend} is calibrated on images the first time; index a "
                               f"folder of at least {MIN_CALIBRATION_IMAGES} images with --backend {backend}, or "
                               "run `clipdex models backends MODEL IMAGES...`")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _hushed():
        _PREPARE[backend](path, target, calibration)
    return target


@contextlib.contextmanager
def _hushed() -> Iterator[None]:
    """Keep the quantisers' advice and progress bars (printed to stdout) out of a command's output."""
    if verbose():
        yield
        return
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _quantize_dynamic(path: Path, target: Path, _calibration: np.ndarray | None) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_suffix(".tmp.onnx")
    # MatMul only: quantising the patch-embedding Conv costs accuracy for little speed.
    quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    os.replace(tmp, target)


def _quantize_static(path: Path, target: Path, calibration: np.ndarray | None) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    assert calibration is not None
    name = ort_session(path, 1, str(path)).get_inputs()[0].name
    batches = iter([{name: calibration[i : i + 1]} for i in range(len(calibration))])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    tmp = target.with_suffix(".tmp.onnx")
    quantize_static(str(path), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gemm"])
    os.replace(tmp, target)


def _ov_ir(path: Path, target: Path, _calibration: np.ndarray | None, fp16: bool = False) -> None:
    import openvino as ov

    tmp = target.with_name(target.stem + ".tmp.xml")
    ov.save_model(_ov_core().read_model(str(path)), str(tmp), compress_to_fp16=fp16)
    os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(tmp, target)


def _quantize_nncf(path: Path, target: Path, calibration: np.ndarray | None) -> None:
    import nncf
    import openvino as ov

    assert calibration is not None
    model = _ov_core().read_model(str(path))
    data = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))])
    quantized = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration))
    tmp = target.with_name(target.stem + ".tmp.xml")
    ov.save_model(quantized, str(tmp), compress_to_fp16=False)  # keep the float parts in fp32
    os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(tmp, target)


_PREPARE: dict[str, Callable[[Path, Path, np.ndarray | None], None]] = {
    "ort-int8": _quantize_dynamic, "ort-qdq": _quantize_static, "ov-int8": _quantize_nncf, "ov-fp32": _ov_ir,
    "ov-bf16": partial(_ov_ir, fp16=True)}


# -- calibration -----------------------------------------------------------------------------------

@dataclass
class BackendResult:
    """One backend measured on the calibration images."""

    backend: str
    images_per_second: float = 0.0
    cosine_min: float = 0.0
    cosine_median: float = 0.0
    prepare_seconds: float = 0.0
    accepted: bool = False
    error: str | None = None


@dataclass
class Calibration:
    """Every backend measured for one model on one machine, and the fastest accepted one."""

    choice: str
    machine: str
    model: str
    images: int
    batch: int
    results: list[BackendResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Calibration:
        return cls(**{**raw, "results": [BackendResult(**r) for r in raw.get("results", [])]})


@lru_cache(maxsize=1)
def machine_key() -> str:
    """The CPU and runtime versions a calibration holds for (another CPU or runtime measures again)."""
    import onnxruntime as ort

    model = platform.processor() or platform.machine()
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = " ".join(sorted(f for f in line.split(":", 1)[1].split()
                                        if f.startswith(("avx", "amx", "fma", "f16c"))))
    except OSError:
        pass
    versions = [f"ort {ort.__version__}"]
    if _importable("openvino"):
        from openvino import get_version

        versions.append(f"ov {get_version().split('-')[0]}")
    return f"{model} | {os.cpu_count()} cores | {flags} | {', '.join(versions)}"


def _calibration_file(path: Path, cache_dir: Path | None) -> Path:
    digest = hashlib.sha256(machine_key().encode()).hexdigest()[:12]
    return cache_path_for(path, "backends", cache_dir) / f"{digest}.json"


def cached_choice(path: Path, cache_dir: Path | None = None) -> Calibration | None:
    """The calibration made earlier for this graph file on this machine, if any (a damaged file is none)."""
    file = _calibration_file(path, cache_dir)
    try:
        return Calibration.from_dict(json.loads(file.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def calibrate(path: Path, pixels: np.ndarray, threads: int | None = None, cache_dir: Path | None = None,
              backends: list[str] | None = None, batch: int = 32, rounds: int = 3, spec: str | None = None,
              progress: Callable[[str], None] | None = None) -> Calibration:
    """Measure each backend on ``pixels`` and cache the fastest whose vectors stay within :data:`MIN_COSINE`.

    Half the images (every other one) calibrate the static int8 backends; the cosine to fp32 is checked on
    all of them, so a backend is judged on images it was not tuned on too.

    Args:
        path: the image graph (``visual.onnx``).
        pixels: preprocessed images ``(n, 3, S, S)``, n >= :data:`MIN_CALIBRATION_IMAGES`; real photos of
            the collection are best.
        backends: which to try (default: :func:`available_backends`).
        batch: images per timed call (the indexing batch).

    Raises:
        EncoderSpecError: too few images.
    """
    spec = spec or str(path)
    if len(pixels) < MIN_CALIBRATION_IMAGES:
        raise EncoderSpecError(f"{spec}: calibration needs at least {MIN_CALIBRATION_IMAGES} images, got "
                               f"{len(pixels)}")
    threads = threads or os.cpu_count() or 1
    tune = np.ascontiguousarray(pixels[::2], np.float32)
    results: list[BackendResult] = []
    reference: np.ndarray | None = None
    names = backends or available_backends()
    for name in ["ort-fp32"] + [n for n in names if n != "ort-fp32"]:  # fp32 first: the reference
        if progress:
            progress(f"measuring backend {name}")
        result, vectors = _measure(path, name, pixels, tune, threads, cache_dir, batch, rounds, spec)
        if name == "ort-fp32":
            reference = vectors
        if vectors is not None and not np.isfinite(vectors).all():
            result.error, vectors = "non-finite vectors (overflow in this format)", None
        if vectors is not None and reference is not None:
            cos = np.sum(l2_normalize(vectors) * l2_normalize(reference), axis=1)
            result.cosine_min, result.cosine_median = round(float(cos.min()), 6), round(float(np.median(cos)), 6)
            result.accepted = result.cosine_min >= MIN_COSINE
        results.append(result)
    accepted = [r for r in results if r.accepted]
    choice = max(accepted, key=lambda r: r.images_per_second).backend if accepted else "ort-fp32"
    calibration = Calibration(choice, machine_key(), str(path), len(pixels), min(batch, len(pixels)), results)
    file = _calibration_file(path, cache_dir)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n")
        os.replace(tmp, file)
    except OSError:
        pass  # a read-only cache: the choice holds for this process, and the next one measures again
    return calibration


def _measure(path: Path, name: str, pixels: np.ndarray, tune: np.ndarray, threads: int, cache_dir: Path | None,
             batch: int, rounds: int, spec: str) -> tuple[BackendResult, np.ndarray | None]:
    result = BackendResult(name)
    started = time.perf_counter()
    try:
        session = open_session(path, name, threads, spec, cache_dir, tune)
        input_name = session.get_inputs()[0].name
        output = session.get_outputs()[0].name
        fixed = isinstance(session.get_inputs()[0].shape[0], int)
        step = 1 if fixed else batch

        def run(x: np.ndarray) -> np.ndarray:
            return np.concatenate([np.asarray(session.run([output], {input_name: x[i : i + step]})[0], np.float32)
                                   for i in range(0, len(x), step)])

        vectors = run(pixels)  # also the warm-up: first calls allocate and JIT
        result.prepare_seconds = round(time.perf_counter() - started, 2)
        timed = pixels[: min(batch, len(pixels))]
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            run(timed)
            times.append(time.perf_counter() - t0)
        result.images_per_second = round(len(timed) / statistics.median(times), 2)
        return result, vectors
    except Exception as e:  # a backend that fails here is recorded and skipped, never fatal
        result.error = first_error_line(e)
        return result, None


def first_error_line(e: BaseException) -> str:
    """The first non-blank line of a runtime's error (ONNX Runtime's and OpenVINO's run to many), cut short."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(e).__name__
