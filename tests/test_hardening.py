"""Hardening: only decoded images leave the server, checkpoints never run code, the index is one unit."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from clipdex import Collection, IndexOptions, load_encoder
from clipdex.serve import ServeConfig, create_app

pytestmark = pytest.mark.integration


def test_the_server_sends_no_bytes_of_a_file_that_failed_to_index(tmp_path: Path, tiny_spec: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("ssh-rsa AAAA... the user's key")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (200, 20, 20)).save(photos / "red.png")
    os.symlink(secret, photos / "zz.png")  # a link inside the indexed folder to a file that is not an image
    table = tmp_path / "table"
    table.mkdir()
    Image.new("RGB", (40, 30), (20, 20, 200)).save(table / "blue.png")
    rows = ["path,caption", "blue.png,a blue square", "../secret.txt,leak", f"{secret},leak again",
            "/etc/hostname,system file"]
    (table / "rows.csv").write_text("\n".join(rows) + "\n")
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        folder_report = coll.add(photos, enc)
        table_report = coll.add(table / "rows.csv", enc)
        records = coll.items(range(1, 10))
    assert (folder_report.added, folder_report.failed) == (1, 1)
    assert (table_report.added, table_report.failed) == (1, 3)  # every row outside the table's root refused
    outside = [r for r in records.values() if r.error and "outside the source's image root" in r.error]
    assert len(outside) == 3
    with TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"}))) as client:
        for record in records.values():
            for route in ("image", "thumbnail"):
                got = client.get(f"/api/items/{record.id}/{route}")
                if record.status == "ok":
                    assert got.status_code == 200 and Image.open(io.BytesIO(got.content)).size
                else:
                    assert got.status_code == 404, (record.path, route, got.status_code)
                    assert b"ssh-rsa" not in got.content and b"the user's key" not in got.content


def test_allow_outside_root_indexes_what_the_user_vouches_for(tmp_path: Path, tiny_spec: str) -> None:
    from clipdex.media import SourceOptions

    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (40, 30), (20, 200, 20)).save(tmp_path / "elsewhere" / "g.png")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "rows.csv").write_text("path\n../elsewhere/g.png\n")
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        report = coll.add(tmp_path / "t" / "rows.csv", enc,
                          IndexOptions(source=SourceOptions(allow_outside_root=True)))
    assert (report.added, report.failed) == (1, 0)


def test_the_index_and_its_id_map_are_one_unit(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> None:
    enc = load_encoder(tiny_spec)
    coll = Collection.create(tmp_path / "c", enc.spec, enc.dim)
    coll.use_encoder(enc)
    coll.add(scenes_folder, enc, IndexOptions(index_factory="Flat"))
    truth = [(h.id, round(h.score, 4)) for h in coll.search("a red circle", k=5)]
    index = tmp_path / "c" / "index"
    manifest = json.loads((index / "manifest.json").read_text())
    unit = index / manifest["unit"]
    # a writer killed after writing a new unit but before the switch: the old unit stays in force
    shutil.copytree(unit, index / "v999-1")
    ids = np.load(unit / "vec_ids.npy")
    np.save(index / "v999-1" / "vec_ids.npy", ids[::-1].copy())
    again = Collection.open(tmp_path / "c")
    again.use_encoder(enc)
    assert [(h.id, round(h.score, 4)) for h in again.search("a red circle", k=5)] == truth
    # the id map changed under its manifest (the torn pair): refused, search stays right, info says so
    np.save(unit / "vec_ids.npy", ids[::-1].copy())
    torn = Collection.open(tmp_path / "c")
    torn.use_encoder(enc)
    assert torn.ann() is None and "refused" in torn.info().index
    assert [(h.id, round(h.score, 4)) for h in torn.search("a red circle", k=5)] == truth
    # and the next index run builds it again
    torn.add(scenes_folder, enc)
    assert torn.ann_problem() is None and torn.info().index == "Flat over 60"
    assert not (index / "v999-1").exists()


def test_paths_are_stored_absolute_and_one_file_is_one_item(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(scenes_folder, tmp_path / "lib")
    enc = load_encoder(tiny_spec)
    monkeypatch.chdir(tmp_path)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        first = coll.add("lib", enc)
        again = [coll.add(spelling, enc) for spelling in ("./lib", str(tmp_path / "lib"), "lib/../lib")]
        assert first.added == 60 and all((r.added, r.updated, r.skipped) == (0, 0, 60) for r in again)
        assert coll.info().items == 60
        paths = [r.path for r in coll.items(range(1, 61)).values()]
        assert all(os.path.isabs(p) and p.startswith(str(tmp_path / "lib")) for p in paths)
        # a collection from an older clipdex stored the path as typed: matched again, updated, not duplicated
        coll.conn.execute("UPDATE items SET path_bytes = CAST(substr(path, ?) AS BLOB), path = substr(path, ?)",
                          (len(str(tmp_path)) + 2, len(str(tmp_path)) + 2))
        coll.conn.commit()
        assert coll.item(1).path.startswith("lib/")
        healed = coll.add("lib", enc)
        assert (healed.added, healed.updated, healed.skipped) == (0, 0, 60) and coll.info().items == 60
        assert coll.item(1).path.startswith(str(tmp_path / "lib"))
    monkeypatch.chdir(tmp_path / "lib")  # elsewhere, thumbnails still find their files
    with TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"}))) as client:
        assert client.get("/api/items/1/thumbnail").status_code == 200


@pytest.fixture()
def small_server(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> TestClient:
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.add(scenes_folder, enc)
    return TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"}, max_upload_bytes=100_000)))


def test_uploads_are_capped_as_they_stream(small_server: TestClient) -> None:
    def chunks(total: int, size: int = 16_384) -> object:
        sent = 0
        while sent < total:
            sent += size
            yield b" " * size

    with small_server as client:
        # a chunked JSON body (no Content-Length) far over the cap
        got = client.post("/api/search", content=chunks(5_000_000), headers={"content-type": "application/json"})
        assert got.status_code == 413 and got.json()["error"] == "too_large"
        boundary = "xyz"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode()

        def multipart() -> object:
            yield head
            yield from chunks(3_000_000)  # type: ignore[misc]

        got = client.post("/api/search", content=multipart(),
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert got.status_code == 413


def test_a_small_file_that_decodes_huge_is_refused(small_server: TestClient) -> None:
    big = io.BytesIO()
    Image.new("1", (7999, 7999)).save(big, format="PNG")  # a few kB on disk, 64 M pixels decoded
    assert len(big.getvalue()) < 100_000
    with small_server as client:
        got = client.post("/api/search", files={"image": ("big.png", big.getvalue(), "image/png")})
        assert got.status_code == 400 and "too large" in got.json()["detail"]
        fine = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 20, 20)).save(fine, format="PNG")
        ok = client.post("/api/search", files={"image": ("q.png", fine.getvalue(), "image/png")}, data={"k": "3"})
        assert ok.status_code == 200 and len(ok.json()["hits"]) == 3


def test_copied_images_keep_one_file_per_key(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clipdex.curate import CurateOptions, curate

    colours = {"a/b": (200, 0, 0), "a_b": (0, 200, 0), "a?b": (0, 0, 200), "../up": (200, 200, 0)}
    for i, colour in enumerate(colours.values()):
        Image.new("RGB", (40, 40), colour).save(tmp_path / f"{i}.png")
    pq.write_table(pa.table({"key": list(colours), "path": [f"{i}.png" for i in range(len(colours))],
                             "caption": ["a square"] * len(colours)}), tmp_path / "pool.parquet")
    report = curate(tmp_path / "pool.parquet", tmp_path / "out", ["size:min_side=16"], CurateOptions(copy_images=True,
                                                                                          report=False))
    assert report.kept == 4
    rows = pq.read_table(tmp_path / "out" / "pool.parquet").to_pylist()
    files = [tmp_path / "out" / r["path"] for r in rows]
    assert len({f.name for f in files}) == 4 and all(f.parent == tmp_path / "out" / "images" for f in files)
    for row, f in zip(rows, files, strict=True):
        assert Image.open(f).getpixel((5, 5)) == colours[row["key"]]


def test_an_oversized_tar_member_is_never_read(tmp_path: Path) -> None:
    """A gzip'd shard whose caption member decompresses to megabytes: the sample is refused by its header."""
    import tarfile

    import pyarrow.parquet as pq

    from clipdex.curate import curate

    shard = tmp_path / "pool" / "00000.tar"
    shard.parent.mkdir()
    png = io.BytesIO()
    Image.new("RGB", (40, 40), (9, 9, 9)).save(png, format="PNG")
    with tarfile.open(shard, "w:gz") as tar:
        for key, caption in (("ok", b"a dark square"), ("huge", b"a" * 5_000_000)):
            for ext, data in (("png", png.getvalue()), ("txt", caption)):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    assert shard.stat().st_size < 100_000
    report = curate(tmp_path / "pool", tmp_path / "out", ["size:min_side=8"])
    assert report.samples == 2 and report.kept == 1
    decisions = {r["key"]: r for r in pq.read_table(report.decisions).to_pylist()}
    assert "caption member of 5,000,000 bytes" in str(decisions["huge"]["reason"])


