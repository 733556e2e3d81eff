from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from clipdex.encoders import OnnxEncoder, load_encoder
from clipdex.errors import ClipdexError
from clipdex.synth import render_scene, sample_scenes, write_scenes
from clipdex.train import TrainConfig, export_trained, train
from clipdex.train.adapters import make_adapter
from clipdex.train.checkpoint import latest_checkpoint
from clipdex.train.data import swap_negative
from clipdex.train.losses import clip_loss, siglip_loss
from helpers import make_tiny_hf

pytestmark = pytest.mark.integration


def _cfg(out: Path, **kw: object) -> TrainConfig:
    base = dict(out=str(out), steps=4, batch_size=8, warmup=1, val_every=0, checkpoint_every=2, hard_negatives=2)
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_losses_prefer_matching_pairs() -> None:
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    scale, bias = torch.tensor(np.log(10.0)), torch.tensor(-5.0)
    shuffled = image[torch.randperm(6)]
    assert clip_loss(image, image, scale) < clip_loss(image, shuffled, scale)
    assert siglip_loss(image, image, scale, bias) < siglip_loss(image, shuffled, scale, bias)
    negatives = torch.nn.functional.normalize(torch.randn(12, 8), dim=-1)
    assert clip_loss(image, image, scale, negatives) > clip_loss(image, image, scale)


def test_swap_negative_rule() -> None:
    rng = random.Random(0)
    assert swap_negative("a red circle left of a blue star", rng) == "a blue circle left of a red star"
    assert swap_negative("a red circle left of a red star", rng) == "a red star left of a red circle"
    assert swap_negative("a dog on the left", rng) == "a dog on the right"
    swapped = swap_negative("golden retriever catching frisbee", rng)
    assert sorted(swapped.split()) == sorted("golden retriever catching frisbee".split())
    assert swapped != "golden retriever catching frisbee"
    assert swap_negative("cat", rng) == "cat"


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_tiny_run_logs_checkpoints_and_exports_matching_torch(tmp_path: Path, loss: str) -> None:
    result = train(_cfg(tmp_path / "run", loss=loss, val_every=4, val_size=40))
    assert result.steps == 4 and np.isfinite(result.last_loss)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and {"loss", "lr", "temperature"} <= set(log[0])
    assert "val_t2i_R@5" in log[-1] and "val_color_swap" in log[-1]
    folder = export_trained(tmp_path / "run", tmp_path / "model")
    enc = load_encoder(f"onnx:{folder}")
    assert isinstance(enc, OnnxEncoder)
    adapter = make_adapter("builtin")
    from safetensors.torch import load_file

    adapter.module.load_state_dict(load_file(str(latest_checkpoint(tmp_path / "run") / "model.safetensors")))
    adapter.module.eval()
    scenes = sample_scenes(4, seed=9)
    images = [render_scene(s, 64) for s in scenes]
    texts = ["a red circle", "two blue stars left of a green heart", "an orange cross"]
    with torch.no_grad():
        ref_i = adapter.encode_image(torch.from_numpy(np.stack([enc.preprocess(im) for im in images]))).numpy()
        ref_t = adapter.encode_text(texts).numpy()
    assert (1 - (enc.encode_images(images) * ref_i).sum(1)).max() < 1e-4
    assert (1 - (enc.encode_texts(texts) * ref_t).sum(1)).max() < 1e-4
    with pytest.raises(ClipdexError, match="--force"):
        export_trained(tmp_path / "run", tmp_path / "model")
    export_trained(tmp_path / "run", tmp_path / "model", force=True)


def _logged_steps(run: Path) -> int:
    """The last step the run's log.jsonl records (0 before the first)."""
    try:
        lines = (run / "log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    complete = [line for line in lines if line.endswith("}")]
    return json.loads(complete[-1])["step"] if complete else 0


def test_kill9_mid_run_then_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "clipdex", "train", "--out", str(run), "--steps", "30", "--batch-size", "8",
           "--warmup", "1", "--val-every", "0", "--checkpoint-every", "3", "--hard-negatives", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the event: the log records a step past the first checkpoint (step 3), so the kill lands mid-run,
    # between checkpoints; SIGSTOP freezes the run there before the kill, whatever the machine's speed
    deadline = time.monotonic() + 120
    while _logged_steps(run) < 4:
        assert proc.poll() is None and time.monotonic() < deadline, "the run never logged step 4"
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)
    assert proc.poll() is None, "the run ended before it could be killed"
    logged = _logged_steps(run)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta = json.loads((latest_checkpoint(run) / "meta.json").read_text())
    assert 3 <= meta["step"] <= logged < 30
    done = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))  # records past the checkpoint were redone, not repeated
    assert json.loads((latest_checkpoint(run) / "meta.json").read_text())["step"] == 30
    assert [p.name for p in run.glob("ckpt-*")] == ["ckpt-00000030"]


