"""Export two torch towers to an ``onnx:`` model folder (needs the train extra)."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from clipdex.encoders.preprocess import ModelConfig
from clipdex.errors import UsageError

__all__ = ["export_onnx_folder"]

OPSET = 17


def export_onnx_folder(
    image_tower: Any,
    text_tower: Any,
    tokenizer: Any,
    config: ModelConfig,
    out_dir: str | Path,
    force: bool = False,
) -> Path:
    """Write ``visual.onnx``, ``textual.onnx``, ``tokenizer.json`` and the model JSON.

    Args:
        image_tower: ``torch.nn.Module``, ``pixel_values (n,3,S,S) -> (n,d)``.
        text_tower: ``torch.nn.Module``, ``(input_ids, attention_mask) -> (n,d)``.
        tokenizer: a ``tokenizers.Tokenizer`` (saved as ``tokenizer.json``), or the path of a tokenizer
            file to copy as it is (``spiece.model``, ``tokenizer.json``) with the configs beside it.
        config: preprocessing and sizes.
        out_dir: the folder to create; written to a temp folder then renamed,
            so a crash never leaves a half-written model.
        force: replace an existing folder.

    Raises:
        UsageError: ``out_dir`` exists and ``force`` is false.
    """
    import torch

    out = Path(out_dir)
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model folder is for every user of the machine
    try:
        image_tower.eval()
        text_tower.eval()
        size = config.image_size
        pixels = torch.randn(2, 3, size, size)
        ids = torch.randint(1, 10, (2, 7), dtype=torch.long)
        mask = torch.ones_like(ids)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            _export(image_tower, (pixels,), tmp / "visual.onnx", ["pixel_values"], ["image_embeds"],
                    {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}})
            _export(text_tower, (ids, mask), tmp / "textual.onnx", ["input_ids", "attention_mask"],
                    ["text_embeds"], {"input_ids": {0: "batch", 1: "seq"},
                                      "attention_mask": {0: "batch", 1: "seq"},
                                      "text_embeds": {0: "batch"}})
        if isinstance(tokenizer, Path):
            _copy_tokenizer(tokenizer, tmp)
        else:
            tokenizer.save(str(tmp / "tokenizer.json"))
        config.save(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _export(module: Any, args: tuple[Any, ...], path: Path, inputs: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]]) -> None:
    import torch

    # The TorchScript exporter needs no onnxscript and handles dynamic axes well
    # for these small graphs.
    torch.onnx.export(module, args, str(path), dynamo=False, input_names=inputs,
                      output_names=outputs, dynamic_axes=axes, opset_version=OPSET)


def _copy_tokenizer(tokenizer: Path, folder: Path) -> None:
    """A tokenizer file and the configs beside it that name its special tokens."""
    shutil.copy(tokenizer, folder / tokenizer.name)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer.parent / name).is_file():
            shutil.copy(tokenizer.parent / name, folder / name)
