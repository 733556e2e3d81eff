"""A photo library: EXIF as metadata, HEIC read (or each one counted), filters that say why they found nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from clipdex.cli import app_main

pytestmark = pytest.mark.e2e


def _photo(path: Path, colour: tuple[int, int, int], model: str | None = None, taken: str | None = None,
           gps: tuple[float, float] | None = None) -> None:
    image = Image.new("RGB", (64, 48), colour)
    exif = image.getexif()
    if model:
        exif[0x010F], exif[0x0110] = "FUJIFILM", model
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    if gps:
        lat, lon = gps
        exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: (abs(lat), 0.0, 0.0),
                                     3: "E" if lon >= 0 else "W", 4: (abs(lon), 0.0, 0.0)})
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif, quality=95)


def test_exif_is_searchable_metadata_and_an_empty_filter_says_why(tmp_path: Path, tiny_spec: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib"
    _photo(lib / "2025" / "a.jpg", (200, 30, 30), "X100V", "2025:06:01 10:11:12", (48.5, -2.25))
    _photo(lib / "2025" / "b.jpg", (30, 30, 200), "iPhone 12")
    _photo(lib / "2024" / "c.jpg", (30, 200, 30))
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    capsys.readouterr()
    assert app_main(["search", str(tmp_path / "c"), "a photo", "--where", "camera=X100V", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [Path(h["path"]).name for h in hits] == ["a.jpg"]
    meta = hits[0]["metadata"]
    assert meta["camera_make"] == "FUJIFILM" and meta["taken"] == "2025-06-01T10:11:12"
    assert (meta["gps_lat"], meta["gps_lon"]) == (48.5, -2.25)
    assert app_main(["search", str(tmp_path / "c"), "a photo", "--where", "camera=x100"]) == 0
    assert "no item has camera='x100' (some values here: X100V, iPhone 12)" in capsys.readouterr().out
    assert app_main(["search", str(tmp_path / "c"), "a photo", "--where", "lens=35mm"]) == 0
    assert "no item has a 'lens' field" in capsys.readouterr().out


def test_heic_photos_are_read(tmp_path: Path, tiny_spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 48), (60 * i, 90, 30)).save(lib / f"{i}.heic", quality=90)
    Image.new("RGB", (64, 48), (9, 9, 9)).save(lib / "x.jpg")
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c"), "--model", tiny_spec, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["failed"]) == (4, 0)


def test_a_moved_library_keeps_its_items_and_remove_can_stay_in_one_source(tmp_path: Path, tiny_spec: str,
                                                                          scenes_folder: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from clipdex import Collection

    shutil.copytree(scenes_folder, tmp_path / "old" / "lib")
    assert app_main(["index", str(tmp_path / "old" / "lib"), "--collection", str(tmp_path / "c"),
                     "--model", tiny_spec]) == 0
    (tmp_path / "new").mkdir()
    shutil.move(str(tmp_path / "old" / "lib"), str(tmp_path / "new" / "lib"))  # mtimes travel with the files
    capsys.readouterr()
    assert app_main(["index", str(tmp_path / "new" / "lib"), "--collection", str(tmp_path / "c"), "--prune",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["updated"], report["skipped"], report["pruned"]) == (0, 0, 60, 0)
    with Collection.open(tmp_path / "c") as coll:
        assert coll.info().items == 60
        assert all(r.path.startswith(str(tmp_path / "new" / "lib")) for r in coll.items(range(1, 61)).values())
        hits = coll.search("a red circle", k=10)
        assert len({h.path for h in hits}) == len(hits)  # each photo once
    # a second, separate source: remove --source keeps to one of them
    shutil.copytree(scenes_folder, tmp_path / "other")
    assert app_main(["index", str(tmp_path / "other"), "--collection", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert app_main(["remove", str(tmp_path / "c"), "--path", "images/00000*", "--source", str(tmp_path / "other"),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 10
    with Collection.open(tmp_path / "c") as coll:
        assert coll.info().items == 110


def test_compact_drops_dead_vectors_and_keeps_every_answer(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex import Collection, IndexOptions, load_encoder
    from clipdex.store import verify_collection

    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.add(scenes_folder, enc, IndexOptions(batch_size=16, index_factory="Flat", regions=(2,)))
        assert coll.remove("images/0000[0-2]*") == 30
        coll.use_encoder(enc)
        before = [(h.id, round(h.score, 4), h.region) for h in coll.search("a red circle", k=8, regions=True)]
        captions = [(h.id, h.caption) for h in coll.search("a red circle", k=5, target="captions")]
        dead = coll.info().dead_vectors
    assert dead > 0
    assert app_main(["compact", str(tmp_path / "c"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dropped"] == dead and report["bytes_after"] < report["bytes_before"] and report["index"] == "Flat"
    assert verify_collection(tmp_path / "c") == []
    with Collection.open(tmp_path / "c") as coll:
        coll.use_encoder(enc)
        assert coll.info().dead_vectors == 0 and coll.info().items == 30
        assert [(h.id, round(h.score, 4), h.region) for h in coll.search("a red circle", k=8, regions=True)] == before
        assert [(h.id, h.caption) for h in coll.search("a red circle", k=5, target="captions")] == captions
        coll.add(scenes_folder, enc)  # and the collection goes on: the removed 30 come back
        assert coll.info().items == 60


def test_deleted_photos_leave_the_results_before_any_prune(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> None:
    import shutil

    from clipdex import Collection, load_encoder

    shutil.copytree(scenes_folder, tmp_path / "lib")
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.use_encoder(enc)
        coll.add(tmp_path / "lib", enc)
        first = coll.search("a red circle", k=5)
        Path(first[0].path).unlink()
        Path(first[2].path).unlink()
        after = coll.search("a red circle", k=5)
    assert len(after) == 5 and {first[0].id, first[2].id}.isdisjoint(h.id for h in after)
    assert [h.id for h in after][:3] == [first[1].id, first[3].id, first[4].id]  # the rest keep their order


def test_serve_json_announces_where_it_listens(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> None:
    import socket
    import subprocess
    import sys

    from clipdex import Collection, load_encoder

    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.add(scenes_folder, enc)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen([sys.executable, "-m", "clipdex", "serve", str(tmp_path / "c"), "--port", str(port),
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        assert json.loads(line) == {"url": f"http://127.0.0.1:{port}", "collections": ["c"],
                                    "docs": f"http://127.0.0.1:{port}/docs"}
    finally:
        server.terminate()
        server.wait(timeout=30)
