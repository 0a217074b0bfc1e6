"""s3://in -> s3://out through a real moto server, then validate and load the dataset."""

from __future__ import annotations

import collections

import pytest
import s3fs
from pipeline_helpers import clip_keys, good_corpus, read_rows, small_job

from pipeline.loader.dataset import LoaderConfig, TokenDataset
from pipeline.exec.ray_exec import run_job
from pipeline.io.storage import StorageConfig
from pipeline.io.dataset import DatasetDir
from schemas.validate import validate_dataset

pytestmark = pytest.mark.timeout(300)


def test_s3_to_s3(s3_endpoint, s3_bucket, tiny_checkpoint, local_ray, tmp_path):
    local = tmp_path / "videos"
    local.mkdir()
    expected = good_corpus(local, 4)
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}, skip_instance_cache=True)
    for p in local.iterdir():
        fs.put_file(str(p), f"{s3_bucket}/in/{p.name}")
    storage = StorageConfig(endpoint_url=s3_endpoint)
    out = f"s3://{s3_bucket}/out/ds"
    result = run_job(small_job(f"s3://{s3_bucket}/in", out, tiny_checkpoint, storage=storage), progress=False)
    assert result.n_shards == 2 and result.errors == 0
    report = validate_dataset(DatasetDir(out, storage))
    assert report.ok, report.violations[:3]
    rows = read_rows(out, storage)
    assert dict(collections.Counter(n for n, _ in clip_keys(rows))) == expected
    assert all(r["source_uri"].startswith(f"s3://{s3_bucket}/in/") for r in rows)
    loaded = list(TokenDataset(out, LoaderConfig(mode="clips", shuffle=False), storage=storage))
    assert len(loaded) == len(rows)
    # credentials never reach the dataset's metadata
    for name in fs.find(f"{s3_bucket}/out/ds"):
        if name.endswith(".json"):
            assert "testing" not in fs.cat_file(name).decode(), name
    again = run_job(small_job(f"s3://{s3_bucket}/in", out, tiny_checkpoint, storage=storage), progress=False)
    assert again.shards_run == 0
