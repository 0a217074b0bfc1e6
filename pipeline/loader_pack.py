"""Token streams of a loader window and their packing into fixed-length LM sequences.

A window's clips, in shuffled order, become one element stream: for each clip
[BOS, kept ids in raster order of kept positions, EOS]. Every element carries its (t, h, w)
latent position decoded from the clip's mask (-1 for BOS/EOS/PAD) and its index within the
clip, so whatever cut the packer makes, a token never travels without its position.

Packing policies (sequence length L):
- "concat": the stream is cut every L elements; a clip may continue in the next sequence.
- "whole": a clip that does not fit in the room left starts a new sequence (the rest is PAD);
  only a clip longer than L is cut, into consecutive sequences.
Document ids number the clips of one sequence 0, 1, ... (a continued clip is document 0),
PAD is -1: attention can be masked per clip with document_ids[i] == document_ids[j].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas.mask import BIT_ORDER
from schemas.tokens import BOS_ID, EOS_ID, PAD_ID

Cursor = tuple[int, int, int]  # (window, row in the window's shuffled order, element offset in that clip)
POLICIES = ("concat", "whole")


@dataclass(frozen=True)
class Columns:
    """The loader's view of a window table, rows in file order. Offsets are int64, (R+1,)."""

    tok_offsets: np.ndarray
    tokens: np.ndarray  # (N,) uint16
    mask_offsets: np.ndarray
    mask_data: np.ndarray  # (sum of mask bytes,) uint8
    grids: np.ndarray  # (R, 3) int64

    @property
    def n_rows(self) -> int:
        return len(self.tok_offsets) - 1

    @classmethod
    def from_table(cls, table: pa.Table, where: str) -> Columns:
        tok = table.column("tokens").combine_chunks()
        raw = tok.offsets.to_numpy().astype(np.int64)  # accounts for a sliced array
        tokens = tok.values.to_numpy(zero_copy_only=False)[raw[0] : raw[-1]]
        tok_off = raw - raw[0]
        mask = table.column("mask").combine_chunks()
        bufs = mask.buffers()
        m_off = np.frombuffer(bufs[1], dtype=np.int32, count=len(mask) + 1, offset=4 * mask.offset).astype(np.int64)
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        data = data[m_off[0] : m_off[-1]]
        m_off -= m_off[0]
        grids = np.stack([table.column(c).to_numpy().astype(np.int64) for c in ("grid_t", "grid_h", "grid_w")], 1)
        cols = cls(tok_off, tokens.astype(np.uint16, copy=False), m_off, data, grids.reshape(-1, 3))
        cols.check(where)
        return cols

    def check(self, where: str) -> None:
        n = np.diff(self.tok_offsets)
        kept = np.add.reduceat(np.bitwise_count(self.mask_data), self.mask_offsets[:-1]) if self.mask_data.size else 0
        kept = np.where(np.diff(self.mask_offsets) > 0, kept, 0)
        bad = np.flatnonzero(kept != n)
        if bad.size:
            r = int(bad[0])
            raise ValueError(f"{where}: row {r} has {int(n[r])} tokens but its mask keeps {int(kept[r])}")

    def positions(self) -> np.ndarray:
        """(N, 3) int16 (t, h, w) of every token, rows in file order (vectorized over the window)."""
        n = np.diff(self.tok_offsets)
        idx = np.flatnonzero(np.unpackbits(self.mask_data, bitorder=BIT_ORDER))
        # int32 arithmetic: a clip grid has far fewer than 2^31 cells, and it is ~2x faster than int64.
        local = (idx - np.repeat(8 * self.mask_offsets[:-1], n)).astype(np.int32)
        g = self.grids.astype(np.int32)
        w = np.repeat(g[:, 2], n)
        hw = np.repeat(g[:, 1] * g[:, 2], n)
        out = np.empty((local.size, 3), dtype=np.int16)
        t, rem = np.divmod(local, hw)
        if t.size and (t >= np.repeat(g[:, 0], n)).any():
            raise ValueError("mask has set bits past its t*h*w grid (padding bits must be zero)")
        out[:, 0] = t
        out[:, 1], out[:, 2] = np.divmod(rem, w)
        return out


