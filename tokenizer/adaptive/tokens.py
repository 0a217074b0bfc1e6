"""AdaptiveTokens: one clip's InfoTok token stream (arXiv 2512.16975) and its byte form.

Unlike the reference code, the keep mask is stored, so the stream is decodable on its own.
Mask: `schemas.mask.pack_mask` bits (little bit order: bit k of the raster-flattened
(t, h, w) grid is bit k % 8, least significant first, of byte k // 8; unused high bits of
the last byte are zero). Ids: uint16, in raster order of the kept positions (the i-th id
belongs to the i-th set bit).

Byte layout (all little-endian): magic b"ITK1", u16 t, u16 h, u16 w, u32 n_tokens,
f64 info, f64 rate, f64 beta, then the packed mask (ceil(t*h*w / 8) bytes), then
n_tokens uint16 ids.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from schemas.mask import BIT_ORDER, RASTER_ORDER, mask_nbytes, pack_mask, padding_is_clear, popcount, unpack_mask

MAGIC = b"ITK1"
_HEADER = struct.Struct("<4sHHHIddd")
MASK_BIT_ORDER = BIT_ORDER
MASK_RASTER_ORDER = RASTER_ORDER


@dataclass(frozen=True)
class AdaptiveTokens:
    """One clip's tokens.

    ids: (N,) uint16 kept token ids, raster order of kept positions.
    mask: packed keep mask (see module doc), ceil(t*h*w / 8) bytes, exactly N bits set.
    grid: (t, h, w) latent grid; the clip is 1 + 4(t-1) frames of 8h x 8w pixels.
    info: I(x), the clip's information estimate (mean per-token L1 error, [-1, 1] pixel scale).
    rate: the budget fraction r_x in [1/16, 1] the router gave the clip.
    beta: the compression knob the clip was tokenized with.
    """

    ids: np.ndarray
    mask: bytes
    grid: tuple[int, int, int]
    info: float
    rate: float
    beta: float

    def __post_init__(self) -> None:
        if self.ids.dtype != np.uint16 or self.ids.ndim != 1:
            raise ValueError(f"ids must be a 1-D uint16 array, got {self.ids.dtype} {self.ids.shape}")
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ValueError(f"grid must be three positive ints (t, h, w), got {self.grid}")
        if len(self.mask) != mask_nbytes(self.grid):
            raise ValueError(f"mask has {len(self.mask)} bytes, grid {self.grid} needs {mask_nbytes(self.grid)}")
        if not padding_is_clear(self.mask, self.grid):
            raise ValueError(f"mask padding bits past {int(np.prod(self.grid))} positions must be zero")
        if popcount(self.mask) != self.ids.size:
            raise ValueError(f"mask keeps {popcount(self.mask)} positions but there are {self.ids.size} ids")

    @property
    def n_tokens(self) -> int:
        return int(self.ids.size)

    @property
    def n_positions(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def keep_mask(self) -> np.ndarray:
        """(t, h, w) bool keep mask."""
        return unpack_mask(self.mask, self.grid)

    def to_bytes(self) -> bytes:
        t, h, w = self.grid
        head = _HEADER.pack(MAGIC, t, h, w, self.n_tokens, self.info, self.rate, self.beta)
        return head + self.mask + self.ids.astype("<u2").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> AdaptiveTokens:
        if len(blob) < _HEADER.size:
            raise ValueError(f"token stream of {len(blob)} bytes is shorter than its {_HEADER.size}-byte header")
        magic, t, h, w, n, info, rate, beta = _HEADER.unpack_from(blob)
        if magic != MAGIC:
            raise ValueError(f"token stream magic is {magic!r}, expected {MAGIC!r}")
        grid = (t, h, w)
        m = mask_nbytes(grid)
        need = _HEADER.size + m + 2 * n
        if len(blob) != need:
            raise ValueError(f"token stream is {len(blob)} bytes, grid {grid} with {n} tokens needs {need}")
        mask = bytes(blob[_HEADER.size : _HEADER.size + m])
        ids = np.frombuffer(blob, dtype="<u2", count=n, offset=_HEADER.size + m).astype(np.uint16)
        return cls(ids=ids, mask=mask, grid=grid, info=info, rate=rate, beta=beta)

    @classmethod
    def from_dense(cls, indices: np.ndarray, keep: np.ndarray, info: float, rate: float, beta: float) -> AdaptiveTokens:
        """indices: (t, h, w) ids < 65536; keep: (t, h, w) bool -> the tokens at kept positions."""
        if indices.shape != keep.shape or indices.ndim != 3:
            raise ValueError(f"indices {indices.shape} and keep {keep.shape} must be the same (t, h, w)")
        if indices.size and (indices.min() < 0 or indices.max() > 0xFFFF):
            raise ValueError(f"token ids must fit uint16, got range [{indices.min()}, {indices.max()}]")
        keep = keep.astype(bool)
        ids = indices[keep].astype(np.uint16)  # boolean indexing walks raster order
        return cls(ids=ids, mask=pack_mask(keep), grid=tuple(int(v) for v in keep.shape), info=float(info),
                   rate=float(rate), beta=float(beta))
