from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipdex import Collection, load_encoder
from clipdex.serve import ServeConfig, create_app, resolve_collections
from helpers import solid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_spec: str, scenes_folder: Path) -> Path:
    enc = load_encoder(tiny_spec)
    path = tmp_path_factory.mktemp("serve") / "shapes"
    coll = Collection.create(path, enc.spec, enc.dim)
    coll.add(scenes_folder, enc)
    coll.close()
    return path


@pytest.fixture()
def client(served: Path) -> TestClient:
    app = create_app(ServeConfig(collections={"shapes": served}, max_upload_bytes=200_000))
    with TestClient(app) as c:
        yield c


def png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    solid(color).save(buf, format="PNG")
    return buf.getvalue()


def test_collections_and_health(client: TestClient) -> None:
    cols = client.get("/api/collections").json()
    assert cols == [{"name": "shapes", "model": cols[0]["model"], "dim": 16, "items": 60, "errors": 0,
                     "captions": 300, "index": "exact", "features": cols[0]["features"], "share_location": False}]
    assert {"filters", "lexical", "compose", "duplicates"} <= set(cols[0]["features"])
    assert client.get("/healthz").json()["status"] == "ok"


def test_text_search_json_and_get(client: TestClient) -> None:
    body = client.post("/api/search", json={"collection": "shapes", "text": "a red circle", "k": 5}).json()
    assert len(body["hits"]) == 5 and body["total_considered"] == 60 and body["took_ms"] > 0
    hit = body["hits"][0]
    assert set(hit) == {"id", "score", "path", "caption", "metadata", "thumbnail_url"}
    quick = client.get("/api/search", params={"q": "a red circle", "k": 5}).json()
    assert [h["id"] for h in quick["hits"]] == [h["id"] for h in body["hits"]]
    assert set(body["stages_ms"]) == {"encode", "search", "fetch"}


def test_pagination_return_fields_and_filters(client: TestClient) -> None:
    first = client.post("/api/search", json={"text": "star", "k": 10}).json()["hits"]
    page2 = client.post("/api/search", json={"text": "star", "k": 5, "offset": 5}).json()["hits"]
    assert [h["id"] for h in page2] == [h["id"] for h in first[5:10]]
    slim = client.post("/api/search", json={"text": "star", "k": 3, "return": ["score"]}).json()["hits"]
    assert all(set(h) == {"id", "score"} for h in slim)
    none = client.post("/api/search", json={"text": "star", "where": {"nothing": "here"}}).json()["hits"]
    assert none == []


def test_image_upload_more_like_this_and_embedding(client: TestClient, scenes_folder: Path) -> None:
    data = (scenes_folder / "images" / "000007.png").read_bytes()
    up = client.post("/api/search", files={"image": ("q.png", data, "image/png")}, data={"k": "3"}).json()
    target = up["hits"][0]
    assert target["path"].endswith("000007.png") and target["score"] == pytest.approx(1.0, abs=1e-2)
    similar = client.post("/api/search", json={"image_id": target["id"], "k": 4}).json()["hits"]
    assert len(similar) == 4 and target["id"] not in [h["id"] for h in similar]
    emb = client.post("/api/search", json={"embedding": [0.1] * 16, "k": 2}).json()["hits"]
    assert len(emb) == 2