@dataclass(frozen=True)
class WindowStream:
    """Elements of a window in shuffled clip order; clip r spans [starts[r], starts[r+1])."""

    ids: np.ndarray  # (E,) int64
    pos: np.ndarray  # (E, 3) int16, -1 for BOS/EOS
    pid: np.ndarray  # (E,) int32, index within the clip (BOS = 0)
    starts: np.ndarray  # (R+1,) int64

    @property
    def n_elements(self) -> int:
        return int(self.starts[-1])

    def cursor_at(self, window: int, e: int) -> Cursor:
        """Cursor of element e; the end of the window is (window + 1, 0, 0)."""
        if e >= self.n_elements:
            return (window + 1, 0, 0)
        r = int(np.searchsorted(self.starts, e, side="right") - 1)
        return (window, r, e - int(self.starts[r]))


def build_stream(cols: Columns, perm: np.ndarray) -> WindowStream:
    n = np.diff(cols.tok_offsets)
    n_perm = n[perm]
    elen = n_perm + 2
    starts = np.zeros(len(perm) + 1, dtype=np.int64)
    np.cumsum(elen, out=starts[1:])
    total = int(starts[-1])
    ids = np.empty(total, dtype=np.int64)
    pos = np.full((total, 3), -1, dtype=np.int16)
    is_tok = np.ones(total, dtype=bool)
    is_tok[starts[:-1]] = False
    is_tok[starts[1:] - 1] = False
    dest = np.flatnonzero(is_tok)
    excl = np.zeros(len(perm), dtype=np.int64)
    np.cumsum(n_perm[:-1], out=excl[1:])
    src = np.repeat(cols.tok_offsets[:-1][perm] - excl, n_perm) + np.arange(int(n_perm.sum()))
    ids[dest] = cols.tokens[src]
    ids[starts[:-1]] = BOS_ID
    ids[starts[1:] - 1] = EOS_ID
    # Gather (t, h, w) rows as single 6-byte items: much faster than 2-D fancy indexing.
    row = np.dtype((np.void, 6))
    pos.view(row).reshape(-1)[dest] = cols.positions().view(row).reshape(-1)[src]
    pid = (np.arange(total) - np.repeat(starts[:-1], elen)).astype(np.int32)
    return WindowStream(ids, pos, pid, starts)


def _assemble(pieces: list[tuple[WindowStream, int, int]], seq_len: int) -> dict[str, np.ndarray]:
    ids = np.full(seq_len, PAD_ID, dtype=np.int64)
    pos = np.full((seq_len, 3), -1, dtype=np.int16)
    pid = np.full(seq_len, -1, dtype=np.int32)
    at = 0
    for s, a, b in pieces:
        ids[at : at + b - a] = s.ids[a:b]
        pos[at : at + b - a] = s.pos[a:b]
        pid[at : at + b - a] = s.pid[a:b]
        at += b - a
    doc = np.cumsum(pid == 0, dtype=np.int32)
    doc -= doc[0]
    doc[at:] = -1
    return {"input_ids": ids, "document_ids": doc, "position_ids": pid, "grid_positions": pos}


def pack(
    windows: Iterator[tuple[int, WindowStream]], start: Cursor, seq_len: int, policy: str, end: Cursor
) -> Iterator[tuple[dict[str, np.ndarray], Cursor]]:
    """Sequences of seq_len elements and, with each, the cursor where the next one starts.

    windows yields (window index, stream) from start[0] on; `end` is the cursor after the
    last window. The first sequence starts at element start[2] of clip start[1].
    """
    if policy not in POLICIES:
        raise ValueError(f"pack policy must be one of {POLICIES}, got {policy!r}")
    if seq_len < 3:
        raise ValueError(f"seq_len must be >= 3 (BOS, a token, EOS), got {seq_len}")
    pieces: list[tuple[WindowStream, int, int]] = []
    filled = 0
    first = True
    for w, s in windows:
        e = int(s.starts[start[1]]) + start[2] if first else 0
        first = False
        total = s.n_elements
        while e < total:
            if policy == "concat":
                take = min(seq_len - filled, total - e)
            else:
                r = int(np.searchsorted(s.starts, e, side="right") - 1)
                clip_left = int(s.starts[r + 1]) - e
                if clip_left <= seq_len - filled:
                    take = clip_left
                elif filled > 0:  # does not fit: close this sequence, the clip starts the next one
                    yield _assemble(pieces, seq_len), s.cursor_at(w, e)
                    pieces, filled = [], 0
                    continue
                else:  # longer than a whole sequence: cut it
                    take = seq_len
            pieces.append((s, e, e + take))
            filled += take
            e += take
            if filled == seq_len:
                yield _assemble(pieces, seq_len), s.cursor_at(w, e)
                pieces, filled = [], 0
    if filled:
        yield _assemble(pieces, seq_len), end
