"""Block-causal attention of the adaptive layer over a latent grid (t, h, w), whole-frame or
within spatial windows.

A token of latent frame i attends to the tokens of frames <= i (the layer stays causal like the
base model). Spatially it attends either to the whole frame (window 0) or, with a window of W
tokens, only within its own tile: the frame is cut into ceil(h / W) x ceil(w / W) tiles of near
equal size (at most W a side), and a tile's queries see the keys of that tile widened by `halo`
tokens on each side (clipped at the frame's edge), in every frame <= i.

Why windows: whole-frame attention costs the square of a frame's tokens, so at 256x256 (a 32x32
latent frame) the compressor costs as much as the convolutional encoder, whose cost is linear;
a layer trained on 128x128 crops (16x16 tokens) never saw more context than a 16-token window
anyway. A frame no larger than the window is one tile, whole-frame attention exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Tile:
    """One tile of a latent frame: its query rows/cols and the (wider) key rows/cols it sees."""

    rows: slice
    cols: slice
    key_rows: slice
    key_cols: slice

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start


def _bounds(n: int, window: int) -> list[int]:
    parts = 1 if not window else -(-n // window)
    return [i * n // parts for i in range(parts + 1)]


@functools.cache
def frame_tiles(h: int, w: int, window: int, halo: int) -> tuple[Tile, ...]:
    """The tiles of an h x w latent frame in raster order (one tile when window is 0 or >= h, w)."""
    rb, cb = _bounds(h, window), _bounds(w, window)
    return tuple(
        Tile(slice(r0, r1), slice(c0, c1), slice(max(0, r0 - halo), min(h, r1 + halo)),
             slice(max(0, c0 - halo), min(w, c1 + halo)))
        for r0, r1 in zip(rb, rb[1:]) for c0, c1 in zip(cb, cb[1:])
    )


def tile_of_position(h: int, w: int, window: int, halo: int, device: torch.device) -> torch.Tensor:
    """(h * w,) long: the index in `frame_tiles` of each raster position's tile."""
    index = torch.empty(h, w, dtype=torch.long, device=device)
    for i, tile in enumerate(frame_tiles(h, w, window, halo)):
        index[tile.rows, tile.cols] = i
    return index.reshape(-1)


def block_causal_mask(grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """(N, N) bool, True where query position may attend key: frame(key) <= frame(query)."""
    t, h, w = grid
    frame = torch.arange(t, device=device).repeat_interleave(h * w)  # (N,)
    return frame[None, :] <= frame[:, None]


def block_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, frame_len: int,
                           key_frame_len: int | None = None) -> torch.Tensor:
    """Attention where queries of frame i see keys of frames <= i (same result as `block_causal_mask`).
    q: (B, heads, t * frame_len, hd); k, v: (B, heads, t * key_frame_len, hd) (default frame_len).

    One unmasked call per query frame: ~(t+1)/(2t) of the masked FLOPs and the fast kernels.
    """
    key_len = frame_len if key_frame_len is None else key_frame_len
    outs = [
        F.scaled_dot_product_attention(q[:, :, i * frame_len : (i + 1) * frame_len], k[:, :, : (i + 1) * key_len],
                                       v[:, :, : (i + 1) * key_len])
        for i in range(q.shape[2] // frame_len)
    ]  # each (B, heads, frame_len, hd)
    return torch.cat(outs, dim=2)


def windowed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int, int],
                       window: int, halo: int) -> torch.Tensor:
    """Block-causal attention within spatial windows. q, k, v: (B, heads, N, hd), N = t * h * w in
    raster order -> (B, heads, N, hd)."""
    t, h, w = grid
    tiles = frame_tiles(h, w, window, halo)
    if len(tiles) == 1:
        return block_causal_attention(q, k, v, h * w)
    b, heads, n, hd = q.shape
    q5, k5, v5 = (a.reshape(b, heads, t, h, w, hd) for a in (q, k, v))
    out = torch.empty_like(q5)
    for tile in tiles:
        th, tw = tile.shape
        kt, vt = (a[:, :, :, tile.key_rows, tile.key_cols] for a in (k5, v5))  # (B, heads, t, kh, kw, hd)
        key_len = kt.shape[3] * kt.shape[4]
        y = block_causal_attention(q5[:, :, :, tile.rows, tile.cols].reshape(b, heads, -1, hd),
                                   kt.reshape(b, heads, -1, hd), vt.reshape(b, heads, -1, hd), th * tw, key_len)
        out[:, :, :, tile.rows, tile.cols] = y.reshape(b, heads, t, th, tw, hd)
    return out.reshape(b, heads, n, hd)


def windowed_attention_at_rows(q: torch.Tensor, rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               grid: tuple[int, int, int], window: int, halo: int) -> torch.Tensor:
    """`windowed_attention` for some queries only, every position still a key.

    q: (heads, M, hd), the queries at `rows` (M,) (clip * N + position, ascending); k, v: (B, heads,
    N, hd) -> (heads, M, hd). One call per (clip, tile, frame) that has a query; a (clip, tile)'s keys
    are gathered once for all its frames.
    """
    t, h, w = grid
    b, heads, n, hd = k.shape
    tiles = frame_tiles(h, w, window, halo)
    clip, pos = rows // n, rows % n
    tile_of = tile_of_position(h, w, window, halo, rows.device)[pos % (h * w)]
    group = (clip * len(tiles) + tile_of) * t + pos // (h * w)  # (clip, tile, frame)
    order = torch.argsort(group, stable=True)
    counts = torch.bincount(group, minlength=b * len(tiles) * t).reshape(b * len(tiles), t).tolist()
    qs = q[:, order]
    k5, v5 = k.reshape(b, heads, t, h, w, hd), v.reshape(b, heads, t, h, w, hd)
    ys, start = [], 0
    for g, per_frame in enumerate(counts):
        if not any(per_frame):
            continue
        c, tile = divmod(g, len(tiles))
        keys = tiles[tile].key_rows, tiles[tile].key_cols
        kt = k5[c : c + 1, :, :, keys[0], keys[1]].reshape(1, heads, t, -1, hd)  # (1, heads, t, keys a frame, hd)
        vt = v5[c : c + 1, :, :, keys[0], keys[1]].reshape(1, heads, t, -1, hd)
        for frame, count in enumerate(per_frame):
            if count:
                ys.append(F.scaled_dot_product_attention(qs[None, :, start : start + count],
                                                         kt[:, :, : frame + 1].flatten(2, 3),
                                                         vt[:, :, : frame + 1].flatten(2, 3))[0])
            start += count
    if not ys:
        return q.new_zeros(heads, 0, hd)
    return torch.empty_like(qs).index_copy_(1, order, torch.cat(ys, dim=1))
