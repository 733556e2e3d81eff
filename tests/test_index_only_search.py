"""A plain query in a process that has not loaded the vectors is answered from the ANN index (mapped from
disk) plus an exact scan of the vectors added since, and gives the same hits as the general path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipdex import Collection, Query
from clipdex.media import Item
from clipdex.store import add_embedded

pytestmark = pytest.mark.integration


def _collection(root: Path, factory: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """3,000 indexed items, then 40 new ones the index lacks and 30 indexed ones removed; returns the folder,
    the first items' vectors (the first 30 removed) and the new ones."""
    rng = np.random.default_rng(7)
    folder = root / factory.replace(",", "_")
    first = rng.standard_normal((3000, 256)).astype(np.float32)
    newest = rng.standard_normal((40, 256)).astype(np.float32)
    with Collection.create(folder, "builtin:shapes-tiny", 256) as coll:
        add_embedded(coll, [Item(f"/elsewhere/{i:05d}.jpg", [f"caption {i}"], {}) for i in range(3000)], first)
        coll.build_index(factory)
        add_embedded(coll, [Item(f"/elsewhere/new-{i:03d}.jpg", [], {}) for i in range(40)], newest)
        assert coll.remove("/elsewhere/000[0-2]?.jpg") == 30
    return folder, first[:60], newest


@pytest.mark.parametrize("factory", ["IVF16,Flat", "HNSW16,Flat"])
def test_index_only_path_matches_the_general_path(tmp_path: Path, factory: str) -> None:
    folder, first, newest = _collection(tmp_path, factory)
    rng = np.random.default_rng(3)
    near = np.concatenate([first[:8], first[40:44], newest[:8]]) + 0.5 * rng.standard_normal((20, 256))
    queries = [Query(vector=v.astype(np.float32), k=10) for v in np.concatenate([near, rng.standard_normal((6, 256))])]
    with Collection.open(folder) as lean:
        lean.one_shot = True
        pages = [lean.search_page(q) for q in queries]
        assert not lean.has_vectors_loaded("image")  # answered without loading every vector
    with Collection.open(folder) as general:
        general.vectors("image")
        expected = [general.search_page(q) for q in queries]
    new_seen = 0
    for page, want in zip(pages, expected, strict=True):
        assert [h.id for h in page.hits] == [h.id for h in want.hits]
        assert np.allclose([h.score for h in page.hits], [h.score for h in want.hits], atol=1e-5)
        assert not any(h.path.startswith("/elsewhere/000") and int(h.path[-8:-4]) < 30 for h in page.hits)
        new_seen += sum("new-" in h.path for h in page.hits)
    assert new_seen > 0  # the vectors added after the index are searched too


def test_a_vector_matching_a_new_item_finds_it_first(tmp_path: Path) -> None:
    folder, _, newest = _collection(tmp_path, "IVF16,Flat")
    with Collection.open(folder) as coll:
        coll.one_shot = True
        hits = coll.search(Query(vector=newest[5], k=3))
        assert hits[0].path == "/elsewhere/new-005.jpg" and hits[0].score > 0.999
        assert not coll.has_vectors_loaded("image")
