"""The token files are plain Parquet: pyarrow and Ray Data read them with no infotok code."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from test_schemas import META, make_clips

from pipeline.io.dataset import DatasetDir
from pipeline.io.writer import write_manifest, write_shard


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    r = str(tmp_path_factory.mktemp("plain"))
    clips = make_clips(3, 2) + make_clips(2, 2, seed=1, first_video=3)
    write_shard(DatasetDir(r), 0, clips[:6], [], META)
    write_shard(DatasetDir(r), 1, clips[6:], [], META)
    write_manifest(DatasetDir(r), {})
    return r, {(c.video_id, c.clip_index): c.tokens.tolist() for c in clips}


def test_pyarrow_reads_the_folder(root: tuple[str, dict]) -> None:
    r, truth = root
    t = pads.dataset(os.path.join(r, "tokens"), format="parquet").to_table()
    got = dict(zip(zip(t.column("video_id").to_pylist(), t.column("clip_index").to_pylist()),
                   t.column("tokens").to_pylist()))
    assert got == truth
    assert pq.read_schema(os.path.join(r, "tokens", "part-000000.parquet")).field("tokens").type.value_type == "uint16"


@pytest.mark.timeout(180)
def test_ray_data_read_parquet(root: tuple[str, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    r, truth = root
    # Explicit: no token auth for this throwaway local cluster (an in-process ray.init would
    # otherwise write ~/.ray/auth_token, which later `ray start` calls then require).
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # AF_UNIX socket paths must stay < 108 bytes
    ray.init(num_cpus=2, address="local", include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    try:
        rows = ray.data.read_parquet(os.path.join(r, "tokens")).take_all()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    got = {(row["video_id"], int(row["clip_index"])): np.asarray(row["tokens"]).tolist() for row in rows}
    assert got == truth
