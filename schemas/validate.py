"""Thorough check of an InfoTok token dataset; every violation names file, row and field.

Checks: manifest present and readable, schema name/version, every manifest part has its
token part, error part and commit marker (and no stray parts), each part's size and SHA-256 as
its commit recorded them (`checksums=False` skips the hashing), marker and manifest counts
match the files, exact Arrow schemas and Parquet metadata (version, tokenizer id, FSQ
levels, bit order), and per row: n_tokens == len(tokens) == popcount(mask), mask length fits
the grid, padding bits clear, ids < codebook size, grid consistent with frame count and
pixel size, rate consistent with n_tokens, no duplicate (video_id, clip_index).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.layout import MANIFEST_NAME, PART_FOLDERS, commit_marker, error_part, part_name, shard_of, token_part
from schemas.errors import ERRORS_SCHEMA, KINDS, STAGES
from schemas.manifest import DatasetManifest, PartInfo, ShardCommit
from schemas.mask import BIT_ORDER
from schemas.tokens import (
    META_BIT_ORDER,
    META_LEVELS,
    META_TOKENIZER,
    META_VERSION,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    TOKEN_SCHEMA,
)

logger = logging.getLogger(__name__)


class DatasetFiles(Protocol):
    """What validation needs of storage: the files of a dataset as `pipeline.io.reader.DatasetReader`
    (or the bare `pipeline.io.dataset.DatasetDir`) reads them, unchecked, so that every violation is
    reported instead of the first. Paths are relative to the dataset root, named by `schemas.layout`."""

    root: str

    def uri(self, rel: str = "") -> str:
        """The full name of `rel`, for messages."""

    def read(self, rel: str) -> bytes:
        """The whole file; FileNotFoundError when absent."""

    def list(self, rel: str) -> list[str]:
        """Sorted file names directly in folder `rel`; [] when it does not exist."""


@dataclass(frozen=True)
class Violation:
    file: str
    row: int | None  # row within the file, None for file-level findings
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file} row {self.row}"
        return f"{where} [{self.field}]: {self.message}"


@dataclass
class ValidationReport:
    root: str
    violations: list[Violation] = field(default_factory=list)
    files_checked: int = 0
    rows_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "ok": self.ok, "files_checked": self.files_checked,
                "rows_checked": self.rows_checked, "violations": [asdict(v) for v in self.violations]}


class _Collector:
    def __init__(self, report: ValidationReport, cap: int) -> None:
        self.report, self.cap = report, cap
        self.counts: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, file: str, row: int | None, fld: str, message: str) -> None:
        key = (file, fld)
        self.counts[key] += 1
        if self.counts[key] <= self.cap:
            self.report.violations.append(Violation(file, row, fld, message))

    def rows(self, file: str, fld: str, bad: np.ndarray, message: Any) -> None:
        """Report rows `bad` (indices); message(row) -> str."""
        for r in bad[: self.cap].tolist():
            self.add(file, int(r), fld, message(int(r)))
        if bad.size > self.cap:
            self.report.violations.append(Violation(file, None, fld, f"... and {bad.size - self.cap} more rows"))


def validate_dataset(ds: DatasetFiles, max_per_check: int = 20, checksums: bool = True) -> ValidationReport:
    """Validate the dataset `ds` reads; never raises for a bad dataset (only for unreachable storage).
    checksums: hash every part and compare with its commit (False: sizes only)."""
    report = ValidationReport(ds.root)
    out = _Collector(report, max_per_check)
    mpath = ds.uri(MANIFEST_NAME)
    try:
        manifest = DatasetManifest.from_json(ds.read(MANIFEST_NAME).decode())
    except FileNotFoundError:
        out.add(mpath, None, "manifest", "missing: the dataset is unfinished or not an infotok dataset")
        return report
    except (ValueError, KeyError, TypeError) as exc:
        out.add(mpath, None, "manifest", f"unreadable: {exc}")
        return report
    if manifest.schema_name != SCHEMA_NAME or manifest.schema_version != SCHEMA_VERSION:
        out.add(mpath, None, "schema_version", f"{manifest.schema_name} v{manifest.schema_version}, "
                f"this validator knows {SCHEMA_NAME} v{SCHEMA_VERSION}")
        return report
    _check_manifest_counts(manifest, mpath, out)
    _check_listing(ds, manifest, out)
    seen: dict[tuple[str, int], tuple[str, int]] = {}
    for part in manifest.parts:
        _check_commit(ds, part, manifest, out)
        for rel, check in ((token_part(part.shard), lambda: _check_token_part(ds, part, manifest, out, seen, checksums)),
                           (error_part(part.shard), lambda: _check_error_part(ds, part, out, checksums))):
            try:
                check()
            except (FileNotFoundError, ConnectionError, TimeoutError):
                raise  # storage, not the dataset
            except Exception as exc:  # noqa: BLE001 - a damaged file is a finding, never a crash
                out.add(ds.uri(rel), None, "file", f"unreadable: {type(exc).__name__}: {' '.join(str(exc).split())}")
    return report


def _check_manifest_counts(m: DatasetManifest, mpath: str, out: _Collector) -> None:
    sums = {"n_shards": len(m.parts), "n_clips": sum(p.n_rows for p in m.parts),
            "n_tokens": sum(p.n_tokens for p in m.parts), "n_errors": sum(p.n_errors for p in m.parts)}
    for key, value in sums.items():
        if getattr(m, key) != value:
            out.add(mpath, None, key, f"manifest says {getattr(m, key)}, its parts add up to {value}")
    for p in m.parts:
        if sum(p.row_groups) != p.n_rows:
            out.add(mpath, None, "row_groups", f"shard {p.shard}: row groups sum to {sum(p.row_groups)}, n_rows {p.n_rows}")


def _check_listing(ds: DatasetFiles, m: DatasetManifest, out: _Collector) -> None:
    shards = {p.shard for p in m.parts}
    for sub, ext in PART_FOLDERS:
        names = ds.list(sub)
        present = set()
        for name in names:
            uri = ds.uri(f"{sub}/{name}")
            if name.startswith("."):
                out.add(uri, None, "file", "leftover temporary file")
                continue
            try:
                shard = shard_of(name)
                if part_name(shard, ext) != name:
                    raise ValueError(name)
            except ValueError:
                out.add(uri, None, "file", "unexpected file name")
                continue
            present.add(shard)
            if shard not in shards:
                out.add(uri, None, "file", f"shard {shard} is not in the manifest")
        for shard in sorted(shards - present):
            out.add(ds.uri(f"{sub}/{part_name(shard, ext)}"), None, "file", "missing (listed in the manifest)")
        out.report.files_checked += len(names)


def _check_commit(ds: DatasetFiles, part: PartInfo, m: DatasetManifest, out: _Collector) -> None:
    uri = ds.uri(commit_marker(part.shard))
    try:
        commit = ShardCommit.from_json(ds.read(commit_marker(part.shard)).decode())
    except FileNotFoundError:
        return  # reported by the listing
    except (ValueError, KeyError, TypeError) as exc:
        out.add(uri, None, "commit", f"unreadable: {exc}")
        return
    if PartInfo.from_commit(commit) != part:
        out.add(uri, None, "commit", f"marker {PartInfo.from_commit(commit)} differs from the manifest's {part}")
    if commit.file_meta != m.file_meta:
        out.add(uri, None, "file_meta", f"{commit.file_meta} differs from the manifest's {m.file_meta}")


def _read_part(ds: DatasetFiles, rel: str, size: int, sha256: str, out: _Collector,
               checksums: bool) -> pq.ParquetFile | None:
    """The part's footer, after its bytes were checked against the commit's size and hash."""
    uri = ds.uri(rel)
    try:
        data = ds.read(rel)
    except FileNotFoundError:
        return None  # reported by the listing
    if len(data) != size:
        out.add(uri, None, "size", f"{len(data)} bytes, its commit says {size}")
    if checksums and sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            out.add(uri, None, "checksum", f"sha256 {actual[:16]}..., its commit says {sha256[:16]}...: "
                    "the part was damaged or replaced after it was committed")
    try:
        return pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:  # a damaged footer can fail to decode as text too
        out.add(uri, None, "file", f"not a readable Parquet file: {' '.join(str(exc).split())}")
        return None


def _read_all(pf: pq.ParquetFile, uri: str, out: _Collector) -> pa.Table | None:
    """Every row, decoded on this thread (Arrow's thread pool can abort the interpreter at exit, 134);
    a part whose pages do not decode (a flipped byte in compressed data) is a violation, not a crash."""
    try:
        return pf.read(use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as exc:
        out.add(uri, None, "file", f"not a readable Parquet file: {' '.join(str(exc).split())}")
        return None


def _schema_diff(actual: pa.Schema, expected: pa.Schema) -> str | None:
    if actual.equals(expected, check_metadata=False):
        return None
    a = {f.name: f for f in actual}
    for f in expected:
        if f.name not in a:
            return f"column {f.name} missing"
        if not a[f.name].equals(f):
            return f"column {f.name} is {a[f.name].type} nullable={a[f.name].nullable}, expected {f.type} nullable={f.nullable}"
    extra = [n for n in a if n not in {f.name for f in expected}]
    return f"unexpected columns {extra}" if extra else f"column order {actual.names}, expected {expected.names}"


def _check_token_part(ds: DatasetFiles, part: PartInfo, m: DatasetManifest, out: _Collector,
                      seen: dict[tuple[str, int], tuple[str, int]], checksums: bool) -> None:
    uri = ds.uri(token_part(part.shard))
    pf = _read_part(ds, token_part(part.shard), part.token_bytes, part.token_sha256, out, checksums)
    if pf is None:
        return
    diff = _schema_diff(pf.schema_arrow, TOKEN_SCHEMA)
    if diff:
        out.add(uri, None, "schema", diff)
        return
    meta = pf.schema_arrow.metadata or {}
    expect = {META_VERSION: str(SCHEMA_VERSION).encode(), META_TOKENIZER: m.tokenizer_id.encode(),
              META_LEVELS: json.dumps(list(m.file_meta.fsq_levels)).encode(), META_BIT_ORDER: BIT_ORDER.encode()}
    for key, value in expect.items():
        if meta.get(key) != value:
            out.add(uri, None, key.decode(), f"file metadata has {meta.get(key)!r}, expected {value!r}")
    rgs = tuple(pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups))
    if rgs == (0,):
        rgs = ()  # a part of 0 clips (every video of the shard failed) holds one empty group; markers list none
    if rgs != part.row_groups:
        out.add(uri, None, "row_groups", f"file has row groups {rgs}, manifest says {part.row_groups}")
    t = _read_all(pf, uri, out)
    if t is None:
        return
    out.report.rows_checked += t.num_rows
    if t.num_rows != part.n_rows:
        out.add(uri, None, "n_rows", f"file has {t.num_rows} rows, manifest says {part.n_rows}")
    if t.num_rows == 0:
        return
    _check_rows(uri, t, m, part, out)
    vids = t.column("video_id").to_pylist()
    clips = t.column("clip_index").to_pylist()
    for r, key in enumerate(zip(vids, clips)):
        if key in seen:
            f0, r0 = seen[key]
            out.add(uri, r, "clip_index", f"duplicate (video_id, clip_index) {key}, first at {f0} row {r0}")
        else:
            seen[key] = (uri, r)


def _check_rows(uri: str, t: pa.Table, m: DatasetManifest, part: PartInfo, out: _Collector) -> None:
    fm = m.file_meta
    col = {n: t.column(n).to_numpy().astype(np.int64) for n in
           ("n_tokens", "grid_t", "grid_h", "grid_w", "frame_count", "height", "width")}
    tok = t.column("tokens").combine_chunks()
    off = tok.offsets.to_numpy().astype(np.int64)
    lengths = np.diff(off)
    values = tok.values.to_numpy(zero_copy_only=False)[off[0] : off[-1]].astype(np.int64)
    mask = t.column("mask").combine_chunks()
    moff = np.frombuffer(mask.buffers()[1], np.int32, len(mask) + 1, 4 * mask.offset).astype(np.int64)
    mdata = np.frombuffer(mask.buffers()[2], np.uint8) if mask.buffers()[2] is not None else np.zeros(0, np.uint8)
    mlen = np.diff(moff)
    cells = col["grid_t"] * col["grid_h"] * col["grid_w"]
    if int(lengths.sum()) != part.n_tokens:
        out.add(uri, None, "n_tokens", f"file holds {int(lengths.sum())} tokens, manifest says {part.n_tokens}")
    bad = np.flatnonzero(col["n_tokens"] != lengths)
    out.rows(uri, "n_tokens", bad, lambda r: f"n_tokens {col['n_tokens'][r]} but {lengths[r]} tokens")
    bad = np.flatnonzero(mlen != (cells + 7) // 8)
    out.rows(uri, "mask", bad, lambda r: f"{mlen[r]} bytes, grid {cells[r]} cells needs {(cells[r] + 7) // 8}")
    pc = np.bitwise_count(mdata)
    cum = np.concatenate([[0], np.cumsum(pc, dtype=np.int64)])
    kept = cum[moff[1:]] - cum[moff[:-1]]
    bad = np.flatnonzero(kept != lengths)
    out.rows(uri, "mask", bad, lambda r: f"mask keeps {kept[r]} positions but the row has {lengths[r]} tokens")
    used = cells % 8
    last = np.where(mlen > 0, mdata[np.maximum(moff[1:] - 1, 0)] if mdata.size else 0, 0).astype(np.int64)
    bad = np.flatnonzero((mlen == (cells + 7) // 8) & (used > 0) & ((last >> used) != 0))
    out.rows(uri, "mask", bad, lambda r: "padding bits past the grid are set")
    if values.size:
        row_of = np.repeat(np.arange(len(lengths)), lengths)
        bad = np.unique(row_of[values >= fm.codebook_size])
        out.rows(uri, "tokens", bad, lambda r: f"id {int(values[off[r]:off[r + 1]].max())} >= codebook size "
                 f"{fm.codebook_size}")
    tf, sf = fm.temporal_factor, fm.spatial_factor
    fc = col["frame_count"]
    bad = np.flatnonzero(((fc - 1) % tf != 0) | (col["grid_t"] != 1 + (fc - 1) // tf))
    out.rows(uri, "grid_t", bad, lambda r: f"grid_t {col['grid_t'][r]} does not fit frame_count {fc[r]} "
             f"(1 + {tf}k frames -> 1 + k latent frames)")
    for g, px in (("grid_h", "height"), ("grid_w", "width")):
        bad = np.flatnonzero(col[g] * sf != col[px])
        out.rows(uri, g, bad, lambda r, g=g, px=px: f"{g} {col[g][r]} x {sf} != {px} {col[px][r]}")
    rate = t.column("rate").to_numpy().astype(np.float64)
    bad = np.flatnonzero(~((rate > 0) & (rate <= 1)) | (np.abs(rate * cells - lengths) > 1.0))
    out.rows(uri, "rate", bad, lambda r: f"rate {rate[r]:.4f} x {cells[r]} cells != {lengths[r]} tokens")


def _check_error_part(ds: DatasetFiles, part: PartInfo, out: _Collector, checksums: bool) -> None:
    uri = ds.uri(error_part(part.shard))
    pf = _read_part(ds, error_part(part.shard), part.error_bytes, part.error_sha256, out, checksums)
    if pf is None:
        return
    diff = _schema_diff(pf.schema_arrow, ERRORS_SCHEMA)
    if diff:
        out.add(uri, None, "schema", diff)
        return
    t = _read_all(pf, uri, out)
    if t is None:
        return
    if t.num_rows != part.n_errors:
        out.add(uri, None, "n_errors", f"file has {t.num_rows} rows, manifest says {part.n_errors}")
    for fld, allowed in (("kind", KINDS), ("stage", STAGES)):
        vals = t.column(fld).to_pylist()
        bad = np.array([i for i, v in enumerate(vals) if v not in allowed], dtype=np.int64)
        out.rows(uri, fld, bad, lambda r, vals=vals, fld=fld, allowed=allowed: f"{fld} {vals[r]!r} not in {allowed}")
