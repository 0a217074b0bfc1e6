"""List files: the corpus named row by row (.txt, .csv, .jsonl, .parquet), streamed.

A .txt has one uri per line ('#' starts a comment); .csv, .jsonl and .parquet have a uri column
(`uri` unless told otherwise) and optionally `size` and `etag` columns: a row that carries both
is taken as listed, with no HEAD request for its video (an S3 Inventory report has both). Rows
are read a batch or a line at a time; a list file on an object store is first downloaded to a
temp file (pyarrow's small ranged reads crawl there), never read into memory whole.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from pipeline.io.storage import StorageConfig, filesystem, protocol_of, with_retries

logger = logging.getLogger(__name__)

LIST_FILE_SUFFIXES: tuple[str, ...] = (".txt", ".csv", ".jsonl", ".parquet")
READ_ROWS = 1 << 15  # rows per Parquet batch read


# columns of a list file that, both present on a row, spare that video's HEAD request
META_COLUMNS: tuple[str, ...] = ("size", "etag")
ListRow = tuple[str, int | None, str | None]  # uri, size, etag (None where the file does not say)


def _row_meta(row: dict[str, Any], where: str) -> tuple[int | None, str | None]:
    size, etag = row.get("size"), row.get("etag")
    if size in (None, "") or etag in (None, ""):
        return None, None
    try:
        n = int(size)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: size must be an integer, got {size!r}") from None
    if n < 0:
        raise ValueError(f"{where}: size must be >= 0, got {n}")
    return n, str(etag).strip().strip('"')


def _parquet_rows(uri: str, path: str, fs: Any, uri_column: str) -> Iterator[ListRow]:
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="infotok-list-") as tmp:
        if protocol_of(uri) != "file":
            # one whole-object download: pyarrow's small ranged reads crawl on object stores
            local = os.path.join(tmp, "list.parquet")
            with_retries(lambda: fs.get_file(path, local), f"read {uri}")
            path = local
        pf = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read until the end
        names = pf.schema_arrow.names
        if uri_column not in names:
            raise ValueError(f"list file {uri} has no column {uri_column!r}; columns: {names}")
        cols = [c for c in (uri_column, *META_COLUMNS) if c in names]
        i = 0
        for batch in pf.iter_batches(batch_size=READ_ROWS, columns=cols, use_threads=False):
            values = [batch.column(c).to_pylist() for c in cols]
            if len(cols) < 3:
                values += [[None] * batch.num_rows] * (3 - len(cols))
            for u, size, etag in zip(*values):
                i += 1
                if not u:
                    continue
                if size is None or etag is None or etag == "" or not isinstance(size, int) or size < 0:
                    yield (str(u), *_row_meta({"size": size, "etag": etag}, f"list file {uri} row {i - 1}"))
                else:  # the common case, checked inline
                    yield (str(u), size, str(etag).strip().strip('"'))


def _text_rows(uri: str, path: str, fs: Any, uri_column: str) -> Iterator[ListRow]:
    import io

    lower = uri.lower()
    with with_retries(lambda: fs.open(path, "rb"), f"read {uri}") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        if lower.endswith(".txt"):
            for line in text:
                if line.strip() and not line.lstrip().startswith("#"):
                    yield (line.strip(), None, None)
        elif lower.endswith(".csv"):
            import csv

            reader = csv.DictReader(text)
            if reader.fieldnames is None or uri_column not in reader.fieldnames:
                raise ValueError(f"list file {uri} has no column {uri_column!r}; header: {reader.fieldnames}")
            for n, row in enumerate(reader, 2):
                if (row.get(uri_column) or "").strip():
                    yield (row[uri_column].strip(), *_row_meta(row, f"list file {uri} line {n}"))
        else:
            for n, line in enumerate(text, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"list file {uri} line {n} is not JSON: {exc}") from None
                if not isinstance(row, dict) or uri_column not in row:
                    raise ValueError(f"list file {uri} line {n} has no key {uri_column!r}")
                yield (str(row[uri_column]), *_row_meta(row, f"list file {uri} line {n}"))


def iter_list_file(uri: str, storage: StorageConfig, uri_column: str = "uri") -> Iterator[ListRow]:
    """Rows of a list file, streamed: .txt (one uri per line, '#' comments), .csv/.jsonl/.parquet (a
    uri column, and optionally `size` and `etag` columns)."""
    lower = uri.lower()
    if not lower.endswith(LIST_FILE_SUFFIXES):
        raise ValueError(f"list file {uri} must end with one of {LIST_FILE_SUFFIXES}")
    fs, path = filesystem(uri, storage)
    if lower.endswith(".parquet"):
        return _parquet_rows(uri, path, fs, uri_column)
    return _text_rows(uri, path, fs, uri_column)
