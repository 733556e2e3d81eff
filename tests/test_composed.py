"""Composed image+text retrieval methods on the synthetic CIRR triplets with the built-in model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipdex.encoders import load_encoder
from clipdex.errors import BadQueryError
from clipdex.evaluate import run_composed
from clipdex.search.composed import compose_texts, composed_queries, fusion_scores
from clipdex.synth.companions import write_composed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cirr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cirr") / "cirr"
    write_composed(out, 200, seed=5, size=64)
    return out / "captions" / "cap.rc2.val.json"


def test_pdv_beats_either_side_alone_by_half_again(cirr: Path) -> None:
    enc = load_encoder()
    r1 = {m: run_composed(cirr, enc, m).value("cirr_R@1") for m in ("image", "text", "pdv")}
    assert r1["pdv"] >= 1.5 * max(r1["image"], r1["text"]), r1


def test_caption_fusion_and_pdv_beat_the_reference_image_alone(cirr: Path) -> None:
    enc = load_encoder()
    image = run_composed(cirr, enc, "image").value("cirr_R@1")
    fused = run_composed(cirr, enc, "caption-fusion").value("cirr_R@1")  # the default weights
    pdv = run_composed(cirr, enc, "pdv").value("cirr_R@1")
    print(f"\ncomposed R@1 on 200 triplets: image alone {image:.3f}, caption-fusion {fused:.3f}, pdv {pdv:.3f}")
    # measured (seed 5, 200 triplets, the style-trained built-in model): image alone 0.20, caption-fusion 0.23;
    # pdv is the method that carries the composed-retrieval goal (README: Search beyond a text box)
    assert fused >= image + 0.02, (fused, image)
    assert pdv >= image + 0.05, (pdv, image)


def test_methods_and_errors() -> None:
    enc = load_encoder()
    ref = enc.encode_texts(["a red circle"])  # any unit vector of the right width
    for method in ("image", "text", "sum", "caption-fusion"):
        q = composed_queries(method, enc, ref, ["make it blue"])
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert compose_texts(["a red circle."], [" make it blue "]) == ["a red circle, make it blue"]
    with pytest.raises(BadQueryError, match="pdv needs the reference image's caption"):
        composed_queries("pdv", enc, ref, ["make it blue"])
    with pytest.raises(BadQueryError, match="unknown composed method 'mix'"):
        composed_queries("mix", enc, ref, ["x"])
    scores = fusion_scores(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32),
                           np.array([[0, 1], [0, 0]], np.float32), np.array([True, False]), beta=0.5)
    np.testing.assert_allclose(scores, [[0.5, 0.0], [0.5, 1.0]])


@pytest.fixture(scope="module")
def cirr_collection(cirr: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic CIRR gallery indexed with its stored captions."""
    import json

    from clipdex import Collection
    from clipdex.media.sources import Item

    root = cirr.parent.parent
    captions = json.loads((cirr.parent / "gallery_captions.json").read_text())
    items = [Item(str(root / "images" / f"{name}.png"), caps) for name, caps in captions.items()]
    out = tmp_path_factory.mktemp("cirr-coll") / "coll"
    with Collection.create(out, "builtin:shapes-tiny", 256) as coll:
        coll.add(items)
    return out


def test_composed_search_on_a_collection(cirr: Path, cirr_collection: Path) -> None:
    import json

    from clipdex import Collection
    from clipdex.search import Query

    triplets = json.loads(cirr.read_text())[:60]
    with Collection.open(cirr_collection) as coll:
        id_of = {Path(coll.item(i).path).stem: i for i in range(1, len(coll.vectors("image")) + 1)}

        def recall_at_1(compose: str | None = None) -> float:
            found = []
            for t in triplets:
                text = t["caption"] if compose else None
                hits = coll.search(Query(item_id=id_of[t["reference"]], text=text, compose=compose, k=5))
                assert all(h.id != id_of[t["reference"]] for h in hits)  # never the reference itself
                found.append(hits[0].id == id_of[t["target_hard"]])
            return float(np.mean(found))

        image_only = recall_at_1()
        scores = {m: recall_at_1(compose=m) for m in ("sum", "pdv", "caption-fusion")}
    # Measured with the built-in model and the default weights: image alone 0.25, pdv 0.40 at R@1. (At R@5
    # the reference alone already finds the minimally edited target 70% of the time, pdv 68%: 42 vs 41 of 60.)
    assert scores["pdv"] > image_only, (scores, image_only)
    with pytest.raises(BadQueryError, match="reference \\(image or item_id\\) and a modification text"):
        Query(text="make it red", compose="pdv").validate()
