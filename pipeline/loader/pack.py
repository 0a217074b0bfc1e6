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

Speed (benchmarks/bench_loader.py): a window is decoded with whole-window numpy passes, no
per-token Python and no per-clip loop except for joining shuffled rows. Positions come from
one table per distinct grid ((t*h*w, 3) int16, cached): every kept bit's offset, shifted per
clip onto its grid's table, is a row index, so decoding is unpackbits, flatnonzero (on a bool
view: numpy's bool path, far faster than uint8's) and one `take`, in blocks of rows so that the temporaries stay
small. Sequences that lie inside one window's stream (in "concat", all but those spanning two
windows) are views of the stream made a block at a time, not copies: a caller that keeps
such a sample keeps its window's stream alive.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from schemas.mask import BIT_ORDER
from schemas.tokens import BOS_ID, EOS_ID, PAD_ID

Cursor = tuple[int, int, int]  # (window, row in the window's shuffled order, element offset in that clip)
POLICIES = ("concat", "whole")
# Positions are decoded in blocks of about this many elements: the temporaries (a few MiB) are
# reused from malloc's free lists, where window-sized ones come back as fresh pages each window
# (page faults cost more than the numpy passes, see benchmarks/bench_loader.py).
_DECODE_BLOCK = 1 << 18


@functools.lru_cache(maxsize=64)
def grid_cells(t: int, h: int, w: int) -> np.ndarray:
    """(t*h*w, 3) int16 (t, h, w) of every cell of a grid in raster order; read-only, cached."""
    if max(t, h, w) > np.iinfo(np.int16).max:
        raise ValueError(f"grid {(t, h, w)} does not fit int16 positions")
    cells = np.stack(np.unravel_index(np.arange(t * h * w), (t, h, w)), axis=1).astype(np.int16)
    cells.flags.writeable = False
    return cells


