"""Tune the composed-retrieval weights on a validation split, then report them on a test split.

Both splits are synthetic CIRR triplets from different seeds; the gallery is
embedded once per split and every (method, weights) pair is scored on it.
Prints one JSON document: the grid, the best weights per method on
validation, and test R@1/5/10 of every method with those weights.

    python benchmarks/tune_composed.py [--n 300] [--work build/tune-composed]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
from pathlib import Path

import numpy as np


def split(work: Path, name: str, n: int, seed: int) -> dict[str, object]:
    """Embeddings of one split: gallery images, references, texts, captions, targets."""
    from clipdex.encode import embed_images
    from clipdex.encoders import load_encoder
    from clipdex.evaluate.datasets import load_composed
    from clipdex.evaluate.runner import gallery_caption_means
    from clipdex.synth.companions import write_composed

    write_composed(work / name, n, seed=seed, size=64)
    enc = load_encoder()
    ds = load_composed(work / name / "captions" / "cap.rc2.val.json")
    names = list(ds.gallery)
    index = {g: i for i, g in enumerate(names)}
    gallery, _ = embed_images(enc, [ds.gallery[g] for g in names])
    means, has = gallery_caption_means(enc, names, ds.gallery_captions)
    return {"enc": enc, "ds": ds, "gallery": gallery, "means": means, "has": has,
            "refs": np.asarray([index[r] for r in ds.references]),
            "targets": np.asarray([index[t[0]] for t in ds.targets])}


def recall(data: dict[str, object], method: str, params: object) -> dict[str, float]:
    from clipdex.metrics import rank_of_targets
    from clipdex.search.composed import composed_queries, fusion_scores

    ds, gallery, refs = data["ds"], data["gallery"], data["refs"]
    q = composed_queries(method, data["enc"], gallery[refs], ds.texts,  # type: ignore[index, attr-defined]
                         list(ds.reference_captions), params)  # type: ignore[attr-defined]
    if method == "caption-fusion":
        scores = fusion_scores(q, gallery, data["means"], data["has"], params.fusion_beta)  # type: ignore
    else:
        scores = q @ gallery.T  # type: ignore[union-attr]
    scores[np.arange(len(q)), refs] = -np.inf
    rank = rank_of_targets(scores, data["targets"])  # type: ignore[arg-type]
    return {f"R@{k}": round(float((rank < k).mean()), 3) for k in (1, 5, 10)}


def _varied(method: str, params: object) -> dict[str, float]:
    """The weights a method's grid varies, for the printed grid."""
    names = {"sum": ("weight",), "pdv": ("alpha_text", "beta"), "caption-fusion": ("fusion_alpha", "fusion_beta")}
    return {name: getattr(params, name) for name in names[method]}


def main() -> None:
    from clipdex.search.composed import ComposedParams

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--work", default="build/tune-composed")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    val, test = split(work, "val", args.n, seed=101), split(work, "test", args.n, seed=202)
    alphas, betas = (0.4, 0.6, 0.8, 1.0, 1.2, 1.4), (0.0, 0.1, 0.2, 0.3, 0.4, 0.55, 0.7, 0.9)
    grids = {
        "sum": [ComposedParams(weight=w) for w in (0.3, 0.4, 0.5, 0.6, 0.7)],
        "pdv": [ComposedParams(alpha_text=a, alpha_image=a, beta=b) for a, b in itertools.product(alphas, betas)],
        "caption-fusion": [ComposedParams(fusion_alpha=a, fusion_beta=b)
                           for a, b in itertools.product((0.3, 0.5, 0.7), (0.0, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8))],
    }
    out: dict[str, object] = {"val_seed": 101, "test_seed": 202, "triplets": args.n}
    best: dict[str, ComposedParams] = {}
    for method, grid in grids.items():
        scored = [(recall(val, method, p)["R@1"], i) for i, p in enumerate(grid)]
        best[method] = grid[max(scored)[1]]
        out[f"{method}_val_grid"] = [{**_varied(method, grid[i]), "val_R@1": r} for r, i in scored]
        out[f"{method}_val_best"] = {**best[method].__dict__, "val_R@1": max(scored)[0]}
    out["test"] = {m: recall(test, m, best.get(m, ComposedParams()))
                   for m in ("image", "text", "sum", "pdv", "caption-fusion")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
