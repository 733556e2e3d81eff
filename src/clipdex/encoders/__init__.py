"""Encoders: the Encoder protocol, the spec registry and the ONNX runtime."""

from clipdex.encoders.base import Encoder, l2_normalize
from clipdex.encoders.onnx_runtime import PRECISIONS, OnnxEncoder
from clipdex.encoders.preprocess import ModelConfig, preprocess_image
from clipdex.encoders.registry import (
    DEFAULT_SPEC,
    SCHEMES,
    builtin_models,
    load_encoder,
    resolve_folder,
)

__all__ = [
    "DEFAULT_SPEC",
    "PRECISIONS",
    "SCHEMES",
    "Encoder",
    "ModelConfig",
    "OnnxEncoder",
    "builtin_models",
    "l2_normalize",
    "load_encoder",
    "preprocess_image",
    "resolve_folder",
]
