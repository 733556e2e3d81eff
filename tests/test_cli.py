from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clipdex.cli import app_main
from helpers import write_bad_folder

pytestmark = pytest.mark.e2e


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = app_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_bad_input_folder_indexes_every_good_file(tmp_path: Path, tiny_spec: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    kinds = write_bad_folder(tmp_path / "bad")
    code, out, err = run(capsys, "index", str(tmp_path / "bad"), "-c", str(tmp_path / "c"), "--model", tiny_spec,
                         "--json")
    assert code == 0 and "Traceback" not in err
    report = json.loads(out)
    bad_names = sorted(n for n, k in kinds.items() if k == "bad" and (n != "locked.png" or os.geteuid() != 0))
    good = sum(1 for k in kinds.values() if k == "good") + (1 if os.geteuid() == 0 else 0)  # root can read 'locked'
    assert report["added"] == good
    assert sorted(Path(e["path"]).name for e in report["errors"]) == bad_names
    reasons = {Path(e["path"]).name: e["error"] for e in report["errors"]}
    assert "truncated" in reasons["truncated.jpg"] and "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.png"] and "decompression bomb" in reasons["bomb.png"]
    code, out, _ = run(capsys, "info", str(tmp_path / "c"), "--json")
    facts = json.loads(out)
    assert code == 0 and facts["errors"] == len(bad_names) and facts["ok"] == good
    assert sorted(Path(e["path"]).name for e in facts["error_list"]) == bad_names
    names = {Path(h["path"]).name for h in json.loads(run(capsys, "search", str(tmp_path / "c"), "x", "-k", "50",
                                                          "--json")[1])["hits"]}
    assert "caf\ufffd.png" in names  # the non-UTF-8 name, printable


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_unreadable_file_is_recorded_as_permission_denied(tmp_path: Path, tiny_spec: str) -> None:
    # Root reads any file, so the indexer runs as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
    # (dropped from the bounding set) to meet a real EACCES on a mode-000 file.
    from helpers import solid

    data = tmp_path / "data"
    data.mkdir()
    solid((1, 2, 3)).save(data / "ok.png")
    solid((1, 2, 3)).save(data / "secret.png")
    (data / "secret.png").chmod(0)
    drop = "-dac_override,-dac_read_search"
    cmd = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", sys.executable, "-m", "clipdex",
           "index", str(data), "-c", str(tmp_path / "c"), "--model", tiny_spec, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["added"] == 1
    assert [(Path(e["path"]).name, e["error"]) for e in report["errors"]] == [("secret.png", "permission denied")]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["search", "{tmp}/missing", "a cat"], 4, "no collection or photo folder at"),
    (["search", "{coll}", ""], 2, "empty query"),
    (["search", "{coll}"], 2, "empty query"),
    (["search", "{coll}", "x", "-k", "0"], 2, "k must be a positive integer"),
    (["search", "{coll}", "--image", "{tmp}/not-image.jpg"], 2, "query image: not an image"),
    (["search", "{coll}", "x", "--where", "novalue"], 2, "--where takes key=value"),
    (["index", "{tmp}/data", "-c", "{tmp}/new", "--model", "wrong"], 3, "bad model spec"),
    (["index", "{tmp}/data", "-c", "{tmp}/new", "--model", "builtin:nope"], 3, "no such built-in model"),
    (["index", "{tmp}/nowhere", "-c", "{tmp}/new2"], 2, "source not found"),
    (["index", "{tmp}/data", "-c", "{coll}", "--model", "onnx:/elsewhere"], 4, "was built with"),
    (["search", "{coll}", "x", "--bogus"], 2, "No such option"),
])
def test_errors_are_one_line_with_an_exit_code(tmp_path: Path, tiny_spec: str, capsys: pytest.CaptureFixture[str],
                                               args: list[str], code: int, message: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    from helpers import solid

    solid((9, 9, 9)).save(data / "a.png")
    (tmp_path / "not-image.jpg").write_text("text")
    assert app_main(["index", str(data), "-c", str(tmp_path / "coll"), "--model", tiny_spec]) == 0
    capsys.readouterr()
    filled = [a.format(tmp=tmp_path, coll=tmp_path / "coll") for a in args]
    got, out, err = run(capsys, *filled)
    assert got == code
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_json_everywhere_and_remove(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    c = str(tmp_path / "c")
    code, out, _ = run(capsys, "index", str(scenes_folder), "-c", c, "--model", tiny_spec, "--json")
    assert code == 0 and json.loads(out)["added"] == 60
    code, out, _ = run(capsys, "search", c, "a red circle", "-k", "3", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and len(hits) == 3 and set(hits[0]) == {"id", "score", "path", "caption", "metadata"}
    code, out, _ = run(capsys, "search", c, "--image", str(scenes_folder / "images" / "000002.png"), "--captions",
                       "-k", "2", "--json")
    assert code == 0 and all(h["caption"] for h in json.loads(out)["hits"])
    code, out, _ = run(capsys, "remove", c, "--path", "images/00000*", "--json")
    assert code == 0 and json.loads(out) == {"removed": 10}
    code, out, _ = run(capsys, "index", str(scenes_folder), "-c", c, "--json")
    assert json.loads(out)["added"] == 10  # the removed files are still in the folder, so they come back
    code, out, _ = run(capsys, "search", c, "a red circle", "-k", "3")
    assert code == 0 and len(out.strip().splitlines()) == 3


def test_console_script_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "clipdex"
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "search" in done.stdout
