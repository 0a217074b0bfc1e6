"""Rows sorted by uri out of core: spilled in sorted runs, read back in uri order, each uri once.

Rows arrive in any order and number (a listing of 10M objects). They are buffered up to
`run_rows`, sorted and written as a local Parquet run. `sorted_tables` then cuts the uri range
at splitters sampled from the runs and yields, range after range, every row of that range
from every run, sorted by uri, a repeated uri reduced to the row added last. Memory: one run's
buffer while adding; one range (about `run_rows` rows) and one small batch per run while
reading, with at most MAX_FANIN runs read at once (more are first merged in groups). This is an external merge sort whose merge is done a range at a time in Arrow, so no
row passes through Python.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

RUN_ROWS = 1 << 18  # rows per sorted run, and about per range read back
_READ_ROWS = 1 << 11  # rows per row group of a run, and per batch read from it while merging
MAX_FANIN = 64  # runs merged at once; more are first merged in groups into longer runs
_SAMPLES_PER_RUN = 256  # splitter candidates taken from each full run, evenly spaced
_SEQ = "_seq"  # the order rows were added in: the last of a repeated uri wins


class SortedSpill:
    """Add Arrow tables with a string column `uri` (and the columns of `schema`); read them back
    sorted by uri, one row per uri. Files go to `folder` (created; the caller removes it)."""

    def __init__(self, folder: str, schema: pa.Schema, run_rows: int | None = None) -> None:
        run_rows = RUN_ROWS if run_rows is None else run_rows
        if run_rows < _SAMPLES_PER_RUN:
            raise ValueError(f"run_rows must be >= {_SAMPLES_PER_RUN}, got {run_rows}")
        if "uri" not in schema.names:
            raise ValueError(f"SortedSpill needs a 'uri' column, schema has {schema.names}")
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.schema = schema
        self.run_rows = run_rows
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._runs: list[str] = []
        self._n_files = 0
        self._samples: list[str] = []
        self.rows_added = 0
        self.rows_out = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        seq = pa.array(range(self.rows_added, self.rows_added + table.num_rows), pa.int64())
        self._buffer.append(table.append_column(_SEQ, seq))
        self._buffered += table.num_rows
        self.rows_added += table.num_rows
        if self._buffered >= self.run_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        run = pa.concat_tables(self._buffer).sort_by([("uri", "ascending"), (_SEQ, "ascending")])
        self._buffer, self._buffered = [], 0
        path = os.path.join(self.folder, f"run-{self._n_files:05d}.parquet")
        self._n_files += 1
        pq.write_table(run, path, row_group_size=_READ_ROWS, compression="lz4")
        self._runs.append(path)
        step = max(1, self.run_rows // _SAMPLES_PER_RUN)
        picks = pa.array(range(min(step // 2, run.num_rows - 1), run.num_rows, step), pa.int64())
        self._samples += run.column("uri").take(picks).to_pylist()

    def _splitters(self) -> list[str]:
        n_ranges = max(1, -(-self.rows_added // self.run_rows))
        samples = sorted(self._samples)
        return sorted({samples[len(samples) * i // n_ranges] for i in range(1, n_ranges)})

    def sorted_tables(self) -> Iterator[pa.Table]:
        """Every added row, sorted by uri, the last added of a repeated uri only; in tables of about
        `run_rows` rows (without the columns the schema does not name). Call once."""
        self._flush()
        splitters = self._splitters()
        while len(self._runs) > MAX_FANIN:  # memory holds a batch per run merged: bound how many
            self._runs = [self._merge_group(self._runs[i : i + MAX_FANIN], splitters)
                          for i in range(0, len(self._runs), MAX_FANIN)]
        cursors = [RunCursor(path) for path in self._runs]
        for table in self._ranges(cursors, splitters):
            uris = table.column("uri")
            if table.num_rows > 1:  # keep a row when the next one has another uri: the last of each uri
                last = pc.not_equal(uris.slice(0, table.num_rows - 1), uris.slice(1))
                table = table.filter(pa.concat_arrays([*last.chunks, pa.array([True])]))
            self.rows_out += table.num_rows
            yield table.drop_columns([_SEQ])
        logger.debug("spill %s: %d rows in %d runs, %d after dropping repeats", self.folder, self.rows_added,
                     len(self._runs), self.rows_out)


    @staticmethod
    def _ranges(cursors: list[RunCursor], splitters: list[str]) -> Iterator[pa.Table]:
        """The rows of every cursor, a uri range at a time, sorted by (uri, order added)."""
        for bound in [*splitters, None]:
            parts = [t for c in cursors for t in c.take_below(bound) if t.num_rows]
            if parts:
                yield pa.concat_tables(parts).sort_by([("uri", "ascending"), (_SEQ, "ascending")])

    def _merge_group(self, runs: list[str], splitters: list[str]) -> str:
        """One longer sorted run of `runs` (repeats kept: the final merge drops them)."""
        if len(runs) == 1:
            return runs[0]
        path = os.path.join(self.folder, f"run-{self._n_files:05d}.parquet")
        self._n_files += 1
        writer: pq.ParquetWriter | None = None
        for table in self._ranges([RunCursor(p) for p in runs], splitters):
            writer = writer or pq.ParquetWriter(path, table.schema, compression="lz4")
            writer.write_table(table, row_group_size=_READ_ROWS)
        if writer is not None:
            writer.close()
        for p in runs:
            os.remove(p)
        return path


class RunCursor:
    """Reads one sorted run forward, a range at a time."""

    def __init__(self, path: str) -> None:
        self._batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=_READ_ROWS, use_threads=False)
        self._pending: pa.Table | None = None

    def take_below(self, bound: str | None) -> list[pa.Table]:
        """The run's next rows with uri < bound (all that are left when bound is None)."""
        out: list[pa.Table] = []
        while True:
            if self._pending is None or self._pending.num_rows == 0:
                batch = next(self._batches, None)
                if batch is None:
                    return out
                self._pending = pa.Table.from_batches([batch])
            if bound is not None:
                n = pc.sum(pc.less(self._pending.column("uri"), bound)).as_py() or 0  # a prefix: the run is sorted
                if n < self._pending.num_rows:
                    out.append(self._pending.slice(0, n))
                    self._pending = self._pending.slice(n)
                    return out
            out.append(self._pending)
            self._pending = None
