"""Loader throughput (kept tokens/s, one core) vs a bare pyarrow scan of the same files.

Writes a synthetic dataset (realistic ids and masks, see bench_storage_bytes.py) or uses
`--from-dataset PATH`, then times, in the same run and alternating:
- scan:     pyarrow reads each token part's packed-mode columns (tokens, mask, grid) and
            takes the ids as numpy (zero copy): the floor any packed loader pays;
- scan_all: the same with every column, which clips mode reads (it returns the metadata);
- loader:   TokenDataset iterated in-process, in packed mode (sequences of --seq-len with
            BOS/EOS, document ids, position ids and (t, h, w) of every token) without and with
            shuffle, packed without grid positions (`grid_positions=False`), and clips mode.
The consumer counts kept tokens per sample (`input_ids < 64000`), a few us per sequence that
the scan does not pay. Ratios: packed modes to `scan`, clips to `scan_all`.

One core: torch and Arrow get one thread each and everything runs in this process. Wall
times on a shared machine include time the process waits for a core, so the CPU time of
the process (`time.process_time`) is reported too; both keep the best of --repeats.

    python benchmarks/bench_loader.py --clips 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_storage_bytes import realistic_clip  # noqa: E402

from pipeline.io.dataset import DatasetDir  # noqa: E402
from schemas.layout import token_part_path  # noqa: E402
from pipeline.loader.dataset import PACKED_COLUMNS, LoaderConfig, TokenDataset  # noqa: E402
from pipeline.io.writer import write_manifest, write_shard  # noqa: E402
from schemas.tokens import TokenFileMeta  # noqa: E402


def make_dataset(root: str, n_clips: int, shards: int, grid: tuple[int, int, int], rate: float) -> None:
    rng = np.random.default_rng(0)
    meta = TokenFileMeta(tokenizer_id="bench", beta=1.0, expected_info=0.1)
    per = (n_clips + shards - 1) // shards
    for s in range(shards):
        clips = [realistic_clip(rng, grid, rate, 0.35, s * per + i) for i in range(min(per, n_clips - s * per))]
        write_shard(DatasetDir(root), s, clips, [], meta)
    write_manifest(DatasetDir(root), {"bench": True})


def scan(root: str, columns: list[str] | None = PACKED_COLUMNS) -> int:
    n = 0
    for p in DatasetDir(root).read_manifest().parts:
        t = pq.read_table(token_part_path(root, p.shard), columns=columns)
        ids = t.column("tokens").combine_chunks().values.to_numpy()
        n += ids.size
    return n


def loader(root: str, cfg: LoaderConfig) -> int:
    n = 0
    for s in TokenDataset(root, cfg):
        n += int((s["input_ids"] < 64000).sum()) if cfg.mode == "packed" else s["tokens"].numel()
    return n


def timed(fn, *args) -> tuple[float, float, int]:  # noqa: ANN001, ANN002
    """(wall seconds, CPU seconds of this process, result)."""
    c0, t0 = time.process_time(), time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from-dataset", default=None)
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--grid", default="5,32,32")
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.from_dataset or tmp
        if not args.from_dataset:
            make_dataset(root, args.clips, args.shards, tuple(int(x) for x in args.grid.split(",")), args.rate)
        packed = LoaderConfig(mode="packed", seq_len=args.seq_len, shuffle=False)
        runs = {
            "scan": lambda: timed(scan, root),
            "scan_all": lambda: timed(scan, root, None),
            "packed": lambda: timed(loader, root, packed),
            "packed_shuffled": lambda: timed(loader, root, dataclasses.replace(packed, shuffle=True)),
            "packed_no_grid_positions": lambda: timed(loader, root, dataclasses.replace(packed, grid_positions=False)),
            "clips": lambda: timed(loader, root, LoaderConfig(mode="clips", shuffle=False)),
        }
        best: dict[str, float] = {}
        best_cpu: dict[str, float] = {}
        tokens: dict[str, int] = {}
        for _ in range(args.repeats):  # alternate so that machine load hits all alike; keep the best
            for name, fn in runs.items():
                s, cpu, n = fn()
                best[name] = min(best.get(name, float("inf")), s)
                best_cpu[name] = min(best_cpu.get(name, float("inf")), cpu)
                tokens[name] = n
        assert len(set(tokens.values())) == 1, tokens
        floor = {k: "scan_all" if k == "clips" else "scan" for k in runs if not k.startswith("scan")}
        out = {"kept_tokens": tokens["scan"], "tokens_per_s": {k: tokens[k] / v for k, v in best.items()},
               "ratio_to_scan": {k: best[f] / best[k] for k, f in floor.items()},
               "cpu_ratio_to_scan": {k: best_cpu[f] / best_cpu[k] for k, f in floor.items()},
               "ms": {k: round(1e3 * v, 1) for k, v in best.items()},
               "cpu_ms": {k: round(1e3 * v, 1) for k, v in best_cpu.items()}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
