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


def _heic_library(lib: Path, names: list[str]) -> None:
    """HEIC photos of these names (written with pillow-heif) and one JPEG, ``x.jpg``."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    lib.mkdir()
    for i, name in enumerate(names):
        Image.new("RGB", (64, 48), (60 * i, 90, 30)).save(lib / name, quality=90)
    Image.new("RGB", (64, 48), (9, 9, 9)).save(lib / "x.jpg")


def test_heic_and_avif_photos_are_read(tmp_path: Path, tiny_spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib"
    _heic_library(lib, ["0.heic", "1.heic", "2.heic"])
    Image.new("RGB", (64, 48), (200, 9, 9)).save(lib / "y.avif", quality=80)  # Pillow reads AVIF itself
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c"), "--model", tiny_spec, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["failed"]) == (5, 0)
    # how much of the run the model was busy (the rest: planning, decoding, storing)
    assert 0 < report["model_busy"] <= 1 and 0 < report["model_seconds"] <= report["seconds"]


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
    assert (report["added"], report["updated"], report["moved"], report["skipped"]) == (0, 0, 60, 0)
    assert report["pruned"] == 0
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


def _dated_library(lib: Path) -> None:
    _photo(lib / "paris.jpg", (200, 30, 30), "X100V", "2024:06:15 09:00:00", (48.8566, 2.3522))
    _photo(lib / "versailles.jpg", (30, 200, 30), "X100V", "2024:08:31 23:59:00", (48.8049, 2.1204))
    _photo(lib / "rome.jpg", (30, 30, 200), "iPhone 12", "2024:09:01 00:00:00", (41.9028, 12.4964))
    _photo(lib / "old.jpg", (90, 90, 90), "iPhone 12", "2019:01:01 12:00:00")
    _photo(lib / "scan.jpg", (250, 250, 250))  # no EXIF at all


def _names(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return sorted(Path(h["path"]).name for h in json.loads(capsys.readouterr().out)["hits"])


def test_where_takes_ranges_dates_and_a_place(tmp_path: Path, tiny_spec: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _dated_library(tmp_path / "lib")
    assert app_main(["index", str(tmp_path / "lib"), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    capsys.readouterr()
    search = ["search", str(tmp_path / "c"), "a photo", "-k", "10", "--json"]
    assert app_main([*search, "--where", "taken>=2024-06-01", "--where", "taken<2024-09-01"]) == 0
    assert _names(capsys) == ["paris.jpg", "versailles.jpg"]
    assert app_main([*search, "--where", "taken>=2024"]) == 0  # a year compares as the date's text
    assert _names(capsys) == ["paris.jpg", "rome.jpg", "versailles.jpg"]
    assert app_main([*search, "--where", "camera!=X100V"]) == 0  # also the photos with no camera recorded
    assert _names(capsys) == ["old.jpg", "rome.jpg", "scan.jpg"]
    assert app_main([*search, "--where", "gps_lat<45"]) == 0  # numbers compare as numbers
    assert _names(capsys) == ["rome.jpg"]
    assert app_main([*search, "--where", "width>=64", "--where", "height=48"]) == 0
    assert len(_names(capsys)) == 5
    assert app_main([*search, "--near", "48.8566,2.3522,5"]) == 0
    assert _names(capsys) == ["paris.jpg"]
    assert app_main([*search, "--near", "48.8566,2.3522,25"]) == 0  # Versailles is ~17 km away
    assert _names(capsys) == ["paris.jpg", "versailles.jpg"]
    assert app_main(["search", str(tmp_path / "c"), "a photo", "--near", "0,0,1"]) == 0
    assert "no photo was taken within 1 km of 0.0, 0.0 (3 items have a GPS position)" in capsys.readouterr().out
    for bad in (["--near", "48.8,2.3"], ["--near", "91,0,1"], ["--where", "=x"], ["--where", "camera"]):
        assert app_main(["search", str(tmp_path / "c"), "a photo", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_renamed_moved_and_touched_files_keep_their_vectors(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import shutil

    from clipdex import Collection

    lib = tmp_path / "lib"
    shutil.copytree(scenes_folder, lib)
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    with Collection.open(tmp_path / "c") as coll:
        vec_of = dict(zip(coll.vectors("image").item_ids.tolist(), coll.vectors("image").vec_ids.tolist(),
                          strict=True))
        id_of = {Path(r.path).name: r.id for r in coll.items(list(vec_of)).values()}
    images = lib / "images"
    (lib / "2025").mkdir()
    for ext in (".png", ".txt"):  # each photo with its caption file
        (images / f"000001{ext}").rename(images / f"renamed{ext}")  # renamed in place
        (images / f"000002{ext}").rename(lib / "2025" / f"000002{ext}")  # moved to another folder
    os.utime(images / "000003.png", ns=(1, 10**18))  # touched: new mtime, same bytes
    Image.new("RGB", (48, 48), (1, 2, 3)).save(images / "000004.png")  # changed
    (images / "000005.png").unlink()  # deleted
    shutil.copy(images / "000006.png", lib / "copy.png")  # an extra copy is a new item, not a move
    capsys.readouterr()
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["moved"], report["updated"], report["added"], report["gone"]) == (2, 1, 1, 1)
    assert report["skipped"] == 60 - 2 - 1 - 1  # everything but the moved, the changed and the deleted
    with Collection.open(tmp_path / "c") as coll:
        vecs = dict(zip(coll.vectors("image").item_ids.tolist(), coll.vectors("image").vec_ids.tolist(),
                        strict=True))
        rows = coll.items([id_of["000001.png"], id_of["000002.png"], id_of["000003.png"]])
        assert Path(rows[id_of["000001.png"]].path).name == "renamed.png"
        assert Path(rows[id_of["000002.png"]].path).parent.name == "2025"
        for name in ("000001.png", "000002.png", "000003.png"):  # the same vector row: nothing embedded again
            assert vecs[id_of[name]] == vec_of[id_of[name]]
        assert vecs[id_of["000004.png"]] != vec_of[id_of["000004.png"]]
        assert coll.info().items == 61
    capsys.readouterr()
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "0 new, 0 changed, 0 moved, 60 unchanged" in out and "the files of 1 items are gone" in out


def test_duplicates_lists_exact_copies_and_near_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from sklearn.datasets import load_sample_image

    lib = tmp_path / "lib"
    lib.mkdir()
    china, flower = (Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg"))
    china.save(lib / "china.jpg", quality=92)
    shutil.copy(lib / "china.jpg", lib / "china copy.jpg")
    china.resize((320, 214)).save(lib / "china small.jpg", quality=60)
    flower.save(lib / "flower.jpg", quality=92)
    shutil.copy(lib / "flower.jpg", lib / "flower copy.jpg")
    Image.new("RGB", (200, 160), (20, 120, 220)).save(lib / "blue.png")
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c"), "--model", "builtin:shapes-tiny"]) == 0
    capsys.readouterr()
    assert app_main(["duplicates", str(tmp_path / "c"), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["threshold"] == 0.95 and found["items"] == 6 and found["duplicates"] == 3
    groups = [(g["kind"], sorted(Path(m["path"]).name for m in g["members"])) for g in found["groups"]]
    assert groups == [("near", ["china copy.jpg", "china small.jpg", "china.jpg"]),
                      ("exact", ["flower copy.jpg", "flower.jpg"])]
    small = next(m for m in found["groups"][0]["members"] if m["path"].endswith("china small.jpg"))
    assert not small["identical"] and 0.95 <= small["similarity"] < 1.0
    assert app_main(["duplicates", str(tmp_path / "c"), "--exact-only", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [len(g["members"]) for g in found["groups"]] == [2, 2] and {g["kind"] for g in found["groups"]} == {"exact"}
    assert app_main(["duplicates", str(tmp_path / "c")]) == 0
    assert "2 groups, 3 duplicates among 6 items (exact copies and cosine >= 0.95)" in capsys.readouterr().out
    assert app_main(["duplicates", str(tmp_path / "c"), "--threshold", "1.5"]) == 2


def test_search_without_a_collection_indexes_the_folder_first(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    shutil.copytree(scenes_folder / "images", tmp_path / "photos")
    monkeypatch.setenv("CLIPDEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path / "photos")
    assert app_main(["search", "a red circle", "-k", "3", "--model", tiny_spec, "--paths-only"]) == 0
    captured = capsys.readouterr()
    paths = captured.out.splitlines()
    assert len(paths) == 3 and all(Path(p).is_file() and Path(p).parent == tmp_path / "photos" for p in paths)
    assert "60 new" in captured.err
    libraries = list((tmp_path / "data" / "libraries").iterdir())
    assert len(libraries) == 1 and libraries[0].name.startswith("photos-")
    (tmp_path / "photos" / "000000.png").unlink()
    Image.new("RGB", (48, 48), (200, 0, 0)).save(tmp_path / "photos" / "new.png")
    # from elsewhere, naming the folder: the same collection, brought up to date
    monkeypatch.chdir(tmp_path)
    assert app_main(["search", "photos", "a red circle", "-k", "100", "--json"]) == 0
    captured = capsys.readouterr()
    names = {Path(h["path"]).name for h in json.loads(captured.out)["hits"]}
    assert "1 new" in captured.err and "1 deleted (removed)" in captured.err
    assert "new.png" in names and "000000.png" not in names and len(names) == 60
    assert app_main(["search", "photos", "a red circle", "--no-index", "-k", "2", "--paths-only"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert app_main(["search", str(tmp_path / "nowhere"), "a red circle"]) == 4
    assert app_main(["search", "a red circle", "--paths-only", "--json"]) == 2


@pytest.mark.parametrize("protocol,marker", [("kitty", "\x1b_Ga=T,f=100"), ("iterm", "\x1b]1337;File=inline=1"),
                                             ("sixel", "\x1bPq")])
def test_preview_draws_the_top_results_in_the_terminal(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], protocol: str,
                                                       marker: str) -> None:
    assert app_main(["index", str(scenes_folder), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    capsys.readouterr()
    monkeypatch.setenv("CLIPDEX_PREVIEW", protocol)
    assert app_main(["search", str(tmp_path / "c"), "a red circle", "-k", "3", "--preview"]) == 0
    out = capsys.readouterr().out
    assert out.count(marker) == 3 and out.rstrip().endswith(("\x1b\\", "\x07"))


def test_preview_in_a_plain_terminal_says_so(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.media.terminal import detect_protocol

    assert detect_protocol({"TERM": "xterm-kitty"}) == "kitty"
    assert detect_protocol({"TERM_PROGRAM": "WezTerm"}) == "iterm"
    assert detect_protocol({"TERM": "foot"}) == "sixel"
    assert detect_protocol({"TERM": "xterm-256color"}) is None
    for name in ("CLIPDEX_PREVIEW", "KITTY_WINDOW_ID", "TERM_PROGRAM", "LC_TERMINAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert app_main(["index", str(scenes_folder), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    capsys.readouterr()
    assert app_main(["search", str(tmp_path / "c"), "a red circle", "-k", "2", "--preview"]) == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out and len(captured.out.splitlines()) == 2
    assert "this terminal shows no pictures" in captured.err


def test_without_pillow_heif_each_heic_is_counted_and_named(tmp_path: Path, tiny_spec: str,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.media import decode

    lib = tmp_path / "lib"
    _heic_library(lib, ["IMG_0.HEIC", "IMG_1.HEIC"])
    monkeypatch.setattr(decode, "_HEIF", [False])  # as on a machine without the heic extra
    assert app_main(["index", str(lib), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    out = capsys.readouterr().out
    assert "1 new" in out and "2 failed" in out
    for i in range(2):
        assert f"failed: {lib / f'IMG_{i}.HEIC'}: HEIC/HEIF needs pillow-heif: pip install 'clipdex[heic]'" in out


def test_nan_metadata_and_broken_gps_never_break_filters(tmp_path: Path, tiny_spec: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL.TiffImagePlugin import IFDRational

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (80 * i, 40, 40)).save(lib / f"{i}.png")
    pq.write_table(pa.table({"path": [str(lib / f"{i}.png") for i in range(3)], "rating": [4.5, float("nan"), 2.0]}),
                   tmp_path / "t.parquet")
    image = Image.new("RGB", (32, 32), (9, 9, 9))
    exif = image.getexif()
    exif.get_ifd(0x8825).update({1: "N", 2: (IFDRational(1, 0), 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)})
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    (tmp_path / "camera").mkdir()
    image.save(tmp_path / "camera" / "broken.jpg", exif=exif)
    assert app_main(["index", str(tmp_path / "t.parquet"), "-c", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    assert app_main(["index", str(tmp_path / "camera"), "-c", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert app_main(["search", str(tmp_path / "c"), "x", "--where", "rating>=2", "-k", "10", "--json"]) == 0
    assert sorted(Path(h["path"]).name for h in json.loads(capsys.readouterr().out)["hits"]) == ["0.png", "2.png"]
    assert app_main(["search", str(tmp_path / "c"), "x", "--near", "0,2,20000", "-k", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"] == []  # the 0/0 latitude is no position at all
    from clipdex import Collection

    with Collection.open(tmp_path / "c") as coll:
        broken = [r for r in coll.items(range(1, 10)).values() if r.path.endswith("broken.jpg")][0]
    assert "gps_lat" not in broken.metadata and "taken" not in broken.metadata


def test_an_older_collection_with_nan_metadata_is_mended_on_open(tmp_path: Path, tiny_spec: str,
                                                                 scenes_folder: Path) -> None:
    import sqlite3

    from clipdex import Collection, load_encoder

    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.add(scenes_folder, enc)
    conn = sqlite3.connect(tmp_path / "c" / "items.sqlite")
    conn.execute("UPDATE items SET metadata = '{\"rating\": NaN, \"keep\": 1}' WHERE id = 1")
    conn.execute("PRAGMA user_version = 3")  # as an older clipdex left it
    conn.commit()
    conn.close()
    with Collection.open(tmp_path / "c") as coll:
        coll.use_encoder(enc)
        assert coll.item(1).metadata == {"rating": None, "keep": 1}
        assert [h.id for h in coll.search("a red circle", k=5, where={"keep": "1"})] == [1]
