from __future__ import annotations

import pytest

from pipeline.io.storage import StorageConfig, TransientStorageError, filesystem, with_retries
from schemas.layout import join


def test_local_and_s3_filesystems(tmp_path, s3_endpoint, s3_bucket):
    fs, path = filesystem(str(tmp_path / "x"))
    fs.pipe(path, b"abc")
    assert (tmp_path / "x").read_bytes() == b"abc"

    cfg = StorageConfig(endpoint_url=s3_endpoint)
    fs, path = filesystem(f"s3://{s3_bucket}/pre/", cfg)
    assert path == f"{s3_bucket}/pre"
    fs.pipe(join(path, "k.bin"), b"xyz")
    assert fs.cat(f"{s3_bucket}/pre/k.bin") == b"xyz"


def test_storage_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="endpoint"):
        StorageConfig.from_dict({"endpoint": "http://x"})


def test_retries_transient_then_succeeds():
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise TransientStorageError("slow down")
        return 7

    assert with_retries(flaky, "flaky", base_delay_s=0.001) == 7
    assert len(calls) == 3


def test_permanent_error_not_retried():
    calls = []

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("s3://b/missing.mp4")

    with pytest.raises(FileNotFoundError):
        with_retries(missing, "missing", base_delay_s=0.001)
    assert len(calls) == 1
