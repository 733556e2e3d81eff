"""The real server on a free loopback port, a real second process indexing, and a real Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from helpers import serving, solid

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(os.environ.get("CLIPDEX_ARTIFACTS", Path(__file__).parent.parent / "build" / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture()
def server(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> Iterator[tuple[str, Path]]:
    coll = tmp_path / "shapes"
    index = [sys.executable, "-m", "clipdex", "index", str(scenes_folder), "-c", str(coll), "--model", tiny_spec]
    subprocess.run(index, check=True, capture_output=True, timeout=300)
    with serving(str(coll)) as base:
        yield base, coll


def test_real_server_searches_while_another_process_indexes(server: tuple[str, Path], tmp_path: Path,
                                                            tiny_spec: str) -> None:
    base, coll = server
    hits = get_json(base + "/api/search?q=a+red+circle&k=5")["hits"]  # type: ignore[index]
    assert len(hits) == 5
    extra = tmp_path / "extra"
    extra.mkdir()
    for i in range(30):
        solid((255, 255 - 8 * i, 0)).save(extra / f"new{i}.png")
    writer = subprocess.Popen([sys.executable, "-m", "clipdex", "index", str(extra), "-c", str(coll),
                               "--batch-size", "4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = set()
    while writer.poll() is None:  # searches keep answering during the write
        body = get_json(base + "/api/search?q=a+yellow+square&k=3")
        seen.add(len(body["hits"]))  # type: ignore[index]
    assert writer.returncode == 0 and seen == {3}
    cols = get_json(base + "/api/collections")
    assert cols[0]["items"] == 90  # type: ignore[index]
    found = get_json(base + "/api/search?q=x&k=100")["hits"]  # type: ignore[index]
    assert sum(h["path"].startswith(str(extra)) for h in found) == 30  # new items, no restart


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, with the flags this project's machines need; closed on exit."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


def open_and_search(browser: Any, base: str, width: int, text: str, at_least: int) -> Any:
    """A new page of the given width, a typed query, Enter, and at least ``at_least`` results."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(base + "/")
    page.wait_for_selector("#collection option", state="attached")
    page.fill("#q", text)
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('#results li img').length >= {at_least}")
    return page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test` (apt-get install chromium)")
def test_browser_search_drop_open_and_more_like_this(server: tuple[str, Path], scenes_folder: Path) -> None:
    base, _ = server
    with chromium() as browser:
        page = open_and_search(browser, base, 1100, "a red circle", 10)
        page.wait_for_function("[...document.querySelectorAll('#results li img')].slice(0, 6)"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        assert "results" in page.inner_text("#status")
        page.screenshot(path=str(ARTIFACTS / "search.png"))

        # drop an image file on the page
        data = base64.b64encode((scenes_folder / "images" / "000005.png").read_bytes()).decode()
        page.evaluate("""async (b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'query.png', {type: 'image/png'}));
            document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""", data)
        page.wait_for_function("document.querySelector('#results li .score')?.textContent === '1.000'"
                               " || Number(document.querySelector('#results li .score')?.textContent) > 0.99")
        assert not page.is_hidden("#query-image")

        # open the first result, then "more like this"
        first_id = page.get_attribute("#results li", "data-id")
        page.click("#results li")
        page.wait_for_selector("dialog#detail[open]")
        page.wait_for_function("document.getElementById('detail-image').naturalWidth > 0")
        assert page.inner_text("#detail-path").endswith("000005.png")
        page.screenshot(path=str(ARTIFACTS / "detail.png"))
        page.click("#more-like-this")
        page.wait_for_function(f"document.querySelector('#results li') && "
                               f"document.querySelector('#results li').dataset.id !== '{first_id}'")
        ids = page.eval_on_selector_all("#results li", "els => els.map(e => e.dataset.id)")
        assert first_id not in ids and len(ids) >= 10

        # keyboard: arrows move the selection, Enter opens, Esc closes
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        assert page.eval_on_selector("#results li.selected", "e => e.dataset.id") == ids[1]
        page.keyboard.press("Enter")
        page.wait_for_selector("dialog#detail[open]")
        page.keyboard.press("Escape")
        page.wait_for_selector("dialog#detail:not([open])", state="attached")

        # phone width: two columns, nothing wider than the screen
        phone = open_and_search(browser, base, 390, "a blue star", 4)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        phone.screenshot(path=str(ARTIFACTS / "phone.png"))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test` (apt-get install chromium)")
