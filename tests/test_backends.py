"""Image-tower backends: each runs the same graph close to fp32, the calibration measures them on real photos,
accepts only what keeps cosine >= 0.999, caches its choice per model and machine, and indexing uses it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from clipdex.cli import app_main
from clipdex.cli.main import app
from clipdex.encoders import load_encoder
from clipdex.encoders.backends import (
    MIN_COSINE,
    available_backends,
    cached_choice,
    calibrate,
    canonical_backend,
    open_session,
)
from clipdex.encoders.onnx_runtime import OnnxEncoder
from clipdex.errors import EncoderSpecError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos as JPEG files: scikit-learn's two and eight of scikit-image's (greys made RGB)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("photos")
    arrays = list(load_sample_images().images) + [getattr(data, n)() for n in (
        "astronaut", "coffee", "chelsea", "rocket", "camera", "retina", "immunohistochemistry", "hubble_deep_field")]
    for i, a in enumerate(arrays):
        Image.fromarray(a).convert("RGB").save(folder / f"{i:02d}.jpg", quality=92)
    return folder


@pytest.fixture(scope="module")
def pixels(photos: Path) -> np.ndarray:
    encoder = load_encoder("builtin:shapes-tiny")
    return np.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in sorted(photos.iterdir())])


def test_every_available_backend_runs_the_graph_close_to_fp32(pixels: np.ndarray, tmp_path: Path) -> None:
    encoder = load_encoder("builtin:shapes-tiny")
    assert isinstance(encoder, OnnxEncoder)
    names = available_backends()
    assert {"ort-fp32", "ort-int8", "ort-qdq", "ov-fp32", "ov-bf16", "ov-int8"} <= set(names)  # dev installs all
    outputs = {}
    for name in names:
        session = open_session(encoder.files.visual, name, 2, "tiny", tmp_path, pixels[::2])
        feed = {session.get_inputs()[0].name: pixels}
        out = np.asarray(session.run([session.get_outputs()[0].name], feed)[0], np.float32)
        outputs[name] = out / np.linalg.norm(out, axis=1, keepdims=True)
    for name, out in outputs.items():
        cosine = np.sum(out * outputs["ort-fp32"], axis=1)
        floor = 0.9999 if name.endswith("fp32") else 0.99
        assert cosine.min() > floor, (name, cosine.min())


def test_calibration_accepts_only_close_backends_and_picks_the_fastest(pixels: np.ndarray, tmp_path: Path) -> None:
    encoder = load_encoder("builtin:shapes-tiny")
    assert isinstance(encoder, OnnxEncoder)
    result = calibrate(encoder.files.visual, pixels, threads=2, cache_dir=tmp_path, batch=8, rounds=2)
    by_name = {r.backend: r for r in result.results}
    assert set(by_name) == set(available_backends())
    for r in result.results:
        assert r.error is None, r
        assert r.accepted == (r.cosine_min >= MIN_COSINE)
        assert r.images_per_second > 0
    accepted = [r for r in result.results if r.accepted]
    assert by_name["ort-fp32"].accepted and by_name["ort-fp32"].cosine_min > 0.99999
    assert result.choice == max(accepted, key=lambda r: r.images_per_second).backend
    cached = cached_choice(encoder.files.visual, tmp_path)
    assert cached is not None and cached.choice == result.choice and cached.images == len(pixels)


def test_a_tight_gate_that_rejects_every_quantised_backend_falls_back_to_fp32(
        pixels: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import clipdex.encoders.backends as backends

    monkeypatch.setattr(backends, "MIN_COSINE", 1.01)  # nothing passes, fp32 itself included
    encoder = load_encoder("builtin:shapes-tiny")
    assert isinstance(encoder, OnnxEncoder)
    result = calibrate(encoder.files.visual, pixels, threads=2, cache_dir=tmp_path, backends=["ort-int8"], rounds=1)
    assert [r.backend for r in result.results] == ["ort-fp32", "ort-int8"]  # the fp32 reference always runs
    assert result.choice == "ort-fp32" and not any(r.accepted for r in result.results)


def test_auto_measures_once_on_the_first_batch_then_reads_the_cache(pixels: np.ndarray, tmp_path: Path) -> None:
    first = load_encoder("builtin:shapes-tiny", backend="auto", cache_dir=tmp_path)
    assert isinstance(first, OnnxEncoder)
    single = first.encode_pixels(pixels[:1])  # one image is too few to measure on: exact fp32 meanwhile
    assert first.backend_in_use == "ort-fp32" and first.calibration is None
    batch = first.encode_pixels(pixels)
    assert first.calibration is not None and first.calibration_seconds > 0
    assert first.backend_in_use == first.calibration.choice
    assert float(np.dot(single[0], batch[0])) >= MIN_COSINE
    second = load_encoder("builtin:shapes-tiny", backend="auto", cache_dir=tmp_path)
    assert isinstance(second, OnnxEncoder)
    again = second.encode_pixels(pixels[:1])  # the cached choice serves even a single query image
    assert second.backend_in_use == first.calibration.choice and second.calibration_seconds == 0
    # the same backend on the same batch gives the same vector (int8's dynamic scales depend on the batch)
    assert np.allclose(again[0], first.encode_pixels(pixels[:1])[0], atol=1e-5)


def test_backend_names_and_errors(tmp_path: Path) -> None:
    assert canonical_backend("int8") == "ort-int8" and canonical_backend("fp32") == "ort-fp32"
    with pytest.raises(EncoderSpecError, match="unknown backend 'tpu'.*ov-bf16"):
        load_encoder("builtin:shapes-tiny", backend="tpu")
    encoder = load_encoder("builtin:shapes-tiny", backend="ort-qdq", cache_dir=tmp_path)
    with pytest.raises(EncoderSpecError, match="calibrated on images the first time"):
        encoder.encode_pixels(np.zeros((1, 3, encoder.image_size, encoder.image_size), np.float32))


def test_index_reports_its_backend_and_models_backends_prints_the_table(photos: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPDEX_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    result = runner.invoke(app, ["models", "backends", "builtin:shapes-tiny", str(photos), "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert table["images"] == 10 and {r["backend"] for r in table["results"]} == set(available_backends())
    indexed = runner.invoke(app, ["index", str(photos), "-c", str(tmp_path / "c"), "--json"])
    assert indexed.exit_code == 0, indexed.output
    report = json.loads(indexed.stdout)
    assert report["backend"] == table["choice"] and report["added"] == 10
    assert report["calibration_seconds"] == 0  # measured by `models backends` already
    forced = runner.invoke(app, ["index", str(photos), "-c", str(tmp_path / "d"), "--backend", "ort-int8", "--json"])
    assert json.loads(forced.stdout)["backend"] == "ort-int8"


def test_too_few_images_to_measure_is_a_one_line_error(photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert app_main(["models", "backends", "builtin:shapes-tiny", str(photos / "00.jpg")]) != 0
    err = capsys.readouterr().err
    assert err.strip() == "error: backend calibration needs at least 8 readable images, found 1"


def test_clipdex_backend_points_every_command_at_one_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPDEX_BACKEND", "ort-int8")
    assert load_encoder("builtin:shapes-tiny").backend_in_use == "ort-int8"  # type: ignore[attr-defined]
    assert load_encoder("builtin:shapes-tiny", backend="ov-fp32").backend_in_use == "ov-fp32"  # type: ignore[attr-defined]
    monkeypatch.setenv("CLIPDEX_BACKEND", "gpu9000")
    with pytest.raises(EncoderSpecError, match="unknown backend 'gpu9000'"):
        load_encoder("builtin:shapes-tiny")


def test_index_says_before_it_measures_and_only_the_first_time(photos: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLIPDEX_CACHE", str(tmp_path / "fresh-cache"))
    assert app_main(["index", str(photos), "-c", str(tmp_path / "a")]) == 0
    first = capsys.readouterr()
    assert "measures the image backends for this model on this CPU" in first.err
    assert "measured the backends for this model on this CPU in" in first.out
    assert app_main(["index", str(photos), "-c", str(tmp_path / "b")]) == 0
    second = capsys.readouterr()
    assert "measure" not in second.err + second.out


def test_without_openvino_auto_chooses_among_onnx_runtime_backends(pixels: np.ndarray, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import clipdex.encoders.backends as backends

    real = backends._importable
    monkeypatch.setattr(backends, "_importable", lambda module: module != "openvino" and real(module))
    assert backends.available_backends() == ["ort-fp32", "ort-int8", "ort-qdq"]
    encoder = load_encoder("builtin:shapes-tiny")
    assert isinstance(encoder, OnnxEncoder)
    result = calibrate(encoder.files.visual, pixels, threads=2, cache_dir=tmp_path, rounds=1)
    assert result.choice in ("ort-fp32", "ort-int8", "ort-qdq")
    with pytest.raises(EncoderSpecError, match="ov-bf16 is not available here.*clipdex\\[openvino\\]"):
        open_session(encoder.files.visual, "ov-bf16", 2, "tiny", tmp_path)


def test_an_unwritable_cache_still_measures_and_indexes(photos: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("not a folder")  # every write under it fails, as a read-only cache would
    monkeypatch.setenv("CLIPDEX_CACHE", str(blocked))
    assert app_main(["index", str(photos), "-c", str(tmp_path / "c"), "--backend", "auto", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == 10 and report["backend"] == "ort-fp32"  # the backends needing cached files refused


def test_an_onnx_runtime_session_does_not_load_openvino() -> None:
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom clipdex.encoders import load_encoder\n"
            "e = load_encoder('builtin:shapes-tiny', backend='ort-fp32')\n"
            "e.encode_pixels(np.zeros((1, 3, e.image_size, e.image_size), np.float32))\n"
            "print('openvino' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # OpenVINO's import and device probe stay out of ONNX Runtime's path
