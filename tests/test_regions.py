"""Region-level search: crops embedded at index time find small objects among many."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from clipdex import Collection
from clipdex.indexing import IndexOptions, crop_boxes
from clipdex.search import Query
from clipdex.synth.render import render_scene
from clipdex.synth.world import CELLS, COLORS, SHAPES, Obj, Scene

pytestmark = pytest.mark.integration


def crowded_scenes(n: int, seed: int) -> list[Scene]:
    """Scenes of five small objects of distinct colours in distinct cells."""
    rng = random.Random(seed)
    scenes = []
    for _ in range(n):
        colors = rng.sample(list(COLORS), 5)
        cells = rng.sample(CELLS, 5)
        scenes.append(Scene(tuple(Obj(rng.choice(SHAPES), c, "small", cell) for c, cell in zip(colors, cells,
                                                                                               strict=True))))
    return scenes


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Scene]]:
    root = tmp_path_factory.mktemp("crowded")
    scenes = crowded_scenes(40, seed=2)
    (root / "images").mkdir()
    for i, scene in enumerate(scenes):
        render_scene(scene, 128).save(root / "images" / f"{i:03d}.png")
    with Collection.create(root / "coll", "builtin:shapes-tiny", 256) as coll:
        coll.add(root / "images", options=IndexOptions(regions=(2, 3)))
    return root / "coll", scenes


def recall_at_1(coll: Collection, scenes: list[Scene], regions: bool) -> float:
    hits = []
    for i, scene in enumerate(scenes):
        target = scene.objects[i % len(scene.objects)]
        found = coll.search(Query(text=f"a {target.color} {target.shape}", k=1, regions=regions))
        best = scenes[int(Path(found[0].path).stem)]
        hits.append(any((o.shape, o.color) == (target.shape, target.color) for o in best.objects))
    return float(np.mean(hits))


def test_crops_find_small_objects_better_than_whole_images(crowded: tuple[Path, list[Scene]]) -> None:
    path, scenes = crowded
    with Collection.open(path) as coll:
        assert len(coll.vectors("region")) == 40 * 13
        assert coll.info().region_vectors == 40 * 13 and coll.info().dead_vectors == 0
        whole, crops = recall_at_1(coll, scenes, False), recall_at_1(coll, scenes, True)
        hit = coll.search(Query(text="a red star", k=5, regions=True))
    assert crops > whole, (whole, crops)
    boxes = [h.region for h in hit if h.region is not None]
    assert boxes and all(0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in boxes)


def test_crop_grid_covers_the_image() -> None:
    boxes = crop_boxes((2, 3))
    assert len(boxes) == 13
    assert boxes[0] == (0.0, 0.0, 0.75, 0.75) and boxes[3] == (0.25, 0.25, 1.0, 1.0)
    assert max(b[2] for b in boxes) == 1.0 and max(b[3] for b in boxes) == 1.0


def test_removing_an_item_removes_its_regions(crowded: tuple[Path, list[Scene]], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "coll"
    shutil.copytree(crowded[0], copy)
    with Collection.open(copy) as coll:
        removed = coll.remove("*/000.png")
        assert removed == 1
        assert len(coll.vectors("region")) == 39 * 13


def test_heatmap_is_hot_where_the_object_is(crowded: tuple[Path, list[Scene]]) -> None:
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from clipdex.encoders import load_encoder
    from clipdex.search.heatmap import NEUTRAL, window_scores
    from clipdex.serve import ServeConfig, create_app

    path, scenes = crowded
    enc = load_encoder()
    # one object alone: the windows over it must outscore those of every other corner
    corners = {(0, 0): (slice(0, 40), slice(0, 40)), (0, 2): (slice(0, 40), slice(88, 128)),
               (2, 0): (slice(88, 128), slice(0, 40)), (2, 2): (slice(88, 128), slice(88, 128))}
    baseline = enc.encode_texts([NEUTRAL])[0]
    for cell in corners:
        scene = Scene((Obj("star", "red", "large", cell),))
        scores = window_scores(render_scene(scene, 128), enc.encode_texts(["a red star"])[0], enc,
                               baseline=baseline)
        means = {c: float(scores[rows, cols].mean()) for c, (rows, cols) in corners.items()}
        assert max(means, key=means.__getitem__) == cell, means
    client = TestClient(create_app(ServeConfig(collections={"c": path})))
    response = client.get("/api/items/1/heatmap", params={"q": "a red star"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (128, 128)
    assert client.get("/api/items/1/heatmap", params={"q": ""}).status_code == 422
    assert client.get("/api/items/99999/heatmap", params={"q": "x"}).status_code == 404


def test_cli_heatmap(crowded: tuple[Path, list[Scene]], tmp_path: Path) -> None:
    from PIL import Image

    from clipdex.cli import app_main

    out = tmp_path / "h.png"
    assert app_main(["heatmap", str(crowded[0]), "1", "a red star", "--out", str(out)]) == 0
    assert Image.open(out).size == (128, 128)
    assert app_main(["heatmap", str(crowded[0]), "1", " ", "--out", str(out)]) == 2
