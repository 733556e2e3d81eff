"""A run that achieved nothing says so: exit codes and warnings instead of a quiet success."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from clipdex.cli import app_main

pytestmark = pytest.mark.e2e


def test_index_where_every_image_fails_exits_1_and_caps_its_list(tmp_path: Path, tiny_spec: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(30):
        (bad / f"{i:03d}.jpg").write_bytes(b"not an image")
    assert app_main(["index", str(bad), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 1
    out, err = capsys.readouterr()
    assert "0 new" in out and "30 failed" in out and "... and 10 more" in out
    assert len([line for line in out.splitlines() if line.startswith("  failed:")]) == 20
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # beside the progress lines
    assert len(errors) == 1 and errors[0].startswith("error: none of the 30 images could be indexed")
    Image.new("RGB", (32, 32), (1, 2, 3)).save(bad / "good.png")  # one good image: a partial success is exit 0
    assert app_main(["index", str(bad), "--collection", str(tmp_path / "c")]) == 0


@pytest.mark.parametrize("chain,hint", [
    (["size:min_side=100"], "size:min_side=48 would keep 12 of them"),
    (["blank", "basic"], "basic:min_side=48 would keep 12 of them"),
    (["clip-score:min=0.99"], "clip-score:min=0."),
])
def test_curate_that_keeps_nothing_fails_and_says_what_would_keep_some(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], chain: list[str], hint: str) -> None:
    from clipdex.synth import write_scenes

    write_scenes(tmp_path / "pool", 12, seed=1, fmt="folder", size=48)
    args = ["curate", str(tmp_path / "pool"), "--out", str(tmp_path / "out"), "--no-report"]
    assert app_main([*args, *(x for f in chain for x in ("-f", f))]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "shards:" not in line]  # progress lines aside
    assert len(err) == 1 and err[0].startswith("error: the filters kept none of the 12 samples: ")
    assert f"{chain[-1].split(':')[0]}" in err[0] and "removed the most (12 of the 12 that reached it)" in err[0]
    assert hint in err[0]
    if chain[0].startswith("clip-score"):  # the value it names does keep some
        value = err[0].split("clip-score:min=")[-1].split()[0]
        assert app_main([*args, "-f", f"clip-score:min={value}"]) == 0


def test_evaluations_refuse_inputs_they_cannot_match(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert app_main(["index", str(scenes_folder), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    (tmp_path / "q.jsonl").write_text(json.dumps({"query": "a red circle", "relevant": ["nowhere/x.png"]}) + "\n")
    capsys.readouterr()
    assert app_main(["eval", "ranking", "--data", str(tmp_path / "q.jsonl"), "--collection", str(tmp_path / "c")]) == 2
    assert "none of its 1 relevant paths is an image of" in capsys.readouterr().err
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "a cat", "images": ["missing.png"]}) + "\n")
    assert app_main(["eval", "alignment", "--prompts", str(tmp_path / "p.jsonl"), "--model", tiny_spec]) == 2
    assert "none of its 1 images could be read" in capsys.readouterr().err


def test_bad_inputs_to_eval_are_one_line_exit_2(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    image = sorted(scenes_folder.rglob("*.png"))[0]
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "a cat", "images": [str(image)], "best": "x.png"}) + "\n")
    assert app_main(["eval", "alignment", "--prompts", str(tmp_path / "p.jsonl"), "--model", tiny_spec]) == 2
    assert "'best' must be the index of one of its 1 images" in capsys.readouterr().err
    (tmp_path / "classes" / "cat").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "classes" / "cat" / "a.png")
    assert app_main(["eval", "zeroshot", "--data", str(tmp_path / "classes"), "--model", tiny_spec,
                     "--templates", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "cannot read the templates" in err and "Traceback" not in err


def test_help_texts_and_gone_files_are_told(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    app_main(["curate", "--help"])
    assert "[[filter]]" in capsys.readouterr().out
    app_main(["embed", "--help"])
    assert "--workers processes" not in capsys.readouterr().out
    shutil.copytree(scenes_folder, tmp_path / "lib")
    assert app_main(["index", str(tmp_path / "lib"), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    for gone in sorted((tmp_path / "lib").rglob("*.png"))[:3]:
        gone.unlink()
    capsys.readouterr()
    assert app_main(["index", str(tmp_path / "lib"), "--collection", str(tmp_path / "c")]) == 0
    assert "the files of 3 items are gone: they no longer show in results" in capsys.readouterr().out
