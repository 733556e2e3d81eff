from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from clipdex import Collection, IndexOptions, Query, load_encoder
from clipdex.errors import BadQueryError, CollectionError, CollectionLockedError
from clipdex.media import Item
from clipdex.search import Target
from helpers import solid

pytestmark = pytest.mark.integration


@pytest.fixture()
def coll(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> Collection:
    enc = load_encoder(tiny_spec)
    c = Collection.create(tmp_path / "c", enc.spec, enc.dim)
    c.use_encoder(enc)
    c.add(scenes_folder, enc)
    return c


def _vector_rows(c: Collection) -> tuple[int, int]:
    n_items = c.conn.execute("SELECT COUNT(*) FROM items WHERE status = 'ok'").fetchone()[0]
    n_vec = c.conn.execute("SELECT COUNT(DISTINCT item_id) FROM vectors WHERE kind='image'").fetchone()[0]
    return n_items, n_vec


def test_index_then_search_every_way(coll: Collection, scenes_folder: Path) -> None:
    info = coll.info()
    assert info.ok == 60 and info.image_vectors == 60 and info.caption_vectors == info.captions == 300
    hits = coll.search("a red circle", k=5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score
    assert all(h.path.startswith(str(scenes_folder)) and h.caption for h in hits)
    query_image = scenes_folder / "images" / "000004.png"
    same = coll.search(Query(image=str(query_image), k=3))
    assert same[0].path == str(query_image) and same[0].score == pytest.approx(1.0, abs=1e-2)
    caps = coll.search(Query(image=str(query_image), k=5, target=Target.CAPTIONS))
    assert len(caps) == 5 and all(c.caption for c in caps)


def test_search_matches_brute_force(coll: Collection) -> None:
    enc = coll.encoder()
    view = coll.vectors("image")
    q = enc.encode_texts(["two blue stars"])[0]
    expected = np.argsort(-(view.matrix @ q))[:10]
    got = [h.id for h in coll.search("two blue stars", k=10)]
    assert got == view.item_ids[expected].tolist()


def test_reindex_skips_unchanged_and_reembeds_changed(coll: Collection, tmp_path: Path, tiny_spec: str) -> None:
    data = tmp_path / "d"
    data.mkdir()
    for i in range(4):
        solid((60 * i, 0, 0)).save(data / f"{i}.png")
    enc = coll.encoder()
    c = Collection.create(tmp_path / "c2", enc.spec, enc.dim)
    first = c.add(data, enc)
    assert (first.added, first.skipped) == (4, 0)
    again = c.add(data, enc)
    assert (again.added, again.updated, again.skipped) == (0, 0, 4)
    before = c.search(Query(image=str(data / "1.png"), k=1))[0]
    solid((0, 0, 250)).save(data / "1.png")
    os.utime(data / "1.png", ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = c.add(data, enc)
    assert (changed.added, changed.updated, changed.skipped) == (0, 1, 3)
    after = c.search(Query(image=str(data / "1.png"), k=1))[0]
    assert after.id == before.id and after.score == pytest.approx(1.0, abs=1e-2)
    assert _vector_rows(c) == (4, 4)


def test_prune_and_remove(tmp_path: Path, tiny_spec: str) -> None:
    data = tmp_path / "d"
    (data / "old").mkdir(parents=True)
    for name in ("a.png", "b.png", "old/c.png", "old/d.png"):
        solid((10, 200, 30)).save(data / name)
    enc = load_encoder(tiny_spec)
    c = Collection.create(tmp_path / "c", enc.spec, enc.dim)
    c.add(data, enc)
    assert c.remove("old/*") == 2
    assert {Path(h.path).name for h in c.search("x", k=10)} == {"a.png", "b.png"}
    (data / "a.png").unlink()
    report = c.add(data, enc, IndexOptions(prune=True))
    assert report.pruned == 1
    # the removed old/* files are still on disk, so they come back; a.png does not
    assert {Path(h.path).name for h in c.search("x", k=10)} == {"b.png", "c.png", "d.png"}


def test_other_encoder_is_refused(coll: Collection, tmp_path: Path) -> None:
    with pytest.raises(CollectionError, match="was built with"):
        Collection.create(coll.path, "builtin:other", 16, exist_ok=True)
    with pytest.raises(CollectionError, match="already exists"):
        Collection.create(coll.path, coll.encoder_spec, 16)


def test_missing_collection_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CollectionError, match="no collection at"):
        Collection.open(tmp_path / "nothing")


def test_where_filter_and_min_score(tmp_path: Path, tiny_spec: str) -> None:
    enc = load_encoder(tiny_spec)
    c = Collection.create(tmp_path / "c", enc.spec, enc.dim)
    items = []
    for i in range(6):
        solid((40 * i, 100, 100)).save(tmp_path / f"{i}.png")
        items.append(Item(str(tmp_path / f"{i}.png"), [f"caption {i}"], {"group": "even" if i % 2 == 0 else "odd"}))
    c.add(items, enc)
    hits = c.search(Query(text="a red circle", k=10, where={"group": "odd"}))
    assert len(hits) == 3 and all(h.metadata["group"] == "odd" for h in hits)
    everything = c.search("a red circle", k=10)
    floor = everything[2].score
    assert [h.id for h in c.search(Query(text="a red circle", k=10, min_score=floor))] == [h.id for h in everything[:3]]


@pytest.mark.parametrize("query", [Query(), Query(text="   "), Query(text="x", k=0), Query(text="x", k=-2),
                                   Query(text="x", image=b"1"), Query(text="x", min_score=3.0)])
def test_bad_queries_raise(coll: Collection, query: Query) -> None:
    with pytest.raises(BadQueryError):
        coll.search(query)


def test_query_image_that_is_not_an_image(coll: Collection, tmp_path: Path) -> None:
    (tmp_path / "q.jpg").write_text("hello")
    with pytest.raises(BadQueryError, match="query image: not an image"):
        coll.search(Query(image=str(tmp_path / "q.jpg")))


def test_ann_index_with_delta_and_removals(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> None:
    enc = load_encoder(tiny_spec)
    c = Collection.create(tmp_path / "c", enc.spec, enc.dim)
    c.add(scenes_folder, enc, IndexOptions(index_factory="IVF4,Flat"))
    assert c.info().index == "IVF4,Flat over 60"
    # new images after the index was built are searched exactly beside it; removed ones are filtered
    extra = tmp_path / "extra"
    extra.mkdir()
    solid((250, 250, 0)).save(extra / "new.png")
    c.add(extra, enc, IndexOptions(ann_threshold=10**9))
    assert c.remove("*000001.png") == 1
    ann = c.ann()
    assert ann is not None and len(ann.vec_ids) == 60  # still the old snapshot
    ann.nprobe = 4  # probe every list: the ANN part is then exact
    new_vec = enc.encode_images([solid((250, 250, 0))])[0]
    hits = c.search(Query(image=solid((250, 250, 0)), k=8))
    view = c.vectors("image")
    expected = view.item_ids[np.argsort(-(view.matrix @ new_vec))[:8]].tolist()
    assert [h.id for h in hits] == expected
    assert hits[0].path.endswith("new.png")
    assert not any(h.path.endswith("000001.png") for h in c.search(Query(text="x", k=61)))


def test_bad_factory_is_a_clear_error(coll: Collection) -> None:
    with pytest.raises(CollectionError, match="bad index factory"):
        coll.build_index("NotAnIndex")


def test_second_writer_waits_or_fails_clearly(coll: Collection) -> None:
    script = (f"import time; from clipdex.store.lock import WriteLock; from pathlib import Path\n"
              f"l = WriteLock(Path({str(coll.path)!r})); l.acquire(); print('locked', flush=True); time.sleep(3)")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(CollectionLockedError, match=f"pid {holder.pid}"):
            coll.remove("nothing*")
        assert coll.remove("nothing*", wait=10) == 0  # waits for the holder to finish
    finally:
        holder.kill()
        holder.wait()


def test_add_embedded_vectors(tmp_path: Path, tiny_spec: str) -> None:
    from clipdex.store import add_embedded

    enc = load_encoder(tiny_spec)
    c = Collection.create(tmp_path / "c", enc.spec, enc.dim)
    c.use_encoder(enc)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, enc.dim)).astype(np.float32)
    items = [Item(f"/virtual/{i}.jpg", [], {"n": i}) for i in range(50)]
    assert add_embedded(c, items, vectors) == 50
    hits = c.search(Query(vector=vectors[7], k=1))
    assert hits[0].path == "/virtual/7.jpg" and hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert add_embedded(c, items[:5], vectors[:5] * 2) == 5  # replaced, not duplicated
    assert c.info().image_vectors == 50
    with pytest.raises(ValueError, match="expected vectors of shape"):
        add_embedded(c, items[:2], vectors[:3])
