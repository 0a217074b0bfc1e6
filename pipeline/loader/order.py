"""Epoch order of the token loader: one global order of samples, the same at every world size.

Pure functions of (manifest, seed, epoch); no I/O. Units are row groups, listed from the
manifest (no footer reads). Per epoch, file order and row-group order within each file are
shuffled from (seed, epoch); consecutive runs of `window_row_groups` units form the epoch's
windows, and the rows of a window are permuted together (the bounded shuffle buffer, keyed by
(seed, epoch, window) only). A window's samples are its clips in that order, or the sequences
its clips pack into (each window is packed on its own: its last sequence is padded), so every
sample has one number in the epoch, 0 .. total-1, whatever the number of ranks and workers that
read it (`pipeline.loader.partition` splits those numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from schemas.manifest import DatasetManifest


@dataclass(frozen=True)
class Unit:
    """One row group: `part` is the index into manifest.parts, `row_group` within that part."""

    part: int
    shard: int
    row_group: int
    n_rows: int


def all_units(manifest: DatasetManifest) -> list[Unit]:
    return [
        Unit(i, p.shard, g, n)
        for i, p in enumerate(manifest.parts)
        for g, n in enumerate(p.row_groups)
        if n > 0
    ]


def epoch_units(manifest: DatasetManifest, seed: int, epoch: int, shuffle: bool) -> list[Unit]:
    """All units in this epoch's order (files shuffled, then row groups within each file)."""
    by_part: dict[int, list[Unit]] = {}
    for u in all_units(manifest):
        by_part.setdefault(u.part, []).append(u)
    parts = sorted(by_part)
    if not shuffle:
        return [u for p in parts for u in by_part[p]]
    rng = np.random.default_rng([seed, epoch, 0])
    out: list[Unit] = []
    for p in rng.permutation(parts).tolist():
        units = by_part[p]
        out.extend(units[i] for i in rng.permutation(len(units)).tolist())
    return out


def window_permutation(n_rows: int, seed: int, epoch: int, window: int, shuffle: bool) -> np.ndarray:
    """Row order within one window (identity without shuffle)."""
    if not shuffle:
        return np.arange(n_rows)
    return np.random.default_rng([seed, epoch, 1, window]).permutation(n_rows)


@dataclass(frozen=True)
class EpochLayout:
    """The epoch's windows and how many samples each holds; window w holds the sample numbers
    [offsets[w], offsets[w + 1])."""

    windows: tuple[tuple[Unit, ...], ...]
    offsets: tuple[int, ...]

    @property
    def total(self) -> int:
        return self.offsets[-1]

    def pieces(self, intervals: list[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
        """(window, first, stop) local sample ranges covering `intervals` (sample numbers), in order."""
        import bisect

        for a, b in intervals:
            w = bisect.bisect_right(self.offsets, a) - 1
            while a < b:
                stop = min(b, self.offsets[w + 1])
                yield w, a - self.offsets[w], stop - self.offsets[w]
                a, w = stop, w + 1

    def locate(self, sample: int) -> tuple[int, int]:
        """(window, index in the window) of one sample number."""
        w, first, _ = next(self.pieces([(sample, sample + 1)]))
        return w, first


def epoch_layout(manifest: DatasetManifest, seed: int, epoch: int, shuffle: bool, window: int,
                 count: Callable[[int, tuple[Unit, ...]], int]) -> EpochLayout:
    """The epoch's windows; count(w, units) gives the samples window w holds."""
    units = epoch_units(manifest, seed, epoch, shuffle)
    windows = tuple(tuple(units[i : i + window]) for i in range(0, len(units), window))
    offsets = [0]
    for w, ws in enumerate(windows):
        offsets.append(offsets[-1] + count(w, ws))
    return EpochLayout(windows, tuple(offsets))
