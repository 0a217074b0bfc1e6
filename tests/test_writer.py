"""Writer: write then read equal (local and moto S3), atomic parts, markers, manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_schemas import META, make_clips

from pipeline.io.dataset import DatasetDir, DatasetNotReadyError
from pipeline.io.storage import StorageConfig, filesystem, put_atomic
from pipeline.io.writer import WriterConfig, check_compatible, write_manifest, write_shard
from schemas.layout import commit_path, token_part_path
from schemas.errors import ERRORS_SCHEMA, ErrorRow
from schemas.tokens import TOKEN_SCHEMA, TokenFileMeta, table_to_clips


def _read_table(uri: str, storage: StorageConfig):
    fs, path = filesystem(uri, storage)
    with fs.open(path, "rb") as f:
        return pq.read_table(f)


def _assert_equal_clips(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.array_equal(x.tokens, y.tokens)
        assert (x.video_id, x.clip_index, x.mask, x.grid, x.frame_count) == (
            y.video_id, y.clip_index, y.mask, y.grid, y.frame_count)
        assert x.rate == pytest.approx(y.rate) and x.info == pytest.approx(y.info)


def _write_two_shards(root: str, storage: StorageConfig) -> list:
    clips0, clips1 = make_clips(3, 2, seed=0), make_clips(2, 3, seed=1, first_video=3)
    err = ErrorRow("s3://src/bad.mp4", "decode", "permanent", "DECORDError", "cannot open")
    ds = DatasetDir(root, storage)
    write_shard(ds, 0, clips0, [err], META, WriterConfig(row_group_tokens=10))
    write_shard(ds, 1, clips1, [], META)
    return [clips0, clips1]


def test_write_read_equal_local(tmp_path: Path) -> None:
    root = str(tmp_path / "out")
    storage = StorageConfig()
    shards = _write_two_shards(root, storage)
    manifest = write_manifest(DatasetDir(root, storage), {"job": "test"}, expected_shards=[0, 1])
    for shard, clips in enumerate(shards):
        table = _read_table(token_part_path(root, shard), storage)
        assert table.schema.equals(TOKEN_SCHEMA)
        assert table.schema.metadata[b"infotok.tokenizer_id"] == b"test-tok"
        _assert_equal_clips(clips, table_to_clips(table))
    assert manifest.n_clips == 12 and manifest.n_errors == 1 and manifest.n_videos == 5
    assert manifest.n_tokens == sum(c.n_tokens for s in shards for c in s)
    assert DatasetDir(root).read_manifest() == manifest
    # No temp files are left next to the parts.
    assert sorted(os.listdir(tmp_path / "out" / "tokens")) == ["part-000000.parquet", "part-000001.parquet"]


def test_write_read_equal_s3(s3_endpoint: str, s3_bucket: str) -> None:
    root = f"s3://{s3_bucket}/ds/v1"
    storage = StorageConfig(endpoint_url=s3_endpoint)
    shards = _write_two_shards(root, storage)
    write_manifest(DatasetDir(root, storage), {})
    for shard, clips in enumerate(shards):
        _assert_equal_clips(clips, table_to_clips(_read_table(token_part_path(root, shard), storage)))
    errs = _read_table(f"{root}/errors/part-000000.parquet", storage)
    assert errs.schema.equals(ERRORS_SCHEMA) and errs.column("error_type").to_pylist() == ["DECORDError"]
    assert DatasetDir(root, storage).read_manifest().n_clips == 12
    assert sorted(DatasetDir(root, storage).commits()) == [0, 1]  # read READ_THREADS at a time on S3
    fs = DatasetDir(root, storage).fs
    fs.pipe(f"{root}/_commits/part-000007.json", fs.cat(f"{root}/_commits/part-000001.json"))  # a misnamed copy
    with pytest.raises(ValueError, match="part-000007.json names shard 1"):
        DatasetDir(root, storage).commits()


def test_row_groups_follow_token_budget(tmp_path: Path) -> None:
    root = str(tmp_path)
    clips = make_clips(10, 3)
    budget = 40
    commit = write_shard(DatasetDir(root), 7, clips, [], META, config=WriterConfig(row_group_tokens=budget))
    md = pq.ParquetFile(token_part_path(root, 7)).metadata
    sizes = tuple(md.row_group(i).num_rows for i in range(md.num_row_groups))
    assert sizes == commit.row_groups and sum(sizes) == 30 and len(sizes) > 1
    counts = np.array([c.n_tokens for c in clips])
    start = 0
    for n in sizes[:-1]:  # every closed group reached the budget, and only at its last row
        assert counts[start:start + n].sum() >= budget > counts[start:start + n - 1].sum()
        start += n


def test_empty_shard_writes_parts_and_marker(tmp_path: Path) -> None:
    commit = write_shard(DatasetDir(str(tmp_path)), 3, [], [], META)
    assert commit.n_rows == 0 and commit.row_groups == ()
    assert pq.read_table(token_part_path(str(tmp_path), 3)).num_rows == 0
    assert json.loads(Path(commit_path(str(tmp_path), 3)).read_text())["n_rows"] == 0


def test_failed_put_leaves_nothing_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "tokens" / "part-000000.parquet"

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        put_atomic(str(target), b"x" * 100, StorageConfig())
    assert list((tmp_path / "tokens").iterdir()) == []


def test_rewrite_is_idempotent_and_marker_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = str(tmp_path)
    clips = make_clips(2, 2)
    order: list[str] = []
    real = DatasetDir.put
    monkeypatch.setattr(DatasetDir, "put", lambda self, rel, data: (order.append(rel.split("/")[-2]), real(self, rel, data)))
    a = write_shard(DatasetDir(root), 0, clips, [], META)
    first = Path(token_part_path(root, 0)).read_bytes()
    b = write_shard(DatasetDir(root), 0, clips, [], META)
    assert order == ["tokens", "errors", "_commits"] * 2
    assert a == b and Path(token_part_path(root, 0)).read_bytes() == first


def test_manifest_refuses_missing_shards_and_reader_refuses_unfinished(tmp_path: Path) -> None:
    root = str(tmp_path)
    ds = DatasetDir(root)
    write_shard(ds, 0, make_clips(1, 1), [], META)
    with pytest.raises(DatasetNotReadyError, match="no manifest"):
        ds.read_manifest()
    with pytest.raises(ValueError, match=r"shards \[1\] have no commit marker"):
        write_manifest(ds, {}, expected_shards=[0, 1])


def test_check_compatible_names_the_field(tmp_path: Path) -> None:
    ds = DatasetDir(str(tmp_path))
    check_compatible(ds, META)  # empty output: fine
    write_shard(ds, 0, make_clips(1, 1), [], META)
    check_compatible(ds, META)
    with pytest.raises(ValueError, match="beta=1.0 .* beta=0.5"):
        check_compatible(ds, TokenFileMeta("test-tok", 0.5, 0.1))
