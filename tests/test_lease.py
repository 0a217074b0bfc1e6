"""One writer per dataset: the lease in OUTPUT."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_schemas import META, make_clips

from pipeline.io.dataset import DatasetDir
from pipeline.io.lease import Lease, LeaseHeldError, LeaseLostError, check_lease, read_lease
from pipeline.io.writer import write_shard
from schemas.layout import LEASE_FILE


def test_second_job_is_refused_naming_the_first(tmp_path: Path) -> None:
    ds = DatasetDir(str(tmp_path / "out"))
    first = Lease(ds)
    first.acquire()
    with pytest.raises(LeaseHeldError, match=f"another job \\(pid {os.getpid()} on .*expires in"):
        Lease(ds).acquire()
    first.release()
    assert read_lease(ds) is None
    second = Lease(ds)
    second.acquire()  # free again
    second.release()


def test_expired_or_dead_leases_are_taken_over(tmp_path: Path) -> None:
    ds = DatasetDir(str(tmp_path / "out"))
    old = Lease(ds, ttl_s=0.2)
    old.acquire()
    old._stop.set()  # a driver that stopped renewing
    time.sleep(0.5)
    new = Lease(ds)
    new.acquire()
    assert read_lease(ds).token == new.info.token
    with pytest.raises(LeaseLostError):
        old.check()
    new.release()
    # a live lease of a process that no longer exists on this host (a driver killed with -9)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Lease(ds)
    dead.info = dataclasses.replace(dead.info, pid=int(gone.stdout), expires=time.time() + 3600)
    ds.put(LEASE_FILE, json.dumps(dataclasses.asdict(dead.info)).encode())
    taker = Lease(ds)
    taker.acquire()
    taker.release()


def test_force_unlock_breaks_a_live_lease(tmp_path: Path) -> None:
    ds = DatasetDir(str(tmp_path / "out"))
    holder = Lease(ds)
    holder.acquire()
    breaker = Lease(ds)
    breaker.acquire(force=True)
    with pytest.raises(LeaseLostError):
        holder.renew()
    holder._stop.set()
    breaker.release()


def test_a_worker_without_the_lease_cannot_commit(tmp_path: Path) -> None:
    ds = DatasetDir(str(tmp_path / "out"))
    current = Lease(ds)
    current.acquire()
    write_shard(ds, 0, make_clips(1, 1), [], META, before_commit=lambda: check_lease(ds, current.info.token))
    with pytest.raises(LeaseLostError, match="not committing"):
        write_shard(ds, 1, make_clips(1, 1, first_video=1), [], META,
                    before_commit=lambda: check_lease(ds, "the token of a driver that died"))
    assert sorted(p.name for p in (tmp_path / "out" / "_commits").iterdir()) == ["part-000000.json"]
    current.release()


def test_lease_on_s3_is_a_conditional_put(s3_endpoint: str, s3_bucket: str) -> None:
    from pipeline.io.storage import StorageConfig

    ds = DatasetDir(f"s3://{s3_bucket}/out", StorageConfig(endpoint_url=s3_endpoint))
    first = Lease(ds)
    first.acquire()
    with pytest.raises(LeaseHeldError):
        Lease(DatasetDir(ds.root, ds.storage)).acquire()
    first.release()
    assert read_lease(ds) is None