def test_browser_words_varied_heatmap_and_modify(server: tuple[str, Path]) -> None:
    base, _ = server
    with chromium() as browser:
        page = open_and_search(browser, base, 1100, "red circle", 4)
        # words only: every hit's caption shares a word with the query
        page.select_option("#mode", "lexical")
        page.wait_for_function("[...document.querySelectorAll('#results li .caption')].length > 0 && "
                               "[...document.querySelectorAll('#results li .caption')].every("
                               "c => /red|circle/.test(c.textContent))")
        page.select_option("#mode", "dense")
        page.check("#varied")
        page.wait_for_function("document.querySelectorAll('#results li').length >= 4")
        # where does it match: the detail image becomes the heat map
        page.click("#results li")
        page.wait_for_selector("dialog#detail[open]")
        page.click("#show-where")
        page.wait_for_function("document.getElementById('detail-image').src.includes('/heatmap') && "
                               "document.getElementById('detail-image').complete && "
                               "document.getElementById('detail-image').naturalWidth > 0")
        page.screenshot(path=str(ARTIFACTS / "heatmap.png"))
        reference = page.evaluate("document.querySelector('#results li').dataset.id")
        # the same, but changed: a composed search from the open item
        page.fill("#modify", "but blue")
        page.press("#modify", "Enter")
        page.wait_for_selector("dialog#detail:not([open])", state="attached")
        page.wait_for_function(f"document.querySelector('#results li') && [...document.querySelectorAll("
                               f"'#results li')].every(li => li.dataset.id !== '{reference}')")
        assert "results" in page.inner_text("#status")


def _exif_photo(path: Path, colour: tuple[int, int, int], camera: str, taken: str) -> None:
    from PIL import Image

    image = Image.new("RGB", (96, 64), colour)
    exif = image.getexif()
    exif[0x010F], exif[0x0110] = "FUJIFILM", camera
    exif.get_ifd(0x8769)[0x9003] = taken
    exif.get_ifd(0x8825).update({1: "N", 2: (48.8566, 0.0, 0.0), 3: "E", 4: (2.3522, 0.0, 0.0)})
    image.save(path, exif=exif, quality=95)


@pytest.fixture()
def library_server(tmp_path: Path, tiny_spec: str, scenes_folder: Path) -> Iterator[tuple[str, Path]]:
    """A photo library (the scenes, three dated photos, one duplicated) and an index of other vectors, served
    together with locations shared."""
    lib = tmp_path / "lib"
    shutil.copytree(scenes_folder, lib)
    _exif_photo(lib / "paris.jpg", (220, 40, 40), "X100V", "2024:06:15 09:30:00")
    _exif_photo(lib / "lyon.jpg", (40, 40, 220), "X100V", "2024:07:01 18:00:00")
    _exif_photo(lib / "old.jpg", (40, 220, 40), "X-T2", "2019:05:01 12:00:00")
    shutil.copy(lib / "paris.jpg", lib / "paris copy.jpg")
    for args in (["index", str(lib), "-c", str(tmp_path / "photos"), "--model", "builtin:shapes-tiny"],
                 ["embed", str(scenes_folder), "--out", str(tmp_path / "emb"), "--model", "builtin:shapes-tiny"],
                 ["build-index", str(tmp_path / "emb"), "--out", str(tmp_path / "vectors"), "--best-effort"]):
        subprocess.run([sys.executable, "-m", "clipdex", *args], check=True, capture_output=True, timeout=300)
    with serving(str(tmp_path / "photos"), str(tmp_path / "vectors"), "--share-location") as base:
        yield base, lib


def _shot(page: Any, name: str) -> None:
    """A screenshot for review, once the pictures on screen have loaded."""
    page.wait_for_function("[...document.images].filter(i => { const r = i.getBoundingClientRect(); "
                           "return r.bottom > 0 && r.top < innerHeight && r.width > 0; })"
                           ".every(i => i.complete)")
    page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=False)


