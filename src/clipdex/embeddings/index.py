"""Indexes over embedding folders (clip-retrieval's layout) built for a memory budget.

``plan_index`` picks the FAISS factory whose codes fit the budget, best first:
flat float32, IVF with float16 or 8-bit scalar codes, then IVF with 4-bit
fast-scan product quantisation of fewer and fewer bytes per vector. The index is trained on a sample and filled
part by part, so the vectors are never all in RAM. A search re-ranks the
index's candidates exactly from the float16 vectors on disk (memory-mapped),
and hydrates results from the metadata part files by row.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from clipdex.embeddings.layout import read_model_card, read_parts
from clipdex.errors import BadQueryError, ClipdexError, SourceError, UsageError
from clipdex.linalg import l2_normalize
from clipdex.store.ann import plan_index, train_quietly
from clipdex.store.vectors import gather_rows

__all__ = ["EmbeddingIndex", "RowReader", "build_index", "calibrate_index", "exact_neighbours", "index_shortfalls",
           "merge_index", "parse_size", "search_index_text"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"2G"`` -> bytes (K, M, G, T are powers of 1024).

    Raises:
        UsageError: not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?\s*", text.upper())
    if not match:
        raise UsageError(f"cannot read the size {text!r}; write e.g. 512M or 2G")
    return int(float(match[1]) * _UNITS[match[2]])


def index_shortfalls(manifest: dict[str, Any]) -> list[str]:
    """What a built index did not reach, in words: the recall target, the memory budget (empty: both met)."""
    out = []
    calibration = manifest.get("calibration") or {}
    if not calibration.get("reached", True):
        depths = calibration.get("recall_at_depth") or {}
        best = max(depths.values(), default=float("nan"))
        out.append(f"no re-ranking depth reached recall@10 {calibration.get('target_recall')}: the best measured is "
                   f"{best:.3f} (a larger --memory-budget allows finer codes)")
    if manifest["index_bytes"] > manifest["memory_budget"]:
        over = manifest["index_bytes"] / manifest["memory_budget"] - 1
        out.append(f"the index is {manifest['index_bytes']:,} bytes, {over:.0%} over the "
                   f"{manifest['memory_budget']:,}-byte budget")
    return out


def build_index(emb: str | os.PathLike[str], out: str | os.PathLike[str], memory_budget: int,
                factory: str | None = None, shards: int = 1, skip_bad: bool = False,
                progress: Callable[[int, int], None] | None = None,
                target_recall: float | None = 0.95) -> dict[str, Any]:
    """Build an index of ``emb``'s image vectors into ``out``.

    ``out`` gets ``index.faiss`` (or ``shard_{s}.faiss`` files with ``shards`` > 1: one trained index,
    filled with a contiguous run of parts each, searched together or merged by :func:`merge_index`),
    ``metadata/meta_{i}.arrow`` (the metadata as uncompressed Arrow, memory-mapped at query time) and
    ``manifest.json``. With ``target_recall``, the re-ranking depth that reaches it is measured
    (:func:`calibrate_index`). Returns the manifest: the chosen factory, counts, sizes, skipped parts,
    build time, calibration.
    """
    import faiss

    out = Path(out)
    parts, skipped = read_parts(emb, skip_bad)
    n, dim = sum(p.rows for p in parts), parts[0].dim
    plan = plan_index(n, dim, memory_budget)
    chosen = factory or plan.factory
    started = time.perf_counter()
    arrays = [np.load(p.npy, mmap_mode="r") for p in parts]
    trained = _trained(faiss, chosen, dim, arrays, n, plan.nlist)
    out.mkdir(parents=True, exist_ok=True)
    shard_parts = np.array_split(np.arange(len(parts)), max(1, min(shards, len(parts))))
    shard_entries: list[dict[str, Any]] = []
    first_row = done = 0
    for number, members in enumerate(shard_parts):
        index = faiss.clone_index(trained)
        rows = 0
        for p in members:
            for start in range(0, len(arrays[p]), 100_000):
                index.add(l2_normalize(arrays[p][start:start + 100_000]))
            rows += parts[p].rows
            done += 1
            if progress:
                progress(done, len(parts))
        name = "index.faiss" if len(shard_parts) == 1 else f"shard_{number}.faiss"
        _write_index(faiss, index, out / name)
        shard_entries.append({"file": name, "first_row": first_row, "rows": rows})
        first_row += rows
    part_entries = []
    for i, part in enumerate(parts):
        arrow = _arrow_metadata(part.metadata, out / "metadata" / f"meta_{i}.arrow")
        part_entries.append({"npy": str(part.npy.resolve()), "metadata": str(part.metadata.resolve()),
                             "arrow": arrow, "rows": part.rows})
    model = read_model_card(emb)  # written by clipdex embed: the model the vectors came from
    nprobe = plan.nprobe if "IVF" in chosen else 0  # a --factory without inverted lists has nothing to probe
    manifest = {"factory": chosen, "vectors": n, "dim": dim, "nprobe": nprobe, "model": model,
                "emb": str(Path(emb).resolve()), "parts": part_entries, "shards": shard_entries,
                "skipped_parts": skipped, "memory_budget": memory_budget, "planned": asdict(plan),
                "index_bytes": sum((out / s["file"]).stat().st_size for s in shard_entries),
                "build_seconds": round(time.perf_counter() - started, 2)}
    _write_manifest(out, manifest)
    return calibrate_index(out, target_recall) if target_recall else manifest


def exact_neighbours(arrays: list[np.ndarray], queries: np.ndarray, k: int = 10,
                     chunk: int = 200_000) -> np.ndarray:
    """Row ids of the exact top ``k`` of each unit query by brute force over float16 parts, a chunk of
    rows at a time (never all vectors in RAM)."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_rows = np.zeros((len(queries), k), np.int64)
    offset = 0
    for array in arrays:
        for start in range(0, len(array), chunk):
            scores = queries @ l2_normalize(np.asarray(array[start:start + chunk], np.float32)).T
            top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
            merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
            merged_rows = np.concatenate([best_rows, top + offset + start], axis=1)
            keep = np.argsort(-merged_scores, axis=1)[:, :k]
            best_scores = np.take_along_axis(merged_scores, keep, 1)
            best_rows = np.take_along_axis(merged_rows, keep, 1)
        offset += len(array)
    return best_rows


