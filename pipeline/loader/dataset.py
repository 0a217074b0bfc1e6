"""TokenDataset: a torch IterableDataset over an InfoTok token dataset, for LM training.

Needs torch, pyarrow and fsspec; never Ray. Reads a dataset folder or s3:// prefix whose
manifest (dataset.json) exists, and refuses one without it.

Work split: a role is one (rank, DataLoader worker); the manifest's row groups are dealt to
roles (see `pipeline.loader.order`) so that over all ranks x workers every clip is read exactly
once per epoch. Ranks may receive different numbers of clips (row groups differ in size).

Output modes (`LoaderConfig.mode`):
- "clips": one sample per clip: `tokens` (N,) int64 kept ids, `positions` (N, 3) int16 (t, h, w)
  of each id decoded from the mask, `grid` (3,), and the clip's metadata columns.
- "packed": fixed-length sequences (see `pipeline.loader.pack`): `input_ids` (L,) int64 with
  BOS/EOS/PAD from `schemas.tokens`, `document_ids` (L,) int32 (-1 = PAD), `position_ids` (L,)
  int32 index within the clip (-1 = PAD), `grid_positions` (L, 3) int16 (-1 for specials; left
  out with `LoaderConfig(grid_positions=False)`, which skips decoding masks).
Tensors may be views of a window's buffers (no copy per sample): a caller that keeps a sample
keeps that window's buffers alive; collating into batches copies them.
Each sample also carries `cursor` (4,) int64, the resume point after it; `TokenDataLoader`
(pipeline.loader.dataloader) consumes it to make `state_dict()` exact with worker processes.

Resume: `state_dict()` names dataset fingerprint, seed, world size, rank, workers, epoch and
per-worker cursors; `load_state_dict()` refuses a state whose identity fields differ.
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
from pipeline.loader.pack import POLICIES, Columns, Cursor, build_stream, pack
from pipeline.loader.order import Unit, role_windows, window_permutation
from pipeline.io.dataset import DatasetDir
from schemas.manifest import PartInfo
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig
from schemas.tokens import META_VERSION, SCHEMA_VERSION

logger = logging.getLogger(__name__)

STATE_FORMAT = "infotok.loader_state/1"
MODES = ("packed", "clips")
PACKED_COLUMNS = ["tokens", "mask", "grid_t", "grid_h", "grid_w"]
_IDENTITY = ("format", "dataset", "seed", "world_size", "rank", "num_workers", "mode", "seq_len", "pack_policy",
             "shuffle", "window_row_groups")


@dataclass(frozen=True)
class LoaderConfig(FrozenConfig):
    """mode: "packed" or "clips"; seq_len / pack_policy apply to "packed".

    window_row_groups: row groups whose clips are shuffled together (the shuffle buffer: with
    ~1,000 clips per row group, 4 groups hold ~4,000 clips in memory per worker).
    grid_positions: packed mode returns `grid_positions`; False (an LM with 1-D positions only
    needs `position_ids`) skips decoding the masks. Clips mode always returns positions.
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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"loader mode must be one of {MODES}, got {self.mode!r}")
        if self.pack_policy not in POLICIES:
            raise ValueError(f"pack_policy must be one of {POLICIES}, got {self.pack_policy!r}")
        if self.seq_len < 3:
            raise ValueError(f"seq_len must be >= 3, got {self.seq_len}")
        if self.window_row_groups < 1:
            raise ValueError(f"window_row_groups must be >= 1, got {self.window_row_groups}")


