"""Chaos: kill -9 the tokenize job's whole process group at random moments, rerun, repeat; then let
it finish and compare the dataset with an uninterrupted run, token *and* error parts byte for byte.

    python benchmarks/bench_chaos.py --kills 3 --videos 24 --seed 3 --json   (what CI runs)

The corpus is `--videos` small real mp4s plus one file that is not a video (an error row). Each
kill picks a target of 0 or 1 more committed shard, waits for it (at most --max-wait seconds),
then a random 0-1 s more, and kills the driver's process group (driver, raylet, GCS; Ray's workers, each
in a process group of its own, die with their raylet): so kills land while Ray
starts, while the corpus is planned, mid-shard and between shards, whatever the machine's speed.
The final run loses one tokenize worker (its Ray actor process, SIGKILL, 0-1 s after the actor
started) and must still finish. Prints one row per kill (when, what the output held then) and
whether the final dataset equals the reference.

    python benchmarks/bench_chaos.py --kills 20 --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_corpus(folder: Path, n: int) -> None:
    from pipeline.decode.video_write import write_video

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        frames = rng.integers(0, 255, (5 * (1 + i % 3), 32, 48, 3), dtype=np.uint8)
        write_video(folder / f"v{i:02d}.mp4", frames, fps=10)
    (folder / "broken.mp4").write_bytes(b"this is not a video")


def command(folder: Path, out: Path, checkpoint: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "jobs.cli", "tokenize", str(folder), str(out), "--resolution", "32",
           "--clip-frames", "5", "--shard-size", "2", "--batch-size", "3", "--device", "cpu", "--json"]
    return cmd + (["--checkpoint", checkpoint] if checkpoint else [])


def env() -> dict[str, str]:
    e = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    e.pop("RAY_ADDRESS", None)
    return e


def parts_digest(root: Path) -> dict[str, str]:
    """sha256 of every token and error part."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("tokens", "errors") for p in sorted((root / sub).glob("part-*.parquet"))}


def n_commits(out: Path) -> int:
    return len(list((out / "_commits").glob("*.json"))) if (out / "_commits").exists() else 0


def state_of(out: Path) -> str:
    return f"{'plan' if (out / 'plan.json').exists() else 'no plan'}, {n_commits(out)} committed"


def worker_pids(sid: int) -> list[int]:
    """The tokenize actors (`ray::ShardWorker`) of a job started as session leader `sid` (Ray puts each
    worker in a process group of its own, within the job's session)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                session = int(f.read().rsplit(")", 1)[1].split()[3])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if session == sid and b"ShardWorker" in cmdline:
            pids.append(int(entry))
    return pids


def kill_a_worker(proc: subprocess.Popen, out: Path, max_wait: float, rng: random.Random) -> dict[str, object]:
    """SIGKILL one tokenize actor of a running job, a random 0-1 s after it has started (mid-shard)."""
    t0 = time.monotonic()
    while proc.poll() is None and not worker_pids(proc.pid) and time.monotonic() - t0 < max_wait:
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 1))
    pids = worker_pids(proc.pid) if proc.poll() is None else []
    if pids:
        os.kill(pids[0], signal.SIGKILL)
    return {"after_s": round(time.monotonic() - t0, 2),
            "outcome": "worker killed" if pids else "no worker seen", "output": state_of(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--videos", type=int, default=100)
    ap.add_argument("--max-wait", type=float, default=60.0, help="longest wait for a kill's target commit (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="infotok-chaos-") as tmp:
        folder, ref, out = Path(tmp) / "videos", Path(tmp) / "ref", Path(tmp) / "out"
        write_corpus(folder, args.videos)
        subprocess.run(command(folder, ref, args.checkpoint), env=env(), check=True, capture_output=True)
        rows = []
        for k in range(args.kills):
            target, extra = n_commits(out) + rng.randint(0, 1), rng.uniform(0, 1)
            proc = subprocess.Popen(command(folder, out, args.checkpoint), env=env(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            t0 = time.monotonic()
            while proc.poll() is None and n_commits(out) < target and time.monotonic() - t0 < args.max_wait:
                time.sleep(0.02)
            t1 = time.monotonic()
            while proc.poll() is None and time.monotonic() - t1 < extra:
                time.sleep(0.02)
            wait = time.monotonic() - t0
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                outcome = "killed"
            else:
                outcome = "finished first" if proc.returncode == 0 else f"exit {proc.returncode}"
            proc.wait(timeout=60)
            rows.append({"kill": k + 1, "after_s": round(wait, 2), "outcome": outcome, "output": state_of(out)})
            if outcome == "finished first":
                break
        final = subprocess.Popen(command(folder, out, args.checkpoint), env=env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        rows.append({"kill": len(rows) + 1, **kill_a_worker(final, out, args.max_wait, rng)})
        final.wait()
        result = {"kills": rows, "final_exit": final.returncode,
                  "identical": final.returncode == 0 and parts_digest(out) == parts_digest(ref),
                  "parts": len(parts_digest(ref))}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'kill':>4} {'after s':>8}  {'outcome':<15} output then")
    for r in rows:
        print(f"{r['kill']:>4} {r['after_s']:>8.2f}  {r['outcome']:<15} {r['output']}")
    print(f"final run (the last row: one of its workers killed) exit {result['final_exit']}; token and error parts "
          "identical to the uninterrupted run: "
          f"{result['identical']} ({result['parts']} parts)")


if __name__ == "__main__":
    main()
