"""Arrow schema of InfoTok token rows: one row per clip (arXiv 2512.16975).

This module is the source of truth for the on-disk token format. A row holds the kept FSQ
code ids of one clip (raster order of the kept positions) and the packed keep mask of its
latent grid (see `schemas.mask`), so every row is a decodable bitstream on its own.

Columns beyond the brief's sketch, and why users need them:
- `source_duration_s`, `source_fps`, `source_height`, `source_width`: the source video as it
  was before resampling/cropping. Training jobs filter and bucket by duration and native
  resolution (e.g. drop upscaled sources: source_height < height), and `frame_start / fps`
  maps a clip back to a time in the source without reopening it. Nullable: some containers
  do not report a duration.

Special token ids for LM packing live here too (the one place): they sit at and above the
codebook size so they never collide with an FSQ code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas.mask import BIT_ORDER, RASTER_ORDER, mask_nbytes, popcount
from schemas.config import FrozenConfig

SCHEMA_NAME = "infotok.tokens"
SCHEMA_VERSION = 1

FSQ_LEVELS: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
CODEBOOK_SIZE = math.prod(FSQ_LEVELS)  # 64000: fits uint16

# Special ids for packed LM sequences (never stored in datasets; added by the loader).
BOS_ID = CODEBOOK_SIZE  # 64000: begins every clip
EOS_ID = CODEBOOK_SIZE + 1  # 64001: ends every clip (also the separator between clips)
PAD_ID = CODEBOOK_SIZE + 2  # 64002: fills the tail of a sequence; never a training target
LM_VOCAB_SIZE = CODEBOOK_SIZE + 3

# Parquet key-value metadata keys (bytes, as pyarrow stores them).
META_SCHEMA = b"infotok.schema"
META_VERSION = b"infotok.schema_version"
META_TOKENIZER = b"infotok.tokenizer_id"
META_LEVELS = b"infotok.fsq_levels"
META_BIT_ORDER = b"infotok.mask_bit_order"
META_RASTER = b"infotok.mask_raster_order"
META_FILE = b"infotok.file_meta"


@dataclass(frozen=True)
class TokenField:
    """One column of a token row: Arrow type, nullability and what it holds. `ClipTokens` has an
    attribute of the same name for every column except the derived ones (`grid_t/h/w` come from
    its `grid`, `n_tokens` from len(tokens))."""

    name: str
    type: pa.DataType
    nullable: bool = False
    doc: str = ""


# The token row, stated once: the schema, `ClipTokens`'s check below and both conversions are built
# from this table. Column order is the on-disk order.
TOKEN_FIELDS: tuple[TokenField, ...] = (
    TokenField("video_id", pa.string()),
    TokenField("source_uri", pa.string()),
    TokenField("clip_index", pa.int32()),
    TokenField("frame_start", pa.int32(), doc="first frame, in frames at `fps`"),
    TokenField("frame_count", pa.int32(), doc="1 + 4k"),
    TokenField("fps", pa.float32(), doc="frame rate the clip was tokenized at"),
    TokenField("height", pa.int32(), doc="pixels fed to the tokenizer"),
    TokenField("width", pa.int32()),
    TokenField("grid_t", pa.int32(), doc="ClipTokens.grid[0]"),
    TokenField("grid_h", pa.int32(), doc="ClipTokens.grid[1]"),
    TokenField("grid_w", pa.int32(), doc="ClipTokens.grid[2]"),
    TokenField("tokens", pa.list_(pa.field("item", pa.uint16(), nullable=False)), doc="kept FSQ ids"),
    TokenField("mask", pa.binary(), doc="packed keep bits (`schemas.mask`)"),
    TokenField("n_tokens", pa.int32(), doc="len(tokens)"),
    TokenField("rate", pa.float32(), doc="r_x applied: n_tokens = round(rate * t*h*w)"),
    TokenField("info", pa.float32(), doc="I(x) = mean router score"),
    TokenField("beta", pa.float32()),
    TokenField("source_duration_s", pa.float32(), nullable=True),
    TokenField("source_fps", pa.float32(), nullable=True),
    TokenField("source_height", pa.int32(), nullable=True),
    TokenField("source_width", pa.int32(), nullable=True),
)
GRID_COLUMNS = ("grid_t", "grid_h", "grid_w")  # ClipTokens.grid, in this order
DERIVED_COLUMNS = (*GRID_COLUMNS, "n_tokens")  # no ClipTokens attribute of their own

TOKEN_SCHEMA = pa.schema([pa.field(f.name, f.type, nullable=f.nullable) for f in TOKEN_FIELDS])


@dataclass(frozen=True)
class TokenFileMeta(FrozenConfig):
    """Dataset-wide facts stamped into every token part's Parquet metadata and commit marker.

    beta: the dataset's compression knob; router: the router that set each clip's budget (a
    dataset written before routers were recorded was written by `elbo`); expected_info: that
    router's E[signal] (E[I] for elbo, E[s] for gain, E[s^] for latent).
    temporal_factor / spatial_factor: tokenizer compression (DV4x8x8: 4 and 8), used by
    `validate` to check that grids match frame counts and pixel sizes.
    """

    tokenizer_id: str
    beta: float
    expected_info: float
    router: str = "elbo"
    fsq_levels: tuple[int, ...] = FSQ_LEVELS
    temporal_factor: int = 4
    spatial_factor: int = 8

    def __post_init__(self) -> None:
        if not self.tokenizer_id:
            raise ValueError("tokenizer_id must be a non-empty string, got ''")
        if math.prod(self.fsq_levels) > 65536:
            raise ValueError(f"fsq_levels {self.fsq_levels} give more codes than uint16 holds")
        if not self.expected_info > 0:
            raise ValueError(f"expected_info must be > 0, got {self.expected_info}")
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not (isinstance(self.router, str) and self.router):
            raise ValueError(f"router must be a non-empty string, got {self.router!r}")

    @property
    def codebook_size(self) -> int:
        return math.prod(self.fsq_levels)

    def parquet_metadata(self) -> dict[bytes, bytes]:
        return {
            META_SCHEMA: SCHEMA_NAME.encode(),
            META_VERSION: str(SCHEMA_VERSION).encode(),
            META_TOKENIZER: self.tokenizer_id.encode(),
            META_LEVELS: json.dumps(list(self.fsq_levels)).encode(),
            META_BIT_ORDER: BIT_ORDER.encode(),
            META_RASTER: RASTER_ORDER.encode(),
            META_FILE: json.dumps(self.to_dict(), sort_keys=True).encode(),
        }


def token_schema(meta: TokenFileMeta) -> pa.Schema:
    """TOKEN_SCHEMA with this dataset's key-value metadata attached."""
    return TOKEN_SCHEMA.with_metadata(meta.parquet_metadata())


