"""Exit statuses of the read-only commands over repeated runs (issue: `inspect` once exited 134 at
interpreter exit, 1 run in 20, after printing its output).

    python benchmarks/exit_codes.py DATASET [DATASET ...] [--runs 50]

Runs `infotok inspect`, `validate` and `status` (each with --json) RUNS times on every DATASET
and prints, per command and dataset, how many runs exited with each status.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    print(f"{'command':<10} {'runs':>5}  exit statuses  dataset")
    for root in args.datasets:
        for cmd in ("inspect", "validate", "status"):
            codes: collections.Counter[int] = collections.Counter()
            for _ in range(args.runs):
                proc = subprocess.run([sys.executable, "-m", "jobs.cli", cmd, root, "--json"], capture_output=True)
                codes[proc.returncode] += 1
            print(f"{cmd:<10} {args.runs:>5}  {dict(sorted(codes.items()))!s:<13}  {root}")


if __name__ == "__main__":
    main()
