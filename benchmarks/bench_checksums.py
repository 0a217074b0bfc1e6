"""Cost of the parts' SHA-256, measured side by side in one run: writing a shard (serialize + put,
with and without hashing its parts), `validate` (with and without `checksums`) and one loader epoch
(with and without `verify_checksums`), on the same synthetic dataset on local disk.

    python benchmarks/bench_checksums.py --shards 4 --clips 400 --repeats 3

Prints the median seconds of each and the ratio with / without.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np


def _pair(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of a and of b, run alternately (after one warm-up each) so that caches and
    the machine's load affect both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--clips", type=int, default=400, help="clips per shard (grid 5x16x16, rate ~0.5)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from bench_storage_bytes import realistic_clip

    from pipeline.io.dataset import DatasetDir
    from pipeline.io.writer import WriterConfig, token_table_bytes, write_manifest, write_shard
    from pipeline.loader import LoaderConfig, TokenDataset
    from schemas.tokens import TokenFileMeta, clips_to_table
    from schemas.validate import validate_dataset

    meta = TokenFileMeta(tokenizer_id="bench", beta=1.0, expected_info=0.1)
    rng = np.random.default_rng(0)
    shards = [[realistic_clip(rng, (5, 16, 16), 0.5, 0.3, s * args.clips + i) for i in range(args.clips)]
              for s in range(args.shards)]
    with tempfile.TemporaryDirectory() as root:
        ds = DatasetDir(root)
        for s, clips in enumerate(shards):
            write_shard(ds, s, clips, [], meta)
        write_manifest(ds, {})
        part_bytes = sum(p.token_bytes for p in ds.read_manifest().parts)

        def serialize() -> list[bytes]:
            return [token_table_bytes(clips_to_table(c, meta), WriterConfig())[0] for c in shards]

        blobs = serialize()
        plain = LoaderConfig(mode="clips", verify_checksums=False)
        rows = [
            ("write: serialize parts", "serialize + sha256",
             *_pair(serialize, lambda: [hashlib.sha256(b).hexdigest() for b in serialize()], args.repeats)),
            ("validate (sizes only)", "validate (sha256)",
             *_pair(lambda: validate_dataset(ds, checksums=False), lambda: validate_dataset(ds), args.repeats)),
            ("loader epoch, no verify", "loader epoch, verify",
             *_pair(lambda: sum(1 for _ in TokenDataset(root, plain)),
                    lambda: sum(1 for _ in TokenDataset(root, LoaderConfig(mode="clips"))), args.repeats)),
        ]
    print(f"{args.shards} shards x {args.clips} clips, {part_bytes / 2**20:.1f} MiB of token parts, "
          f"{len(blobs)} parts; median of {args.repeats}")
    print(f"{'without':<26} {'s':>8}   {'with':<26} {'s':>8}   ratio")
    for a, b, ta, tb in rows:
        print(f"{a:<26} {ta:8.3f}   {b:<26} {tb:8.3f}   {tb / ta:5.2f}")


if __name__ == "__main__":
    main()
