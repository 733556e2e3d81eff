from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import make_tiny_onnx  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Exports and quantised copies go to a temp cache, never to ~/.cache.
    monkeypatch.setenv("CLIPDEX_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_spec(tiny_model: Path) -> str:
    return f"onnx:{tiny_model}"


@pytest.fixture(scope="session")
def scenes_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clipdex.synth import write_scenes

    out = tmp_path_factory.mktemp("scenes") / "data"
    write_scenes(out, 60, seed=3, fmt="folder", size=48)
    return out
