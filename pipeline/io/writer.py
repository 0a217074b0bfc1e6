"""Parquet part writer for token datasets, over fsspec (local paths and s3://).

Per shard: token part, error part (always, maybe empty), then the commit marker; the
manifest last (`write_manifest`). A part is visible only when complete: on local disks it
is written to a temp name in the same folder, fsynced and renamed; on object stores it is
one PUT (or a multipart upload that s3fs completes only after the last part), so a reader
never sees half a file. A retried shard overwrites its own deterministic names.

Parts are serialized in memory before the upload, which makes retries possible without
re-running the shard; keep shards to a few hundred MB.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io.dataset import DatasetDir
from schemas.layout import MANIFEST_NAME, commit_marker, error_part, token_part
from schemas.errors import ERRORS_SCHEMA, ErrorRow, errors_to_table
from schemas.manifest import DatasetManifest, ShardCommit
from schemas.config import FrozenConfig
from schemas.tokens import SCHEMA_VERSION, ClipTokens, TokenFileMeta, clips_to_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterConfig(FrozenConfig):
    """Parquet layout of token parts.

    row_group_tokens: a row group is closed once it holds this many kept ids (~2 bytes each
    on disk): 2M ids ~ 4 MB per group, large enough for cheap ranged reads on S3, small
    enough to be a unit of shuffling, and far below Arrow's 2^31 list-offset limit.
    max_row_group_rows: cap for clips with very few tokens.
    """

    row_group_tokens: int = 2_000_000
    max_row_group_rows: int = 4096
    compression_level: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.row_group_tokens < 2**30:
            raise ValueError(f"row_group_tokens must be in [1, 2^30), got {self.row_group_tokens}")
        if self.max_row_group_rows < 1:
            raise ValueError(f"max_row_group_rows must be >= 1, got {self.max_row_group_rows}")

# Ids: BYTE_STREAM_SPLIT + zstd, no dictionary (benchmarks/bench_storage_bytes.py: on
# high-entropy FSQ ids 1.96 B/id vs 2.29 with a dictionary and 2.47 plain). Parquet names the
# list child "element" whatever Arrow calls it. Strings repeat per video: dictionary.
_DICT_COLUMNS = ["video_id", "source_uri"]
_COLUMN_ENCODING = {"tokens.list.element": "BYTE_STREAM_SPLIT"}


def row_group_bounds(n_tokens: np.ndarray, config: WriterConfig) -> list[tuple[int, int]]:
    """[start, end) row ranges: close a group at row_group_tokens ids or max_row_group_rows rows."""
    bounds: list[tuple[int, int]] = []
    start, acc = 0, 0
    for i, n in enumerate(n_tokens.tolist()):
        acc += n
        if acc >= config.row_group_tokens or i + 1 - start >= config.max_row_group_rows:
            bounds.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(n_tokens) or not bounds:
        bounds.append((start, len(n_tokens)))
    return bounds


def token_table_bytes(table: pa.Table, config: WriterConfig) -> tuple[bytes, tuple[int, ...]]:
    """Serialize a token table to Parquet bytes; returns (bytes, rows per row group)."""
    n_tokens = table.column("n_tokens").to_numpy()
    bounds = row_group_bounds(n_tokens, config)
    sink = io.BytesIO()
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression="zstd",
        compression_level=config.compression_level,
        use_dictionary=_DICT_COLUMNS,
        column_encoding=_COLUMN_ENCODING,
        write_statistics=[f.name for f in table.schema if f.name not in ("tokens", "mask")],
        store_schema=True,
    ) as w:
        for a, b in bounds:
            if b > a or table.num_rows == 0:
                w.write_table(table.slice(a, b - a), row_group_size=max(1, b - a))
    sizes = tuple(b - a for a, b in bounds if b > a)
    return sink.getvalue(), sizes


def errors_table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_shard(
    ds: DatasetDir,
    shard_id: int,
    token_rows: Sequence[ClipTokens],
    error_rows: Sequence[ErrorRow],
    file_meta: TokenFileMeta,
    config: WriterConfig = WriterConfig(),
    before_commit: Callable[[], None] | None = None,
) -> ShardCommit:
    """Write one shard's token part, error part and commit marker (in that order).

    before_commit: called after both parts are durable and before the marker is written; it raises
    to stop the commit (the job's lease check: a worker of a dead driver never commits).

    Rows are written in the order given (the pipeline passes them in plan order, so the
    output is deterministic). Returns the commit marker that was written.
    """
    table = clips_to_table(token_rows, file_meta)
    token_data, row_groups = token_table_bytes(table, config)
    error_data = errors_table_bytes(errors_to_table(error_rows))
    ds.put(token_part(shard_id), token_data)
    ds.put(error_part(shard_id), error_data)
    commit = ShardCommit(
        shard=shard_id,
        n_rows=table.num_rows,
        n_tokens=int(sum(r.n_tokens for r in token_rows)),
        n_errors=len(error_rows),
        n_videos=len({r.video_id for r in token_rows}),
        row_groups=row_groups,
        token_bytes=len(token_data),
        error_bytes=len(error_data),
        token_sha256=hashlib.sha256(token_data).hexdigest(),
        error_sha256=hashlib.sha256(error_data).hexdigest(),
        schema_version=SCHEMA_VERSION,
        file_meta=file_meta,
    )
    if before_commit is not None:
        before_commit()
    ds.put(commit_marker(shard_id), commit.to_json().encode())
    logger.info("shard %d: %d clips, %d tokens, %d errors, %d bytes", shard_id, commit.n_rows, commit.n_tokens,
                commit.n_errors, len(token_data))
    return commit


def check_compatible(ds: DatasetDir, file_meta: TokenFileMeta) -> None:
    """Refuse to add shards to an output written with another tokenizer, beta or schema.

    Raises ValueError naming the field that differs; silent for an empty output.
    """
    for commit in ds.commits().values():
        if commit.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"{ds.root} holds shard {commit.shard} with schema_version {commit.schema_version}, "
                f"this writer makes {SCHEMA_VERSION}"
            )
        mine, theirs = file_meta.to_dict(), commit.file_meta.to_dict()
        for key in mine:
            if mine[key] != theirs[key]:
                raise ValueError(
                    f"{ds.root} was written with {key}={theirs[key]!r} (shard {commit.shard}), "
                    f"this run has {key}={mine[key]!r}: use a new output or the same settings"
                )
        return


def write_manifest(
    ds: DatasetDir,
    params: dict[str, Any],
    expected_shards: Sequence[int] | None = None,
    created_at: str | None = None,
) -> DatasetManifest:
    """Write OUTPUT/dataset.json from the commit markers; call after every shard is committed.

    expected_shards: the plan's shard ids; missing markers raise ValueError naming them.
    params: creation parameters (job config) stored verbatim; must be JSON-serializable.
    """
    commits = ds.commits()
    if expected_shards is not None:
        missing = sorted(set(expected_shards) - set(commits))
        if missing:
            raise ValueError(f"cannot finalize {ds.root}: shards {missing[:20]} have no commit marker")
        extra = sorted(set(commits) - set(expected_shards))
        if extra:
            raise ValueError(f"cannot finalize {ds.root}: committed shards {extra[:20]} are not in the plan")
    stamp = created_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    manifest = DatasetManifest.build(list(commits.values()), stamp, params)
    ds.put(MANIFEST_NAME, manifest.to_json().encode())
    logger.info("manifest %s: %d shards, %d clips, %d tokens", ds.uri(MANIFEST_NAME), manifest.n_shards,
                manifest.n_clips, manifest.n_tokens)
    return manifest


__all__ = [
    "ERRORS_SCHEMA",
    "WriterConfig",
    "check_compatible",
    "write_manifest",
    "write_shard",
]
