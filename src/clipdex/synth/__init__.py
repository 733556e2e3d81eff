"""Synth: the procedural image-caption world used by the demo, tests and benchmarks."""

from clipdex.synth.companions import write_dataset
from clipdex.synth.render import render_scene
from clipdex.synth.world import (
    COLORS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    WorldConfig,
    captions_for,
    sample_scene,
    sample_scenes,
    training_caption,
)
from clipdex.synth.writers import Format, SynthReport, write_scenes

__all__ = [
    "COLORS",
    "SHAPES",
    "SIZES",
    "Format",
    "Obj",
    "Scene",
    "SynthReport",
    "WorldConfig",
    "captions_for",
    "render_scene",
    "sample_scene",
    "sample_scenes",
    "training_caption",
    "write_dataset",
    "write_scenes",
]