_HASH_BLOCK = 8 * 2**20  # bytes per read while hashing a part


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _PartReader:
    """Open Parquet parts of one worker, each opened once (one footer read per part), each checked
    against its commit first when `parts` is given."""

    def __init__(self, ds: DatasetDir, columns: list[str] | None, parts: dict[int, PartInfo] | None) -> None:
        self.ds, self.columns, self.parts = ds, columns, parts
        self._files: dict[int, pq.ParquetFile] = {}

    def _verify(self, rel: str, part: PartInfo) -> None:
        uri = self.ds.uri(rel)
        digest, size = hashlib.sha256(), 0
        with self.ds.fs.open(self.ds.path(rel), "rb", block_size=_HASH_BLOCK) as f:
            while chunk := f.read(_HASH_BLOCK):
                digest.update(chunk)
                size += len(chunk)
        if size != part.token_bytes or (part.token_sha256 and digest.hexdigest() != part.token_sha256):
            raise ValueError(f"{uri}: {size} bytes with sha256 {digest.hexdigest()[:16]}..., its commit says "
                             f"{part.token_bytes} bytes with sha256 {part.token_sha256[:16] or '(not recorded)'}...: "
                             "the part was damaged or replaced after it was committed (infotok validate lists more)")

    def _open(self, shard: int) -> pq.ParquetFile:
        rel = token_part(shard)
        uri = self.ds.uri(rel)
        if self.parts is not None:
            self._verify(rel, self.parts[shard])
        if self.ds.is_local:
            pf = pq.ParquetFile(self.ds.path(rel))
        else:
            # No fsspec cache: pre_buffer coalesces a row group's column chunks into one GET.
            pf = pq.ParquetFile(self.ds.fs.open(self.ds.path(rel), "rb", cache_type="none"), pre_buffer=True)
        version = (pf.schema_arrow.metadata or {}).get(META_VERSION)
        if version != str(SCHEMA_VERSION).encode():
            raise ValueError(f"{uri}: schema_version {version!r}, this loader reads {SCHEMA_VERSION}")
        return pf

    def read(self, units: list[Unit]) -> pa.Table:
        tables = []
        for u in units:
            if u.shard not in self._files:
                self._files[u.shard] = self._open(u.shard)
            tables.append(self._files[u.shard].read_row_group(u.row_group, columns=self.columns))
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


