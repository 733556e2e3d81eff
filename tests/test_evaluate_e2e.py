"""All five eval kinds end to end on the synthetic world, through the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from clipdex.cli import app_main
from clipdex.errors import SourceError
from clipdex.evaluate import load_result, run_retrieval
from clipdex.evaluate.datasets import load_retrieval
from clipdex.synth import render_scene, sample_scenes, write_scenes
from clipdex.synth.companions import write_composed
from clipdex.synth.world import WorldConfig

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evalworld")
    write_scenes(root / "karpathy", 50, seed=21, fmt="karpathy", size=32)
    write_composed(root / "cirr", 10, seed=22, size=32)
    classes = root / "classes"
    for i, scene in enumerate(sample_scenes(24, 23, WorldConfig(max_objects=1))):
        folder = classes / scene.objects[0].shape
        folder.mkdir(parents=True, exist_ok=True)
        render_scene(scene, 32).save(folder / f"{i}.png")
    prompts = root / "align"
    prompts.mkdir()
    with (prompts / "prompts.jsonl").open("w") as f:
        for i, scene in enumerate(sample_scenes(6, 24)):
            render_scene(scene, 32).save(prompts / f"{i}a.png")
            render_scene(sample_scenes(1, 100 + i)[0], 32).save(prompts / f"{i}b.png")
            f.write(json.dumps({"prompt": f"a scene {i}", "images": [f"{i}a.png", f"{i}b.png"], "best": 0}) + "\n")
    return root


def test_every_eval_kind_writes_json_markdown_and_png(world: Path, tmp_path: Path, tiny_spec: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    runs = {
        "retrieval": ["--data", str(world / "karpathy" / "dataset.json"), "--split", "all"],
        "zeroshot": ["--data", str(world / "classes")],
        "composed": ["--data", str(world / "cirr" / "captions" / "cap.rc2.val.json"), "--method", "sum"],
        "alignment": ["--prompts", str(world / "align" / "prompts.jsonl")],
    }
    expected = {"retrieval": {"t2i_R@1", "i2t_R@10", "datacomp_retrieval"}, "zeroshot": {"top1", "top5",
                "mean_per_class_recall"}, "composed": {"cirr_R@1", "cirr_R@50", "cirr_Rsubset@1"},
                "alignment": {"clipscore", "ranking_accuracy"}}
    for kind, args in runs.items():
        out = tmp_path / f"{kind}.json"
        assert app_main(["eval", kind, *args, "--model", tiny_spec, "--out", str(out)]) == 0, capsys.readouterr()
        result = load_result(out)
        assert expected[kind] <= set(result.metrics)
        for m in result.metrics.values():
            assert 0 <= m["value"] <= 2.5
        meta = result.meta
        assert meta["model"] == tiny_spec and meta["model_hash"] and meta["data_hash"]
        assert {"clipdex", "onnxruntime", "numpy"} <= set(meta["versions"]) and meta["definitions"]
        assert out.with_suffix(".md").read_text().startswith(f"**{kind}**")
        assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()


def test_ranking_full_and_rerank(world: Path, tmp_path: Path, tiny_spec: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    coll = tmp_path / "c"
    assert app_main(["index", str(world / "karpathy"), "-c", str(coll), "--model", tiny_spec]) == 0
    scenes = [json.loads(line) for line in (world / "karpathy" / "scenes.jsonl").read_text().splitlines()]
    images = world / "karpathy" / "images"
    red = [str(images / f"{s['key']}.png") for s in scenes if any(o["color"] == "red" for o in s["objects"])]
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"query": "a red shape", "relevant": red}) + "\n" + json.dumps(
        {"query": "a blue shape", "relevant": red[:1], "candidates": red[:3] + [str(images / "000049.png")]}) + "\n")
    out = tmp_path / "rank.json"
    assert app_main(["eval", "ranking", "--data", str(queries), "--collection", str(coll), "--out", str(out)]) == 0
    result = load_result(out)
    assert {"AP@50", "mAP@50", "nDCG@50", "P@10"} <= set(result.metrics) and result.meta["mode"] == "rerank"
    assert len(result.per_query["AP@50"]) == 2
    capsys.readouterr()


def test_results_are_reproducible_and_compare(world: Path, tmp_path: Path, tiny_spec: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = world / "karpathy" / "dataset.json"
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        assert app_main(["eval", "retrieval", "--data", str(data), "--split", "all", "--model", tiny_spec,
                         "--out", str(out)]) == 0
    ra, rb = load_result(a), load_result(b)
    assert ra.metrics == rb.metrics and ra.per_query == rb.per_query
    capsys.readouterr()
    assert app_main(["eval", "compare", str(a), str(b), "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["metrics"]["t2i_R@1"]["difference"] == 0 and not diff["metrics"]["t2i_R@1"]["significant"]


def test_bad_annotation_files(world: Path, tmp_path: Path, tiny_spec: str) -> None:
    from clipdex.encoders import load_encoder

    data = json.loads((world / "karpathy" / "dataset.json").read_text())
    data["images"][3]["filename"] = "missing.png"
    data["images"][0]["surprise"] = 1
    data["images"][4]["sentences"][0]["raw"] = "  "
    (tmp_path / "k.json").write_text(json.dumps(data))
    ds = load_retrieval(tmp_path / "k.json", world / "karpathy", split=None)
    assert ds.skipped["missing_image"] == 1 and ds.skipped["empty_caption"] == 1 and len(ds.images) == 49
    result = run_retrieval(tmp_path / "k.json", load_encoder(tiny_spec), world / "karpathy", split=None)
    assert result.meta["skipped"]["missing_image"] == 1 and result.meta["images"] == 49
    assert result.meta["unknown_fields"] == {"surprise": 1}
    data["images"][5]["imgid"] = data["images"][6]["imgid"]
    (tmp_path / "dup.json").write_text(json.dumps(data))
    with pytest.raises(SourceError, match=r"images\[6\] repeats image id"):
        load_retrieval(tmp_path / "dup.json", world / "karpathy")
    (tmp_path / "wrong.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(SourceError, match="not a Karpathy-split JSON"):
        load_retrieval(tmp_path / "wrong.json")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x"}\n')
    assert app_main(["eval", "alignment", "--prompts", str(tmp_path / "bad.jsonl"), "--model", tiny_spec]) == 2


def test_fashioniq_and_circo_formats(tmp_path: Path, tiny_spec: str) -> None:

    from clipdex.encoders import load_encoder
    from clipdex.evaluate import run_composed
    from clipdex.synth.companions import modify_scene

    rng = random.Random(0)
    scenes = sample_scenes(12, seed=31)
    fiq = tmp_path / "fiq"
    for sub in ("captions", "image_splits", "images"):
        (fiq / sub).mkdir(parents=True)
    names, rows = [], []
    for i, scene in enumerate(scenes):
        target, text = modify_scene(scene, rng)
        render_scene(scene, 32).save(fiq / "images" / f"ref{i}.png")
        render_scene(target, 32).save(fiq / "images" / f"tgt{i}.jpg")
        names += [f"ref{i}", f"tgt{i}"]
        rows.append({"candidate": f"ref{i}", "target": f"tgt{i}", "captions": [text, "is similar"]})
    (fiq / "captions" / "cap.dress.val.json").write_text(json.dumps(rows))
    (fiq / "image_splits" / "split.dress.val.json").write_text(json.dumps(names))
    enc = load_encoder(tiny_spec)
    res = run_composed(fiq / "captions" / "cap.dress.val.json", enc, "sum")
    assert res.meta["format"] == "fashioniq" and set(res.metrics) == {"fashioniq_R@10", "fashioniq_R@50"}
    assert res.value("fashioniq_R@50") == 1.0  # gallery of 24 minus the reference: every target is in the top 50

    circo = tmp_path / "circo"
    (circo / "annotations").mkdir(parents=True)
    (circo / "images").mkdir()
    for i, scene in enumerate(scenes):
        render_scene(scene, 32).save(circo / "images" / f"{1000 + i:012d}.png")
    ann = [{"id": 0, "reference_img_id": 1000, "relative_caption": "add a star", "gt_img_ids": [1001, 1002]},
           {"id": 1, "reference_img_id": 1003, "relative_caption": "make it red", "gt_img_ids": [1004]}]
    (circo / "annotations" / "val.json").write_text(json.dumps(ann))
    res = run_composed(circo / "annotations" / "val.json", enc, "text")
    assert res.meta["format"] == "circo"
    assert set(res.metrics) == {"circo_mAP@5", "circo_mAP@10", "circo_mAP@25", "circo_mAP@50"}
    assert all(0 <= m["value"] <= 1 for m in res.metrics.values())
    assert res.value("circo_mAP@50") > 0  # 11 candidates: every ground truth is in the top 50
