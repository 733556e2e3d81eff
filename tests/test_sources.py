from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipdex.errors import SourceError
from clipdex.media import SourceOptions, iter_source
from helpers import solid, write_bad_folder

pytestmark = pytest.mark.unit


def test_folder_walks_recursively_sorted_with_sidecars_and_survives_loops(tmp_path: Path) -> None:
    kinds = write_bad_folder(tmp_path / "bad")
    (tmp_path / "bad" / "good.txt").write_text("first caption\nsecond caption\n")
    items = list(iter_source(tmp_path / "bad"))
    rel = sorted(os.path.relpath(i.path, tmp_path / "bad") for i in items)
    assert rel == sorted(kinds)  # each file once, the loop not followed
    good = next(i for i in items if i.path.endswith("good.jpg"))
    assert good.captions == ["first caption", "second caption"]


def test_csv_rows_merge_captions_and_keep_metadata(tmp_path: Path) -> None:
    solid((255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text("file,text,label\na.png,a red box,red\na.png,crimson,red\n,blank,x\n")
    items = list(iter_source(tmp_path / "t.csv", SourceOptions(image_col="file", caption_col="text")))
    assert len(items) == 1
    assert items[0].captions == ["a red box", "crimson"]
    assert items[0].metadata == {"label": "red"}
    assert items[0].path == str(tmp_path / "a.png")


def test_parquet_and_jsonl_guess_columns(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"path": ["x.png", "y.png"], "caption": ["one", "two"], "n": [1, 2]}), tmp_path / "t.parquet"
    )
    items = list(iter_source(tmp_path / "t.parquet"))
    assert [i.captions for i in items] == [["one"], ["two"]] and items[1].metadata == {"n": 2}
    (tmp_path / "t.jsonl").write_text(json.dumps({"image": "z.png", "text": "zed"}) + "\n")
    assert next(iter_source(tmp_path / "t.jsonl")).captions == ["zed"]


def test_unknown_column_lists_the_available_ones(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="Available: a, b"):
        list(iter_source(tmp_path / "t.csv"))


def test_karpathy_json(tmp_path: Path) -> None:
    data = {
        "images": [
            {
                "filepath": "val",
                "filename": "1.jpg",
                "split": "test",
                "imgid": 7,
                "sentences": [{"raw": "a dog"}, {"raw": "a puppy"}],
            }
        ]
    }
    (tmp_path / "d.json").write_text(json.dumps(data))
    item = next(iter_source(tmp_path / "d.json"))
    assert item.path == str(tmp_path / "val" / "1.jpg")
    assert item.captions == ["a dog", "a puppy"] and item.metadata == {"split": "test", "imgid": 7}


def test_bad_sources_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        iter_source(tmp_path / "missing")
    (tmp_path / "x.doc").write_text("")
    with pytest.raises(SourceError, match="unknown source format"):
        iter_source(tmp_path / "x.doc")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(SourceError, match="invalid JSON"):
        list(iter_source(tmp_path / "bad.jsonl"))
    (tmp_path / "k.json").write_text("[]")
    with pytest.raises(SourceError, match="Karpathy"):
        list(iter_source(tmp_path / "k.json"))
