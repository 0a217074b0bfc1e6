"""Who reads which samples of an epoch: equal shares per rank, contiguous chunks per worker.

An epoch is one deterministic order of samples (clips, or packed sequences), numbered
0 .. total-1 (`pipeline.loader.order.EpochLayout`); what has been consumed is a set of
intervals of those numbers. The rest is cut, in order, into `world_size` equal shares (MosaicML
Streaming's elastic resume: the state is a position in the global order, never per rank), so a
run saved at one world size, worker count or batch size resumes at another with nothing repeated
or lost:

- remainder "pad" (default, what torch's DistributedSampler does): every rank gets
  ceil(n / world_size) samples; the ranks that are one short repeat their first sample,
  flagged `padding` (no clip is lost, and no rank waits in a collective for one that ran out);
  "drop": every rank gets floor(n / world_size) and the last n mod world_size are left out of
  this epoch.
- A rank's share is split among its DataLoader workers in contiguous chunks of whole batches
  (only the last batch of the share can be partial), and torch serves workers round robin, so
  the rank's batches come in a fixed order that `consumed` can replay from a batch count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Interval = tuple[int, int]  # [start, stop) of sample numbers
REMAINDERS = ("pad", "drop")


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, disjoint, non-empty intervals covering the same numbers."""
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def complement(total: int, consumed: list[Interval]) -> list[Interval]:
    """The numbers in [0, total) not in `consumed`, in order."""
    out: list[Interval] = []
    at = 0
    for a, b in merge(consumed):
        if a > at:
            out.append((at, min(a, total)))
        at = max(at, b)
    if at < total:
        out.append((at, total))
    return [i for i in out if i[1] > i[0]]


def size(intervals: list[Interval]) -> int:
    return sum(b - a for a, b in intervals)


def cut(intervals: list[Interval], start: int, count: int) -> list[Interval]:
    """Positions [start, start + count) of the flattened `intervals`, as intervals of numbers."""
    out: list[Interval] = []
    at = 0
    for a, b in intervals:
        n = b - a
        lo, hi = max(start - at, 0), min(start + count - at, n)
        if lo < hi:
            out.append((a + lo, a + hi))
        at += n
        if at >= start + count:
            break
    return out


@dataclass(frozen=True)
class RoleShare:
    """What one (rank, worker) reads: `samples` (intervals, in order), then `n_pad` repeats of
    sample `pad_source` flagged as padding."""

    samples: tuple[Interval, ...]
    n_pad: int
    pad_source: int

    @property
    def n_slots(self) -> int:
        return size(list(self.samples)) + self.n_pad


@dataclass(frozen=True)
class Partition:
    """The split of one epoch's remaining samples; `shares[rank][worker]`.

    batch_size / drop_last are the DataLoader's (they fix the chunk boundaries and the replay of
    a batch count); `num_workers` 0 means one in-process role per rank.
    """

    world_size: int
    num_workers: int
    batch_size: int
    drop_last: bool
    remainder: str
    shares: tuple[tuple[RoleShare, ...], ...]

    def params(self) -> dict[str, object]:
        return {"world_size": self.world_size, "num_workers": self.num_workers, "batch_size": self.batch_size,
                "drop_last": self.drop_last, "remainder": self.remainder}

    def batch_counts(self, rank: int) -> list[int]:
        """Batches each worker of `rank` yields."""
        b = self.batch_size
        return [(s.n_slots // b if self.drop_last else math.ceil(s.n_slots / b)) for s in self.shares[rank]]

    def batches(self, rank: int) -> int:
        return sum(self.batch_counts(rank))


def split(remaining: list[Interval], world_size: int, num_workers: int, batch_size: int, drop_last: bool,
          remainder: str) -> Partition:
    """Cut `remaining` into equal rank shares, each into worker chunks of whole batches."""
    if remainder not in REMAINDERS:
        raise ValueError(f"remainder must be one of {REMAINDERS}, got {remainder!r}")
    if world_size < 1 or num_workers < 0 or batch_size < 1:
        raise ValueError(f"need world_size >= 1, num_workers >= 0, batch_size >= 1; got {world_size}, "
                         f"{num_workers}, {batch_size}")
    n = size(remaining)
    q, extra = divmod(n, world_size)
    per_rank = q + (1 if extra and remainder == "pad" else 0)
    n_roles = max(1, num_workers)
    shares: list[tuple[RoleShare, ...]] = []
    start = 0
    for rank in range(world_size):
        real = q + (1 if rank < extra and remainder == "pad" else 0)
        mine = cut(remaining, start, real)
        start += real
        pad_source = mine[0][0] if mine else (remaining[0][0] if remaining else -1)
        # Whole batches per worker, contiguous: worker k takes batches [k*nb/K, (k+1)*nb/K).
        nb = math.ceil(per_rank / batch_size)
        roles = []
        for k in range(n_roles):
            lo = min(per_rank, (k * nb // n_roles) * batch_size)
            hi = min(per_rank, ((k + 1) * nb // n_roles) * batch_size)
            real_lo, real_hi = min(lo, real), min(hi, real)
            roles.append(RoleShare(tuple(cut(mine, real_lo, real_hi - real_lo)), (hi - lo) - (real_hi - real_lo),
                                   pad_source))
        shares.append(tuple(roles))
    return Partition(world_size, num_workers, batch_size, drop_last, remainder, tuple(shares))


def replay(counts: list[int], batches: int) -> tuple[list[int], int]:
    """After `batches` batches served round robin (torch's order: round i visits workers 0..K-1,
    skipping those with no batch i), how many each worker has served, and the worker that
    serves the next batch (0 when none is left)."""
    left, i = batches, 0
    partial: list[int] = []
    while left > 0:
        active = [k for k, c in enumerate(counts) if c > i]
        if not active:
            break
        rounds = min(counts[k] for k in active) - i
        if left >= rounds * len(active):  # whole rounds at once: cheap for long epochs
            left -= rounds * len(active)
            i += rounds
            continue
        full, left = divmod(left, len(active))
        i += full
        partial = active[:left]
        left = 0
    served = [min(c, i) + (k in partial) for k, c in enumerate(counts)]
    later = [k for k, c in enumerate(counts) if c > i and k not in partial and k > (partial[-1] if partial else -1)]
    nxt = later[0] if later else next((k for k, c in enumerate(counts) if c > served[k]), 0)
    return served, nxt
