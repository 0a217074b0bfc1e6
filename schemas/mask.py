"""Keep-mask packing for InfoTok token rows (arXiv 2512.16975, section on masking).

A clip's keep mask is a boolean grid (t, h, w) over the latent positions. On disk it is
`np.packbits(bits, bitorder="little")` of the grid flattened in raster order (t, then h,
then w): bit k of the flat grid is bit (k % 8), counting from the least significant, of
byte k // 8. The unused high bits of the last byte are zero. Kept token ids are stored in
the same raster order of the kept positions, so the i-th id belongs to the i-th set bit.
"""

from __future__ import annotations

import numpy as np

BIT_ORDER = "little"
RASTER_ORDER = "t,h,w"


def mask_nbytes(grid: tuple[int, int, int]) -> int:
    """Bytes of a packed mask for a (t, h, w) grid."""
    t, h, w = grid
    return (t * h * w + 7) // 8


def pack_mask(keep: np.ndarray) -> bytes:
    """keep: (t, h, w) bool (or 0/1 ints) -> packed bytes, little bit order, raster order."""
    if keep.ndim != 3:
        raise ValueError(f"keep mask must be 3-D (t, h, w), got shape {keep.shape}")
    bits = np.ascontiguousarray(keep, dtype=bool).reshape(-1)
    return np.packbits(bits, bitorder=BIT_ORDER).tobytes()


def unpack_mask(blob: bytes | np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """Packed mask -> (t, h, w) bool. Raises if the blob length does not match the grid."""
    buf = np.frombuffer(blob, dtype=np.uint8) if not isinstance(blob, np.ndarray) else blob
    need = mask_nbytes(grid)
    if buf.size != need:
        raise ValueError(f"mask of {buf.size} bytes does not fit grid {tuple(grid)} ({need} bytes expected)")
    t, h, w = grid
    bits = np.unpackbits(buf, count=t * h * w, bitorder=BIT_ORDER)
    return bits.reshape(t, h, w).astype(bool)


def popcount(blob: bytes | np.ndarray) -> int:
    """Number of set bits in a packed mask."""
    buf = np.frombuffer(blob, dtype=np.uint8) if not isinstance(blob, np.ndarray) else blob
    return int(np.bitwise_count(buf).sum())


def padding_is_clear(blob: bytes | np.ndarray, grid: tuple[int, int, int]) -> bool:
    """True when the bits past t*h*w in the last byte are zero (one encoding per mask)."""
    buf = np.frombuffer(blob, dtype=np.uint8) if not isinstance(blob, np.ndarray) else blob
    n = grid[0] * grid[1] * grid[2]
    used = n % 8
    if used == 0 or buf.size == 0:
        return True
    return int(buf[-1]) >> used == 0


def kept_positions(blob: bytes | np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """(N, 3) int32 (t, h, w) of every kept position, in raster order (= order of the ids)."""
    keep = unpack_mask(blob, grid)
    return np.argwhere(keep).astype(np.int32)
