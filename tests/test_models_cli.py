"""``clipdex models`` and ``models pull``, against a pre-populated Hugging Face cache (nothing is downloaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clipdex.cli import app_main
from clipdex.encoders import load_encoder
from model_layouts import tiny_clip, write_transformers_js

pytestmark = pytest.mark.integration


def test_the_table_lists_every_family_with_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert app_main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    names = {r["name"] for r in rows}
    assert {"clip-vit-b32", "clip-vit-b16", "clip-vit-l14", "laion-vit-b32", "siglip-base"} <= names
    assert any(r["multilingual"] for r in rows)
    for row in rows:
        assert row["quality_source"] and row["repo"] and row["dim"] > 0
        if row["imagenet_zero_shot"] is not None:
            assert 0 < row["imagenet_zero_shot"] < 1 and "open_clip" in row["quality_source"]
    assert app_main(["models"]) == 0
    table = capsys.readouterr().out
    assert "| clip-vit-b32 |" in table and "63.3%" in table


def test_pull_resolves_from_the_cache_offline_and_the_spec_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    model, tokenizer, processor = tiny_clip(tmp_path / "clip")
    export = write_transformers_js(model, tokenizer, processor, tmp_path / "export")
    snapshot = tmp_path / "hub" / "models--Xenova--clip-vit-base-patch32" / "snapshots" / ("a" * 40)
    shutil.copytree(export, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert app_main(["models", "pull", "clip-vit-b32", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)["spec"]
    assert spec == f"onnx:{snapshot.resolve()}"
    assert load_encoder(spec).encode_texts(["a red circle"]).shape == (1, 16)
    # not in the cache and offline: one line, exit 3; an unknown name: exit 2 with the known names
    assert app_main(["models", "pull", "clip-vit-l14"]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not in the Hugging Face cache" in err
    assert app_main(["models", "pull", "clip-vit-b99"]) == 2
    assert "Available: clip-vit-b32" in capsys.readouterr().err
