"""`infotok submit` to a real `ray start --head` on 127.0.0.1 (token auth on), through the Jobs API."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_helpers import good_corpus

from pipeline.io.dataset import DatasetDir
from schemas.validate import validate_dataset

pytestmark = pytest.mark.timeout(600)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A real Ray head with the dashboard (Jobs API); yields (dashboard url, client env).

    The head runs in its own session (`setsid ray start --block`) and is ended by signalling that
    process group, never with the ray CLI's stop command, which ends every Ray on the machine (a user's too)."""
    bindir = str(Path(sys.executable).parent)
    temp = tempfile.mkdtemp(prefix="rh-", dir="/tmp")
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1",
               PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    env.pop("RAY_ADDRESS", None)
    port, dash = _free_port(), _free_port()
    address = f"http://127.0.0.1:{dash}"
    head = subprocess.Popen(
        [f"{bindir}/ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2", "--include-dashboard=true",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_jobs_api(bindir, address, env, head)
        yield address, env
    finally:
        _end_group(head)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_jobs_api(bindir: str, address: str, env: dict[str, str], head: subprocess.Popen,
                       timeout_s: float = 120.0) -> None:
    """`ray job list` answering is the readiness signal (the dashboard answers before its job agent)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray head exited with {head.returncode} while starting")
        probe = subprocess.run([f"{bindir}/ray", "job", "list", "--address", address], env=env,
                               capture_output=True, timeout=60)
        if probe.returncode == 0:
            return
        time.sleep(1.0)
    raise RuntimeError(f"ray head at {address} not ready after {timeout_s:.0f}s")


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the head's own process group (ray start --block ends its processes), then SIGKILL
    whatever is left of that group. Nothing outside the group is touched."""
    pgid = proc.pid  # start_new_session: the group id is the head's pid
    for sig, wait_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                proc.wait(timeout=10)
                return
            proc.poll()
            time.sleep(0.2)


def test_submit_runs_job_on_cluster(ray_head, tiny_checkpoint, tmp_path):
    address, env = ray_head
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 3)
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "jobs.cli", "submit", str(folder), str(out), "--address", address,
           "--checkpoint", tiny_checkpoint, "--resolution", "32", "--clip-frames", "5", "--shard-size", "2",
           "--device", "cpu", "--follow"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "SUCCEEDED" in proc.stdout
    report = validate_dataset(DatasetDir(str(out)))
    assert report.ok, report.violations[:3]
    assert env["RAY_AUTH_TOKEN"] not in proc.stdout + proc.stderr

    bad = subprocess.run(cmd[:-1] + ["--beta", "0.7", "--follow"], env=env, capture_output=True, text=True,
                         timeout=480)
    assert bad.returncode == 1
    assert "beta" in bad.stdout and "FAILED" in bad.stdout