def test_items_image_and_thumbnail(client: TestClient) -> None:
    hit = client.post("/api/search", json={"text": "x", "k": 1}).json()["hits"][0]
    item = client.get(f"/api/items/{hit['id']}").json()
    assert item["id"] == hit["id"] and len(item["captions"]) == 5
    image = client.get(item["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert "max-age" in image.headers["cache-control"]
    thumb = client.get(hit["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8" and client.get(hit["thumbnail_url"]).content == thumb.content


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "code"), [
    ("post", "/api/search", {"json": {"collection": "nope", "text": "x"}}, 404, "not_found"),
    ("post", "/api/search", {"json": {"text": "x", "k": 0}}, 422, "invalid_request"),
    ("post", "/api/search", {"json": {"text": "   "}}, 400, "bad_query"),
    ("post", "/api/search", {"json": {}}, 400, "bad_query"),
    ("post", "/api/search", {"json": {"text": "x", "image_id": 1}}, 400, "bad_query"),
    ("post", "/api/search", {"json": {"embedding": [1.0, 2.0]}}, 400, "bad_query"),
    ("post", "/api/search", {"json": {"image_id": 999999}}, 400, "bad_query"),
    ("post", "/api/search", {"json": {"text": "x", "surprise": 1}}, 422, "invalid_request"),
    ("post", "/api/search", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400,
     "malformed_json"),
    ("post", "/api/search", {"json": [1, 2]}, 400, "malformed_json"),
    ("post", "/api/search", {"files": {"image": ("a.png", b"not an image", "image/png")}}, 400, "bad_query"),
    ("post", "/api/search", {"files": {"image": ("a.png", b"0" * 300_000, "image/png")}}, 413, "too_large"),
    ("post", "/api/search", {"files": {"other": ("a.png", b"x", "image/png")}}, 422, "invalid_request"),
    ("post", "/api/search", {"files": {"image": ("a.png", b"x", "image/png")}, "data": {"k": "many"}}, 422,
     "invalid_request"),
    ("get", "/api/search", {"params": {"q": ""}}, 422, "invalid_request"),
    ("get", "/api/items/999999", {}, 404, "not_found"),
    ("get", "/api/items/abc", {}, 422, "invalid_request"),
    ("get", "/api/items/1/thumbnail?size=5", {}, 422, "invalid_request"),
    ("get", "/api/nothing", {}, 404, "not_found"),
])
def test_bad_requests_are_4xx_json(client: TestClient, method: str, url: str, kwargs: dict, status: int,
                                   code: str) -> None:
    response = getattr(client, method)(url, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["detail"]


def test_api_key_and_cors(served: Path) -> None:
    app = create_app(ServeConfig(collections={"shapes": served}, api_key="s3cret"))
    with TestClient(app) as c:
        assert c.get("/api/collections").status_code == 401
        assert c.get("/api/collections", headers={"X-API-Key": "wrong"}).json()["error"] == "unauthorized"
        assert c.get("/api/collections", headers={"X-API-Key": "s3cret"}).status_code == 200
        hit = c.get("/api/search?q=x&k=1", headers={"X-API-Key": "s3cret"}).json()["hits"][0]
        assert c.get(hit["thumbnail_url"] + "&key=s3cret").status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200
        assert "access-control-allow-origin" not in c.get("/api/collections", headers={
            "X-API-Key": "s3cret", "Origin": "http://evil.example"}).headers


def test_metrics_count_requests_and_stages(client: TestClient) -> None:
    for _ in range(3):
        client.get("/api/search", params={"q": "a blue star"})
    m = client.get("/metrics").json()
    assert m["requests"]["GET /api/search"] == 3
    assert m["latency_ms"]["encode"]["count"] >= 3 and m["latency_ms"]["search"]["p99"] >= 0


def test_openapi_documents_both_search_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert client.get("/docs").status_code == 200


def test_resolve_collections_from_json(served: Path, tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"one": str(served), "two": str(served)}))
    assert list(resolve_collections([str(tmp_path / "c.json"), str(served)])) == ["one", "two", "shapes"]
    from clipdex.errors import ClipdexError

    with pytest.raises(ClipdexError, match="no collection or index at"):
        resolve_collections([str(tmp_path)])


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=4), max_leaves=10)
fields = st.fixed_dictionaries({}, optional={
    "collection": st.one_of(st.just("shapes"), st.text(max_size=6), st.integers()),
    "text": json_values, "image_id": json_values, "embedding": json_values, "k": json_values,
    "offset": json_values, "min_score": json_values, "where": json_values, "target": json_values,
    "return": json_values})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(fields, json_values))
