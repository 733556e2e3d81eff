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
