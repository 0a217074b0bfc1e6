"""The actor pool uses the whole cluster: sizing per node (pure), a 2-node loopback cluster running
actors on both nodes, logical GPUs getting one pinned actor each (CPU fallback said in one line),
a node lost mid-job whose shards are retried on the head, and a node that joins mid-job given an actor."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import good_corpus, read_rows

from pipeline.job.job import ExecConfig
from pipeline.exec.pool import NodeInfo, Target, pool_targets, uses_gpus

ROOT = str(Path(__file__).resolve().parents[1])


def test_pool_sizing_per_node() -> None:
    cpu = [NodeInfo("a", 16, 0), NodeInfo("b", 4, 0)]
    assert pool_targets(cpu, ExecConfig(), gpus=False) == [Target("a", 1, 16), Target("b", 1, 4)]
    assert pool_targets(cpu, ExecConfig(cores_per_cpu_worker=4), gpus=False) == [Target("a", 4, 4),
                                                                                 Target("b", 1, 4)]
    assert pool_targets(cpu, ExecConfig(cores_per_cpu_worker=8, torch_threads=3), gpus=False) == [
        Target("a", 2, 3), Target("b", 1, 3)]
    mixed = [NodeInfo("g", 8, 2), NodeInfo("c", 32, 0)]
    assert uses_gpus(mixed, ExecConfig(), "auto") and not uses_gpus(mixed, ExecConfig(), "cpu")
    assert not uses_gpus(cpu, ExecConfig(), "auto")
    assert pool_targets(mixed, ExecConfig(), gpus=True) == [Target("g", 2, 4)]  # CPU nodes decode only
    assert pool_targets(mixed, ExecConfig(gpus_per_worker=0.25), gpus=True) == [Target("g", 8, 1)]
    assert pool_targets(mixed, ExecConfig(num_workers=3), gpus=True) == [Target(None, 3, 10)]
    with pytest.raises(ValueError, match="gpus_per_worker must be in"):
        ExecConfig(gpus_per_worker=1.5)


@pytest.fixture()
def cluster_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment of the nodes (children of this process) and of the driver (a CLI subprocess)."""
    temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # AF_UNIX socket paths must stay < 108 bytes
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps every node on 127.0.0.1 (STACK-NOTES); the ray CLI then
    # refuses to start a second node, so the nodes come from ray.cluster_utils, each its own raylet.
    for k, v in dict(RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", OMP_NUM_THREADS="1").items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    env = {**os.environ, "PYTHONPATH": ROOT, "TEMP_DIR": temp}
    try:
        yield env
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def _cluster(env: dict[str, str], head: dict, workers: int) -> Iterator[tuple[str, list, Any]]:
    """A head and `workers` more nodes on 127.0.0.1 (address, those nodes, the Cluster to add more to);
    a lost node is declared dead after ~3 s."""
    from ray.cluster_utils import Cluster

    fast = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000, "health_check_timeout_ms": 1000,
            "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={**head, "temp_dir": env["TEMP_DIR"],
                                                            "include_dashboard": False, "_system_config": fast})
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(workers)]
        cluster.wait_for_nodes()
        yield cluster.address, nodes, cluster
    finally:
        cluster.shutdown()


def _tokenize(env: dict[str, str], folder: Path, out: Path, ckpt: str, address: str | None,
              *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jobs.cli", "-v", "tokenize", str(folder), str(out), "--checkpoint", ckpt,
           "--resolution", "32", "--clip-frames", "5", "--shard-size", "1", "--batch-size", "3", "--json",
           "--fit-router", "0", *extra]  # node loss, not routing: no per-corpus fit before the job
    if address:
        cmd += ["--address", address]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


@pytest.mark.timeout(600)
def test_two_nodes_both_run_actors(cluster_env: dict[str, str], tiny_checkpoint: str, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 4)
    with _cluster(cluster_env, {"num_cpus": 1}, workers=1) as (address, _, _c):
        result, _ = _finish(_tokenize(cluster_env, folder, tmp_path / "ds", tiny_checkpoint, address,
                                      "--device", "cpu"))
    assert result["workers"] == 2 and result["nodes"] == 2, result
    assert result["n_shards"] == 4 and result["clips"] == len(read_rows(str(tmp_path / "ds")))


