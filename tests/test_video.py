"""Videos indexed as frames every N seconds; search returns the video and the time."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipdex import Collection
from clipdex.indexing import IndexOptions
from clipdex.search import Query
from clipdex.synth.render import render_scene
from clipdex.synth.world import Obj, Scene

pytestmark = pytest.mark.integration

SEGMENTS = [("circle", "red"), ("star", "blue"), ("square", "green")]  # two seconds each


def write_video(path: Path, fps: int = 5) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for shape, color in SEGMENTS:
            frame = render_scene(Scene((Obj(shape, color, "large", (1, 1)),)), 64)
            for _ in range(2 * fps):
                for packet in stream.encode(av.VideoFrame.from_image(frame)):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def video_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("video")
    (root / "media").mkdir()
    write_video(root / "media" / "clip.mp4")
    (root / "media" / "broken.mp4").write_bytes(b"not a video at all")
    render_scene(Scene((Obj("heart", "pink", "large", (1, 1)),)), 64).save(root / "media" / "still.png")
    with Collection.create(root / "coll", "builtin:shapes-tiny", 256) as coll:
        report = coll.add(root / "media", options=IndexOptions(video_every=1.0))
        assert report.added == 7 and report.failed == 1  # 6 frames + the still; the broken video recorded
    return root / "coll"


def test_search_finds_the_video_and_the_time(video_collection: Path) -> None:
    with Collection.open(video_collection) as coll:
        for (shape, color), start in zip(SEGMENTS, (0.0, 2.0, 4.0), strict=True):
            hit = coll.search(Query(text=f"a {color} {shape}", k=1))[0]
            assert hit.metadata["video"].endswith("clip.mp4")
            assert start <= hit.metadata["t"] < start + 2.0, (shape, hit.metadata)
        info = coll.info()
        assert any("broken.mp4" in e["path"] and "not a readable video" in e["error"] for e in info.error_list)
        assert coll.search(Query(text="a pink heart", k=1))[0].path.endswith("still.png")


def test_reindex_skips_unchanged_frames_and_serves_frames(video_collection: Path) -> None:
    from fastapi.testclient import TestClient

    from clipdex.serve import ServeConfig, create_app

    media = video_collection.parent / "media"
    with Collection.open(video_collection) as coll:
        again = coll.add(media, options=IndexOptions(video_every=1.0))
        assert again.added == 0 and again.skipped == 8
        frame_id = coll.search(Query(text="a blue star", k=1))[0].id
    client = TestClient(create_app(ServeConfig(collections={"v": video_collection})))
    image = client.get(f"/api/items/{frame_id}/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert client.get(f"/api/items/{frame_id}/thumbnail").status_code == 200
