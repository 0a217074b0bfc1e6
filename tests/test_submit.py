"""`infotok submit` to a real `ray start --head` on 127.0.0.1 (token auth on), through the Jobs API."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_helpers import good_corpus

from schemas.validate import validate_dataset

pytestmark = pytest.mark.timeout(600)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A real Ray head with the dashboard (Jobs API); yields (dashboard url, client env)."""
    bindir = str(Path(sys.executable).parent)
    temp = tempfile.mkdtemp(prefix="rh-", dir="/tmp")
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1",
               PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    env.pop("RAY_ADDRESS", None)
    port, dash = _free_port(), _free_port()
    subprocess.run([f"{bindir}/ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2",
                    "--include-dashboard=true", f"--temp-dir={temp}", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"http://127.0.0.1:{dash}", env
    finally:
        subprocess.run([f"{bindir}/ray", "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


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
    report = validate_dataset(str(out))
    assert report.ok, report.violations[:3]
    assert env["RAY_AUTH_TOKEN"] not in proc.stdout + proc.stderr

    bad = subprocess.run(cmd[:-1] + ["--beta", "0.5", "--follow"], env=env, capture_output=True, text=True,
                         timeout=480)
    assert bad.returncode == 1
    assert "beta" in bad.stdout and "FAILED" in bad.stdout
