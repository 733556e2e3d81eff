"""Serving under load: a real server on loopback, text queries at concurrency 1, 8 and 32.

A 100k-item collection with random vectors (the built-in model's dimension,
so queries are really encoded), QPS, p50/p99 latency, per-stage breakdown from
/metrics, errors, and the server's memory over a 10,000-request soak.
Requests go to 127.0.0.1 only and are bounded in count and time.
Prints one JSON document. Usage:

    python benchmarks/bench_serve.py [--items 100000] [--requests 1500] [--soak 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from clipdex import Collection
from clipdex.media import Item
from clipdex.store import add_embedded
from clipdex.synth.world import COLORS, SHAPES

SPEC = "builtin:shapes-tiny"


def build(folder: Path, n: int) -> Path:
    coll = folder / "c100k"
    if (coll / "collection.json").exists():
        if not (coll / "index" / "manifest.json").exists():
            with Collection.open(coll) as c:
                c.build_index()
        return coll
    c = Collection.create(coll, SPEC, 256)
    rng = np.random.default_rng(0)
    items = [Item(f"/bench/{i:06d}.jpg", [], {}) for i in range(n)]
    add_embedded(c, items, rng.standard_normal((n, 256)).astype(np.float32))
    c.build_index()  # the ANN index `clipdex index` builds at this size (exact search below the threshold)
    c.close()
    return coll


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(port: int, clients: int, total: int, deadline_s: float) -> dict[str, object]:
    queries = [f"a {c} {s}" for c in COLORS for s in SHAPES]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_client = total // clients
    stop_at = time.monotonic() + deadline_s

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_client):
            if time.monotonic() > stop_at:
                break
            body = json.dumps({"text": rng.choice(queries), "k": 10})
            t = time.perf_counter()
            try:
                conn.request("POST", "/api/search", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append(time.perf_counter() - t)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(ms), "errors": errors[0], "qps": round(len(ms) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "p99_over_p50": round(float(np.percentile(ms, 99) / np.percentile(ms, 50)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clipdex-bench-serve"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    coll = build(work, args.items)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "clipdex", "serve", str(coll), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = coll / "index" / "manifest.json"
    out: dict[str, object] = {"items": args.items, "model": SPEC,
                              "index": json.loads(manifest.read_text())["factory"] if manifest.exists() else "exact"}
    try:
        for _ in range(200):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        load(port, 1, 20, 60)  # warm-up: model and vectors loaded
        out["levels"] = [load(port, c, args.requests, 120) for c in (1, 8, 32)]
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/metrics")
        stages = json.loads(conn.getresponse().read())["latency_ms"]
        out["stages_ms"] = {k: {"p50": v.get("p50"), "p99": v.get("p99")} for k, v in stages.items()}
        before = rss_mb(server.pid)
        soak = load(port, 8, args.soak, 600)
        after = rss_mb(server.pid)
        out["soak"] = {**soak, "rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1),
                       "rss_growth_mb": round(after - before, 1)}
        out["median_p99_over_p50_at_32"] = out["levels"][-1]["p99_over_p50"]  # type: ignore[index]
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
