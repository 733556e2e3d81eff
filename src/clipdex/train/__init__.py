"""Train: contrastive losses, the loop, checkpoints and export (needs the train extra).

The settings (:mod:`clipdex.train.config`) import without torch; the loop and
export load it on first use.
"""

from typing import Any

from clipdex.train.config import TrainConfig, config_from_options, load_train_config, resume_config

__all__ = ["TrainConfig", "TrainResult", "config_from_options", "export_trained", "load_train_config",
           "resume_config", "train", "validate"]

_NEEDS_TORCH = ("TrainResult", "export_trained", "train", "validate")


def __getattr__(name: str) -> Any:
    if name in _NEEDS_TORCH:  # torch is imported only when training or export is asked for
        from clipdex.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'clipdex.train' has no attribute {name!r}")