_DEPTHS = (20, 50, 100, 200, 300, 500, 1000)


def calibrate_index(folder: str | os.PathLike[str], target_recall: float = 0.95, queries: int = 200,
                    seed: int = 0) -> dict[str, Any]:
    """Measure recall@10 against exact search for each re-ranking depth, and record in the manifest the
    smallest depth that reaches ``target_recall`` (``rerank``, the default of every search).

    The queries are ``queries`` vectors drawn from the index itself, each left out of its own answers.
    How deep to re-rank depends on the data as much as on the codes (the 4-bit codes rank close
    neighbours coarsely), so it is measured, not guessed. Returns the updated manifest.
    """
    index = EmbeddingIndex(folder)
    n = len(index)
    rows = np.random.default_rng(seed).choice(n, min(queries, n), replace=False)
    vectors = gather_rows(index.arrays, rows)
    exact = exact_neighbours(index.arrays, vectors, 11)
    depth = min(_DEPTHS[-1], n)
    recall: dict[str, float] = {}
    found_at = []
    for q, own, truth in zip(vectors, rows, exact, strict=True):
        candidates = index.candidates(q, depth + 1)
        found_at.append((candidates[candidates != own], set(truth[truth != own][:10].tolist())))
    for d in (d for d in _DEPTHS if d <= depth):
        # re-ranking is exact, so a true neighbour among the first d candidates ends in the top 10
        recall[str(d)] = round(float(np.mean([len(t & set(c[:d].tolist())) / 10 for c, t in found_at])), 4)
    reached = [int(d) for d, r in recall.items() if r >= target_recall]
    manifest = index.manifest
    manifest["rerank"] = reached[0] if reached else int(max(recall, key=int))
    manifest["calibration"] = {"queries": len(rows), "target_recall": target_recall, "recall_at_depth": recall,
                               "reached": bool(reached)}
    _write_manifest(Path(folder), manifest)
    return manifest


