"""Chaos in CI (small): random kill -9s of the whole job, then a finish that loses one worker, give
the dataset an uninterrupted run gives, token and error parts byte for byte
(benchmarks/bench_chaos.py, which runs 20 kills for the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_chaos.py"


@pytest.mark.timeout(900)
def test_random_kills_then_a_clean_finish_give_the_uninterrupted_dataset(tiny_checkpoint):
    proc = subprocess.run([sys.executable, str(BENCH), "--kills", "3", "--videos", "24", "--max-wait", "60",
                           "--seed", "3", "--checkpoint", tiny_checkpoint, "--json"],
                          capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["final_exit"] == 0 and result["parts"] == 26  # 13 shards: token + error part each
    assert result["identical"], result
    assert any(k["outcome"] == "killed" for k in result["kills"])
    assert result["kills"][-1]["outcome"] == "worker killed"  # and the final run still finished
