"""Kill the job's driver part way (SIGKILL), rerun the same command: the dataset equals,
row for row, the one an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pipeline_helpers import good_corpus, read_rows

from pipeline.io.dataset import DatasetDir
from pipeline.io.lease import Lease, LeaseHeldError, read_lease
from schemas.validate import validate_dataset

pytestmark = pytest.mark.timeout(600)


def _cmd(folder: str, out: str, ckpt: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "tokenize", folder, out, "--checkpoint", ckpt, "--resolution", "32",
            "--clip-frames", "5", "--shard-size", "1", "--batch-size", "3", "--device", "cpu", "--json",
            "--fit-router", "0"]  # kills and resumes, not routing: no per-corpus fit before the job


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    return env


def test_killed_driver_resumes_to_identical_dataset(tiny_checkpoint, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 6)
    ref, out = str(tmp_path / "ref"), str(tmp_path / "out")
    subprocess.run(_cmd(str(folder), ref, tiny_checkpoint), env=_env(), check=True, capture_output=True, timeout=300)

    proc = subprocess.Popen(_cmd(str(folder), out, tiny_checkpoint), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    commits = tmp_path / "out" / "_commits"
    deadline = time.monotonic() + 240
    while not (commits.exists() and len(list(commits.glob("*.json"))) >= 2):
        assert proc.poll() is None, "job finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # the running job holds the dataset's lease: a second writer is refused, naming it
    held = read_lease(DatasetDir(out))
    assert held is not None and held.pid == proc.pid and held.is_live()
    with pytest.raises(LeaseHeldError, match=f"pid {proc.pid} on"):
        Lease(DatasetDir(out)).acquire()
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait(timeout=30)
    done_before = len(list(commits.glob("*.json")))
    assert 2 <= done_before < 6
    assert not (tmp_path / "out" / "dataset.json").exists()

    # its lease is left behind, unexpired, but its owner is gone: the rerun takes it over at once
    assert read_lease(DatasetDir(out)).pid == proc.pid
    rerun = subprocess.run(_cmd(str(folder), out, tiny_checkpoint), env=_env(), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout)
    # a worker may finish the shard it was writing before it notices its driver is gone
    assert summary["shards_skipped"] >= done_before and summary["shards_run"] >= 1
    assert summary["shards_skipped"] + summary["shards_run"] == 6
    assert read_rows(out) == read_rows(ref)
    assert validate_dataset(DatasetDir(out)).ok
    assert read_lease(DatasetDir(out)) is None  # released at the end
