"""Listing an S3 prefix: the parallel listing of `pipeline.io.inputs` vs one flat `s3fs.find`.

Starts a moto S3 server on 127.0.0.1 (its own process), writes --objects one-byte objects under
--prefixes sub-prefixes (two levels: p0000/q0..q9/), then times, alternating in one run, a plain
`fs.find(root, detail=True)` and the parallel listing (`_find`: delimiter listings split the prefix,
flat listings per sub-prefix on LIST_THREADS threads), --repeats times each; prints the best of
each and their ratio. Both return the same objects (checked).

    python benchmarks/bench_listing.py --objects 100000 --prefixes 100
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pipeline.io.inputs import LIST_THREADS, _find  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--prefixes", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import s3fs

    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}"}, skip_instance_cache=True)
        fs.mkdir("bench")
        t0 = time.perf_counter()
        keys = [f"bench/c/p{i % args.prefixes:04d}/q{(i // args.prefixes) % 10}/v{i:07d}.mp4"
                for i in range(args.objects)]
        for i in range(0, len(keys), 5000):
            fs.pipe({k: b"x" for k in keys[i : i + 5000]})
        fill_s = time.perf_counter() - t0
        best = {"flat": float("inf"), "parallel": float("inf")}
        counts = {}
        for _ in range(args.repeats):
            for name in ("flat", "parallel"):
                fs.invalidate_cache()
                t = time.perf_counter()
                found = (fs.find("bench/c", detail=True) if name == "flat" else
                         {k: v for part in _find(fs, "bench/c", "s3") for k, v in part.items()})
                best[name] = min(best[name], time.perf_counter() - t)
                counts[name] = len(found)
        assert counts["flat"] == counts["parallel"] == args.objects, counts
        out = {"objects": args.objects, "prefixes": args.prefixes, "threads": LIST_THREADS, "fill_s": round(fill_s, 1),
               "flat_s": round(best["flat"], 2), "parallel_s": round(best["parallel"], 2),
               "flat_over_parallel": round(best["flat"] / best["parallel"], 2)}
        print(json.dumps(out, indent=1))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a moto holding 100k objects can take longer to stop
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
