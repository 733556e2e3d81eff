"""Train: contrastive losses, the loop, checkpoints and export (needs the train extra)."""

from clipdex.train.loop import TrainConfig, TrainResult, export_trained, load_train_config, train, validate

__all__ = ["TrainConfig", "TrainResult", "export_trained", "load_train_config", "train", "validate"]