@pytest.mark.timeout(600)
def test_logical_gpus_get_one_pinned_actor_each(cluster_env: dict[str, str], tiny_checkpoint: str,
                                                tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 3)
    with _cluster(cluster_env, {"num_cpus": 2, "num_gpus": 2}, workers=0) as (address, _, _c):
        result, err = _finish(_tokenize(cluster_env, folder, tmp_path / "ds", tiny_checkpoint, address))
    assert result["workers"] == 2, result
    fallback = [line for line in err.splitlines() if "torch sees no CUDA device" in line]
    assert len(fallback) == 2, err[-3000:]
    assert sorted(line.split(", GPU ")[1].split(",")[0] for line in fallback) == ["0", "1"], fallback


@pytest.mark.timeout(900)
def test_lost_node_shards_are_retried_on_the_head(cluster_env: dict[str, str], tiny_checkpoint: str,
                                                  tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 40)  # long enough (on one node) to outlast the ~3 s it takes to declare a node dead
    clean, _ = _finish(_tokenize(cluster_env, folder, tmp_path / "clean", tiny_checkpoint, None, "--device", "cpu",
                                 "--workers", "1"))
    out = tmp_path / "ds"
    with _cluster(cluster_env, {"num_cpus": 1}, workers=1) as (address, (second,), _c):
        job = _tokenize(cluster_env, folder, out, tiny_checkpoint, address, "--device", "cpu")
        try:
            head = []
            for line in job.stderr:  # shards go out right after this line: one is in flight on each node
                head.append(line)
                if "shards already committed" in line:
                    break
            second.kill_all_processes(check_alive=False, allow_graceful=False)  # the node's raylet and workers
            result, err = _finish(job)
            err = "".join(head) + err
        finally:
            if job.poll() is None:
                job.kill()
    assert "left the cluster" in err or "failed on worker" in err, err[-3000:]
    assert result["n_shards"] == 40 and result["clips"] == clean["clips"], (result, clean)
    assert read_rows(str(out)) == read_rows(str(tmp_path / "clean"))


_JOIN_DRIVER = """
import json, logging, sys
from dataclasses import replace
logging.basicConfig(level=logging.INFO)
from pipeline_helpers import small_job
from pipeline.exec.ray_exec import run_job
folder, out, ckpt, address = sys.argv[1:5]
job = small_job(folder, out, ckpt, shard_size=1)
job = replace(job, execution=replace(job.execution, pool_refresh_s=0.5))
print(json.dumps(run_job(job, address=address, progress=False).__dict__))
"""


@pytest.mark.timeout(900)
def test_a_node_that_joins_mid_job_gets_an_actor(cluster_env: dict[str, str], tiny_checkpoint: str,
                                                 tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    good_corpus(folder, 30)  # long enough on one node for the second to join and be given an actor
    env = {**cluster_env, "PYTHONPATH": os.pathsep.join([ROOT, str(Path(__file__).parent)])}
    with _cluster(cluster_env, {"num_cpus": 1}, workers=0) as (address, _, cluster):
        job = subprocess.Popen([sys.executable, "-c", _JOIN_DRIVER, str(folder), str(tmp_path / "ds"), tiny_checkpoint,
                                address], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            head = []
            for line in job.stderr:
                head.append(line)
                if "shards already committed" in line:  # the job is running on the head's one actor
                    break
            cluster.add_node(num_cpus=1)
            result, err = _finish(job)
        finally:
            if job.poll() is None:
                job.kill()
    assert result["nodes"] == 2 and result["workers"] == 2, (result, "".join(head)[-2000:], err[-2000:])
    assert result["n_shards"] == 30 and len(read_rows(str(tmp_path / "ds"))) == result["clips"]
