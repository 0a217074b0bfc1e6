"""A driver killed outright (SIGKILL: no `ray.shutdown()`, no atexit) leaves nothing running:
its reaper ends every process the driver started, each by its own id, and touches nothing when
the driver ended its Ray itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import good_corpus

from pipeline.exec.reaper import POLL_S, _alive, _stat, descendants, remember

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the reaper reads /proc (Linux)")]

ROOT = Path(__file__).resolve().parents[1]
DRIVER = """
import subprocess, sys, time
from pipeline.exec.reaper import start_reaper, stop_reaper
reaper = start_reaper()
subprocess.Popen(["sleep", "300"])
subprocess.Popen([sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"])
if sys.argv[1] == "stop":
    stop_reaper(reaper)
print(reaper.pid, flush=True)
time.sleep(300)
"""


def _start_driver(mode: str) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, mode], stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _wait_for(cond, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def _end_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the test's own driver and what it started
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def test_killed_driver_leaves_nothing_behind():
    proc, reaper_pid = _start_driver("watch")
    try:
        assert _wait_for(lambda: len([p for p in descendants(proc.pid) if p[0] != reaper_pid]) == 3, 20)
        started = [p for p in descendants(proc.pid) if p[0] != reaper_pid]  # 2 sleeps, a python, its sleep
        time.sleep(3 * POLL_S)  # the reaper has seen them all
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone, as a user's `kill -9 PID` does
        proc.wait(timeout=10)
        assert _wait_for(lambda: not any(_alive(p) for p in started), 15), [p for p in started if _alive(p)]
        assert _wait_for(lambda: not Path(f"/proc/{reaper_pid}").exists(), 10)  # and the reaper is gone too
    finally:
        _end_group(proc)


def test_a_partial_view_never_forgets_a_live_process():
    """A scan while the driver dies sees only part of its tree (a reparented child and its subtree are
    no longer under it); what was seen before and still lives stays in the reaper's view."""
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        me, child = (os.getpid(), _stat(os.getpid())[1]), (sleeper.pid, _stat(sleeper.pid)[1])
        seen = remember([], [me, child])
        assert sorted(remember(seen, [me])) == sorted([me, child])  # the child missed by one scan stays
        gone = (child[0], str(int(child[1]) + 1))  # the same pid, another start time: not the one seen
        assert remember([gone], [me]) == [me]
        sleeper.kill()
        sleeper.wait(timeout=10)
        assert remember(seen, [me]) == [me]  # an ended process leaves the view
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


def test_reaper_told_to_stop_touches_nothing():
    proc, reaper_pid = _start_driver("stop")
    try:
        assert _wait_for(lambda: len(descendants(proc.pid)) == 3, 20)  # the reaper has already exited
        started = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(3 * POLL_S + 1.0)
        assert all(_alive(p) for p in started)  # not the reaper's to end: the driver said it ended its Ray
    finally:
        _end_group(proc)


def test_kill_9_of_a_tokenize_driver_ends_its_ray(tiny_checkpoint, tmp_path):
    """`kill -9` of a running `infotok tokenize` (the driver only): its local Ray node (GCS,
    raylet, agents, workers) is gone within seconds, not the minute Ray's agents take alone."""
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 16)  # long enough that the job is still running when it is killed
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "jobs.cli", "tokenize", str(folder), str(tmp_path / "out"), "--checkpoint",
           tiny_checkpoint, "--resolution", "32", "--clip-frames", "5", "--shard-size", "1", "--batch-size", "3",
           "--device", "cpu", "--json", "--fit-router", "0"]  # the reaper, not routing: no fit
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        commits = tmp_path / "out" / "_commits"
        assert _wait_for(lambda: commits.exists() and any(commits.glob("*.json")) or proc.poll() is not None, 240)
        assert proc.poll() is None, "the job finished before it could be killed"
        started = descendants(proc.pid)
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid, _ in started if Path(f"/proc/{pid}").exists()}
        assert any("raylet" in n for n in names) and any("gcs" in n for n in names), names
        time.sleep(POLL_S + 0.2)  # the reaper's view is at most one poll old
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert _wait_for(lambda: not any(_alive(p) for p in started), 20), \
            {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid, t in started if _alive((pid, t))}
    finally:
        _end_group(proc)
