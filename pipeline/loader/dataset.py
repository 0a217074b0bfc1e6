"""TokenDataset: a torch IterableDataset over an InfoTok token dataset, for LM training.

Needs torch, pyarrow and fsspec; never Ray. Reads a dataset folder or s3:// prefix whose
manifest (dataset.json) exists, and refuses one without it; parts are opened through
`pipeline.io.reader.DatasetReader` (checked against their commits unless `verify_checksums=False`).

Work split: one global order of samples per epoch (`pipeline.loader.order`: clips, or the
sequences each shuffle window packs into), cut into equal shares per rank and contiguous chunks
of whole batches per DataLoader worker (`pipeline.loader.partition`). Every rank yields the same
number of batches; `LoaderConfig.remainder` says what happens to the n mod world_size samples
left over: "pad" (default) repeats a sample on the ranks that are one short, flagged `padding`,
"drop" leaves them out of the epoch.

Output modes (`LoaderConfig.mode`):
- "clips": one sample per clip: `tokens` (N,) int64 kept ids, `positions` (N, 3) int16 (t, h, w)
  of each id decoded from the mask, `grid` (3,), and the clip's metadata columns.
- "packed": fixed-length sequences (see `pipeline.loader.pack`): `input_ids` (L,) int64 with
  BOS/EOS/PAD from `schemas.tokens`, `document_ids` (L,) int32 (-1 = PAD), `position_ids` (L,)
  int32 index within the clip (-1 = PAD), `grid_positions` (L, 3) int16 (-1 for specials; left
  out with `LoaderConfig(grid_positions=False)`, which skips decoding masks). Each shuffle window
  is packed on its own (its last sequence ends in PAD), so a sequence's content never depends
  on how many ranks read the epoch.
Both modes add `sample_index` (the sample's number in the epoch order) and `padding` (True for a
repeat that fills a rank's share: weight its loss 0 to count every sample exactly once).
Tensors may be views of a window's buffers (no copy per sample): a caller that keeps a sample
keeps that window's buffers alive; collating into batches copies them.

Resume: `state_dict()` is a position in the epoch order (the samples consumed, as intervals)
plus the split that was reading it; it holds no rank. Loaded with the same world size, workers
and batch size, the batches continue exactly as an uninterrupted run; with others, the samples
not yet consumed are split anew: nothing repeats, nothing is lost. `load_state_dict()` refuses a
state of another dataset, seed or output setting, naming the field.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from schemas.layout import token_part
from pipeline.loader.order import EpochLayout, Unit, epoch_layout, window_permutation
from pipeline.loader.pack import POLICIES, Columns, build_stream, count_sequences, pack
from pipeline.loader.partition import REMAINDERS, Interval, Partition, RoleShare, complement, cut, merge, replay, split
from pipeline.io.reader import DatasetReader
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

STATE_FORMAT = "infotok.loader_state/2"
MODES = ("packed", "clips")
PACKED_COLUMNS = ["tokens", "mask", "grid_t", "grid_h", "grid_w", "n_tokens"]
_IDENTITY = ("format", "dataset", "seed", "mode", "seq_len", "pack_policy", "shuffle", "window_row_groups")
_POSITION = ("epoch", "consumed", "split", "progress")


@dataclass(frozen=True)
class LoaderConfig(FrozenConfig):
    """mode: "packed" or "clips"; seq_len / pack_policy apply to "packed".

    window_row_groups: row groups whose clips are shuffled together (the shuffle buffer: with
    ~1,000 clips per row group, 4 groups hold ~4,000 clips in memory per worker).
    grid_positions: packed mode returns `grid_positions`; False (an LM with 1-D positions only
    needs `position_ids`) skips decoding the masks. Clips mode always returns positions.
    remainder: "pad" or "drop", the samples left when an epoch does not split evenly over ranks
      (see the module docstring).
    verify_checksums: hash each token part when a worker first opens it and refuse it (naming the
      file) unless size and SHA-256 equal its commit's: a damaged or swapped part never yields a
      row. Costs one extra sequential read of each part (benchmarks/bench_checksums.py).
    """

    mode: str = "packed"
    seq_len: int = 4096
    pack_policy: str = "concat"
    shuffle: bool = True
    seed: int = 0
    window_row_groups: int = 4
    grid_positions: bool = True
    verify_checksums: bool = True
    remainder: str = "pad"

    def __post_init__(self) -> None:
        if self.remainder not in REMAINDERS:
            raise ValueError(f"remainder must be one of {REMAINDERS}, got {self.remainder!r}")
        if self.mode not in MODES:
            raise ValueError(f"loader mode must be one of {MODES}, got {self.mode!r}")
        if self.pack_policy not in POLICIES:
            raise ValueError(f"pack_policy must be one of {POLICIES}, got {self.pack_policy!r}")
        if self.seq_len < 3:
            raise ValueError(f"seq_len must be >= 3, got {self.seq_len}")
        if self.window_row_groups < 1:
            raise ValueError(f"window_row_groups must be >= 1, got {self.window_row_groups}")


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _PartReader:
    """Open Parquet parts of one worker, each opened once (one footer read per part) through the
    dataset reader, which checks each against its commit first when `verify`."""

    def __init__(self, reader: DatasetReader, columns: list[str] | None, verify: bool) -> None:
        self.reader, self.columns, self.verify = reader, columns, verify
        self._files: dict[int, pq.ParquetFile] = {}

    def read(self, units: list[Unit]) -> pa.Table:
        tables = []
        for u in units:
            if u.shard not in self._files:
                self._files[u.shard] = self.reader.open_part(u.shard, self.verify)
            tables.append(self._files[u.shard].read_row_group(u.row_group, columns=self.columns))
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


class TokenDataset(IterableDataset):
    """Iterable over clips or packed sequences of an InfoTok dataset (see module docstring).

    rank / world_size default to torch.distributed's when initialized, else 0 / 1.
    num_workers must equal the DataLoader's (it fixes the work split). `batch_size` and
    `drop_last` are the DataLoader's; `TokenDataLoader` sets them (they align worker chunks to
    whole batches and let a batch count be replayed into a position).
    """

    def __init__(
        self,
        root: str,
        config: LoaderConfig = LoaderConfig(),
        storage: StorageConfig = StorageConfig(),
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.root, self.config, self.storage = root, config, storage
        self.reader = DatasetReader(root, storage)
        self.ds = self.reader.dir
        self.manifest = self.reader.manifest
        d_rank, d_world = _dist_rank_world()
        self.rank = d_rank if rank is None else rank
        self.world_size = d_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.num_workers = num_workers
        self.batch_size, self.drop_last = 1, False
        self.fingerprint = hashlib.sha256(self.manifest.to_json().encode()).hexdigest()[:16]
        self.epoch = 0
        self._consumed: list[Interval] = []  # sample numbers consumed before the current split
        self._split: dict[str, Any] | None = None  # the split that `_progress` counts in
        self._progress = 0  # batches served on this rank under `_split` (samples when in-process)
        self._lengths: dict[int, list[np.ndarray]] | None = None  # part -> n_tokens per row group (packed)
        self._layout: tuple[int, EpochLayout] | None = None

    # ---- partitioning --------------------------------------------------------------------
    def _row_lengths(self) -> dict[int, list[np.ndarray]]:
        """n_tokens of every row, per part and row group (packed mode counts sequences from them):
        one column read per part, once; checked against the rows read later."""
        if self._lengths is None:
            from concurrent.futures import ThreadPoolExecutor

            from pipeline.io.dataset import READ_THREADS

            def lengths(p: Any) -> list[np.ndarray]:
                rel = token_part(p.shard)
                if self.ds.is_local:
                    n = pq.ParquetFile(self.ds.path(rel)).read(columns=["n_tokens"]).column(0)
                else:
                    with self.ds.fs.open(self.ds.path(rel), "rb") as f:
                        n = pq.ParquetFile(f).read(columns=["n_tokens"]).column(0)
                rows = n.to_numpy().astype(np.int64)
                if len(rows) != sum(p.row_groups):
                    raise ValueError(f"{self.ds.uri(rel)}: {len(rows)} rows, its commit says {sum(p.row_groups)}")
                return np.split(rows, np.cumsum(p.row_groups)[:-1])

            parts = self.manifest.parts
            if self.ds.is_local or len(parts) < 2:  # on an object store, READ_THREADS parts at a time
                found = [lengths(p) for p in parts]
            else:
                with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(parts))) as pool:
                    found = list(pool.map(lengths, parts))
            self._lengths = dict(enumerate(found))
        return self._lengths

    def _window_rows(self, units: tuple[Unit, ...]) -> np.ndarray:
        lengths = self._row_lengths()
        return np.concatenate([lengths[u.part][u.row_group] for u in units])

    def layout(self) -> EpochLayout:
        """This epoch's windows and sample numbers."""
        if self._layout is None or self._layout[0] != self.epoch:
            c = self.config

            def count(w: int, units: tuple[Unit, ...]) -> int:
                rows = sum(u.n_rows for u in units)
                if c.mode == "clips":
                    return rows
                perm = window_permutation(rows, c.seed, self.epoch, w, c.shuffle)
                return count_sequences(self._window_rows(units)[perm] + 2, c.seq_len, c.pack_policy)

            self._layout = (self.epoch, epoch_layout(self.manifest, c.seed, self.epoch, c.shuffle,
                                                     c.window_row_groups, count))
        return self._layout[1]

    def _split_params(self) -> dict[str, Any]:
        inproc = self.num_workers == 0  # one role per rank, progress counted per sample
        return {"world_size": self.world_size, "num_workers": self.num_workers,
                "batch_size": 1 if inproc else self.batch_size, "drop_last": False if inproc else self.drop_last,
                "remainder": self.config.remainder}

    def _served(self, partition: Partition, progress: int) -> list[Interval]:
        """Sample numbers every rank has consumed after `progress` batches each (ranks step together)."""
        out: list[Interval] = []
        for rank in range(partition.world_size):
            served, _ = replay(partition.batch_counts(rank), progress)
            for share, n in zip(partition.shares[rank], served):
                out += cut(list(share.samples), 0, min(n * partition.batch_size, share.n_slots))
        return out

    def partition(self) -> Partition:
        """The split of this epoch's remaining samples under the current settings. A position
        counted under other settings (a loaded state, a changed batch size) is folded into the
        consumed set first, and the rest split anew."""
        params = self._split_params()
        total = self.layout().total
        if self._split is not None and self._split != params:
            old = split(complement(total, self._consumed), **self._split)
            self._consumed = merge(self._consumed + self._served(old, self._progress))
            self._progress = 0
        self._split = params
        return split(complement(total, self._consumed), **params)

    # ---- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        n = info.num_workers if info is not None else 0
        if n != self.num_workers:
            raise ValueError(f"TokenDataset was built for num_workers={self.num_workers}, the DataLoader runs {n}")
        partition = self.partition()
        served, nxt = replay(partition.batch_counts(self.rank), self._progress)
        # Workers are rotated so that the first batch after a resume comes from the one that was next.
        role = ((info.id if info is not None else 0) + nxt) % max(1, self.num_workers)
        share = partition.shares[self.rank][role]
        for sample in self._share_samples(share, min(served[role] * partition.batch_size, share.n_slots)):
            if info is None:
                self._progress += 1
            yield sample
        if info is None:
            self.end_epoch()

    def _share_samples(self, share: RoleShare, skip: int) -> Iterator[dict[str, Any]]:
        """The share's samples from slot `skip` on: its sample numbers, then its padding repeats."""
        layout = self.layout()
        real = sum(b - a for a, b in share.samples)
        reader = self._reader()
        for w, lo, hi in layout.pieces(cut(list(share.samples), skip, max(0, real - skip))):
            for i, sample in self._window_samples(reader, w, lo, hi):
                yield {**sample, "sample_index": layout.offsets[w] + i, "padding": False}
        for _ in range(share.n_pad - max(0, skip - real)):
            w, i = layout.locate(share.pad_source)
            for _, sample in self._window_samples(reader, w, i, i + 1):
                yield {**sample, "sample_index": share.pad_source, "padding": True}

    def _reader(self) -> _PartReader:
        c = self.config
        return _PartReader(self.reader, PACKED_COLUMNS if c.mode == "packed" else None, c.verify_checksums)

    def _window_samples(self, reader: _PartReader, w: int, lo: int, hi: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, sample) of window w's samples lo .. hi-1."""
        c = self.config
        units = self.layout().windows[w]
        table = reader.read(list(units))
        where = f"{self.root} window {w}"
        cols = Columns.from_table(table, where)
        perm = window_permutation(table.num_rows, c.seed, self.epoch, w, c.shuffle)
        if c.mode == "packed":
            if not np.array_equal(table.column("n_tokens").to_numpy(), np.diff(cols.tok_offsets)):
                raise ValueError(f"{where}: the n_tokens column differs from the token lists' lengths")
            stream = build_stream(cols, perm, c.grid_positions)
            i = -1
            for i, (seq, _) in enumerate(pack(iter([(w, stream)]), (w, 0, 0), c.seq_len, c.pack_policy,
                                              (w + 1, 0, 0), c.grid_positions)):
                if i >= hi:
                    break
                if i >= lo:
                    yield i, {k: torch.from_numpy(v) for k, v in seq.items()}
            if i + 1 < hi:
                raise ValueError(f"{where}: packs into {i + 1} sequences, its rows' n_tokens promised at least {hi}")
            return
        # Whole-window arrays, cut into per-clip views (torch.split: no per-clip numpy calls).
        bounds = np.diff(cols.tok_offsets).tolist()
        tokens = torch.from_numpy(cols.tokens.astype(np.int64)).split(bounds)
        positions = torch.from_numpy(cols.positions()).split(bounds)
        grids = torch.from_numpy(cols.grids).unbind(0)
        meta = table.drop_columns(["tokens", "mask"]).to_pydict()
        names, values = list(meta), list(zip(*meta.values()))
        rows = perm.tolist()
        for i in range(lo, hi):
            r = rows[i]
            sample: dict[str, Any] = dict(zip(names, values[r]))
            sample["tokens"] = tokens[r]
            sample["positions"] = positions[r]
            sample["grid"] = grids[r]
            yield i, sample

    # ---- resume state ---------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (drops any mid-epoch position)."""
        self.epoch, self._consumed, self._split, self._progress = epoch, [], None, 0

    def end_epoch(self) -> None:
        self.set_epoch(self.epoch + 1)

    def observe_batch(self) -> None:
        """One batch was consumed (TokenDataLoader calls this when worker processes make them)."""
        self._progress += 1

    def _identity(self) -> dict[str, Any]:
        c = self.config
        return {"format": STATE_FORMAT, "dataset": self.fingerprint, "seed": c.seed, "mode": c.mode,
                "seq_len": c.seq_len, "pack_policy": c.pack_policy, "shuffle": c.shuffle,
                "window_row_groups": c.window_row_groups}

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe resume state: identity fields, epoch, consumed sample numbers, the split
        reading them and its batch count. The same on every rank of a run (ranks step together)."""
        partition = self.partition()
        if self._progress >= partition.batches(self.rank):  # the epoch is done: the state is the next one's start
            return {**self._identity(), "epoch": self.epoch + 1, "consumed": [], "split": None, "progress": 0}
        return {**self._identity(), "epoch": self.epoch, "consumed": [list(i) for i in self._consumed],
                "split": dict(self._split or {}), "progress": self._progress}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self._identity()
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"loader state format is {state.get('format')!r}, this loader reads {STATE_FORMAT!r} "
                             "(a state of an older release: restart the epoch with set_epoch)")
        for key in _IDENTITY:
            if key not in state:
                raise ValueError(f"loader state has no field {key!r}")
            if state[key] != mine[key]:
                what = "a different dataset (or a rewrite of it)" if key == "dataset" else "a different setting"
                raise ValueError(f"loader state field {key!r} is {state[key]!r}, this loader has {mine[key]!r}: {what}")
        unknown = set(state) - set(_IDENTITY) - set(_POSITION)
        if unknown:
            raise ValueError(f"unknown loader state fields: {sorted(unknown)}")
        self.epoch = int(state["epoch"])
        self._consumed = merge([(int(a), int(b)) for a, b in state["consumed"]])
        self._split = dict(state["split"]) if state["split"] else None
        self._progress = int(state["progress"])
