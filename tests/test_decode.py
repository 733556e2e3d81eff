from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdex.errors import DecodeError
from clipdex.media import DecodeOptions, decode_image, to_rgb
from helpers import write_bad_folder

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    write_bad_folder(root)
    return root


@pytest.mark.parametrize("name", ["good.jpg", "good.png", "good.webp", "good.gif", "good.tiff", "cmyk.jpg",
                                  "deep16.png", "palette.png", "rotated.jpg"])
def test_good_files_decode_to_rgb(bad: Path, name: str) -> None:
    im = decode_image(bad / name)
    assert im.mode == "RGB"
    assert min(im.size) > 0


@pytest.mark.parametrize(("name", "reason"), [
    ("truncated.jpg", "truncated"), ("empty.jpg", "empty file"), ("notes.png", "not an image"),
    ("bomb.png", "decompression bomb"),
])
def test_bad_files_raise_with_reason(bad: Path, name: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_image(bad / name)


def test_own_pixel_limit_applies_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 300)).save(buf, format="PNG")
    with pytest.raises(DecodeError, match="too large"):
        decode_image(buf.getvalue(), DecodeOptions(max_pixels=10_000))


def test_exif_orientation_is_applied(bad: Path) -> None:
    # saved 60x30 with orientation 6 (rotate 90): displayed 30x60
    assert decode_image(bad / "rotated.jpg").size == (30, 60)


def test_sixteen_bit_keeps_its_range(bad: Path) -> None:
    arr = np.asarray(decode_image(bad / "deep16.png"))
    assert arr.min() < 10 and 10 < arr.max() < 255  # scaled, not clipped to white


def test_transparency_composited_on_white(bad: Path) -> None:
    arr = np.asarray(decode_image(bad / "palette.png"))
    assert (arr[:, :15] == 255).all()  # transparent red became white, not red
    assert (arr[:, 15:] == [0, 255, 0]).all()


def test_modes_convert_to_rgb() -> None:
    for mode in ("1", "L", "LA", "P", "RGBA", "CMYK", "I", "F"):
        assert to_rgb(Image.new(mode, (4, 4))).mode == "RGB"


def test_draft_reduces_large_jpegs_but_keeps_short_side() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1024, 768), (10, 200, 30)).save(buf, format="JPEG")
    im = decode_image(buf.getvalue(), DecodeOptions(draft_size=224))
    assert min(im.size) >= 224 and im.size[0] < 1024


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="not found"):
        decode_image(tmp_path / "nope.jpg")