def cell_table(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions table of a window and each row's offset into it.

    grids: (R, 3) int64. Returns table (1 + sum of t*h*w over distinct grids, 3) int16 whose
    row 0 is (-1, -1, -1) (BOS/EOS) followed by grid_cells() of each distinct grid, and
    base (R,) int64, the table row of cell 0 of each row's grid.
    """
    uniq, inverse = np.unique(grids, axis=0, return_inverse=True)
    sizes = np.prod(uniq, axis=1)
    starts = np.ones(len(uniq), dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    starts[1:] += 1
    table = np.concatenate([np.full((1, 3), -1, np.int16)] + [grid_cells(*(int(x) for x in g)) for g in uniq])
    return table, starts[inverse.reshape(-1)]


@dataclass(frozen=True)
class Columns:
    """The loader's view of a window table. Offsets are int64, (R+1,), starting at 0."""

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
        """Each row's mask keeps as many cells as it has ids, and none past its grid."""
        n = np.diff(self.tok_offsets)
        kept = np.add.reduceat(np.bitwise_count(self.mask_data), self.mask_offsets[:-1]) if self.mask_data.size else 0
        kept = np.where(np.diff(self.mask_offsets) > 0, kept, 0)
        bad = np.flatnonzero(kept != n)
        if bad.size:
            r = int(bad[0])
            raise ValueError(f"{where}: row {r} has {int(n[r])} tokens but its mask keeps {int(kept[r])}")
        # Positions are rows of a shared table (cell_table): a bit past a row's grid would index
        # the next grid's cells, so it is refused here. Such bits can only lie in the last byte
        # a grid needs (its padding bits) or in bytes past it.
        cells = np.prod(self.grids, axis=1)
        need = (cells + 7) // 8
        nbytes = np.diff(self.mask_offsets)
        full = np.flatnonzero((nbytes >= need) & (cells % 8 != 0))
        pad = self.mask_data[self.mask_offsets[full] + need[full] - 1] >> (cells[full] % 8).astype(np.uint8)
        past = full[pad != 0].tolist()
        for r in np.flatnonzero(nbytes > need).tolist():  # longer than the grid needs: rare, checked row by row
            if self.mask_data[self.mask_offsets[r] + need[r] : self.mask_offsets[r + 1]].any():
                past.append(r)
        if past:
            r = min(past)
            raise ValueError(f"{where}: row {r}: mask has set bits past its t*h*w grid {tuple(self.grids[r].tolist())} "
                             "(padding bits must be zero)")

    def take(self, order: np.ndarray) -> Columns:
        """The rows in `order` (R,), with contiguous buffers; self when order is the identity."""
        if np.array_equal(order, np.arange(self.n_rows)):
            return self
        to, mo = self.tok_offsets.tolist(), self.mask_offsets.tolist()
        rows = order.tolist()
        # Slices joined by one concatenate: no per-token index array to build and gather through.
        tokens = np.concatenate([self.tokens[to[r] : to[r + 1]] for r in rows] or [self.tokens[:0]])
        masks = np.concatenate([self.mask_data[mo[r] : mo[r + 1]] for r in rows] or [self.mask_data[:0]])
        tok_off = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(np.diff(self.tok_offsets)[order], out=tok_off[1:])
        mask_off = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(np.diff(self.mask_offsets)[order], out=mask_off[1:])
        return Columns(tok_off, tokens, mask_off, masks, self.grids[order])

    def positions(self, specials: bool = False) -> np.ndarray:
        """(N, 3) int16 (t, h, w) of every token, in row order (vectorized over blocks of rows).

        specials: the stream layout instead, (N + 2R, 3) with a (-1, -1, -1) row (BOS, EOS)
        before and after each row's tokens.
        """
        table, base = cell_table(self.grids)
        n = np.diff(self.tok_offsets)
        counts = n + 2 if specials else n
        ends = np.cumsum(counts)
        out = np.empty((int(ends[-1]) if ends.size else 0, 3), dtype=np.int16)
        # Table row of a token = its kept bit's offset in mask_data - shift of its row.
        shift = 8 * self.mask_offsets[:-1] - base
        r0 = e0 = 0
        while r0 < self.n_rows:
            r1 = max(r0 + 1, int(np.searchsorted(ends, e0 + _DECODE_BLOCK, side="right")))
            e1 = int(ends[r1 - 1])
            bit0 = 8 * int(self.mask_offsets[r0])
            kept = np.flatnonzero(np.unpackbits(self.mask_data[bit0 // 8 : self.mask_offsets[r1]], bitorder=BIT_ORDER)
                                  .view(bool))
            sh = shift[r0:r1] - bit0
            if specials:  # BOS/EOS get their row's shift, so that the subtraction brings them to row 0
                bos = ends[r0:r1] - counts[r0:r1] - e0
                eos = bos + counts[r0:r1] - 1
                rows = np.empty(e1 - e0, dtype=np.int64)
                is_tok = np.ones(e1 - e0, dtype=bool)
                is_tok[bos] = False
                is_tok[eos] = False
                rows[is_tok] = kept
                rows[bos] = sh
                rows[eos] = sh
            else:
                rows = kept
            rows -= np.repeat(sh, counts[r0:r1])
            # check() keeps rows in range; mode="clip" writes into `out` unbuffered ("raise" buffers).
            table.take(rows, axis=0, out=out[e0:e1], mode="clip")
            r0, e0 = r1, e1
        return out


@dataclass(frozen=True)
class WindowStream:
    """Elements of a window in shuffled clip order; clip r spans [starts[r], starts[r+1])."""

    ids: np.ndarray  # (E,) int64
    pos: np.ndarray | None  # (E, 3) int16, -1 for BOS/EOS; None when positions were not asked for
    pid: np.ndarray  # (E,) int32, index within the clip (BOS = 0)
    clip: np.ndarray  # (E,) int32, index of the element's clip in the stream (document ids derive from it)
    starts: np.ndarray  # (R+1,) int64

    @functools.cached_property
    def start_list(self) -> list[int]:  # bisect on a list: cheaper than a numpy call per sequence
        return self.starts.tolist()

    @property
    def n_elements(self) -> int:
        return self.start_list[-1]

    def clip_at(self, e: int) -> int:
        """Index of the clip holding element e (0 <= e < n_elements)."""
        return bisect.bisect_right(self.start_list, e) - 1

    def cursor_at(self, window: int, e: int) -> Cursor:
        """Cursor of element e; the end of the window is (window + 1, 0, 0)."""
        if e >= self.n_elements:
            return (window + 1, 0, 0)
        r = self.clip_at(e)
        return (window, r, e - self.start_list[r])


def build_stream(cols: Columns, perm: np.ndarray, positions: bool = True) -> WindowStream:
    """The element stream of cols' rows in order `perm` (R,); see the module docstring."""
    c = cols.take(perm)
    n = np.diff(c.tok_offsets)
    elen = n + 2
    starts = np.zeros(c.n_rows + 1, dtype=np.int64)
    np.cumsum(elen, out=starts[1:])
    total = int(starts[-1])
    if total >= 2**31:
        raise ValueError(f"a window of {total} elements overflows int32 position ids: lower window_row_groups")
    bos, eos = starts[:-1], starts[1:] - 1
    # Scatter through a bool mask: its False entries (BOS/EOS) are rare, so its branches predict well.
    is_tok = np.ones(total, dtype=bool)
    is_tok[bos] = False
    is_tok[eos] = False
    ids = np.empty(total, dtype=np.int64)
    ids[is_tok] = c.tokens
    ids[bos] = BOS_ID
    ids[eos] = EOS_ID
    pos = c.positions(specials=True) if positions else None
    pid = np.arange(total, dtype=np.int32)
    pid -= np.repeat(bos.astype(np.int32), elen)
    clip = np.repeat(np.arange(c.n_rows, dtype=np.int32), elen)
    return WindowStream(ids, pos, pid, clip, starts)


def _assemble(pieces: list[tuple[WindowStream, int, int]], seq_len: int, positions: bool) -> dict[str, np.ndarray]:
    if len(pieces) == 1 and pieces[0][2] - pieces[0][1] == seq_len:  # inside one stream: views, no copy
        s, a, b = pieces[0]
        out = {"input_ids": s.ids[a:b], "document_ids": s.clip[a:b] - s.clip[a], "position_ids": s.pid[a:b]}
        if positions:
            assert s.pos is not None
            out["grid_positions"] = s.pos[a:b]
        return out
    ids = np.full(seq_len, PAD_ID, dtype=np.int64)
    doc = np.full(seq_len, -1, dtype=np.int32)
    pid = np.full(seq_len, -1, dtype=np.int32)
    pos = np.full((seq_len, 3), -1, dtype=np.int16) if positions else None
    at = 0
    next_doc = 0
    for s, a, b in pieces:
        k = b - a
        ids[at : at + k] = s.ids[a:b]
        pid[at : at + k] = s.pid[a:b]
        # The first piece is document 0 even mid-clip; a later piece starts a new document at its BOS.
        first = next_doc if s.pid[a] == 0 or at == 0 else next_doc - 1
        np.subtract(s.clip[a:b], s.clip[a] - first, out=doc[at : at + k])
        next_doc = int(doc[at + k - 1]) + 1
        if pos is not None:
            assert s.pos is not None
            pos[at : at + k] = s.pos[a:b]
        at += k
    out = {"input_ids": ids, "document_ids": doc, "position_ids": pid}
    if pos is not None:
        out["grid_positions"] = pos
    return out


def _full_sequences(
    s: WindowStream, window: int, e: int, k: int, seq_len: int, positions: bool
) -> Iterator[tuple[dict[str, np.ndarray], Cursor]]:
    """The k sequences of s from element e on, as views, made with whole-block numpy calls.

    Same result as _assemble of one piece each; per sequence it leaves only row indexing,
    which matters: per-sequence Python costs as much as several thousand tokens of numpy.
    """
    stop = e + k * seq_len
    ids = s.ids[e:stop].reshape(k, seq_len)
    pid = s.pid[e:stop].reshape(k, seq_len)
    clip = s.clip[e:stop].reshape(k, seq_len)
    doc = clip - clip[:, :1]
    pos = s.pos[e:stop].reshape(k, seq_len, 3) if positions and s.pos is not None else None
    ends = np.arange(e + seq_len, stop + 1, seq_len)
    rows = np.searchsorted(s.starts, ends, side="right") - 1
    offs = (ends - s.starts[np.minimum(rows, len(s.starts) - 1)]).tolist()
    rows_l, ends_l = rows.tolist(), ends.tolist()
    total = s.n_elements
    for i in range(k):
        seq = {"input_ids": ids[i], "document_ids": doc[i], "position_ids": pid[i]}
        if pos is not None:
            seq["grid_positions"] = pos[i]
        yield seq, ((window + 1, 0, 0) if ends_l[i] >= total else (window, rows_l[i], offs[i]))


def count_sequences(clip_elements: np.ndarray, seq_len: int, policy: str) -> int:
    """How many sequences `pack` makes of one stream whose clips have these element counts
    (tokens + 2, in stream order), without building it: the same rule, on lengths only."""
    if policy == "concat":
        return -(-int(clip_elements.sum()) // seq_len)
    n = filled = 0
    for left in clip_elements.tolist():
        while left:
            if left <= seq_len - filled:
                filled += left
                left = 0
                if filled == seq_len:
                    n, filled = n + 1, 0
            elif filled:  # does not fit: the sequence closes, the clip starts the next one
                n, filled = n + 1, 0
            else:  # longer than a whole sequence: cut
                n, left = n + 1, left - seq_len
    return n + (filled > 0)


def pack(
    windows: Iterator[tuple[int, WindowStream]], start: Cursor, seq_len: int, policy: str, end: Cursor,
    positions: bool = True,
) -> Iterator[tuple[dict[str, np.ndarray], Cursor]]:
    """Sequences of seq_len elements and, with each, the cursor where the next one starts.

    windows yields (window index, stream) from start[0] on; `end` is the cursor after the
    last window. The first sequence starts at element start[2] of clip start[1].
    positions: include "grid_positions" (the streams must carry them).
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
        r = s.clip_at(e) if e < total else 0  # clip of element e ("whole" only)
        while e < total:
            if policy == "concat" and filled == 0 and total - e >= seq_len:
                k = (total - e) // seq_len
                yield from _full_sequences(s, w, e, k, seq_len, positions)
                e += k * seq_len
                continue
            if policy == "concat":
                take = min(seq_len - filled, total - e)
            else:
                clip_left = s.start_list[r + 1] - e
                if clip_left <= seq_len - filled:
                    take = clip_left
                    r += 1
                elif filled > 0:  # does not fit: close this sequence, the clip starts the next one
                    yield _assemble(pieces, seq_len, positions), s.cursor_at(w, e)
                    pieces, filled = [], 0
                    continue
                else:  # longer than a whole sequence: cut it
                    take = seq_len
            if pieces and pieces[-1][0] is s and pieces[-1][2] == e:  # adjacent: one piece, one copy
                pieces[-1] = (s, pieces[-1][1], e + take)
            else:
                pieces.append((s, e, e + take))
            filled += take
            e += take
            if filled == seq_len:
                yield _assemble(pieces, seq_len, positions), s.cursor_at(w, e)
                pieces, filled = [], 0
    if filled:
        yield _assemble(pieces, seq_len, positions), end
