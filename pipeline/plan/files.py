"""A plan's entries on disk: one Parquet file per generation, sorted by uri, shard ids alongside.

Columns (`entry_schema`): uri, size, version, video_id, shard. Row groups hold whole shards
(a multiple of K rows), so a shard is read from one row group. A file is named by its
generation and fingerprint (`gen-00001-<12 hex>.parquet`), so a rewritten generation never
overwrites the file an older plan.json names. Written by `GenerationWriter` from tables that
arrive sorted (the out-of-core sort of `pipeline.plan.spill`), hashing as it goes: the
fingerprint of a generation is `entries_fingerprint` of its entries, computed a batch at a time.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

GROUP_ROWS = 1 << 16  # about this many entries per row group (rounded down to whole shards)
_FILE_RE = re.compile(r"^gen-(\d{5,})-([0-9a-f]{12})\.parquet$")


def entry_schema() -> pa.Schema:
    return pa.schema([("uri", pa.string()), ("size", pa.int64()), ("version", pa.string()),
                      ("video_id", pa.string()), ("shard", pa.int64())])


def generation_file(index: int, fingerprint: str) -> str:
    return f"gen-{index:05d}-{fingerprint[:12]}.parquet"


def is_generation_file(name: str) -> bool:
    return bool(_FILE_RE.match(name))


def sha256_json(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


class EntriesHash:
    """`sha256_json([[uri, size, version], ...])` over rows fed in uri order, a table at a time."""

    def __init__(self) -> None:
        self._h = hashlib.sha256(b"[")
        self._empty = True

    def update(self, table: pa.Table) -> None:
        rows = [list(r) for r in zip(*(table.column(c).to_pylist() for c in ("uri", "size", "version")))]
        if not rows:
            return
        text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)[1:-1]
        self._h.update(("" if self._empty else ",").encode() + text.encode("utf-8"))
        self._empty = False

    def hexdigest(self) -> str:
        h = self._h.copy()
        h.update(b"]")
        return h.hexdigest()


@dataclass(frozen=True)
class Generation(FrozenConfig):
    """One generation's entries: `file` (a name in the plan's folder), its counts and fingerprint."""

    file: str
    n_videos: int
    first_shard: int
    n_shards: int
    fingerprint: str

    @property
    def shard_ids(self) -> range:
        return range(self.first_shard, self.first_shard + self.n_shards)


def group_rows(videos_per_shard: int) -> int:
    return videos_per_shard * max(1, GROUP_ROWS // videos_per_shard)


class GenerationWriter:
    """Writes one generation from sorted tables (`pipeline.io.inputs.listing_schema` columns):
    numbers their shards from `first_shard`, K entries each, and hashes them."""

    def __init__(self, folder: str, index: int, first_shard: int, videos_per_shard: int) -> None:
        self.folder, self.index, self.first_shard, self.k = folder, index, first_shard, videos_per_shard
        self._tmp = os.path.join(folder, f".gen-{index:05d}.parquet.tmp")
        self._writer = pq.ParquetWriter(self._tmp, entry_schema(), compression="zstd")
        self._group = group_rows(videos_per_shard)
        self._pending: list[pa.Table] = []
        self._n_pending = 0
        self.n_videos = 0
        self._hash = EntriesHash()
        self._last_uri: str | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        first = table.column("uri")[0].as_py()
        if self._last_uri is not None and first <= self._last_uri:
            raise AssertionError(f"generation rows out of order: {first!r} after {self._last_uri!r}")
        self._last_uri = table.column("uri")[-1].as_py()
        self._pending.append(table.select(["uri", "size", "version", "video_id"]))
        self._n_pending += table.num_rows
        while self._n_pending >= self._group:
            self._emit(self._group)

    def _emit(self, n: int) -> None:
        table = pa.concat_tables(self._pending)
        out, rest = table.slice(0, n), table.slice(n)
        self._pending, self._n_pending = ([rest] if rest.num_rows else []), rest.num_rows
        index = pa.array(range(self.n_videos, self.n_videos + n), pa.int64())
        shard = pc.add(pc.divide(index, self.k), self.first_shard)  # integer division on int64
        out = out.append_column("shard", shard).cast(entry_schema())
        self._hash.update(out)
        self._writer.write_table(out, row_group_size=n)
        self.n_videos += n

    def close(self) -> Generation | None:
        """The generation written, its file renamed to its final name; None (and no file) if empty."""
        if self._n_pending:
            self._emit(self._n_pending)
        self._writer.close()
        if not self.n_videos:
            os.remove(self._tmp)
            return None
        fp = self._hash.hexdigest()
        name = generation_file(self.index, fp)
        os.replace(self._tmp, os.path.join(self.folder, name))
        return Generation(file=name, n_videos=self.n_videos, first_shard=self.first_shard,
                          n_shards=-(-self.n_videos // self.k), fingerprint=fp)

    def abort(self) -> None:
        self._writer.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)


def iter_file(path: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """A generation file's rows, GROUP_ROWS at a time."""
    for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=GROUP_ROWS, columns=columns, use_threads=False):
        yield pa.Table.from_batches([batch])


_TEMP: list[str] = []


def temp_folder(prefix: str) -> str:
    """A local scratch folder, removed when the process exits (under $TMPDIR)."""
    path = tempfile.mkdtemp(prefix=prefix)
    _TEMP.append(path)
    return path


@atexit.register
def _remove_temp() -> None:
    for path in _TEMP:
        shutil.rmtree(path, ignore_errors=True)
