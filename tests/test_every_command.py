"""Every command, given bad input, answers with one line on stderr and a non-zero exit code: never a
traceback. The list of commands comes from the CLI itself, so a new command must be added here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command

from clipdex.cli import app_main
from clipdex.cli.main import app

pytestmark = pytest.mark.e2e


def _commands() -> list[str]:
    out = []

    def walk(command: object, prefix: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*prefix, name])
        else:
            out.append(" ".join(prefix))

    walk(get_command(app), [])
    return out


def _bad_inputs(tmp: Path, tiny_spec: str) -> dict[str, list[list[str]]]:
    """Per command, argument lists that must fail cleanly: missing paths, files of the wrong kind, bad values."""
    gone, junk, folder = str(tmp / "missing"), str(tmp / "junk.bin"), str(tmp / "plain")
    return {
        "index": [[gone, "-c", str(tmp / "c1")], [junk, "-c", str(tmp / "c2")], [folder, "-c", junk],
                  [folder, "-c", str(tmp / "c3"), "--regions", "9"], [folder, "-c", str(tmp / "c4"), "--model", "x:y"],
                  [folder, "-c", str(tmp / "c5"), "--backend", "tpu"]],
        "search": [[gone, "a dog"], [junk, "a dog"], [folder, "a dog", "--no-index"], [folder, "--where", "=x"]],
        "heatmap": [[gone, "1", "a dog"], [folder, "1", "a dog"]],
        "info": [[gone], [junk]], "remove": [[gone, "--path", "*"]], "verify": [[gone]], "repair": [[gone]],
        "compact": [[gone]], "duplicates": [[gone], [folder]],
        "curate": [[gone, "--out", str(tmp / "o1")], [folder, "--out", str(tmp / "o2"), "-f", "nope"],
                   [junk, "--out", str(tmp / "o3")]],
        "embed": [[gone, "--out", str(tmp / "e1")], [junk, "--out", str(tmp / "e2")]],
        "import-embeddings": [[gone, "-c", str(tmp / "c5")], [folder, "-c", str(tmp / "c6")]],
        "build-index": [[gone, "--out", str(tmp / "i1")], [folder, "--out", str(tmp / "i2")]],
        "merge-index": [[gone], [folder]],
        "search-index": [[gone, "a dog"], [folder, "a dog"]],
        "synth": [["--out", str(tmp / "s1"), "--kind", "bogus"], ["--out", str(tmp / "s2"), "--n", "-3"]],
        "train": [["--out", str(tmp / "t1"), "--loss", "bogus"], ["--out", str(tmp / "t2"), "--data", gone]],
        "export": [[gone, str(tmp / "x1")], [folder, str(tmp / "x2")]],
        "serve": [[gone], [folder], [junk]],
        "eval retrieval": [["--data", gone], ["--data", junk], ["--embeddings", folder]],
        "eval zeroshot": [["--data", gone], ["--data", junk]],
        "eval ranking": [["--data", gone, "--collection", gone], ["--data", junk, "--collection", folder]],
        "eval composed": [["--data", gone], ["--data", junk]],
        "eval alignment": [["--prompts", gone], ["--prompts", junk]],
        "eval compare": [[gone, gone], [junk, junk]],
        "eval binding": [["--styles", "nope"], ["--model", "x:y"]],
        "models pull": [["no-such-model"]],
        "models backends": [["x:y", folder], [tiny_spec, gone], [tiny_spec, junk], [tiny_spec, folder]],
        "map": [[gone], [folder], [folder, "--method", "tsne"]],
        "clusters": [[gone], [junk]], "scores": [[gone]], "tag": [[gone], [folder, "--vocab", gone]],
        "probe train": [["x", "-c", gone, "-p", "1", "-n", "2"]],
        "probe apply": [["x", "-c", gone]],
        "probe list": [["-c", gone]],
    }


def test_every_command_fails_bad_input_in_one_line(tmp_path: Path, tiny_spec: str,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPDEX_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "junk.bin").write_bytes(b"\x00\xffnot anything clipdex reads\x89PNG")
    (tmp_path / "plain").mkdir()
    cases = _bad_inputs(tmp_path, tiny_spec)
    missing = sorted(set(_commands()) - set(cases))
    assert not missing, f"add bad inputs for {missing}"
    wrong = []
    for command, arg_lists in cases.items():
        for args in arg_lists:
            argv = [*command.split(), *args]
            try:
                code = app_main(argv)
            except Exception as e:  # noqa: BLE001  (what a user would see as a traceback)
                code = f"traceback: {type(e).__name__}: {e}"
            err = capsys.readouterr().err
            lines = [line for line in err.splitlines() if line.startswith("error")]
            if code not in (2, 3, 4) or "Traceback" in err or len(lines) != 1:
                wrong.append(f"{' '.join(argv).replace(str(tmp_path), '')} -> {code}: {err.strip()[-300:]}")
    assert not wrong, "\n".join(wrong)
