"""Where a dataset's files live under its OUTPUT root (local folder or s3://bucket/prefix).

Names are pure functions of the shard id, so a retried shard overwrites its own files and a
rerun finds the same names (never listing order, never writer-made UUIDs).

    OUTPUT/tokens/part-{shard:06d}.parquet   token rows
    OUTPUT/errors/part-{shard:06d}.parquet   error rows (written for every shard, maybe empty)
    OUTPUT/_commits/part-{shard:06d}.json    commit marker, written after both parts
    OUTPUT/dataset.json                      manifest, written last
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pipeline.io.storage import join

if TYPE_CHECKING:
    from pipeline.io.storage import StorageConfig
    from schemas.manifest import DatasetManifest

TOKENS_DIR = "tokens"
ERRORS_DIR = "errors"
COMMITS_DIR = "_commits"
MANIFEST_NAME = "dataset.json"

_PART_RE = re.compile(r"part-(\d{6,})\.(parquet|json)$")


def part_name(shard: int, ext: str) -> str:
    if shard < 0:
        raise ValueError(f"shard id must be >= 0, got {shard}")
    return f"part-{shard:06d}.{ext}"


def token_part_path(root: str, shard: int) -> str:
    return join(root, TOKENS_DIR, part_name(shard, "parquet"))


def error_part_path(root: str, shard: int) -> str:
    return join(root, ERRORS_DIR, part_name(shard, "parquet"))


def commit_path(root: str, shard: int) -> str:
    return join(root, COMMITS_DIR, part_name(shard, "json"))


def manifest_path(root: str) -> str:
    return join(root, MANIFEST_NAME)


def shard_of(path: str) -> int:
    """Shard id from a part or marker file name; ValueError for any other name."""
    m = _PART_RE.search(path.rsplit("/", 1)[-1])
    if m is None:
        raise ValueError(f"not a part file name: {path!r}")
    return int(m.group(1))


class DatasetNotReadyError(FileNotFoundError):
    """The dataset has no manifest: it is unfinished (job still running or died) or not a dataset."""


def read_manifest(root: str, storage: "StorageConfig | None" = None) -> "DatasetManifest":
    """Load OUTPUT/dataset.json; DatasetNotReadyError with a clear message if it is absent."""
    from pipeline.io.storage import StorageConfig, filesystem, with_retries
    from schemas.manifest import DatasetManifest

    fs, path = filesystem(manifest_path(root), storage or StorageConfig())
    try:
        text = with_retries(lambda: fs.cat_file(path), f"read {manifest_path(root)}")
    except FileNotFoundError:
        raise DatasetNotReadyError(
            f"no manifest at {manifest_path(root)}: the dataset is unfinished (its job has not written "
            f"{MANIFEST_NAME} yet) or {root!r} is not an infotok dataset"
        ) from None
    return DatasetManifest.from_json(text.decode())
