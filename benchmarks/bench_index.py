"""Index for a memory budget over an embedding folder: build time, RAM at query time, recall and latency.

Queries are 1,000 held-out vectors (the folder's ``queries.npy`` as
``make_vectors.py`` writes it, else its caption vectors: neither is in the
index); recall@10 is against exact search over the float16 vectors, with and
without the exact re-ranking stage. The index is searched in a child process
so its peak RSS is the query-time RAM. Prints one JSON document.

    python benchmarks/bench_index.py EMB [--budget 256M] [--shards N] [--work build/bench-index]
    (EMB: e.g. build/bench-curate/pool/emb, written by benchmarks/bench_curate.py,
     or build/vec10m from benchmarks/make_vectors.py)

Latency is for one query at a time: the index alone (no re-ranking), re-ranking
100 candidates, and re-ranking the depth ``build-index`` calibrated for recall
0.95 (with and without hydrating the hits' metadata).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, os, statistics, sys, time
import numpy as np
from clipdex.embeddings.index import EmbeddingIndex

def dropped_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False

def run(name, rerank, metadata):
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.search(q, k=10, rerank=rerank, metadata=metadata)
        times.append(1000 * (time.perf_counter() - t))
        found.append([h["row"] for h in hits])
    times.sort()
    out[name] = {"found": found, "p50_ms": round(statistics.median(times), 2),
                 "p99_ms": round(times[int(0.99 * len(times))], 2)}

out = {"caches_dropped": dropped_caches()}
index = EmbeddingIndex(sys.argv[1])
queries = np.load(sys.argv[2])
# cold: the float16 vectors and metadata come from the disk (when the caches could be dropped)
run("cold_rerank_calibrated_with_metadata", None, True)
# warm: every vector part read once, so re-ranking reads from the page cache, not the disk
t = time.perf_counter()
for part in index.manifest["parts"]:
    with open(part["npy"], "rb") as f:
        while f.read(1 << 24):
            pass
out["cache_vectors_seconds"] = round(time.perf_counter() - t, 1)
for name, rerank, metadata in (("rerank_0", 0, False), ("rerank_100", 100, False),
                               ("rerank_calibrated", None, False), ("rerank_calibrated_with_metadata", None, True)):
    run(name, rerank, metadata)
# VmHWM, not ru_maxrss: ru_maxrss survives exec and so counts the parent's memory copied at fork.
# Re-ranking reads rows with pread, so the page cache holding the vectors is not the process's;
# RssFile is the memory-mapped Arrow metadata the hits touched (page cache the kernel can drop).
status = dict(line.split(":", 1) for line in open("/proc/self/status")
              if line.startswith(("RssAnon", "RssFile", "VmHWM")))
out["peak_rss_mb"] = round(int(status.pop("VmHWM").split()[0]) / 1024)
out.update({k: round(int(v.split()[0]) / 1024) for k, v in status.items()})
print(json.dumps(out))
"""


def main() -> None:
    from clipdex.embeddings.index import build_index, calibrate_index, exact_neighbours, parse_size

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("emb")
    parser.add_argument("--budget", default="256M")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--work", default="build/bench-index")
    parser.add_argument("--reuse", action="store_true", help="Measure the index already built in WORK")
    args = parser.parse_args()
    emb, work = Path(args.emb), Path(args.work)
    if args.reuse:
        manifest = json.loads((work / "index" / "manifest.json").read_text())
        build_s = manifest["build_seconds"]
        if "calibration" not in manifest:  # built before build-index calibrated its re-ranking depth
            t = time.perf_counter()
            manifest = calibrate_index(work / "index")
            manifest["calibration_seconds"] = round(time.perf_counter() - t, 1)
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        t = time.perf_counter()
        print(f"building the index of {emb}", file=sys.stderr, flush=True)
        manifest = build_index(emb, work / "index", parse_size(args.budget), shards=args.shards)
        build_s = time.perf_counter() - t
    held_out = emb / "queries.npy" if (emb / "queries.npy").exists() else sorted((emb / "text_emb").glob("*.npy"))[0]
    text = np.load(held_out).astype(np.float32)[:args.queries]
    queries = text / np.linalg.norm(text, axis=1, keepdims=True)
    np.save(work / "queries.npy", queries)
    print("exact top 10 by brute force", file=sys.stderr, flush=True)
    cached = work / f"exact-{len(queries)}.npy"  # the held-out queries never change: measured once
    if cached.exists():
        exact = np.load(cached)
    else:
        arrays = [np.load(f, mmap_mode="r") for f in sorted((emb / "img_emb").glob("img_emb_*.npy"),
                                                             key=lambda p: int(p.stem.split("_")[-1]))]
        exact = exact_neighbours(arrays, queries)
        np.save(cached, exact)
    print("searching the index in a child process", file=sys.stderr, flush=True)
    child = subprocess.run([sys.executable, "-c", CHILD, str(work / "index"), str(work / "queries.npy")],
                           capture_output=True, text=True, check=True)
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    result = {"vectors": manifest["vectors"], "dim": manifest["dim"], "budget": args.budget,
              "factory": manifest["factory"], "nprobe": manifest["nprobe"], "shards": len(manifest["shards"]),
              "index_bytes": manifest["index_bytes"],
              "bytes_per_vector": round(manifest["index_bytes"] / manifest["vectors"], 1),
              "build_seconds": round(build_s, 1), "query_process_peak_rss_mb": measured["peak_rss_mb"],
              "query_process_anon_mb": measured.get("RssAnon"), "query_process_file_mb": measured.get("RssFile")}
    result["calibration"] = manifest.get("calibration")
    result["rerank_calibrated_depth"] = manifest.get("rerank")
    result["caches_dropped_before_cold_pass"] = measured["caches_dropped"]
    result["cache_vectors_seconds"] = measured["cache_vectors_seconds"]
    for name in ("cold_rerank_calibrated_with_metadata", "rerank_0", "rerank_100", "rerank_calibrated",
                 "rerank_calibrated_with_metadata"):
        row = measured[name]
        recall = np.mean([len(set(f) & set(e.tolist())) / 10 for f, e in zip(row["found"], exact, strict=True)])
        result[name] = {"recall@10": round(float(recall), 4), "p50_ms": row["p50_ms"],
                                      "p99_ms": row["p99_ms"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
