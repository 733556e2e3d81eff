"""Search beyond a text box: quality of each query kind, and latency per kind at 100k items.

Quality (built-in model, synthetic world):
  * composed retrieval on synthetic CIRR triplets: R@1/5/10 for image-only,
    text-only, sum, pdv and caption-fusion;
  * words: scenes with a sign and no captions, indexed with --ocr; R@1 of a
    query for the sign's word, dense vs lexical vs hybrid;
  * regions: crowded scenes (five small objects), R@1 for one object, whole
    image vs region crops (index --regions 2,3);
  * diversity: near-duplicate pairs (cosine >= 0.98) in the top 10 and the
    query colour's share, plain vs MMR (0.8) vs collapse (0.98), on a pool with
    near/exact duplicates.
Latency: p50/p99 per query kind over a 100k-item collection (random CLIP-like
vectors, grammar captions), against plain dense search as the baseline
(region search is measured for quality only: its cost is an exact scan of
13x more vectors).

    python benchmarks/bench_search_kinds.py [--items 100000] [--work build/bench-search-kinds]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from pathlib import Path

import numpy as np


def composed(work: Path) -> dict[str, dict[str, float]]:
    from clipdex.encoders import load_encoder
    from clipdex.evaluate import run_composed
    from clipdex.synth.companions import write_composed

    write_composed(work / "cirr", 300, seed=5, size=64)
    enc = load_encoder()
    out = {}
    for method in ("image", "text", "sum", "pdv", "caption-fusion"):
        res = run_composed(work / "cirr" / "captions" / "cap.rc2.val.json", enc, method)
        out[method] = {f"R@{k}": round(res.value(f"cirr_R@{k}"), 3) for k in (1, 5, 10)}
    return out


def words(work: Path) -> dict[str, float]:
    from clipdex import Collection
    from clipdex.indexing import IndexOptions
    from clipdex.search import Query
    from clipdex.synth import WorldConfig, write_scenes
    from clipdex.synth.world import WORDS

    write_scenes(work / "signs", 64, seed=8, fmt="folder", size=96, world=WorldConfig(p_word=1.0))
    for sidecar in (work / "signs" / "images").glob("*.txt"):
        sidecar.unlink()
    truth = {json.loads(line)["key"]: json.loads(line)["word"]
             for line in (work / "signs" / "scenes.jsonl").read_text().splitlines()}
    out: dict[str, float] = {}
    with Collection.create(work / "signs-coll", "builtin:shapes-tiny", 256) as coll:
        t = time.perf_counter()
        coll.add(work / "signs" / "images", options=IndexOptions(ocr=True))
        out["index_with_ocr_images_per_second"] = round(64 / (time.perf_counter() - t), 2)
        for mode in ("dense", "lexical", "hybrid"):
            hits = [coll.search(Query(text=w, k=1, mode=mode)) for w in WORDS if w in truth.values()]
            out[f"{mode}_R@1"] = round(float(np.mean([bool(h) and truth[Path(h[0].path).stem] == w
                                                       for h, w in zip(hits, WORDS, strict=False)])), 3)
    return out


def diversity(work: Path) -> dict[str, dict[str, int]]:
    from clipdex import Collection
    from clipdex.search import Query
    from clipdex.synth.companions import write_noisy_pool

    write_noisy_pool(work / "pool", 400, seed=21, size=64, shares={"near_duplicate": 0.25, "exact_duplicate": 0.1})
    out = {}
    with Collection.create(work / "pool-coll", "builtin:shapes-tiny", 256) as coll:
        coll.add(work / "pool" / "pool.parquet")
        view = coll.vectors("image")
        row_of = {int(i): r for r, i in enumerate(view.item_ids)}
        for name, extra in (("plain", {}), ("mmr_0.8", {"diversity": 0.8}), ("collapse_0.98", {"collapse": 0.98})):
            pairs = relevant = 0
            for color in ("red", "blue", "green", "yellow", "purple", "orange", "pink", "brown"):
                hits = coll.search(Query(text=f"a {color} circle", k=10, **extra))  # type: ignore[arg-type]
                v = view.matrix[[row_of[h.id] for h in hits]]
                pairs += int((np.triu(v @ v.T, 1) >= 0.98).sum())
                relevant += sum(color in (h.caption or "") for h in hits)
            out[name] = {"duplicate_pairs_in_top10": pairs, "relevant_in_top10": relevant}
    return out


def regions(work: Path, n: int = 200) -> dict[str, float]:
    """Crowded scenes (five small objects of distinct colours): R@1 for one of the objects, whole vs crops."""
    from clipdex import Collection
    from clipdex.indexing import IndexOptions
    from clipdex.search import Query
    from clipdex.synth.render import render_scene
    from clipdex.synth.world import CELLS, COLORS, SHAPES, Obj, Scene

    rng = random.Random(7)
    scenes = []
    for _ in range(n):
        colors, cells = rng.sample(list(COLORS), 5), rng.sample(CELLS, 5)
        scenes.append(Scene(tuple(Obj(rng.choice(SHAPES), c, "small", cell) for c, cell in zip(colors, cells,
                                                                                               strict=True))))
    (work / "crowded").mkdir()
    for i, scene in enumerate(scenes):
        render_scene(scene, 128).save(work / "crowded" / f"{i:03d}.png")
    out: dict[str, float] = {}
    with Collection.create(work / "crowded-coll", "builtin:shapes-tiny", 256) as coll:
        coll.add(work / "crowded", options=IndexOptions(regions=(2, 3)))
        for name, flag in (("whole_image_R@1", False), ("regions_R@1", True)):
            hits = []
            for i, scene in enumerate(scenes):
                target = scene.objects[i % 5]
                best = scenes[int(Path(coll.search(Query(text=f"a {target.color} {target.shape}", k=1,
                                                         regions=flag))[0].path).stem)]
                hits.append(any((o.shape, o.color) == (target.shape, target.color) for o in best.objects))
            out[name] = round(float(np.mean(hits)), 3)
    return out


def latency(work: Path, n: int) -> dict[str, dict[str, float]]:
    from clipdex import Collection
    from clipdex.media.sources import Item
    from clipdex.search import Query
    from clipdex.search.terms import parse_terms
    from clipdex.store import add_embedded
    from clipdex.synth.world import captions_for, sample_scenes

    rng = np.random.default_rng(0)
    scenes = sample_scenes(2000, 3)
    captions = [captions_for(s, 1, random.Random(i))[0] for i, s in enumerate(scenes)]
    centroids = rng.standard_normal((512, 256)).astype(np.float32)
    vectors = centroids[rng.integers(0, 512, n)] + 0.5 * rng.standard_normal((n, 256)).astype(np.float32)
    items = [Item(f"/virtual/{i:07d}.png", [captions[i % len(captions)]]) for i in range(n)]
    out: dict[str, dict[str, float]] = {}
    with Collection.create(work / "big", "builtin:shapes-tiny", 256) as coll:
        add_embedded(coll, items, vectors)
        kinds = {
            "dense": {}, "terms_3": {"terms": tuple(parse_terms('"a red circle" + "a star" - 0.5:"a blue square"'))},
            "mmr_0.8": {"diversity": 0.8}, "collapse_0.98": {"collapse": 0.98},
            "lexical": {"mode": "lexical"}, "hybrid_rrf": {"mode": "hybrid"},
            "rerank_prf_100": {"rerank": "prf"}, "composed_pdv": {"item_id": 7, "compose": "pdv"},
        }
        coll.search(Query(text="warm up", k=10, mode="lexical"))  # builds the BM25 index once
        for name, extra in kinds.items():
            times = []
            for i in range(40):
                text = None if "terms" in extra else captions[i]
                t = time.perf_counter()
                coll.search(Query(text=text, k=10, **extra))  # type: ignore[arg-type]
                times.append(1000 * (time.perf_counter() - t))
            times.sort()
            out[name] = {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[-1], 2)}
    base = out["dense"]["p50_ms"]
    for row in out.values():
        row["ratio_to_dense"] = round(row["p50_ms"] / base, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--work", default="build/bench-search-kinds")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = {"composed": composed(work), "words": words(work), "diversity": diversity(work), "regions": regions(work),
              "latency_at_items": args.items, "latency": latency(work, args.items)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
