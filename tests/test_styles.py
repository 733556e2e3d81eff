"""Rendering styles change how a scene looks, never what it says; `clipdex eval binding` measures binding on
styles a model never saw, beside its own renderer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clipdex.cli import app_main
from clipdex.synth.styles import HELD_OUT_STYLES, STYLES, TRAIN_STYLES, render_styled, style_names
from clipdex.synth.world import COLORS, WorldConfig, sample_scenes

pytestmark = pytest.mark.unit


def _centroid(image: Image.Image, colour: str) -> tuple[float, float] | None:
    pixels = np.asarray(image, np.float32)
    refs = np.array(list(COLORS.values()), np.float32)
    nearest = np.argmin(((pixels[..., None, :] - refs) ** 2).sum(-1), axis=-1)
    close = ((pixels - refs[list(COLORS).index(colour)]) ** 2).sum(-1) < 70 ** 2
    mask = (nearest == list(COLORS).index(colour)) & close
    if mask.sum() < 3:
        return None
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def test_every_style_keeps_each_objects_colour_and_the_relations() -> None:
    scenes = [s for s in sample_scenes(120, 8, WorldConfig(min_objects=2, max_objects=2, p_repeat=0.0))
              if s.objects[0].color != s.objects[1].color and "black" not in {o.color for o in s.objects}]
    for name, style in STYLES.items():
        kept, checked = 0, 0
        for i, scene in enumerate(scenes):
            image = render_styled(scene, style, 64, seed=i)
            a, b = scene.objects
            ca, cb = _centroid(image, a.color), _centroid(image, b.color)
            checked += 1
            if ca is None or cb is None:
                continue
            dx, dy = b.cell[1] - a.cell[1], b.cell[0] - a.cell[0]
            across = dx == 0 or np.sign(cb[0] - ca[0]) == np.sign(dx)
            down = dy == 0 or np.sign(cb[1] - ca[1]) == np.sign(dy)
            kept += across and down
        assert kept / checked >= 0.9, (name, kept, checked)


def test_styles_are_deterministic_and_named() -> None:
    scene = sample_scenes(1, 3)[0]
    for style in STYLES.values():
        assert render_styled(scene, style, 64, seed=5).tobytes() == render_styled(scene, style, 64, seed=5).tobytes()
    assert set(TRAIN_STYLES).isdisjoint(HELD_OUT_STYLES) and set(TRAIN_STYLES) | set(HELD_OUT_STYLES) == set(STYLES)
    assert style_names("held-out") == HELD_OUT_STYLES and style_names("photo,plain") == ("photo", "plain")
    with pytest.raises(ValueError, match="unknown style"):
        style_names("watercolour")


def test_training_data_draws_the_chosen_styles() -> None:
    from clipdex.encoders.preprocess import ModelConfig
    from clipdex.train.data import SynthData

    model = ModelConfig(image_size=64, dim=256)
    plain, styled = SynthData(0, 16, model), SynthData(0, 16, model, styles="train")
    assert np.array_equal(styled.batch(3).pixels, SynthData(0, 16, model, styles="train").batch(3).pixels)
    assert not np.array_equal(plain.batch(3).pixels, styled.batch(3).pixels)
    assert plain.batch(3).captions == styled.batch(3).captions  # the same scenes and captions, drawn otherwise


@pytest.mark.e2e
def test_eval_binding_reports_each_style_beside_the_training_renderer(tmp_path, capsys: pytest.CaptureFixture[str]
                                                                      ) -> None:
    assert app_main(["eval", "binding", "--n", "120", "--json", "--out", str(tmp_path / "b.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = result["metrics"]
    for name in ("color_swap[in]", "relation_flip[in]", "color_swap[held-out]", "relation_flip[held-out]",
                 *(f"relation_flip[{s}]" for s in HELD_OUT_STYLES)):
        low, high = metrics[name]["ci95"]
        assert low <= metrics[name]["value"] <= high, name
    assert metrics["color_swap[in]"]["value"] > 0.9 and result["meta"]["styles"] == list(HELD_OUT_STYLES)
    assert "t2i_R@5[held-out]" in metrics and (tmp_path / "b.json").exists()
    # the plain style is the training renderer: the same images, so the same outcomes
    assert app_main(["eval", "binding", "--n", "120", "--styles", "plain", "--json"]) == 0
    same = json.loads(capsys.readouterr().out)["metrics"]
    assert same["relation_flip[styles]"]["value"] == same["relation_flip[in]"]["value"]
    assert app_main(["eval", "binding", "--styles", "watercolour"]) == 2
