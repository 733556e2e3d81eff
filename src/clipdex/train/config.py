"""A training run's settings: one frozen dataclass, the one place its defaults live.

No torch here, so the CLI reads defaults and checks a config file without loading it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipdex.errors import ClipdexError, UsageError

__all__ = ["TrainConfig", "config_from_options", "load_train_config", "resume_config"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved as ``train_config.json``)."""

    out: str
    model: str = "builtin"
    data: str = "synth"
    loss: str = "clip"
    steps: int = 1000
    epochs: int | None = None
    batch_size: int = 128
    accum: int = 1
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 100
    hard_negatives: int = 3
    binding_weight: float = 1.0
    twin_margin: float | None = None
    scene_weight: float = 0.0
    role_weight: float = 1.0
    place_weight: float = 0.0
    init: str | None = None  # a run folder whose newest weights this run starts from (a second stage)
    counterfactuals: float = 0.0
    stem: str = "patch"
    text_conv: int = 0
    grid_readout: bool = False
    embed_dim: int = 64  # built-in model: width of the joint embedding space
    p_cross: float = 0.0
    p_position: float = 0.0
    p_relation: float = 0.5
    styles: str = ""  # synthetic data: rendering styles drawn at random per image ("train" or names; "": plain)
    seed: int = 0
    val_every: int = 200
    val_size: int = 500
    checkpoint_every: int = 100
    bf16: bool = False
    threads: int | None = None
    freeze: str = "none"
    image_col: str | None = None
    caption_col: str | None = None

    def __post_init__(self) -> None:
        if self.loss not in ("clip", "siglip"):
            raise UsageError(f"unknown loss {self.loss!r}. Available: clip, siglip")
        if self.freeze not in ("none", "text", "image"):
            raise UsageError(f"unknown freeze {self.freeze!r}. Available: none, text, image")
        if self.styles:
            from clipdex.synth.styles import style_names

            try:
                style_names(self.styles)
            except ValueError as e:
                raise UsageError(f"--styles: {e}") from e
        if self.batch_size < 2 or self.accum < 1 or self.steps < 1:
            raise ClipdexError("batch size must be >= 2, accum >= 1, steps >= 1")


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """A run's configuration from a ``train_config.json`` (a recorded run or a recipe's), with overrides.

    Fields the file leaves out take their defaults, so older records still load.

    Raises:
        ClipdexError: the file is missing or not a JSON object, names a field TrainConfig lacks, has no
            ``out`` (nor an override), or holds a value of the wrong type.
    """
    path = Path(path)
    try:
        fields = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClipdexError(f"no training config at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClipdexError(f"cannot read the training config {path}: {e}") from None
    if not isinstance(fields, dict):
        raise ClipdexError(f"{path} is not a training config (expected a JSON object)")
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ClipdexError(f"{path} names options TrainConfig does not have: {', '.join(unknown)}")
    fields.update(overrides)
    if "out" not in fields:
        raise ClipdexError(f"{path} has no 'out'; give the run folder")
    hints = typing.get_type_hints(TrainConfig)
    for name, value in fields.items():
        if not _fits_type(value, hints[name]):
            kind = hints[name].__name__ if isinstance(hints[name], type) else str(hints[name])
            raise ClipdexError(f"{path}: {name} must be {kind}, got {value!r}")
    return TrainConfig(**fields)


def _fits_type(value: object, hint: object) -> bool:
    """Whether a JSON value fits a TrainConfig field's type (an int is a fine float; a bool is no number)."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is type(None) and value is None:
            return True
        if kind is bool and isinstance(value, bool):
            return True
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if kind in (int, str) and isinstance(value, kind) and not isinstance(value, bool):
            return True
    return False


def config_from_options(options: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from named options (the CLI's flags): fields of TrainConfig are taken, others ignored.

    Paths become strings, as ``train_config.json`` records them.
    """
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    chosen: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items() if k in names}
    return TrainConfig(**chosen)


def resume_config(out: str | Path, given: Mapping[str, Any]) -> TrainConfig:
    """The settings a resumed run continues with: the ones it recorded in ``out/train_config.json``.

    ``given`` holds the options a user typed beside ``--resume``; each must equal the recorded value
    (a run is never continued with other settings than it started with).

    Raises:
        UsageError: no recorded run in ``out``, or a given option that differs from the record.
    """
    path = Path(out) / "train_config.json"
    if not path.exists():
        raise UsageError(f"nothing to resume in {out}: no train_config.json (start the run without --resume)")
    recorded = load_train_config(path, out=str(out))
    values = dataclasses.asdict(recorded)
    differs = sorted(name for name, value in given.items() if name in values and name != "out"
                     and (str(value) if isinstance(value, Path) else value) != values[name])
    if differs:
        flags = ", ".join(f"--{n.replace('_', '-')} (recorded: {values[n]})" for n in differs)
        raise UsageError(f"--resume continues {out} with its recorded settings; drop {flags} or start a new --out")
    return recorded