@dataclass(frozen=True)
class ClipTokens:
    """One clip's tokenizer output, the record the pipeline hands to the writer: a token row
    (`TOKEN_FIELDS`) with the grid as one tuple and n_tokens derived.

    tokens: (N,) uint16 kept ids, raster order of kept positions; mask: packed keep bits
    (`schemas.mask.pack_mask`); grid: (t, h, w). n_tokens is len(tokens).
    """

    video_id: str
    source_uri: str
    clip_index: int
    frame_start: int
    frame_count: int
    fps: float
    height: int
    width: int
    grid: tuple[int, int, int]
    tokens: np.ndarray
    mask: bytes
    rate: float
    info: float
    beta: float
    source_duration_s: float | None = None
    source_fps: float | None = None
    source_height: int | None = None
    source_width: int | None = None

    def __post_init__(self) -> None:
        tok = self.tokens
        if not isinstance(tok, np.ndarray) or tok.dtype != np.uint16 or tok.ndim != 1:
            raise ValueError(
                f"clip {self.video_id}#{self.clip_index}: tokens must be a 1-D uint16 array, "
                f"got {type(tok).__name__} {getattr(tok, 'dtype', None)} {getattr(tok, 'shape', None)}"
            )
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ValueError(f"clip {self.video_id}#{self.clip_index}: grid must be 3 positive ints, got {self.grid}")
        need = mask_nbytes(self.grid)
        if len(self.mask) != need:
            raise ValueError(
                f"clip {self.video_id}#{self.clip_index}: mask has {len(self.mask)} bytes, grid {self.grid} needs {need}"
            )
        kept = popcount(self.mask)
        if kept != tok.size:
            raise ValueError(f"clip {self.video_id}#{self.clip_index}: {tok.size} tokens but mask keeps {kept}")

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.size)


# Columns that are a ClipTokens attribute as they are (tests/test_schemas.py checks the two agree).
PLAIN_COLUMNS = tuple(f.name for f in TOKEN_FIELDS if f.name not in (*DERIVED_COLUMNS, "tokens"))


def clips_to_table(rows: Sequence[ClipTokens], meta: TokenFileMeta) -> pa.Table:
    """Build a token table with the exact schema (never inferred). Ids are checked < codebook."""
    n = len(rows)
    lengths = np.fromiter((r.tokens.size for r in rows), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"{offsets[-1]} tokens in one table overflow int32 list offsets; write smaller shards")
    flat = np.concatenate([r.tokens for r in rows]) if n else np.zeros(0, np.uint16)
    if flat.size and int(flat.max()) >= meta.codebook_size:
        bad = int(np.searchsorted(offsets, int(np.argmax(flat >= meta.codebook_size)), side="right") - 1)
        raise ValueError(
            f"clip {rows[bad].video_id}#{rows[bad].clip_index}: token id {int(rows[bad].tokens.max())} "
            f">= codebook size {meta.codebook_size}"
        )
    tokens = pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)), pa.array(flat, pa.uint16()), type=TOKEN_SCHEMA.field("tokens").type
    )

    def column(f: TokenField) -> pa.Array:
        if f.name == "tokens":
            return tokens
        if f.name == "n_tokens":
            return pa.array(lengths.astype(np.int32), f.type)
        if f.name in GRID_COLUMNS:
            axis = GRID_COLUMNS.index(f.name)
            return pa.array([r.grid[axis] for r in rows], f.type)
        return pa.array([getattr(r, f.name) for r in rows], f.type)

    arrays = {f.name: column(f) for f in TOKEN_FIELDS}
    schema = token_schema(meta)
    return pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema)


def table_to_clips(table: pa.Table) -> list[ClipTokens]:
    """Inverse of `clips_to_table` (for tests and small tools; the loader reads columns)."""
    d = table.to_pydict()
    flat = table.column("tokens").combine_chunks()
    out = []
    for i in range(table.num_rows):
        toks = flat[i].values.to_numpy(zero_copy_only=False).astype(np.uint16)
        plain = {name: d[name][i] for name in PLAIN_COLUMNS}
        out.append(ClipTokens(**plain, grid=tuple(d[g][i] for g in GRID_COLUMNS), tokens=toks))
    return out