def _results(page: Any, at_least: int = 1) -> None:
    page.wait_for_function(f"document.querySelectorAll('#results li').length >= {at_least}")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test` (apt-get install chromium)")
def test_page_url_states_filters_and_back_button(library_server: tuple[str, Path]) -> None:
    base, _ = library_server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(base + "/")
        page.wait_for_selector("#collection option", state="attached")
        # empty: the page says what to do
        assert "Type what you are looking for" in page.inner_text("#message")
        _shot(page, "empty")
        page.fill("#q", "a red circle")
        page.keyboard.press("Enter")
        _results(page, 10)
        assert "q=a+red+circle" in page.url and "c=photos" in page.url
        # captions wrap whole: none is cut
        assert page.evaluate("[...document.querySelectorAll('#results .caption')]"
                             ".every(c => c.scrollHeight <= c.clientHeight + 1 && c.scrollWidth <= c.clientWidth + 1)")
        _shot(page, "results")
        # filters: the page's date fields become taken>= / taken< conditions, and the URL keeps them
        page.click("#filters summary")
        page.fill("#taken-from", "2024-01-01")
        page.dispatch_event("#taken-from", "change")
        page.wait_for_function("document.querySelectorAll('#results li').length === 3")
        names = page.eval_on_selector_all("#results li img", "els => els.map(e => e.alt.split('/').pop())")
        assert sorted(names) == ["lyon.jpg", "paris copy.jpg", "paris.jpg"] and "from=2024-01-01" in page.url
        _shot(page, "filtered")
        # no result: says what to do
        page.fill("#camera", "Leica")
        page.dispatch_event("#camera", "change")
        page.wait_for_function("document.getElementById('message').textContent.includes('No results with these')")
        assert page.evaluate("document.querySelectorAll('#results li').length") == 0
        assert page.is_hidden("#more")
        _shot(page, "no-results")
        # back: the filter without the camera, and its three results, come back
        page.go_back()
        page.wait_for_function("document.querySelectorAll('#results li').length === 3")
        assert page.input_value("#camera") == "" and page.input_value("#taken-from") == "2024-01-01"
        page.go_back()
        _results(page, 10)
        assert page.input_value("#taken-from") == "" and page.input_value("#q") == "a red circle"
        # an error: old results leave, the message says what to do
        page.fill("#where", "no operator here")
        page.dispatch_event("#where", "change")
        page.wait_for_function("document.getElementById('message').className === 'error'")
        assert "key=value" in page.inner_text("#message") and "try again" in page.inner_text("#message")
        assert page.evaluate("document.querySelectorAll('#results li').length") == 0
        _shot(page, "error")
        # a shared link opens the same search, options included
        shared = browser.new_page(viewport={"width": 1100, "height": 800})
        shared.goto(base + "/?c=photos&q=red+circle&mode=lexical")
        _results(shared, 1)
        assert shared.input_value("#q") == "red circle" and shared.input_value("#mode") == "lexical"
        assert shared.evaluate("[...document.querySelectorAll('#results .caption')]"
                               ".every(c => /red|circle/.test(c.textContent))")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test` (apt-get install chromium)")
def test_page_keyboard_detail_duplicates_index_and_phone(library_server: tuple[str, Path]) -> None:
    base, lib = library_server
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(base + "/?c=photos&q=a+photo&from=2024-01-01")
        page.wait_for_function("document.querySelectorAll('#results li').length === 3")
        # keyboard only: Tab from the search box reaches the image upload, with a visible focus ring
        page.focus("#q")
        for _ in range(6):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "upload":
                break
        assert page.evaluate("document.activeElement.id") == "upload"
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
        # Enter on it opens the file picker (seen as the click on the file input; the picker itself is
        # the browser's, so the file is then given to the input as the picker would)
        page.evaluate("document.getElementById('file').addEventListener('click', (e) => "
                      "{ window.pickerOpened = true; e.preventDefault(); })")
        page.keyboard.press("Enter")
        page.wait_for_function("window.pickerOpened === true")
        page.set_input_files("#file", str(lib / "paris.jpg"))
        page.wait_for_function("!document.getElementById('query-image').hidden && "
                               "Number(document.querySelector('#results li .score')?.textContent) > 0.99")
        _shot(page, "image-query")
        # clearing the image query leaves no stale count and no "Load more"
        page.click("#clear-image")
        assert page.evaluate("document.querySelectorAll('#results li').length") == 0
        assert page.is_hidden("#more") and "results" not in page.inner_text("#status")
        assert "Type what you are looking for" in page.inner_text("#message")
        # the detail view: score, readable metadata, previous / next, the original
        page.fill("#q", "a photo")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('#results li').length === 3")
        page.click("#results li")
        page.wait_for_selector("dialog#detail[open]")
        page.wait_for_function("document.getElementById('detail-image').naturalWidth > 0")
        assert page.inner_text("#detail-rank") == "1 of 3" and page.inner_text("#detail-score").startswith("Score ")
        meta = page.inner_text("#detail-meta")
        assert "Taken" in meta and "2024" in meta and "X100V" in meta and "Place" in meta and "48.85660" in meta
        assert "{" not in meta and "96 × 64 px" in meta
        assert page.get_attribute("#download", "href").startswith("/api/items/")
        assert page.evaluate("fetch(document.getElementById('download').href).then(r => r.status)") == 200
        assert page.is_disabled("#prev") and not page.is_disabled("#next")
        _shot(page, "detail")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("document.getElementById('detail-rank').textContent === '2 of 3'")
        page.click("#next")
        page.wait_for_function("document.getElementById('detail-rank').textContent === '3 of 3'")
        assert page.is_disabled("#next")
        page.keyboard.press("Escape")
        page.wait_for_selector("dialog#detail:not([open])", state="attached")
        # duplicates side by side
        page.click("#show-duplicates")
        page.wait_for_selector("#duplicates .group")
        groups = page.eval_on_selector_all("#duplicates .group", "els => els.map(e => e.innerText)")
        paris = [g for g in groups if "paris.jpg" in g]
        assert len(paris) == 1 and "exact copies" in paris[0] and "paris copy.jpg" in paris[0], groups
        assert "view=duplicates" in page.url
        _shot(page, "duplicates")
        # a served index: what it cannot do is off
        page.select_option("#collection", "vectors")
        for control in ("#mode", "#varied", "#regions", "#taken-from", "#camera", "#modify"):
            assert page.is_disabled(control), control
        assert page.is_hidden("#show-duplicates")
        page.fill("#q", "a red circle")
        page.keyboard.press("Enter")
        _results(page, 5)
        _shot(page, "index")
        # a phone: the search box keeps the width of the screen
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(base + "/?c=photos&q=a+blue+star")
        _results(phone, 4)
        assert phone.evaluate("document.getElementById('q').getBoundingClientRect().width") >= 330
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        _shot(phone, "phone")
        phone.click("#results li")
        phone.wait_for_selector("dialog#detail[open]")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        _shot(phone, "phone-detail")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by `make test` (apt-get install chromium)")
