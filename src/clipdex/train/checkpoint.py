"""Checkpoints: weights in safetensors, optimiser state beside them, written atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from clipdex.errors import ClipdexError

__all__ = ["load_checkpoint", "save_checkpoint"]


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: Any, step: int, meta: dict[str, Any]) -> None:
    """Write ``folder/checkpoint`` via a temp folder + rename, so a kill never leaves half a checkpoint."""
    from safetensors.torch import save_file

    tmp = folder / ".checkpoint.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2))
    final = folder / "checkpoint"
    old = folder / ".checkpoint.old"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: Any, arch: dict[str, Any]) -> int:
    """Restore weights and optimiser; returns the step to continue from.

    Raises:
        ClipdexError: no checkpoint, or one of another architecture.
    """
    from safetensors.torch import load_file

    final = folder / "checkpoint"
    if not final.exists() and (folder / ".checkpoint.old").exists():
        final = folder / ".checkpoint.old"  # killed between the two renames
    if not final.exists():
        raise ClipdexError(f"no checkpoint to resume in {folder}")
    meta = json.loads((final / "meta.json").read_text())
    if meta.get("arch") != arch:
        raise ClipdexError(
            f"cannot resume: the checkpoint in {folder} is of another architecture "
            f"({meta.get('arch')} vs {arch}); start a new --out folder"
        )
    model.load_state_dict(load_file(str(final / "model.safetensors")))
    state = torch.load(final / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])
