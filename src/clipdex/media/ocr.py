"""Words in images (signs, documents, screenshots) with RapidOCR, whose ONNX models ship in its wheel."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image

from clipdex.errors import MissingExtraError

__all__ = ["load_ocr", "ocr_text"]

_ENGINE: Any = None
_LOCK = threading.Lock()


def load_ocr() -> Any:
    """The shared OCR engine (loaded once; raises MissingExtraError without rapidocr)."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as e:
                raise MissingExtraError("--ocr needs rapidocr-onnxruntime: pip install 'clipdex[ocr]'") from e
            _ENGINE = RapidOCR()
        return _ENGINE


def ocr_text(image: Image.Image, min_confidence: float = 0.5) -> str:
    """The words RapidOCR reads in ``image`` (left to right, top to bottom), joined by spaces."""
    bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])  # OpenCV's channel order
    found, _ = load_ocr()(bgr)
    words = [text for _box, text, score in (found or []) if float(score) >= min_confidence]
    return " ".join(w.strip() for w in words if w.strip())