def test_page_map_colour_select_search_export_and_probe(library_server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = library_server
    subprocess.run([sys.executable, "-m", "clipdex", "clusters", str(tmp_path / "photos"), "-k", "4"], check=True,
                   capture_output=True, timeout=300)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(base + "/?c=photos&view=map&color=cluster_label")
        page.wait_for_function("window.clipdexMap && window.clipdexMap.state.points.length === 64")
        assert page.input_value("#map-color") == "cluster_label"
        assert page.eval_on_selector_all("#map-legend span", "els => els.length") == 4
        _shot(page, "map")
        # zoomed in, the points become thumbnails
        for _ in range(3):
            page.click("#map-zoom-in")
        page.wait_for_function("window.clipdexMap.state.thumbs.size > 0 && "
                               "[...window.clipdexMap.state.thumbs.values()].every(i => i.complete)")
        page.evaluate("window.clipdexMap.draw()")
        _shot(page, "map-zoomed")
        page.click("#map-reset")
        # a box over the whole map selects everything; a box over nothing selects nothing
        box = page.eval_on_selector("#map-canvas", "c => { const r = c.getBoundingClientRect(); "
                                    "return [r.left, r.top, r.width, r.height]; }")
        left, top, width, height = box
        page.click("#map-select-mode")
        page.mouse.move(left + 2, top + 2)
        page.mouse.down()
        page.mouse.move(left + width - 2, top + height - 2, steps=5)
        page.mouse.up()
        assert page.evaluate("window.clipdexMap.state.selected.size") == 64
        # half the canvas: a real part of the map
        page.click("#map-clear")
        page.mouse.move(left + 2, top + 2)
        page.mouse.down()
        page.mouse.move(left + width / 2, top + height - 2, steps=5)
        page.mouse.up()
        chosen = page.evaluate("[...window.clipdexMap.state.selected]")
        assert 0 < len(chosen) < 64
        _shot(page, "map-selected")
        with page.expect_download() as listed:
            page.click("#map-export-list")
        assert sorted(int(x) for x in Path(listed.value.path()).read_text().split()) == sorted(chosen)
        with page.expect_download() as table:
            page.click("#map-export-table")
        rows = Path(table.value.path()).read_text().splitlines()
        assert rows[0] == "id,path,captions,metadata" and len(rows) == len(chosen) + 1
        # the selection filters the search
        page.click("#map-search")
        assert not page.is_hidden("#selection-filter")
        page.fill("#q", "a shape")
        page.keyboard.press("Enter")
        _results(page, 1)
        ids = page.eval_on_selector_all("#results li", "els => els.map(e => Number(e.dataset.id))")
        assert set(ids) <= set(chosen)
        _shot(page, "search-in-selection")
        # marks in the detail view train a probe that then filters like any field
        page.click("#clear-selection-filter")
        page.fill("#q", "a red circle")
        page.keyboard.press("Enter")
        _results(page, 8)
        for index, verdict in ((0, "yes"), (1, "yes"), (2, "yes"), (5, "no"), (6, "no"), (7, "no")):
            page.evaluate(f"openItem({index})")
            page.wait_for_function(f"document.getElementById('detail-rank').textContent.startsWith('{index + 1} of')")
            page.click(f"#mark-{verdict}")
        page.fill("#probe-name", "reddish")
        page.click("#probe-train")
        page.wait_for_function("document.getElementById('probe-result').textContent.includes('AUC')")
        assert "reddish>=" in page.inner_text("#probe-result")
        _shot(page, "probe")
        page.keyboard.press("Escape")
        # the new field colours the map
        page.click("#show-map")
        page.wait_for_function("[...document.querySelectorAll('#map-color option')].some(o => o.value === 'reddish')")
        page.select_option("#map-color", "reddish")
        page.wait_for_function("window.clipdexMap.state.field === 'reddish'")
        _shot(page, "map-probe")