def merge_index(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Merge an index built in shards into one ``index.faiss`` (IVF indexes, which share one trained
    quantizer); the shard files are removed once the merged index is written.

    Raises:
        ClipdexError: the index is not sharded, or its kind cannot be merged.
    """
    import faiss

    folder = Path(folder)
    manifest = _read_manifest(folder)
    shards = manifest["shards"]
    if len(shards) < 2:
        raise ClipdexError(f"{folder}: the index is in one piece already")
    merged = faiss.read_index(str(folder / shards[0]["file"]))
    if not isinstance(merged, faiss.IndexIVF):
        raise ClipdexError(f"{folder}: only IVF indexes can be merged ({manifest['factory']}); search the "
                           "shards together instead")
    for shard in shards[1:]:
        merged.merge_from(faiss.read_index(str(folder / shard["file"])), shard["first_row"])
    _write_index(faiss, merged, folder / "index.faiss")
    manifest["shards"] = [{"file": "index.faiss", "first_row": 0, "rows": manifest["vectors"]}]
    manifest["index_bytes"] = (folder / "index.faiss").stat().st_size
    _write_manifest(folder, manifest)
    for shard in shards:
        (folder / shard["file"]).unlink(missing_ok=True)
    return manifest


def _trained(faiss: Any, factory: str, dim: int, arrays: list[np.ndarray], n: int, nlist: int) -> Any:
    """An empty index of ``factory``, trained on a sample of 30 vectors per list (the low end of faiss's
    advice, 30 to 256: k-means over 12,649 lists at 10M then takes minutes on two cores, not an hour)."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ClipdexError(f"faiss cannot build {factory!r}: {str(e).splitlines()[-1]}") from e
    if not index.is_trained:
        take = min(n, max(30 * max(nlist, 1), 10_000), 500_000)
        rows = np.sort(np.random.default_rng(0).choice(n, take, replace=False))
        train_quietly(faiss, index, gather_rows(arrays, rows))
    return index


def _write_index(faiss: Any, index: Any, path: Path) -> None:
    faiss.write_index(index, str(path) + ".tmp")
    os.replace(str(path) + ".tmp", path)


def _arrow_metadata(parquet: Path, target: Path) -> str:
    """The metadata part as an uncompressed Arrow file: memory-mapped at query time, a hit reads its
    own row, where a Parquet row group would be decompressed whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    source = pq.ParquetFile(parquet)
    with pa.OSFile(str(target) + ".tmp", "wb") as sink, pa.ipc.new_file(sink, source.schema_arrow) as writer:
        for batch in source.iter_batches(batch_size=65_536):
            writer.write_batch(batch)
    os.replace(str(target) + ".tmp", target)
    return target.name


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / "manifest.json.tmp").write_text(json.dumps(manifest, indent=1))
    os.replace(folder / "manifest.json.tmp", folder / "manifest.json")


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SourceError(f"{folder}: not an index folder (no readable manifest.json)") from e
    manifest.setdefault("shards", [{"file": "index.faiss", "first_row": 0, "rows": manifest["vectors"]}])
    return manifest


class EmbeddingIndex:
    """A built index folder: search with exact re-ranking, results hydrated from metadata by row.

    The index codes are in RAM (that is what the budget pays for); the float16 vectors and the metadata
    are memory-mapped, so a search reads only the rows it re-ranks and returns.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        import faiss
        import pyarrow as pa

        self.folder = Path(folder)
        self.manifest = _read_manifest(self.folder)
        self.shards = []
        for shard in self.manifest["shards"]:
            index = faiss.read_index(str(self.folder / shard["file"]))
            if self.manifest["nprobe"]:
                space = faiss.ParameterSpace()
                space.set_index_parameter(index, "nprobe", self.manifest["nprobe"])
                if "HNSW" in self.manifest["factory"]:  # the coarse quantizer must look past nprobe centroids
                    space.set_index_parameter(index, "quantizer_efSearch", 2 * self.manifest["nprobe"])
            self.shards.append((index, int(shard["first_row"])))
        self.arrays = [np.load(p["npy"], mmap_mode="r") for p in self.manifest["parts"]]  # for whole scans
        self.row_readers = [RowReader(p["npy"]) for p in self.manifest["parts"]]  # the rows a search re-ranks
        self.offsets = np.cumsum([0] + [p["rows"] for p in self.manifest["parts"]])
        self.rerank = int(self.manifest.get("rerank", 100))
        self.readers = [pa.ipc.open_file(pa.memory_map(str(self.folder / "metadata" / p["arrow"])))
                        for p in self.manifest["parts"]]
        # where each record batch starts: a row is read from its own batch, with no copy of the others
        self.batch_starts = [np.cumsum([0] + [r.get_batch(i).num_rows for i in range(r.num_record_batches)])
                             for r in self.readers]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return int(self.manifest["vectors"])

    def candidates(self, query: np.ndarray, depth: int) -> np.ndarray:
        """Row ids of the index's best ``depth`` candidates for a unit query, best first (every shard
        asked for ``depth``, merged by code score)."""
        q = np.asarray(query, np.float32).reshape(1, -1)
        found_scores, found_rows = [], []
        for index, first_row in self.shards:
            scores, ids = index.search(q, depth)
            keep = ids[0] >= 0
            found_scores.append(scores[0][keep])
            found_rows.append(ids[0][keep] + first_row)
        scores, rows = np.concatenate(found_scores), np.concatenate(found_rows)
        return rows[np.argsort(-scores, kind="stable")[:depth]]

    def search(self, query: np.ndarray, k: int = 10, rerank: int | None = None,
               metadata: bool = True) -> list[dict[str, Any]]:
        """Top ``k`` rows for a query: index candidates (``max(k, rerank)``), rescored exactly from the
        float16 vectors when ``rerank`` > 0 (default: the depth calibrated at build time)."""
        q = l2_normalize(np.asarray(query, np.float32).reshape(1, -1))
        rerank = self.rerank if rerank is None else rerank
        rows = self.candidates(q[0], max(k, rerank))
        exact = self.vectors(rows) @ q[0]
        order = np.argsort(-exact)[:k] if rerank else np.arange(min(k, len(rows)))
        rows, exact = rows[order], exact[order]
        hits = [{"row": int(r), "score": float(s)} for r, s in zip(rows, exact, strict=True)]
        if metadata:
            for hit, row in zip(hits, self.metadata(rows), strict=True):
                hit.update(row)
        return hits

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Unit float32 vectors of global row ids, read row by row from the float16 parts."""
        return gather_rows(self.row_readers, rows)

    def column(self, name: str) -> list[Any]:
        """One metadata column for every row, in row order (None in parts without it): a whole-column read
        of the memory-mapped batches, where :meth:`metadata` reads row by row."""
        out: list[Any] = []
        for reader, part in zip(self.readers, self.manifest["parts"], strict=True):
            if name not in reader.schema.names:
                out += [None] * int(part["rows"])
                continue
            for i in range(reader.num_record_batches):
                out += reader.get_batch(i).column(name).to_pylist()
        return out

    def metadata(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """The metadata rows of global row ids, in order, read by row from the memory-mapped parts."""
        rows = np.asarray(rows, np.int64)
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        out: list[dict[str, Any]] = [{} for _ in rows]
        for part in np.unique(part_of):
            where = np.flatnonzero(part_of == part)
            local = rows[where] - self.offsets[part]
            reader, starts = self.readers[int(part)], self.batch_starts[int(part)]
            batch_of = np.searchsorted(starts, local, side="right") - 1
            for i, row, batch in zip(where, local, batch_of, strict=True):
                out[i] = reader.get_batch(int(batch)).slice(int(row - starts[batch]), 1).to_pylist()[0]
        return out


def search_index_text(folder: str | os.PathLike[str], text: str, k: int = 10, rerank: int | None = None,
                      model: str | None = None) -> list[dict[str, Any]]:
    """Search an index folder by text with the model its embeddings were made with (``clipdex search-index``).

    Args:
        model: the encoder spec; default: the one the index records, else the built-in model.

    Raises:
        BadQueryError: blank text, or a model whose vectors have another width than the index's.
    """
    from clipdex.encoders.registry import DEFAULT_SPEC, load_encoder

    if not text.strip():
        raise BadQueryError("empty query: the text is blank")
    opened = EmbeddingIndex(folder)
    encoder = load_encoder(model or opened.manifest.get("model") or DEFAULT_SPEC)
    if encoder.dim != opened.manifest["dim"]:
        raise BadQueryError(f"{encoder.spec} makes {encoder.dim}-d vectors but the index holds "
                            f"{opened.manifest['dim']}-d ones: pass the --model the embeddings were made with")
    return opened.search(encoder.encode_texts([text.strip()])[0], k, rerank)


class RowReader:
    """Rows of a ``.npy`` part read with ``pread``: a search reads the few KB it re-ranks, through the
    page cache, without mapping the file -- so the process holds no pages of it (a memory map's
    fault-around would map 64 KB per row touched and count them as the process's memory)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or len(shape) != 2:
            raise SourceError(f"{path}: expected a C-ordered 2-d array")
        self.dtype, self.shape = np.dtype(dtype), (int(shape[0]), int(shape[1]))
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """Rows by local index, like a memory-mapped array's (so :func:`gather_rows` takes either)."""
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        for i, row in enumerate(rows):
            out[i] = np.frombuffer(os.pread(self.fd, self.row_bytes, self.offset + int(row) * self.row_bytes),
                                   self.dtype)
        return out

    def __del__(self) -> None:
        if hasattr(self, "fd"):
            os.close(self.fd)
