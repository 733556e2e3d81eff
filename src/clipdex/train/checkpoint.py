"""Checkpoints: weights in safetensors, optimiser state beside them, never half-written.

Each checkpoint is a folder ``ckpt-STEP`` written under a temp name and renamed;
``latest.json`` (replaced atomically) names the newest. A kill at any moment
leaves either the old or the new checkpoint as the latest, never neither.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch

from clipdex.errors import ClipdexError

__all__ = ["latest_checkpoint", "load_checkpoint", "load_weights", "save_checkpoint"]

_TRAINING_ONLY = "scene_heads."  # heads used only while training; never exported


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: Any, step: int, meta: dict[str, Any]) -> Path:
    """Write ``folder/ckpt-STEP`` and point ``latest.json`` at it; older ones are deleted."""
    from safetensors.torch import save_file

    name = f"ckpt-{step:08d}"
    tmp = folder / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "step": step}, indent=2))
    final = folder / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = folder / ".latest.json.tmp"
    pointer.write_text(json.dumps({"checkpoint": name, "step": step}))
    os.replace(pointer, folder / "latest.json")
    for old in folder.glob("ckpt-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path:
    """The newest complete checkpoint folder of a run.

    Raises:
        ClipdexError: the run has no checkpoint yet.
    """
    try:
        name = json.loads((folder / "latest.json").read_text())["checkpoint"]
    except (OSError, ValueError, KeyError) as e:
        raise ClipdexError(f"no checkpoint in {folder} (expected latest.json from a training run)") from e
    return folder / name


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: Any, arch: dict[str, Any]) -> int:
    """Restore weights and optimiser; returns the step to continue from.

    Raises:
        ClipdexError: no checkpoint, or one of another architecture.
    """
    from safetensors.torch import load_file

    path = latest_checkpoint(folder)
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("arch") != arch:
        raise ClipdexError(
            f"cannot resume: the checkpoint in {folder} is of another architecture "
            f"({meta.get('arch')} vs {arch}); start a new --out folder"
        )
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    try:
        # weights only: tensors and plain values, so a run folder from elsewhere cannot run code on load
        state = torch.load(path / "state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])
    except (pickle.UnpicklingError, RuntimeError, KeyError, TypeError, ValueError, EOFError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ClipdexError(f"cannot resume from {path / 'state.pt'}: not a clipdex optimiser state ({first}); "
                           "start a new --out folder") from e


def load_weights(folder: Path, model: torch.nn.Module, arch: dict[str, Any]) -> None:
    """Start from another run's newest weights (a second training stage).

    The optimiser and schedule start afresh. Training-only heads (``scene_heads``)
    may be on one side only: they are dropped, or start fresh.

    Raises:
        ClipdexError: no checkpoint, or one of another architecture.
    """
    from safetensors.torch import load_file

    path = latest_checkpoint(folder)
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("arch") != arch:
        raise ClipdexError(f"cannot start from {folder}: its architecture differs ({meta.get('arch')} vs {arch})")
    own, saved = model.state_dict(), load_file(str(path / "model.safetensors"))
    unmatched = [k for k in own.keys() ^ saved.keys() if not k.startswith(_TRAINING_ONLY)]
    if unmatched:
        raise ClipdexError(f"cannot start from {folder}: its weights do not fit this run ({sorted(unmatched)[:3]})")
    try:
        model.load_state_dict({k: v for k, v in saved.items() if k in own}, strict=False)
    except RuntimeError as e:  # a tensor of another shape
        first = str(e).strip().splitlines()[0]
        raise ClipdexError(f"cannot start from {folder}: its weights do not fit this run ({first})") from e