def test_http_abuse_gets_4xx_never_500(small_server: TestClient) -> None:
    with small_server as client:
        deep = "[" * 5000 + "]" * 5000
        assert client.post("/api/search", content=deep, headers={"content-type": "application/json"}
                           ).status_code == 400
        where = {f"k{i}": "v" for i in range(1000)}
        assert client.post("/api/search", json={"text": "a red circle", "where": where}).status_code == 422
        for route in ("image", "thumbnail", ""):
            got = client.get(f"/api/items/99999999999999999999999/{route}".rstrip("/"))
            assert got.status_code == 404, route


def test_the_key_guards_meta_routes_and_query_keys_only_open_images(tmp_path: Path, tiny_spec: str,
                                                                    scenes_folder: Path) -> None:
    from clipdex.errors import UsageError

    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.add(scenes_folder, enc)
    with pytest.raises(UsageError, match="set but empty"):
        ServeConfig(collections={"c": tmp_path / "c"}, api_key="  ")
    app = create_app(ServeConfig(collections={"c": tmp_path / "c"}, api_key="s3cret", bound_host="127.0.0.1"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        for path in ("/metrics", "/docs", "/openapi.json", "/api/collections"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200, path
        assert client.get("/api/collections?key=s3cret").status_code == 401  # not an image route
        assert client.get("/api/items/1/thumbnail?key=s3cret").status_code == 200
        assert client.get("/healthz").status_code == 200
    with TestClient(app, base_url="http://attacker.example:8000") as client:  # DNS rebinding
        assert client.get("/healthz").status_code == 421


def test_fuzzed_search_bodies_never_answer_500(small_server: TestClient) -> None:
    """Hypothesis, bounded: JSON bodies built from the search schema's own fields with hostile values."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                       st.text(max_size=40))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                              inner, max_size=4),
                         max_leaves=12)
    fields = ["text", "k", "offset", "image_id", "embedding", "where", "min_score", "target", "mode", "fusion",
              "alpha", "terms", "diversity", "collapse", "compose", "rerank", "rerank_depth", "regions", "collection"]
    body = st.dictionaries(st.sampled_from(fields), value, max_size=5)

    with small_server as client:
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body)
        def check(payload: dict[str, object]) -> None:
            got = client.post("/api/search", content=json.dumps(payload, default=str).encode(),
                              headers={"content-type": "application/json"})
            assert got.status_code < 500, (payload, got.text)
            assert len(got.content) < 1_000_000

        check()


def test_cli_output_stays_json_and_escapes_control_characters(tmp_path: Path, tiny_spec: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.cli import app_main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (32, 32), (5, 5, 5)).save(folder / "ok.png")
    (folder / "evil\x1b[2Jname.jpg").write_bytes(b"not an image")
    assert app_main(["index", str(folder), "--collection", str(tmp_path / "c"), "--model", tiny_spec]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\x1b[2Jname.jpg" in out
    (tmp_path / "k.json").write_text(json.dumps({"images": [{"filename": 7, "sentences": "x"}]}))
    assert app_main(["index", str(tmp_path / "k.json"), "--collection", str(tmp_path / "k")]) == 2
    assert "images[0] has a field of the wrong type" in capsys.readouterr().err


def test_json_output_turns_non_finite_numbers_into_null(capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.cli.output import emit

    emit({"score": float("nan"), "rows": [1.5, float("inf")]}, True, "")
    assert json.loads(capsys.readouterr().out) == {"score": None, "rows": [1.5, None]}


def test_curated_tar_members_stay_inside_their_folder(tmp_path: Path) -> None:
    import tarfile

    from clipdex.curate import curate

    png = io.BytesIO()
    Image.new("RGB", (40, 40), (99, 9, 9)).save(png, format="PNG")
    (tmp_path / "pool").mkdir()
    with tarfile.open(tmp_path / "pool" / "00000.tar", "w") as tar:
        for name, data in (("../../evil.png", png.getvalue()), ("../../evil.txt", b"a red square"),
                           ("/abs/x.png", png.getvalue()), ("/abs/x.txt", b"another")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    report = curate(tmp_path / "pool", tmp_path / "out", ["size:min_side=8"])
    assert report.kept == 2
    with tarfile.open(tmp_path / "out" / "00000.tar") as out:
        names = out.getnames()
    assert names and all(not n.startswith("/") and ".." not in n.split("/") for n in names), names


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only file system needs root")
def test_a_collection_on_a_read_only_mount_can_be_searched(tmp_path: Path, tiny_spec: str,
                                                          scenes_folder: Path) -> None:
    import subprocess

    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    try:
        enc = load_encoder(tiny_spec)
        with Collection.create(mount / "c", enc.spec, enc.dim) as coll:
            coll.add(scenes_folder, enc)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with Collection.open(mount / "c") as coll:
            coll.use_encoder(enc)
            assert len(coll.search("a red circle", k=3)) == 3
            assert coll.thumbnail(1, 64)[:2] == b"\xff\xd8"  # made, though it cannot be cached
            assert coll.info().items == 60
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_very_deep_folder_and_an_os_error_are_one_line(tmp_path: Path, tiny_spec: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from clipdex.cli import app_main

    deep = tmp_path / "deep"
    levels = [deep]
    deep.mkdir()
    for _ in range(1200):  # deeper than Python's recursion limit, within the OS's path length
        levels.append(levels[-1] / "d")
        levels[-1].mkdir()
    try:
        Image.new("RGB", (32, 32), (1, 99, 1)).save(levels[-1] / "x.png")
        assert app_main(["index", str(deep), "--collection", str(tmp_path / "c"), "--model", tiny_spec,
                         "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["added"] == 1
        (tmp_path / "afile").write_text("x")
        assert app_main(["index", str(deep), "--collection", str(tmp_path / "afile" / "c")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and "afile" in err[0]
    finally:  # bottom up: pytest's own clean-up of old temp folders recurses and would fail on this tree
        (levels[-1] / "x.png").unlink(missing_ok=True)
        for level in reversed(levels):
            level.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_full_disk_is_one_line_and_the_run_resumes(tmp_path: Path, tiny_spec: str, scenes_folder: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    from clipdex.cli import app_main

    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        filler = mount / "filler"
        filler.write_bytes(b"\0" * (2 * 1024 * 1024 - 160 * 1024))  # leave a little room
        args = ["index", str(scenes_folder), "--collection", str(mount / "c"), "--model", tiny_spec,
                "--batch-size", "8"]
        assert app_main(args) == 1
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
        assert len(err) == 1 and "disk is full" in err[0] and "Traceback" not in err[0]
        filler.unlink()
        assert app_main([*args, "--json"]) == 0
        capsys.readouterr()
        with Collection.open(mount / "c") as coll:
            assert coll.info().items == 60 and len(set(coll.vectors("image").item_ids.tolist())) == 60
    finally:
        subprocess.run(["umount", str(mount)], check=False)