class TokenDataset(IterableDataset):
    """Iterable over clips or packed sequences of an InfoTok dataset (see module docstring).

    rank / world_size default to torch.distributed's when initialized, else 0 / 1.
    num_workers must equal the DataLoader's (it fixes the work split and the resume state).
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
        self.ds = DatasetDir(root, storage)
        self.manifest = self.ds.read_manifest()
        if self.manifest.schema_version != SCHEMA_VERSION:
            raise ValueError(f"{root}: schema_version {self.manifest.schema_version}, loader reads {SCHEMA_VERSION}")
        d_rank, d_world = _dist_rank_world()
        self.rank = d_rank if rank is None else rank
        self.world_size = d_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.num_workers = num_workers
        self.fingerprint = hashlib.sha256(self.manifest.to_json().encode()).hexdigest()[:16]
        self.epoch = 0
        self._cursors: dict[int, Cursor] = {}  # worker role -> next position
        self._next_worker = 0

    # ---- planning -------------------------------------------------------------------------
    @property
    def _n_local(self) -> int:
        return max(1, self.num_workers)

    def _windows(self, worker_role: int) -> list[list[Unit]]:
        c = self.config
        role = self.rank * self._n_local + worker_role
        return role_windows(self.manifest, c.seed, self.epoch, c.shuffle, role, self.world_size * self._n_local,
                            c.window_row_groups)

    # ---- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        n = info.num_workers if info is not None else 0
        if n != self.num_workers:
            raise ValueError(f"TokenDataset was built for num_workers={self.num_workers}, the DataLoader runs {n}")
        worker = info.id if info is not None else 0
        worker_role = (worker + self._next_worker) % self._n_local
        cursor = self._cursors.get(worker_role, (0, 0, 0))
        for sample, nxt in self._role_samples(worker_role, cursor):
            # from_numpy(np.array) costs less than torch.tensor, paid once per sample.
            sample["cursor"] = torch.from_numpy(np.array((worker_role, *nxt), dtype=np.int64))
            self._cursors[worker_role] = nxt
            yield sample
        if info is None:
            self.end_epoch()

    def _role_samples(self, worker_role: int, cursor: Cursor) -> Iterator[tuple[dict[str, Any], Cursor]]:
        c = self.config
        windows = self._windows(worker_role)
        role = self.rank * self._n_local + worker_role
        parts = {p.shard: p for p in self.manifest.parts} if c.verify_checksums else None
        reader = _PartReader(self.ds, PACKED_COLUMNS if c.mode == "packed" else None, parts)

        def tables() -> Iterator[tuple[int, pa.Table, np.ndarray]]:
            for w in range(cursor[0], len(windows)):
                table = reader.read(windows[w])
                perm = window_permutation(table.num_rows, c.seed, self.epoch, role, w, c.shuffle)
                yield w, table, perm

        end = (len(windows), 0, 0)
        if c.mode == "packed":
            streams = ((w, build_stream(Columns.from_table(t, f"{self.root} window {w}"), p, c.grid_positions))
                       for w, t, p in tables())
            for seq, nxt in pack(streams, cursor, c.seq_len, c.pack_policy, end, c.grid_positions):
                yield {k: torch.from_numpy(v) for k, v in seq.items()}, nxt
            return
        for w, table, perm in tables():
            cols = Columns.from_table(table, f"{self.root} window {w}")
            # Whole-window arrays, cut into per-clip views (torch.split: no per-clip numpy calls).
            bounds = np.diff(cols.tok_offsets).tolist()
            tokens = torch.from_numpy(cols.tokens.astype(np.int64)).split(bounds)
            positions = torch.from_numpy(cols.positions()).split(bounds)
            grids = torch.from_numpy(cols.grids).unbind(0)
            meta = table.drop_columns(["tokens", "mask"]).to_pydict()
            names, values = list(meta), list(zip(*meta.values()))
            first = cursor[1] if w == cursor[0] else 0
            rows = perm.tolist()
            for i in range(first, len(rows)):
                r = rows[i]
                sample: dict[str, Any] = dict(zip(names, values[r]))
                sample["tokens"] = tokens[r]
                sample["positions"] = positions[r]
                sample["grid"] = grids[r]
                nxt = (w, i + 1, 0) if i + 1 < len(rows) else (w + 1, 0, 0)
                yield sample, nxt

    # ---- resume state ---------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (drops any mid-epoch position)."""
        self.epoch, self._cursors, self._next_worker = epoch, {}, 0

    def end_epoch(self) -> None:
        self.set_epoch(self.epoch + 1)

    def observe(self, cursor: torch.Tensor | list[int]) -> None:
        """Record the cursor of a consumed batch (its last sample's); used by TokenDataLoader."""
        worker_role, w, r, off = (int(x) for x in cursor)
        self._cursors[worker_role] = (w, r, off)
        self._next_worker = (worker_role + 1) % self._n_local

    def _identity(self) -> dict[str, Any]:
        c = self.config
        return {"format": STATE_FORMAT, "dataset": self.fingerprint, "seed": c.seed, "world_size": self.world_size,
                "rank": self.rank, "num_workers": self.num_workers, "mode": c.mode, "seq_len": c.seq_len,
                "pack_policy": c.pack_policy, "shuffle": c.shuffle, "window_row_groups": c.window_row_groups}

    def state_dict(self) -> dict[str, Any]:
        """JSON-safe resume state: identity fields, epoch, per-worker cursors, next worker."""
        done = all(self._cursors.get(k, (0, 0, 0))[0] >= len(self._windows(k)) for k in range(self._n_local))
        if done:  # every worker finished: the state is the start of the next epoch
            epoch, cursors, nxt = self.epoch + 1, {}, 0
        else:
            epoch, cursors, nxt = self.epoch, self._cursors, self._next_worker
        return {**self._identity(), "epoch": epoch, "next_worker": nxt,
                "cursors": {str(k): list(v) for k, v in sorted(cursors.items())}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self._identity()
        for key in _IDENTITY:
            if key not in state:
                raise ValueError(f"loader state has no field {key!r}")
            if state[key] != mine[key]:
                what = "a different dataset (or a rewrite of it)" if key == "dataset" else "a different setting"
                raise ValueError(f"loader state field {key!r} is {state[key]!r}, this loader has {mine[key]!r}: {what}")
        unknown = set(state) - set(_IDENTITY) - {"epoch", "next_worker", "cursors"}
        if unknown:
            raise ValueError(f"unknown loader state fields: {sorted(unknown)}")
        self.epoch = int(state["epoch"])
        self._next_worker = int(state["next_worker"])
        self._cursors = {int(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in state["cursors"].items()}
