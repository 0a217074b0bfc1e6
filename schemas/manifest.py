"""Shard commit markers and the dataset manifest (`dataset.json`), both JSON.

A shard's commit marker is written only after its token and error parts are durable; the
manifest is written last, from the markers, and a reader refuses a dataset without it.
The manifest lists every part with its row-group sizes so a loader can plan an epoch
without opening (or on S3, without a GET for) any Parquet footer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from schemas.mask import BIT_ORDER, RASTER_ORDER
from schemas.config import FrozenConfig
from schemas.tokens import BOS_ID, EOS_ID, PAD_ID, SCHEMA_NAME, SCHEMA_VERSION, TokenFileMeta


@dataclass(frozen=True)
class ShardCommit(FrozenConfig):
    """What one shard wrote. row_groups: rows per row group of the token part, in order.

    token_sha256 / error_sha256: SHA-256 (hex) of the two parts' bytes, so that a reader can tell a
    damaged or swapped part from the one that was committed; "" in datasets written before they
    were recorded (then only sizes can be checked).
    """

    shard: int
    n_rows: int
    n_tokens: int
    n_errors: int
    n_videos: int
    row_groups: tuple[int, ...]
    token_bytes: int
    error_bytes: int
    schema_version: int
    file_meta: TokenFileMeta
    token_sha256: str = ""
    error_sha256: str = ""

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ShardCommit:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class PartInfo(FrozenConfig):
    """One shard's entry in the manifest (the counts of its commit marker)."""

    shard: int
    n_rows: int
    n_tokens: int
    n_errors: int
    row_groups: tuple[int, ...]
    token_bytes: int
    error_bytes: int
    token_sha256: str = ""
    error_sha256: str = ""

    @classmethod
    def from_commit(cls, c: ShardCommit) -> PartInfo:
        return cls(c.shard, c.n_rows, c.n_tokens, c.n_errors, c.row_groups, c.token_bytes, c.error_bytes,
                   c.token_sha256, c.error_sha256)


@dataclass(frozen=True)
class DatasetManifest(FrozenConfig):
    """dataset.json. `params` holds the creation parameters (job config) as plain JSON."""

    schema_name: str
    schema_version: int
    file_meta: TokenFileMeta
    mask_bit_order: str
    mask_raster_order: str
    special_tokens: dict[str, int]
    n_shards: int
    n_clips: int
    n_tokens: int
    n_errors: int
    n_videos: int
    parts: tuple[PartInfo, ...]
    created_at: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer_id(self) -> str:
        return self.file_meta.tokenizer_id

    @property
    def codebook_size(self) -> int:
        return self.file_meta.codebook_size

    @classmethod
    def build(cls, commits: list[ShardCommit], created_at: str, params: dict[str, Any]) -> DatasetManifest:
        """Manifest from the shards' commit markers; all must agree on the file meta and version."""
        if not commits:
            raise ValueError("cannot build a manifest from 0 committed shards")
        commits = sorted(commits, key=lambda c: c.shard)
        first = commits[0]
        for c in commits:
            if c.file_meta != first.file_meta:
                raise ValueError(f"shard {c.shard} was written with {c.file_meta}, shard {first.shard} with {first.file_meta}")
            if c.schema_version != SCHEMA_VERSION:
                raise ValueError(f"shard {c.shard} has schema_version {c.schema_version}, expected {SCHEMA_VERSION}")
        return cls(
            schema_name=SCHEMA_NAME,
            schema_version=SCHEMA_VERSION,
            file_meta=first.file_meta,
            mask_bit_order=BIT_ORDER,
            mask_raster_order=RASTER_ORDER,
            special_tokens={"bos": BOS_ID, "eos": EOS_ID, "pad": PAD_ID},
            n_shards=len(commits),
            n_clips=sum(c.n_rows for c in commits),
            n_tokens=sum(c.n_tokens for c in commits),
            n_errors=sum(c.n_errors for c in commits),
            n_videos=sum(c.n_videos for c in commits),
            parts=tuple(PartInfo.from_commit(c) for c in commits),
            created_at=created_at,
            params=dict(params),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> DatasetManifest:
        return cls.from_dict(json.loads(text))
