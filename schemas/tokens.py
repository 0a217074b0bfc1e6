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

TOKEN_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("clip_index", pa.int32(), nullable=False),
        pa.field("frame_start", pa.int32(), nullable=False),  # first frame, in frames at `fps`
        pa.field("frame_count", pa.int32(), nullable=False),  # 1 + 4k
        pa.field("fps", pa.float32(), nullable=False),  # frame rate the clip was tokenized at
        pa.field("height", pa.int32(), nullable=False),  # pixels fed to the tokenizer
        pa.field("width", pa.int32(), nullable=False),
        pa.field("grid_t", pa.int32(), nullable=False),
        pa.field("grid_h", pa.int32(), nullable=False),
        pa.field("grid_w", pa.int32(), nullable=False),
        pa.field("tokens", pa.list_(pa.field("item", pa.uint16(), nullable=False)), nullable=False),
        pa.field("mask", pa.binary(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("rate", pa.float32(), nullable=False),  # r_x applied: n_tokens = round(rate * t*h*w)
        pa.field("info", pa.float32(), nullable=False),  # I(x) = mean router score
        pa.field("beta", pa.float32(), nullable=False),
        pa.field("source_duration_s", pa.float32(), nullable=True),
        pa.field("source_fps", pa.float32(), nullable=True),
        pa.field("source_height", pa.int32(), nullable=True),
        pa.field("source_width", pa.int32(), nullable=True),
    ]
)


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
    """One clip's tokenizer output, the record the pipeline hands to the writer.

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

    def col(name: str, typ: pa.DataType) -> pa.Array:
        return pa.array([getattr(r, name) for r in rows], typ)

    arrays: dict[str, pa.Array] = {
        "video_id": col("video_id", pa.string()),
        "source_uri": col("source_uri", pa.string()),
        "clip_index": col("clip_index", pa.int32()),
        "frame_start": col("frame_start", pa.int32()),
        "frame_count": col("frame_count", pa.int32()),
        "fps": col("fps", pa.float32()),
        "height": col("height", pa.int32()),
        "width": col("width", pa.int32()),
        "grid_t": pa.array([r.grid[0] for r in rows], pa.int32()),
        "grid_h": pa.array([r.grid[1] for r in rows], pa.int32()),
        "grid_w": pa.array([r.grid[2] for r in rows], pa.int32()),
        "tokens": tokens,
        "mask": col("mask", pa.binary()),
        "n_tokens": pa.array(lengths.astype(np.int32), pa.int32()),
        "rate": col("rate", pa.float32()),
        "info": col("info", pa.float32()),
        "beta": col("beta", pa.float32()),
        "source_duration_s": col("source_duration_s", pa.float32()),
        "source_fps": col("source_fps", pa.float32()),
        "source_height": col("source_height", pa.int32()),
        "source_width": col("source_width", pa.int32()),
    }
    schema = token_schema(meta)
    return pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema)


def table_to_clips(table: pa.Table) -> list[ClipTokens]:
    """Inverse of `clips_to_table` (for tests and small tools; the loader reads columns)."""
    d = table.to_pydict()
    flat = table.column("tokens").combine_chunks()
    out = []
    for i in range(table.num_rows):
        toks = flat[i].values.to_numpy(zero_copy_only=False).astype(np.uint16)
        out.append(
            ClipTokens(
                video_id=d["video_id"][i],
                source_uri=d["source_uri"][i],
                clip_index=d["clip_index"][i],
                frame_start=d["frame_start"][i],
                frame_count=d["frame_count"][i],
                fps=d["fps"][i],
                height=d["height"][i],
                width=d["width"][i],
                grid=(d["grid_t"][i], d["grid_h"][i], d["grid_w"][i]),
                tokens=toks,
                mask=d["mask"][i],
                rate=d["rate"][i],
                info=d["info"][i],
                beta=d["beta"][i],
                source_duration_s=d["source_duration_s"][i],
                source_fps=d["source_fps"][i],
                source_height=d["source_height"][i],
                source_width=d["source_width"][i],
            )
        )
    return out
