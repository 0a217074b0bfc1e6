"""Planning at corpus scale: peak driver memory and time of `infotok plan` over list files of N videos.

For each N a Parquet list file (uri, size, etag; uris in random order, as an S3 Inventory report
would give them) is written in chunks, then `infotok plan LIST OUT --json` runs in a child process
whose peak resident memory (ru_maxrss, from wait4) and wall time are reported side by side. With
--grow, a second list (the same videos, 1% of them changed, plus 1% new ones) is planned against
OUT, which walks the old plan and the new listing side by side (what a tokenize rerun over a
grown bucket does first).

    python benchmarks/bench_plan.py [--sizes 1000000,10000000] [--grow] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHUNK = 1_000_000
_MUL = 0x9E3779B97F4A7C15  # odd: i -> i * _MUL mod 2^64 is a permutation (random-looking keys)


def write_list(path: str, n: int, changed_every: int = 0) -> None:
    """Videos 0..n as a Parquet list; every changed_every-th gets another size and etag. Run in a
    child process (`--write-list`): a child's ru_maxrss also counts the pages of the process it
    was forked from, so the parent stays small."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, pa.schema([("uri", pa.string()), ("size", pa.int64()), ("etag", pa.string())])) as w:
        for lo in range(0, n, CHUNK):
            i = np.arange(lo, min(lo + CHUNK, n), dtype=np.uint64)
            h = i * np.uint64(_MUL)
            uris = [f"s3://bench-bucket/videos/{int(x) >> 52:03x}/{int(x):016x}.mp4" for x in h]
            size = (h >> np.uint64(40)).astype(np.int64) + 1000
            if changed_every:
                size = np.where(i % np.uint64(changed_every) == 0, size + 1, size)
            etag = [f"{int(s):x}-{int(x) & 0xFFFF:04x}" for s, x in zip(size, h)]
            w.write_table(pa.table({"uri": uris, "size": size, "etag": etag}), row_group_size=100_000)


def run_plan(list_path: str, out: str) -> dict:
    """`infotok plan` in a child process: its JSON, wall seconds and peak RSS (MiB, from wait4)."""
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "plan", list_path, out, "--json"], stdout=so, stderr=se)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0), se.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"infotok plan failed: {se.read()[-2000:]}")
        return {"result": json.loads(so.read()), "seconds": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def make_list(path: str, n: int, changed_every: int = 0) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--write-list", path, str(n), str(changed_every)], check=True)
    return time.perf_counter() - t0


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--write-list":
        write_list(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="Comma-separated corpus sizes (videos).")
    ap.add_argument("--grow", action="store_true", help="Also plan a grown list (+1%% new, 1%% changed) against it.")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench-plan-")
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            lst, out = os.path.join(tmp, f"list-{n}.parquet"), os.path.join(tmp, f"out-{n}")
            made = make_list(lst, n)
            r = run_plan(lst, out)
            plan_bytes = sum(os.path.getsize(os.path.join(out, "plan", f)) for f in os.listdir(os.path.join(out, "plan")))
            row = {"videos": n, "list_mb": round(os.path.getsize(lst) / 1e6, 1), "list_write_s": round(made, 1),
                   "plan_s": r["seconds"], "peak_rss_mib": r["peak_rss_mib"], "shards": r["result"]["shards"],
                   "plan_files_mb": round(plan_bytes / 1e6, 1), "videos_per_s": round(n / r["seconds"])}
            if args.grow:
                make_list(lst, n + n // 100, changed_every=100)  # the same list, grown
                g = run_plan(lst, out)
                row.update(grow_s=g["seconds"], grow_peak_rss_mib=g["peak_rss_mib"], added=g["result"]["added"],
                           changed=g["result"]["changed"])
            os.remove(lst)
            shutil.rmtree(out)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(rows))
        return
    cols = list(rows[0])
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row.get(c, "")) for c in cols))


if __name__ == "__main__":
    main()