def test_fuzzed_search_bodies_never_5xx(client: TestClient, body: object) -> None:
    # json.dumps writes NaN and Infinity, which Python's parser accepts: they must not crash us either
    response = client.post("/api/search", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert response.status_code == 200 or response.json()["error"]


def test_filters_and_location_privacy_over_http(tmp_path: Path, tiny_spec: str) -> None:
    from PIL import Image

    lib = tmp_path / "lib"
    lib.mkdir()
    for name, lat, taken in (("paris", 48.8566, "2024:06:15 09:00:00"), ("rome", 41.9028, "2024:09:01 10:00:00")):
        image = Image.new("RGB", (40, 30), (200, 90, 10))
        exif = image.getexif()
        exif.get_ifd(0x8769)[0x9003] = taken
        exif.get_ifd(0x8825).update({1: "N", 2: (lat, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)})
        image.save(lib / f"{name}.jpg", exif=exif)
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.add(lib, enc)
    private = TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"})))
    with private:
        body = private.post("/api/search", json={"text": "a photo", "where": ["taken<2024-09-01"]}).json()
        assert [Path(h["path"]).name for h in body["hits"]] == ["paris.jpg"]
        assert "gps_lat" not in body["hits"][0]["metadata"] and body["hits"][0]["metadata"]["taken"]
        assert "gps_lon" not in private.get(f"/api/items/{body['hits'][0]['id']}").json()["metadata"]
        for ask in ({"near": "48.85,2.0,50"}, {"where": ["gps_lat>45"]}, {"where": {"gps_lat": "48.8566"}}):
            refused = private.post("/api/search", json={"text": "a photo", **ask})
            assert refused.status_code == 403 and refused.json()["error"] == "location_private"
        bad = private.post("/api/search", json={"text": "a photo", "where": ["no operator"]})
        assert bad.status_code == 400 and "key=value" in bad.json()["detail"]
        for quoted in (private.post("/api/search", json={"text": "a photo", "where": {'a"b': "1"}}),
                       private.get("/api/map", params={"color": 'a"b'})):  # no JSON path can name it
            assert quoted.status_code == 400 and "cannot name a metadata field" in quoted.json()["detail"]
    shared = TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"}, share_location=True)))
    with shared:
        body = shared.post("/api/search", json={"text": "a photo", "near": "48.85,2.0,50"}).json()
        assert [Path(h["path"]).name for h in body["hits"]] == ["paris.jpg"]
        assert body["hits"][0]["metadata"]["gps_lat"] == 48.8566
        assert shared.get("/api/collections").json()[0]["share_location"] is True


def test_duplicates_over_http(tmp_path: Path, tiny_spec: str) -> None:
    import shutil

    from PIL import Image

    lib = tmp_path / "lib"
    lib.mkdir()
    Image.new("RGB", (40, 30), (200, 90, 10)).save(lib / "a.png")
    shutil.copy(lib / "a.png", lib / "b.png")
    Image.effect_noise((40, 30), 80).convert("RGB").save(lib / "noise.png")
    enc = load_encoder(tiny_spec)
    with Collection.create(tmp_path / "c", enc.spec, enc.dim) as coll:
        coll.add(lib, enc)
    with TestClient(create_app(ServeConfig(collections={"c": tmp_path / "c"}))) as client:
        found = client.get("/api/duplicates", params={"exact_only": True}).json()
        assert found["duplicates"] == 1 and found["threshold"] is None
        members = found["groups"][0]["members"]
        assert sorted(Path(m["path"]).name for m in members) == ["a.png", "b.png"]
        assert all(client.get(m["thumbnail_url"]).status_code == 200 for m in members)
        assert client.get("/api/duplicates", params={"threshold": 2}).status_code == 422
