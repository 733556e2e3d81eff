"""Exploring a collection on the synthetic world, where the truth is known: tags against the scenes'
shapes and colours, a probe against a held-out attribute, clusters against scene types, the map
against near duplicates. Each test prints its figure (pytest -s shows them)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from clipdex import Collection
from clipdex.cli import app_main
from clipdex.search.query import parse_where
from clipdex.synth.render import render_scene
from clipdex.synth.world import COLORS, SHAPES, Obj, Scene, sample_scenes

pytestmark = pytest.mark.e2e
BUILTIN = "builtin:shapes-tiny"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Scene]]:
    """A collection of 240 synthetic scenes (built-in model) and the scenes, by file name order."""
    root = tmp_path_factory.mktemp("world")
    scenes = sample_scenes(240, seed=23)
    (root / "images").mkdir()
    for i, scene in enumerate(scenes):
        render_scene(scene, 64).save(root / "images" / f"{i:04d}.png")
    assert app_main(["index", str(root / "images"), "-c", str(root / "c"), "--model", BUILTIN]) == 0
    return root, scenes


def _truth_by_item(coll: Collection, scenes: list[Scene]) -> dict[int, Scene]:
    ids, _ = coll.item_vectors()
    return {i: scenes[int(Path(r.path).stem)] for i, r in coll.items(ids.tolist()).items()}


def test_tags_recover_the_shapes_and_colours(world: tuple[Path, list[Scene]], capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    root, scenes = world
    vocab = root / "vocab.txt"
    vocab.write_text("# the synthetic world's words\n" + "\n".join([*COLORS, *SHAPES]) + "\n")
    capsys.readouterr()
    assert app_main(["tag", str(root / "c"), "--vocab", str(vocab), "--top", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["concepts"] == 18 and report["items"] == 240 and set(report["thresholds"]) == {*COLORS, *SHAPES}
    with Collection.open(root / "c") as coll:
        truth = _truth_by_item(coll, scenes)
        tagged = {i: set(r.metadata.get("tags", [])) for i, r in coll.items(list(truth)).items()}
        hits = sum(len(tagged[i] & ({o.shape for o in s.objects} | {o.color for o in s.objects}))
                   for i, s in truth.items())
        given = sum(len(t) for t in tagged.values())
        true = sum(len({o.shape for o in s.objects} | {o.color for o in s.objects}) for s in truth.values())
        precision, recall = hits / given, hits / true
        with capsys.disabled():
            print(f"\ntags vs scene truth: precision {precision:.3f}, recall {recall:.3f} ({given} tags, {true} true)")
        assert precision >= 0.85 and recall >= 0.75
        # a tag is a filter like any other field
        red = {i for i, s in truth.items() if "red" in {o.color for o in s.objects}}
        found = set(coll.filter_item_ids(parse_where(["tags=red"])).tolist())
        assert len(found & red) / len(found) >= 0.85
    # the built-in vocabulary loads and tags too (visual data types, subjects, shapes and colours)
    capsys.readouterr()
    assert app_main(["tag", str(root / "c"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["concepts"] > 80 and report["tagged"] > 0


def test_a_probe_from_20_and_20_examples_separates_a_held_out_attribute(
        world: tuple[Path, list[Scene]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from clipdex.metrics import roc_auc

    monkeypatch.setenv("CLIPDEX_DATA_DIR", str(world[0] / "data"))
    root, scenes = world
    with Collection.open(root / "c") as coll:
        truth = _truth_by_item(coll, scenes)
    has_star = {i: any(o.shape == "star" for o in s.objects) for i, s in truth.items()}
    rng = random.Random(4)
    positives = rng.sample(sorted(i for i, v in has_star.items() if v), 20)
    negatives = rng.sample(sorted(i for i, v in has_star.items() if not v), 20)
    args = ["probe", "train", "star", "-c", str(root / "c"), "--json"]
    for i in positives:
        args += ["-p", str(i)]
    listed = root / "negatives.txt"
    listed.write_text("\n".join(str(i) for i in negatives) + "\n")
    capsys.readouterr()
    assert app_main([*args, "-n", str(listed)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert (trained["positives"], trained["negatives"]) == (20, 20) and trained["applied"]["items"] == 240
    with Collection.open(root / "c") as coll:
        held_out = [i for i in truth if i not in set(positives) | set(negatives)]
        records = coll.items(held_out)
        scores = np.array([records[i].metadata["star"] for i in held_out])
        labels = np.array([has_star[i] for i in held_out])
        auc = roc_auc(scores, labels)
        with capsys.disabled():
            print(f"\nprobe 'star' (20 + 20 examples): held-out ROC AUC {auc:.3f} over {len(held_out)} items, "
                  f"cross-validated {trained['cv_auc']:.3f}")
        assert auc >= 0.9
        above = set(coll.filter_item_ids(parse_where([f"star>={trained['threshold']}"])).tolist())
        base_rate = sum(has_star.values()) / len(has_star)
        # the filter keeps what the probe scores above its threshold, and that is mostly stars
        assert above == {i for i in held_out if records[i].metadata["star"] >= trained["threshold"]} | {
            i for i in set(positives) | set(negatives)
            if coll.item(i).metadata["star"] >= trained["threshold"]}
        assert sum(has_star[i] for i in above) / len(above) >= 2 * base_rate
    # registered by name: curate takes it as a filter
    from clipdex.curate import curate

    images = root / "pool"
    images.mkdir()
    for i, scene in enumerate(scenes[:40]):
        render_scene(scene, 64).save(images / f"{i:04d}.png")
        (images / f"{i:04d}.txt").write_text("a scene")
    result = curate(images, root / "curated", ["probe:star>0.5"])
    assert 0 < result.kept < 40 and result.steps[-1].filter.startswith("probe")
    import pyarrow.parquet as pq

    decisions = pq.read_table(root / "curated" / "decisions.parquet").to_pylist()
    kept = [any(o.shape == "star" for o in scenes[int(Path(str(d["key"])).stem)].objects) for d in decisions
            if d["kept"]]
    pool_rate = np.mean([any(o.shape == "star" for o in s.objects) for s in scenes[:40]])
    assert np.mean(kept) >= 2 * pool_rate  # the curated pool is mostly the probe's stars
    assert app_main(["probe", "apply", "nothing", "-c", str(root / "c")]) == 4
    assert app_main(["curate", str(images), "--out", str(root / "c2"), "-f", "probe:nothing>0.5"]) == 2


def test_clusters_agree_with_scene_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.metrics import adjusted_rand_score

    # four scene types (a large object of one colour and shape), drawn anywhere, any size, any background
    kinds = [("red", "circle"), ("blue", "square"), ("green", "star"), ("yellow", "triangle")]
    rng = random.Random(7)
    (tmp_path / "images").mkdir()
    truth = []
    for i in range(120):
        colour, shape = kinds[i % 4]
        scene = Scene((Obj(shape, colour, rng.choice(["medium", "large"]), (rng.randrange(3), rng.randrange(3))),),
                      rng.choice(["white", "gray", "beige", "mint", "sky"]))
        render_scene(scene, 64).save(tmp_path / "images" / f"{i:04d}.png")
        truth.append(i % 4)
    assert app_main(["index", str(tmp_path / "images"), "-c", str(tmp_path / "c"), "--model", BUILTIN]) == 0
    capsys.readouterr()
    assert app_main(["clusters", str(tmp_path / "c"), "-k", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["k"] == 4 and sum(c["size"] for c in report["clusters"]) == 120
    with Collection.open(tmp_path / "c") as coll:
        records = coll.items(range(1, 121))
        found = [records[i].metadata["cluster"] for i in sorted(records, key=lambda i: records[i].path)]
        labels = {records[i].metadata["cluster_label"] for i in records}
    ari = adjusted_rand_score(truth, found)
    with capsys.disabled():
        print(f"\nclusters vs scene types: adjusted Rand index {ari:.3f}; labels {sorted(labels)}")
    assert ari >= 0.8
    # each cluster's label names its type's colour or shape
    for cluster in report["clusters"]:
        assert any(word in cluster["label"] for kind in kinds for word in kind), cluster


def test_scores_and_the_map_put_near_duplicates_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from PIL import Image

    scenes = sample_scenes(60, seed=31)
    (tmp_path / "images").mkdir()
    for i, scene in enumerate(scenes):
        render_scene(scene, 64).save(tmp_path / "images" / f"{i:04d}.png")
    for i in range(10):  # near copies: the same scene re-encoded smaller
        copy = render_scene(scenes[i], 64).resize((56, 56), Image.BILINEAR)
        copy.save(tmp_path / "images" / f"{i:04d}-copy.jpg", quality=85)
    assert app_main(["index", str(tmp_path / "images"), "-c", str(tmp_path / "c"), "--model", BUILTIN]) == 0
    capsys.readouterr()
    assert app_main(["scores", str(tmp_path / "c"), "--threshold", "0.85", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["duplicate_groups"] >= 5  # resized copies: cosine 0.87 to 0.995
    assert app_main(["map", str(tmp_path / "c"), "--method", "pca", "--out", str(tmp_path / "m.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["refitted"] and report["items"] == 70 and report["method"] == "pca"
    points = {int(i): (x, y) for i, x, y in json.loads((tmp_path / "m.json").read_text())["points"]}
    with Collection.open(tmp_path / "c") as coll:
        records = coll.items(list(points))
        by_name = {Path(r.path).name: i for i, r in records.items()}
        copies = [(by_name[f"{i:04d}.png"], by_name[f"{i:04d}-copy.jpg"]) for i in range(10)]
        pair = np.array([np.hypot(*np.subtract(points[a], points[b])) for a, b in copies])
        rng = np.random.default_rng(0)
        ids = list(points)
        random_pairs = np.array([np.hypot(*np.subtract(points[a], points[b]))
                                 for a, b in rng.choice(ids, (200, 2))])
        with capsys.disabled():
            print(f"\nmap: median distance of near-duplicate pairs {np.median(pair):.4f}, "
                  f"of random pairs {np.median(random_pairs):.4f}")
        assert np.median(pair) < 0.2 * np.median(random_pairs)
        # scores are fields: copies are the least unique
        meta = {i: r.metadata for i, r in records.items()}
        copy_ids = {b for _, b in copies} | {a for a, _ in copies}
        unique_copies = np.median([meta[i]["uniqueness"] for i in copy_ids])
        unique_rest = np.median([meta[i]["uniqueness"] for i in meta if i not in copy_ids])
        assert unique_copies < unique_rest and all(0 <= m["representativeness"] <= 1 for m in meta.values())
        assert all("dup_group" in meta[a] and meta[a]["dup_group"] == meta[b]["dup_group"] for a, b in copies)
    # new items are placed among their neighbours; the points already there do not move
    for i in range(10, 14):
        copy = render_scene(scenes[i], 64).resize((56, 56), Image.BILINEAR)
        copy.save(tmp_path / "images" / f"{i:04d}-copy.jpg", quality=85)
    assert app_main(["index", str(tmp_path / "images"), "-c", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert app_main(["map", str(tmp_path / "c"), "--method", "pca", "--out", str(tmp_path / "m2.json"),
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not report["refitted"] and report["placed"] == 4 and report["items"] == 74
    again = {int(i): (x, y) for i, x, y in json.loads((tmp_path / "m2.json").read_text())["points"]}
    assert all(again[i] == points[i] for i in points)
    with Collection.open(tmp_path / "c") as coll:
        names = {Path(r.path).name: i for i, r in coll.items(list(again)).items()}
    for i in range(10, 14):
        a, b = names[f"{i:04d}.png"], names[f"{i:04d}-copy.jpg"]
        assert np.hypot(*np.subtract(again[a], again[b])) < np.median(random_pairs) / 4


def test_umap_layout_when_umap_learn_is_installed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("umap", reason="umap-learn is in the dev extra; without it the map uses PCA")
    scenes = sample_scenes(40, seed=5)
    (tmp_path / "images").mkdir()
    for i, scene in enumerate(scenes):
        render_scene(scene, 64).save(tmp_path / "images" / f"{i:04d}.png")
    assert app_main(["index", str(tmp_path / "images"), "-c", str(tmp_path / "c"), "--model", BUILTIN]) == 0
    capsys.readouterr()
    assert app_main(["map", str(tmp_path / "c"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "umap" and report["items"] == 40


def test_the_map_of_an_embedding_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.embeddings.layout import write_clip_retrieval

    rng = np.random.default_rng(2)
    centres = rng.standard_normal((3, 32)).astype(np.float32)
    x = centres[np.arange(90) % 3] + 0.1 * rng.standard_normal((90, 32)).astype(np.float32)
    keys = [f"k{i}" for i in range(90)]
    write_clip_retrieval(tmp_path / "emb", x, {"key": keys, "caption": keys})
    assert app_main(["map", str(tmp_path / "emb"), "--method", "pca", "--out", str(tmp_path / "p.csv"),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 90
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "id,x,y" and len(rows) == 91
    xy = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    spread = [xy[np.arange(90) % 3 == c].std(axis=0).max() for c in range(3)]
    centre = [xy[np.arange(90) % 3 == c].mean(axis=0) for c in range(3)]
    assert max(spread) < 0.1 < min(np.hypot(*(centre[a] - centre[b])) for a, b in ((0, 1), (0, 2), (1, 2)))
