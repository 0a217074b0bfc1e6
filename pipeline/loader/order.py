"""Epoch plan of the token loader: which row groups each (rank, worker) reads, in what order.

Pure functions of (manifest, seed, epoch, number of roles); no I/O. A *role* is one
(rank, worker) pair: role = rank * num_workers + worker. Units are row groups, listed from
the manifest (no footer reads). Per epoch, file order and row-group order within each file
are shuffled from (seed, epoch); unit i goes to role i % n_roles, so the roles partition the
units: every row is read exactly once per epoch. Each role reads its units in windows of
`window_row_groups`; the rows of a window are permuted together (the bounded shuffle buffer).
"""

from __future__ import annotations

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


def role_windows(
    manifest: DatasetManifest, seed: int, epoch: int, shuffle: bool, role: int, n_roles: int, window: int
) -> list[list[Unit]]:
    """This role's units, grouped into shuffle windows of `window` row groups."""
    if not 0 <= role < n_roles:
        raise ValueError(f"role must be in [0, {n_roles}), got {role}")
    mine = epoch_units(manifest, seed, epoch, shuffle)[role::n_roles]
    return [mine[i : i + window] for i in range(0, len(mine), window)]


def window_permutation(n_rows: int, seed: int, epoch: int, role: int, window_index: int, shuffle: bool) -> np.ndarray:
    """Row order within one window (identity without shuffle)."""
    if not shuffle:
        return np.arange(n_rows)
    return np.random.default_rng([seed, epoch, 1, role, window_index]).permutation(n_rows)
