"""Server memory under 4 concurrent large query-image uploads: peak (VmHWM) and held (VmRSS) after.

Runs a real `clipdex serve` on loopback for each source tree given (this checkout's src/, and optionally
an older checkout's as the baseline) and each image side, posts four PNG uploads at once, and prints one
JSON line per run, then a summary.

    python benchmarks/bench_uploads.py [--baseline-src /path/to/old/src] [--sides 4800 7999]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image


def _status(pid: int, key: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1]) // 1024
    return 0


def run(src: str, side: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": src}
    work = Path(tempfile.mkdtemp())
    py = sys.executable
    subprocess.run([py, "-m", "clipdex", "synth", "--out", str(work / "d"), "--n", "40"], env=env, check=True,
                   capture_output=True)
    subprocess.run([py, "-m", "clipdex", "index", str(work / "d"), "--collection", str(work / "c")], env=env,
                   check=True, capture_output=True)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen([py, "-m", "clipdex", "serve", str(work / "c"), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        buf = io.BytesIO()
        Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="PNG")
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{boundary}--\r\n".encode()
        codes: list[int] = []

        def post() -> None:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/search", data=body, method="POST",
                                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            try:
                codes.append(urllib.request.urlopen(request, timeout=300).status)
            except urllib.error.HTTPError as e:
                codes.append(e.code)

        before = _status(server.pid, "VmRSS")
        threads = [threading.Thread(target=post) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1)
        return {"src": src, "side": side, "png_kb": len(buf.getvalue()) // 1024, "codes": sorted(codes),
                "rss_before_mb": before, "peak_mb": _status(server.pid, "VmHWM"),
                "held_after_mb": _status(server.pid, "VmRSS")}
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src")
    parser.add_argument("--sides", type=int, nargs="+", default=[4800, 7999])
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    results = []
    for src in ([args.baseline_src] if args.baseline_src else []) + [here]:
        for side in args.sides:
            results.append(run(src, side))
            print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"runs": results}, indent=2))


if __name__ == "__main__":
    main()