def test_resume_refuses_another_architecture(tmp_path: Path) -> None:
    train(_cfg(tmp_path / "run", steps=2))
    meta_path = latest_checkpoint(tmp_path / "run") / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["arch"]["vision_width"] = 12345
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ClipdexError, match="another architecture"):
        train(_cfg(tmp_path / "run", steps=4), resume=True)
    with pytest.raises(ClipdexError, match="not empty"):
        train(_cfg(tmp_path / "run", steps=4))


def test_training_from_a_source_skips_bad_items(tmp_path: Path) -> None:
    write_scenes(tmp_path / "data", 20, seed=2, fmt="folder", size=48)
    (tmp_path / "data" / "images" / "000003.png").write_bytes(b"broken")
    (tmp_path / "data" / "images" / "000004.txt").write_text("\n")  # no caption
    result = train(_cfg(tmp_path / "run", data=str(tmp_path / "data"), steps=3))
    assert result.steps == 3 and result.skipped_samples >= 1
    assert np.isfinite(result.last_loss)


def test_fine_tune_hf_clip_with_locked_text_tower(tmp_path: Path) -> None:
    model = make_tiny_hf(tmp_path / "hf")
    write_scenes(tmp_path / "data", 16, seed=2, fmt="folder", size=32)
    before = {k: v.clone() for k, v in make_adapter(f"hf:{model}").module.state_dict().items()}
    train(_cfg(tmp_path / "run", model=f"hf:{model}", data=str(tmp_path / "data"), freeze="text", steps=2,
               lr=1e-2))
    from safetensors.torch import load_file

    after = load_file(str(latest_checkpoint(tmp_path / "run") / "model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(not k.startswith("text_model.") for k in changed)
    assert any(k.startswith("vision_model.") for k in changed)
    folder = export_trained(tmp_path / "run", tmp_path / "exported")
    assert load_encoder(f"onnx:{folder}").encode_texts(["a red circle"]).shape == (1, 16)


def test_counterfactual_pairs_and_twin_margin_options(tmp_path: Path) -> None:
    from clipdex.train.data import SynthData

    adapter = make_adapter("builtin")
    batch = SynthData(0, 8, adapter.runtime, 3, counterfactuals=0.5).batch(0)
    # the first half comes in pairs that differ only in binding: same words, different meaning
    for first, second in ((batch.captions[0], batch.captions[1]), (batch.captions[2], batch.captions[3])):
        assert first != second and sorted(first.split()) == sorted(second.split()) or (
            first.replace("left", "right") == second or first.replace("above", "below") == second
            or first.replace("right", "left") == second or first.replace("below", "above") == second)
    result = train(_cfg(tmp_path / "run", steps=2, counterfactuals=0.5, twin_margin=0.8))
    assert result.steps == 2 and np.isfinite(result.last_loss)


@pytest.mark.parametrize(("stem", "text_conv", "grid_readout"), [("conv", 0, False), ("cnn", 2, True)])
def test_other_towers_train_and_export(tmp_path: Path, stem: str, text_conv: int, grid_readout: bool) -> None:
    train(_cfg(tmp_path / "run", steps=2, stem=stem, text_conv=text_conv, grid_readout=grid_readout))
    folder = export_trained(tmp_path / "run", tmp_path / "model")
    enc = load_encoder(f"onnx:{folder}")
    adapter = make_adapter("builtin", stem=stem, text_conv=text_conv, grid_readout=grid_readout)
    from safetensors.torch import load_file

    adapter.module.load_state_dict(load_file(str(latest_checkpoint(tmp_path / "run") / "model.safetensors")))
    adapter.module.eval()
    images = [render_scene(s, 64) for s in sample_scenes(3, seed=2)]
    # a padded batch in torch against one caption at a time, unpadded, in ONNX Runtime
    texts = ["a red circle", "two small blue stars left of a large green heart", "a cross"]
    with torch.no_grad():
        ref = adapter.encode_image(torch.from_numpy(np.stack([enc.preprocess(im) for im in images]))).numpy()
        ref_text = adapter.encode_text(texts).numpy()
    assert (1 - (enc.encode_images(images) * ref).sum(1)).max() < 1e-4
    got_text = np.concatenate([enc.encode_texts([t]) for t in texts])
    assert (1 - (got_text * ref_text).sum(1)).max() < 1e-4
    with pytest.raises(ClipdexError, match="another architecture"):
        train(_cfg(tmp_path / "run", steps=4), resume=True)  # a patch-stem config cannot resume this run


def test_scene_supervision_labels_train_resume_and_stay_out_of_the_export(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from clipdex.synth.world import Obj, Scene
    from clipdex.train.scene import caption_conjunctions, cell_labels

    scene = Scene((Obj("circle", "red", "small", (0, 0)), Obj("star", "blue", "large", (2, 1))))
    labels = cell_labels(scene)  # (colour, shape) per cell, 1-based, 0 = empty
    assert labels[:, 0].tolist() == [1, 1] and labels[:, 7].tolist() == [6, 4] and labels.sum() == 12
    pairs = caption_conjunctions("two small red circles left of a large blue star")
    assert set(np.flatnonzero(pairs)) == {0 * 8 + 0, 5 * 8 + 3}
    assert not caption_conjunctions("a circle and a star").any()  # no colour named: no pair
    train(_cfg(tmp_path / "run", steps=2, scene_weight=1.0, stem="cnn", p_cross=0.5))
    weights = load_file(str(latest_checkpoint(tmp_path / "run") / "model.safetensors"))
    assert any(k.startswith("scene_heads.") for k in weights)  # checkpoints carry the heads, so resume is exact
    result = train(_cfg(tmp_path / "run", steps=4, scene_weight=1.0, stem="cnn", p_cross=0.5), resume=True)
    assert result.steps == 4 and np.isfinite(result.last_loss)
    folder = export_trained(tmp_path / "run", tmp_path / "model")
    assert load_encoder(f"onnx:{folder}").encode_texts(["a red circle"]).shape == (1, 64)
    with pytest.raises(ClipdexError, match="needs the synthetic world"):
        train(_cfg(tmp_path / "other", data=str(tmp_path), scene_weight=1.0))


def test_scene_roles_from_images_and_captions() -> None:
    from clipdex.synth.world import Obj, Scene
    from clipdex.train.scene import CONJUNCTIONS, ROLES, caption_roles, cell_labels, image_roles

    def role(name: str, color: int, shape: int) -> int:
        return ROLES.index(name) * CONJUNCTIONS + color * 8 + shape

    red_circle, blue_star = Obj("circle", "red", "small", (0, 0)), Obj("star", "blue", "large", (2, 1))
    got = image_roles(cell_labels(Scene((red_circle, blue_star)))[None])[0]
    # the vertical gap (2 rows) beats the horizontal one (1 column): above / below
    assert set(np.flatnonzero(got)) == {role("above", 0, 0), role("below", 5, 3)}
    roles = caption_roles("a red circle left of a blue star")
    assert roles is not None and set(np.flatnonzero(roles)) == {role("left of", 0, 0), role("right of", 5, 3)}
    flipped = caption_roles("a blue star right of a red circle")  # the same fact, the same roles
    assert flipped is not None and (flipped == roles).all()
    assert caption_roles("a red circle and a blue star") is None


def test_cross_captions_recombine_the_scenes_own_words() -> None:
    from clipdex.synth.world import WorldConfig, cross_caption, place, sample_scene

    rng = random.Random(3)
    recombined = 0
    for _ in range(300):
        scene = sample_scene(rng, WorldConfig(min_objects=2))
        positive, negatives = cross_caption(scene, rng, 3)
        truths = {o.with_article(False) for o in scene.objects}
        truths |= {f"{o.with_article(False)} {place(o)}" for o in scene.objects}
        assert positive in truths and len(set(negatives)) == 3 and not truths & set(negatives)
        colours, shapes = {o.color for o in scene.objects}, {o.shape for o in scene.objects}
        recombined += all(n.split()[1] in colours and n.split()[2] in shapes for n in negatives)
    assert recombined > 150  # mostly the scene's own words, in the wrong combination or place


_PLACED = r"an? (?:(small|medium|large) )?(\w+) (\w+) (.+?)(?: with (\d) other shapes?)?"


def _holds(scene: object, caption: str) -> bool:
    """Independent reading of "a [size] COLOUR SHAPE PLACE [with N other shape(s)]" against a scene."""
    import re

    from clipdex.synth.world import place

    m = re.fullmatch(_PLACED, caption)
    assert m, caption
    size, colour, shape, where, others = m.groups()
    objects = scene.objects  # type: ignore[attr-defined]
    return len(objects) - 1 == int(others or 0) and any(
        (o.color, o.shape, place(o)) == (colour, shape, where) and size in (None, o.size) for o in objects)


def test_position_captions_against_another_place_count_or_object() -> None:
    import re

    from clipdex.synth.world import position_caption, sample_scene

    rng = random.Random(5)
    changed = {"object": 0, "place": 0, "count": 0}
    for _ in range(300):
        scene = sample_scene(rng)
        positive, negatives = position_caption(scene, rng, 3)
        assert _holds(scene, positive), (scene, positive)
        assert len(set(negatives)) == 3 and not any(_holds(scene, n) for n in negatives), (scene, negatives)
        size, colour, shape, where, others = re.fullmatch(_PLACED, positive).groups()  # type: ignore[union-attr]
        for n in negatives:  # each negative changes exactly one thing
            n_size, n_colour, n_shape, n_where, n_others = re.fullmatch(_PLACED, n).groups()  # type: ignore[union-attr]
            diffs = [name for name, differs in (("object", (n_colour, n_shape) != (colour, shape)),
                                                ("place", n_where != where), ("count", n_others != others)) if differs]
            assert n_size == size and len(diffs) == 1, (positive, n)
            changed[diffs[0]] += 1
    assert all(v > 200 for v in changed.values()), changed


def test_second_stage_starts_from_another_runs_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    scene = dict(scene_weight=1.0, stem="cnn", text_conv=1, grid_readout=True)
    train(_cfg(tmp_path / "one", steps=2, **scene))
    # lr 0: the second stage changes no weight, so its checkpoint must hold the first stage's exactly
    train(_cfg(tmp_path / "two", steps=2, lr=0.0, role_weight=5.0, init=str(tmp_path / "one"), **scene))
    before = load_file(str(latest_checkpoint(tmp_path / "one") / "model.safetensors"))
    after = load_file(str(latest_checkpoint(tmp_path / "two") / "model.safetensors"))
    assert before.keys() == after.keys()
    learned = [k for k in before if "running_" not in k and "num_batches" not in k]  # batch-norm statistics move
    assert all(torch.equal(before[k], after[k]) for k in learned)
    # without scene supervision the training-only heads are left behind, the towers still start from stage one
    plain = {k: v for k, v in scene.items() if k != "scene_weight"}
    train(_cfg(tmp_path / "plain", steps=2, lr=0.0, init=str(tmp_path / "one"), **plain))
    towers = load_file(str(latest_checkpoint(tmp_path / "plain") / "model.safetensors"))
    assert not any(k.startswith("scene_heads.") for k in towers)
    assert all(torch.equal(before[k], towers[k]) for k in towers if k in learned)
    with pytest.raises(ClipdexError, match="architecture differs"):
        train(_cfg(tmp_path / "three", steps=2, init=str(tmp_path / "one")))  # a ViT from a CNN's weights
    with pytest.raises(ClipdexError, match="no checkpoint"):
        train(_cfg(tmp_path / "four", steps=2, init=str(tmp_path / "missing")))


def test_role_weight_scales_only_the_role_terms() -> None:
    from clipdex.synth.world import Obj, Scene, describe_pair
    from clipdex.train.scene import SceneHeads, caption_conjunctions, caption_roles, cell_labels, scene_loss

    torch.manual_seed(0)
    a, b = Obj("circle", "red", "small", (0, 0)), Obj("star", "blue", "large", (0, 2))
    caption = describe_pair(a, b)
    heads = SceneHeads(16, 8)
    grid, image, text = torch.randn(1, 8, 8, 8), torch.randn(1, 16), torch.randn(1, 16)
    labels = (np.stack([cell_labels(Scene((a, b)))]), np.stack([caption_conjunctions(caption)]),
              np.stack([caption_roles(caption)]), np.array([True]))
    losses = [float(scene_loss(heads, grid, image, text, *labels, role_weight=w).detach()) for w in (0.0, 1.0, 3.0)]
    assert 0 < losses[0] < losses[1] < losses[2]  # the cell and pair terms stay at weight 0
    assert losses[2] - losses[0] == pytest.approx(3 * (losses[1] - losses[0]), rel=1e-5)


def test_scene_places_and_counts_from_images_and_captions() -> None:
    from clipdex.synth.world import Obj, Scene
    from clipdex.train.scene import CONJUNCTIONS, caption_count, caption_place, cell_labels, image_places

    red_circle, blue_star = Obj("circle", "red", "small", (0, 0)), Obj("star", "blue", "large", (1, 2))
    got = image_places(cell_labels(Scene((red_circle, blue_star)))[None])[0]
    assert set(np.flatnonzero(got)) == {0 * CONJUNCTIONS + 0, 5 * CONJUNCTIONS + 5 * 8 + 3}  # cells 0 and 5
    placed = caption_place("a large blue star on the right with 1 other shape")
    assert placed is not None and np.flatnonzero(placed).tolist() == [5 * CONJUNCTIONS + 5 * 8 + 3]
    assert (caption_place("a blue star on the right") == placed).all()  # a cross caption places it too
    assert caption_count("a large blue star on the right with 1 other shape") == 2
    assert caption_count("a small red circle in the top left with 3 other shapes") == 4
    assert caption_count("a blue star on the right") == -1  # says nothing about the rest of the scene
    assert caption_place("a red circle left of a blue star") is None  # a relation, not a place in the picture
    assert caption_place("a picture of a red circle") is None and caption_count("two red circles") == -1


def test_place_weight_adds_the_place_and_count_terms() -> None:
    from clipdex.synth.world import Obj, Scene
    from clipdex.train.scene import (
        SceneHeads,
        caption_conjunctions,
        caption_count,
        caption_place,
        caption_roles,
        cell_labels,
        scene_loss,
    )

    torch.manual_seed(0)
    a, b = Obj("circle", "red", "small", (0, 0)), Obj("star", "blue", "large", (0, 2))
    heads = SceneHeads(16, 8)
    grid, image, text = torch.randn(1, 8, 8, 8), torch.randn(1, 16), torch.randn(1, 16)

    def loss(caption: str, weight: float) -> float:
        roles = caption_roles(caption)
        place = caption_place(caption)
        places = np.stack([np.zeros(720, np.float32) if place is None else place])
        labels = (np.stack([cell_labels(Scene((a, b)))]), np.stack([caption_conjunctions(caption)]),
                  np.stack([np.zeros(320, np.float32) if roles is None else roles]), np.array([roles is not None]))
        return float(scene_loss(heads, grid, image, text, *labels, places=places,
                                counts=np.array([caption_count(caption)]), place_weight=weight).detach())

    caption = "a red circle in the top left with 1 other shape"
    base, one, three = loss(caption, 0.0), loss(caption, 1.0), loss(caption, 3.0)
    assert 0 < base < one < three and three - base == pytest.approx(3 * (one - base), rel=1e-5)
    # the same picture with a caption that places nothing: only the image's place and count terms remain
    unplaced = "a red circle"
    assert 0 < loss(unplaced, 1.0) - loss(unplaced, 0.0) < one - base


def test_embed_dim_sets_the_joint_space_and_trains_place_heads(tmp_path: Path) -> None:
    scene = dict(scene_weight=1.0, place_weight=2.0, p_position=0.5, stem="cnn", grid_readout=True)
    result = train(_cfg(tmp_path / "wide", steps=2, embed_dim=32, **scene))
    assert np.isfinite(result.last_loss)
    folder = export_trained(tmp_path / "wide", tmp_path / "model")
    assert load_encoder(f"onnx:{folder}").encode_texts(["a red circle on the left"]).shape == (1, 32)
    with pytest.raises(ClipdexError, match="architecture differs"):  # 64-d weights cannot start a 32-d run
        train(_cfg(tmp_path / "narrow", steps=2, embed_dim=64, init=str(tmp_path / "wide"), **scene))


RECIPE = Path(__file__).parent.parent / "recipes"


def _clipdex(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clipdex", *args], capture_output=True, text=True, timeout=300)


def _tiny_stage1(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """The recipe's stage 1, shrunk to a few small steps: every other option comes from the file."""
    fields = json.loads((RECIPE / "shapes_tiny.stage1.train_config.json").read_text())
    fields.update(steps=2, batch_size=8, embed_dim=32, val_every=0, checkpoint_every=1, warmup=1)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(fields))
    return config, fields


def test_train_from_a_config_file_records_the_same_config(tmp_path: Path) -> None:
    from clipdex.train import load_train_config

    config, fields = _tiny_stage1(tmp_path)
    done = _clipdex("train", "--config", str(config), "--out", str(tmp_path / "run"), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == 2
    recorded = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert recorded == {**fields, "out": str(tmp_path / "run")}
    # the recorded config runs again as it is; --init is the one option besides --out that may change
    again = load_train_config(tmp_path / "run" / "train_config.json", out="elsewhere", init=str(tmp_path / "run"))
    assert again == TrainConfig(**{**fields, "out": "elsewhere", "init": str(tmp_path / "run")})


def test_config_file_refuses_extra_flags_and_bad_fields(tmp_path: Path) -> None:
    from clipdex.train import load_train_config

    # a tiny config, so that if the flags were not refused the run would finish and the assertions fail fast
    config, _ = _tiny_stage1(tmp_path)
    done = _clipdex("train", "--config", str(config), "--out", str(tmp_path / "run"), "--steps", "2", "--lr", "1")
    assert done.returncode == 2 and not (tmp_path / "run").exists()
    assert done.stderr.strip() == "error: --config sets every training option; drop --lr, --steps or edit the file"
    bad = tmp_path / "bad.json"
    for text, message in [('{"stepz": 3}', "does not have: stepz"), ('{"steps": "many"}', "steps must be int"),
                          ('{"grid_readout": 1}', "grid_readout must be bool"), ("[1]", "expected a JSON object"),
                          ('{"steps": 3', "cannot read"), ('{"loss": "l2"}', "unknown loss")]:
        bad.write_text(text)
        with pytest.raises(ClipdexError, match=message):
            load_train_config(bad, out="x")
    with pytest.raises(ClipdexError, match="no training config"):
        load_train_config(tmp_path / "missing.json", out="x")
    bad.write_text('{"steps": 5}')
    with pytest.raises(ClipdexError, match="has no 'out'"):
        load_train_config(bad)
    # an older record that lacks later options loads with their defaults
    assert load_train_config(bad, out="x") == TrainConfig(out="x", steps=5)


def test_the_recipe_runs_its_checked_in_configs() -> None:
    from clipdex.train import load_train_config

    script = (RECIPE / "shapes_tiny.sh").read_text()
    stages = [load_train_config(RECIPE / f"shapes_tiny.stage{i}.train_config.json", out="x") for i in (1, 2)]
    for i in (1, 2):
        assert f"train --config recipes/shapes_tiny.stage{i}.train_config.json" in script
    # the built-in model's shape: both stages train the same 256-d CNN architecture, stage 2 from stage 1
    assert {(s.stem, s.text_conv, s.grid_readout, s.embed_dim) for s in stages} == {("cnn", 2, True, 256)}
    assert stages[1].init == "runs/shapes-tiny-stage1" and stages[0].init is None


def test_resume_never_runs_code_from_a_checkpoint(tmp_path: Path) -> None:
    """A run folder prepared by someone else: its state.pt unpickles a call, which must not run."""
    import pickle

    train(_cfg(tmp_path / "run", steps=2))
    witness = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (Path.touch, (str(witness),))  # type: ignore[return-value]

    state = latest_checkpoint(tmp_path / "run") / "state.pt"
    state.write_bytes(pickle.dumps({"optimizer": Payload(), "step": 2}))
    with pytest.raises(ClipdexError, match="not a clipdex optimiser state"):
        train(_cfg(tmp_path / "run", steps=4), resume=True)
    assert not witness.exists()


def test_resume_keeps_the_runs_recorded_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import asdict

    from clipdex.cli import app_main

    run = tmp_path / "run"
    first = ["train", "--out", str(run), "--steps", "3", "--batch-size", "8", "--warmup", "1", "--val-every", "0",
             "--checkpoint-every", "2", "--hard-negatives", "1"]
    assert app_main(first) == 0
    capsys.readouterr()
    recorded = json.loads((run / "train_config.json").read_text())
    # --resume alone continues with the recorded settings, not the command's defaults
    assert app_main(["train", "--out", str(run), "--resume", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 3 and json.loads((run / "train_config.json").read_text()) == recorded
    # a setting that differs from the record is refused, naming what was recorded
    assert app_main(["train", "--out", str(run), "--resume", "--batch-size", "64"]) == 2
    assert "--batch-size (recorded: 8)" in capsys.readouterr().err
    # a run killed before its first checkpoint: its recorded settings, from step 0
    early = tmp_path / "early"
    early.mkdir()
    (early / "train_config.json").write_text(json.dumps(asdict(_cfg(early, steps=2))))
    assert app_main(["train", "--out", str(early), "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    assert app_main(["train", "--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
