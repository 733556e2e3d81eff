"""Words: OCR at index time, BM25 over captions / file names / OCR text, and fusion with dense scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipdex import Collection
from clipdex.errors import BadQueryError
from clipdex.indexing import IndexOptions
from clipdex.search import Query
from clipdex.search.lexical import convex_fusion, rrf_fusion
from clipdex.synth import WorldConfig, write_scenes
from clipdex.synth.world import WORDS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Scenes with a sign on every image and no captions at all: only OCR can know the words."""
    root = tmp_path_factory.mktemp("signs")
    write_scenes(root / "data", 32, seed=8, fmt="folder", size=96, world=WorldConfig(p_word=1.0))
    for sidecar in (root / "data" / "images").glob("*.txt"):
        sidecar.unlink()
    words = {json.loads(line)["key"]: json.loads(line)["word"]
             for line in (root / "data" / "scenes.jsonl").read_text().splitlines()}
    with Collection.create(root / "coll", "builtin:shapes-tiny", 256) as coll:
        coll.add(root / "data" / "images", options=IndexOptions(ocr=True))
    return root / "coll", words


def _recall_at_1(coll: Collection, words: dict[str, str], mode: str) -> float:
    hits = []
    for word in WORDS:
        if word not in words.values():
            continue
        found = coll.search(Query(text=word, k=1, mode=mode))
        hits.append(bool(found) and words[Path(found[0].path).stem] == word)
    return float(np.mean(hits))


def test_ocr_words_are_searchable_where_dense_fails(signs: tuple[Path, dict[str, str]]) -> None:
    path, words = signs
    with Collection.open(path) as coll:
        item = coll.item(coll.search(Query(text="a sign", k=1))[0].id)
        assert words[Path(item.path).stem] in item.metadata["ocr"]
        recall = {mode: _recall_at_1(coll, words, mode) for mode in ("dense", "lexical", "hybrid")}
    assert recall["lexical"] >= 0.9, recall
    assert recall["hybrid"] >= 0.9, recall
    assert recall["dense"] <= 0.5, recall


def test_fusion_rules() -> None:
    scores, ids = rrf_fusion([np.array([1, 2, 3]), np.array([3, 4])])
    assert ids.tolist()[0] == 3  # in both lists
    np.testing.assert_allclose(scores[0], 1 / 63 + 1 / 61)
    scores, ids = convex_fusion((np.array([0.9, 0.1]), np.array([1, 2])), (np.array([5.0, 1.0]), np.array([2, 3])),
                                alpha=0.5)
    assert ids.tolist() == [1, 2, 3] and scores.tolist() == [0.5, 0.5, 0.0]


def test_mode_errors(signs: tuple[Path, dict[str, str]]) -> None:
    with Collection.open(signs[0]) as coll:
        for query, message in ((Query(text="x", mode="fuzzy"), "unknown mode 'fuzzy'"),
                               (Query(image=b"x", mode="lexical"), "lexical search takes a text query"),
                               (Query(text="x", mode="hybrid", fusion="max"), "unknown fusion 'max'")):
            with pytest.raises(BadQueryError, match=message):
                coll.search(query)
        assert coll.search(Query(text="zzzz", mode="lexical")) == []
