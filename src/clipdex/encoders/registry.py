"""One registry that turns a spec string into an :class:`Encoder`.

Specs: ``builtin:NAME``, ``onnx:DIR``, ``hf:REPO_OR_DIR``, ``open_clip:ARCH/TAG``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from clipdex.encoders.backends import env_backend
from clipdex.encoders.base import Encoder
from clipdex.encoders.onnx_runtime import OnnxEncoder
from clipdex.errors import EncoderSpecError, ModelNotFoundError

__all__ = ["DEFAULT_SPEC", "SCHEMES", "builtin_models", "load_encoder", "normalize_spec", "resolve_folder"]

DEFAULT_SPEC = "builtin:shapes-tiny"
SCHEMES = ("builtin", "onnx", "hf", "open_clip")


def builtin_models() -> list[str]:
    """Names of the models shipped inside the package."""
    root = resources.files("clipdex") / "models"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "clipdex_model.json").is_file())


def normalize_spec(spec: str) -> str:
    """The spec with any local path made absolute, so a collection that records it works from any folder.

    ``onnx:models/clip`` becomes ``onnx:/home/me/models/clip``; hub names (``hf:openai/clip-vit-base-patch32``)
    and ``builtin:`` names stay as they are, unless a folder of that name exists here.
    """
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in ("onnx", "hf", "open_clip") or not rest:
        return spec
    parts = rest.split("+") if scheme == "onnx" else [rest]
    if scheme == "open_clip":
        arch, slash, weights = rest.partition("/")
        if slash and Path(weights).expanduser().exists():
            return f"open_clip:{arch}/{Path(weights).expanduser().resolve()}"
        return spec
    if all(Path(p).expanduser().exists() for p in parts):
        return f"{scheme}:" + "+".join(str(Path(p).expanduser().resolve()) for p in parts)
    return spec


def resolve_folder(spec: str, cache_dir: Path | None = None) -> Path:
    """The ``onnx:`` model folder a spec stands for (exporting ``hf:`` once).

    Raises:
        EncoderSpecError: the spec is malformed or names an unknown scheme.
        MissingExtraError: the scheme needs an extra that is not installed.
        ModelNotFoundError: the model cannot be found.
    """
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise EncoderSpecError(
            f"bad model spec {spec!r}: expected SCHEME:NAME. Available schemes: {', '.join(SCHEMES)} "
            f"(e.g. {DEFAULT_SPEC})"
        )
    if scheme == "builtin":
        names = builtin_models()
        if rest not in names:
            raise ModelNotFoundError(
                f"{spec}: no such built-in model. Available: {', '.join(names) or 'none installed'}"
            )
        return Path(str(resources.files("clipdex") / "models" / rest))
    if scheme == "onnx":
        return Path(rest).expanduser() if "+" not in rest else Path(rest)
    if scheme == "hf":
        from clipdex.encoders.hf import hf_onnx_folder

        return hf_onnx_folder(rest, cache_dir)
    if scheme == "open_clip":
        from clipdex.encoders.open_clip import open_clip_folder

        return open_clip_folder(rest, cache_dir)
    raise EncoderSpecError(f"unknown model scheme {scheme!r} in {spec!r}. Available: {', '.join(SCHEMES)}")


def load_encoder(
    spec: str = DEFAULT_SPEC,
    precision: str = "fp32",
    threads: int | None = None,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    backend: str | None = None,
    quick_start: bool = False,
) -> Encoder:
    """Load an encoder by spec; the model files load lazily on first encode.

    Args:
        spec: ``builtin:shapes-tiny``, ``onnx:DIR``, ``hf:REPO_OR_DIR`` or ``open_clip:ARCH/TAG``.
        precision: ``fp32`` or ``int8`` (dynamic quantisation of the image tower).
        threads: ONNX Runtime intra-op threads (default: all cores).
        batch_size: largest batch sent to the runtime at once.
        cache_dir: where exports and quantised copies are cached.
        backend: the image tower's runtime (:data:`clipdex.encoders.backends.BACKENDS`, or ``auto``: the fastest
            measured for this model on this machine); wins over ``precision``. Unset: ``$CLIPDEX_BACKEND`` when
            that is set (so every command can be pointed at one), else ``precision``.
        quick_start: load sessions for a process that encodes once or twice (a command-line search): less
            load-time graph work, slower repeated calls.

    Example:
        >>> enc = load_encoder("builtin:shapes-tiny")
        >>> enc.encode_texts(["a red circle"]).shape
        (1, 256)
    """
    if backend is None and precision == "fp32":
        backend = env_backend()
    cache = Path(cache_dir) if cache_dir else None
    spec = normalize_spec(spec)
    folder = resolve_folder(spec, cache)
    return OnnxEncoder(folder, spec=spec, precision=precision, threads=threads,
                       batch_size=batch_size, cache_dir=cache, backend=backend,
                       quick_start=quick_start)
