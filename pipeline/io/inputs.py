"""Listing the input corpus once: a prefix (local folder, s3://bucket/prefix) or a list file.

The result is a sorted, de-duplicated list of `ManifestEntry` (uri, size, version,
video_id). An object-store prefix is listed in parallel: delimiter listings split it into
sub-prefixes (a few levels down, until there are enough), each then listed flat on its own
thread. A list file whose rows carry `size` and `etag` columns is taken as is (no HEAD request
per video); otherwise each listed object is stat'ed, many at a time. Everything downstream (shards, part names, fingerprints) is a pure function
of that list, so the order in which a store happens to list objects never matters.

URIs are normalized before hashing: local paths become absolute POSIX paths (no
`file://`), `s3a://` becomes `s3://` (keys are kept byte for byte). A URI that
carries credentials (user:password@host, or a presigned query string) is refused, since
the manifest is written to `plan.json` and to logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline.io.storage import StorageConfig, filesystem, protocol_of, with_retries
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv",
)
LIST_FILE_SUFFIXES: tuple[str, ...] = (".txt", ".csv", ".jsonl", ".parquet")
INPUT_KINDS = ("auto", "prefix", "list")
VIDEO_ID_HEX = 16  # 64 bits: collisions are checked, not assumed away
MISSING_VERSION = "missing"
_SECRET_QUERY_MARKERS = ("signature", "credential", "token", "x-amz-security")


@dataclass(frozen=True)
class InputConfig(FrozenConfig):
    """What to read.

    uri: a prefix (folder or s3://bucket/prefix, listed recursively) or a list file.
    kind: "prefix", "list", or "auto" (a uri ending in .txt/.csv/.jsonl/.parquet is a list).
    extensions: suffixes kept when listing a prefix, compared case-insensitively. Not
      applied to list files: a list names its videos explicitly.
    uri_column: column holding URIs in csv/jsonl/parquet list files.
    skip_hidden: when listing a prefix, skip names starting with "." (e.g. macOS `._x.mp4`).
    """

    uri: str
    kind: str = "auto"
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    uri_column: str = "uri"
    skip_hidden: bool = True

    def __post_init__(self) -> None:
        if not self.uri:
            raise ValueError("InputConfig.uri must be a non-empty prefix or list file, got ''")
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"InputConfig.kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        exts = tuple(e if e.startswith(".") else f".{e}" for e in (x.lower() for x in self.extensions))
        if not exts:
            raise ValueError("InputConfig.extensions must not be empty")
        object.__setattr__(self, "extensions", exts)
        check_no_credentials(self.uri)

    @property
    def resolved_kind(self) -> str:
        if self.kind != "auto":
            return self.kind
        return "list" if self.uri.lower().endswith(LIST_FILE_SUFFIXES) else "prefix"


@dataclass(frozen=True)
class ManifestEntry(FrozenConfig):
    """One source video. size is -1 and version "missing" for a listed uri that does not exist."""

    uri: str
    size: int
    version: str
    video_id: str


def check_no_credentials(uri: str) -> None:
    """Refuse URIs that embed secrets (they would end up in plan.json and logs)."""
    if "://" not in uri:
        return
    parts = urlsplit(uri)
    if parts.password is not None or (parts.username is not None and "@" in parts.netloc):
        raise ValueError(f"uri must not embed credentials (user@host), got scheme {parts.scheme!r} host {parts.hostname!r}")
    query = parts.query.lower()
    if any(m in query for m in _SECRET_QUERY_MARKERS):
        raise ValueError(f"uri must not carry a signed query string, got {parts.scheme}://{parts.hostname}{parts.path}?<redacted>")


def normalize_uri(uri: str) -> str:
    """Canonical spelling of a video location (see module doc)."""
    uri = uri.strip()
    check_no_credentials(uri)
    proto = protocol_of(uri)
    if proto == "file":
        path = uri.split("://", 1)[1] if "://" in uri else uri
        return posixpath.normpath(os.path.abspath(os.path.expanduser(path)))
    if proto in ("s3", "s3a"):
        # Keys are opaque on S3 ("a//b" and "a/b" are different objects): only the scheme changes.
        return "s3://" + uri.split("://", 1)[1]
    return uri


def canonical_input(uri: str) -> str:
    """INPUT as the resume key holds it: `normalize_uri`, without a trailing slash on a prefix, so
    that `small`, `small/`, `./small` and its absolute path are the same corpus."""
    norm = normalize_uri(uri)
    stripped = norm.rstrip("/")
    return stripped if stripped and not stripped.endswith(":") else norm


def video_id_of(uri: str) -> str:
    """Stable short id of a normalized uri (first 64 bits of its SHA-256, hex)."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:VIDEO_ID_HEX]


def _uri_of(proto: str, path: str) -> str:
    return path if proto == "file" else f"{proto}://{path}"


def _version_of(info: dict[str, Any]) -> str:
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if mtime is None:
        return "unknown"
    if hasattr(mtime, "isoformat"):
        return f"mtime:{mtime.isoformat()}"
    return f"mtime:{int(float(mtime) * 1e9)}"  # ns as an integer: exact and JSON-stable


def _entry(uri: str, info: dict[str, Any]) -> ManifestEntry:
    norm = normalize_uri(uri)
    return ManifestEntry(uri=norm, size=int(info.get("size") or 0), version=_version_of(info), video_id=video_id_of(norm))


LIST_THREADS = 16  # concurrent listings / HEAD requests against an object store
_FANOUT_LEVELS = 3  # delimiter listings at most this deep before the flat listings


def _split_prefixes(fs: Any, root: str, want: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Delimiter listings from root down, breadth first, until at least `want` sub-prefixes (or
    _FANOUT_LEVELS levels): (objects met on the way, the sub-prefixes left to list flat)."""
    objects: dict[str, dict[str, Any]] = {}
    level = [root]
    for _ in range(_FANOUT_LEVELS):
        if len(level) >= want:
            break
        with ThreadPoolExecutor(max_workers=min(LIST_THREADS, len(level))) as pool:
            listings = list(pool.map(lambda d: with_retries(lambda: fs.ls(d, detail=True, refresh=True),
                                                            f"list {d}"), level))
        nxt = []
        for items in listings:
            for info in items:
                if info.get("type") == "directory":
                    nxt.append(info["name"].rstrip("/"))
                else:
                    objects[info["name"]] = info
        if not nxt:
            return objects, []
        level = nxt
    return objects, level


def _find(fs: Any, root: str, proto: str) -> dict[str, dict[str, Any]]:
    """Every object under root, with its info: one flat listing locally, in parallel on object stores."""
    if proto == "file":
        return with_retries(lambda: fs.find(root, detail=True), f"list {root}")
    objects, prefixes = _split_prefixes(fs, root, LIST_THREADS)
    if prefixes:
        with ThreadPoolExecutor(max_workers=min(LIST_THREADS, len(prefixes))) as pool:
            for found in pool.map(lambda d: with_retries(lambda: fs.find(d, detail=True), f"list {d}"), prefixes):
                objects.update(found)
    return objects


def _list_prefix(cfg: InputConfig, storage: StorageConfig) -> list[ManifestEntry]:
    fs, root = filesystem(normalize_uri(cfg.uri), storage)
    proto = protocol_of(normalize_uri(cfg.uri))
    if not with_retries(lambda: fs.exists(root), f"exists {cfg.uri}"):
        raise FileNotFoundError(f"input prefix not found: {cfg.uri}")
    found = _find(fs, root, proto)
    out = []
    skipped = 0
    for path, info in found.items():
        name = posixpath.basename(path)
        dangling = bool(info.get("islink")) and info.get("type") == "other"  # a link to nothing
        if (info.get("type", "file") != "file" and not dangling) or (cfg.skip_hidden and name.startswith(".")):
            skipped += 1
            continue
        if not name.lower().endswith(cfg.extensions):
            skipped += 1
            continue
        if dangling:  # listed like a missing list-file entry: its read fails, and it becomes an error row
            norm = normalize_uri(_uri_of(proto, path))
            out.append(ManifestEntry(uri=norm, size=-1, version=MISSING_VERSION, video_id=video_id_of(norm)))
            continue
        out.append(_entry(_uri_of(proto, path), info))
    logger.info("listed %s: %d videos, %d other objects skipped", cfg.uri, len(out), skipped)
    return out


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


def read_list_file(uri: str, storage: StorageConfig, uri_column: str = "uri") -> list[ListRow]:
    """Rows of a list file: .txt (one uri per line, '#' comments), .csv/.jsonl/.parquet (a uri
    column, and optionally `size` and `etag` columns)."""
    fs, path = filesystem(uri, storage)
    lower = uri.lower()
    if lower.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        # One whole-object GET: pyarrow's small ranged reads crawl on object stores.
        raw = with_retries(lambda: fs.cat_file(path), f"read {uri}")
        table = pq.ParquetFile(pa.BufferReader(raw)).read(use_threads=False)  # see pipeline.io.dataset.read_parquet
        if uri_column not in table.column_names:
            raise ValueError(f"list file {uri} has no column {uri_column!r}; columns: {table.column_names}")
        cols = {c: table.column(c).to_pylist() for c in (uri_column, *META_COLUMNS) if c in table.column_names}
        rows = [dict(zip(cols, vals)) for vals in zip(*cols.values())]
        return [(str(r[uri_column]), *_row_meta(r, f"list file {uri} row {i}")) for i, r in enumerate(rows)
                if r[uri_column]]
    text = with_retries(lambda: fs.cat_file(path), f"read {uri}").decode("utf-8-sig")
    if lower.endswith(".txt"):
        return [(ln.strip(), None, None) for ln in text.splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    if lower.endswith(".csv"):
        import csv
        import io

        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or uri_column not in reader.fieldnames:
            raise ValueError(f"list file {uri} has no column {uri_column!r}; header: {reader.fieldnames}")
        return [(row[uri_column].strip(), *_row_meta(row, f"list file {uri} line {n}"))
                for n, row in enumerate(reader, 2) if (row.get(uri_column) or "").strip()]
    if lower.endswith(".jsonl"):
        out: list[ListRow] = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"list file {uri} line {n} is not JSON: {exc}") from None
            if not isinstance(row, dict) or uri_column not in row:
                raise ValueError(f"list file {uri} line {n} has no key {uri_column!r}")
            out.append((str(row[uri_column]), *_row_meta(row, f"list file {uri} line {n}")))
        return out
    raise ValueError(f"list file {uri} must end with one of {LIST_FILE_SUFFIXES}")


def _stat_uris(uris: Iterable[str], storage: StorageConfig, threads: int = LIST_THREADS) -> list[ManifestEntry]:
    def stat(uri: str) -> ManifestEntry:
        fs, path = filesystem(uri, storage)
        try:
            info = with_retries(lambda: fs.info(path), f"stat {uri}")
        except FileNotFoundError:
            # Kept, not dropped: the decode stage turns it into a permanent "read" error row.
            logger.warning("listed video not found: %s", normalize_uri(uri))
            norm = normalize_uri(uri)
            return ManifestEntry(uri=norm, size=-1, version=MISSING_VERSION, video_id=video_id_of(norm))
        return _entry(uri, info)

    uris = list(uris)
    if len(uris) <= 1:
        return [stat(u) for u in uris]
    # fs.info is one HEAD request per object on S3: overlap the round trips.
    with ThreadPoolExecutor(max_workers=min(threads, len(uris))) as pool:
        return list(pool.map(stat, uris))


def list_inputs(cfg: InputConfig, storage: StorageConfig = StorageConfig()) -> list[ManifestEntry]:
    """List the corpus once: sorted by normalized uri, duplicates removed, ids checked unique."""
    if cfg.resolved_kind == "list":
        raw = read_list_file(cfg.uri, storage, cfg.uri_column)
        for u, _, _ in raw:
            check_no_credentials(u)
        unique = sorted({normalize_uri(r[0]): r for r in raw}.items())
        if len(unique) < len(raw):
            logger.info("list file %s: %d duplicate uris dropped", cfg.uri, len(raw) - len(unique))
        # rows with size and etag are taken as listed; the others are stat'ed (one HEAD each on S3)
        known = [ManifestEntry(uri=norm, size=size, version=f"etag:{etag}", video_id=video_id_of(norm))
                 for norm, (_, size, etag) in unique if size is not None and etag is not None]
        entries = known + _stat_uris([orig for _, (orig, size, _) in unique if size is None], storage)
    else:
        entries = _list_prefix(cfg, storage)
    by_uri = {e.uri: e for e in entries}
    entries = sorted(by_uri.values(), key=lambda e: e.uri)
    if not entries:
        raise ValueError(f"no videos found at {cfg.uri} (kind {cfg.resolved_kind}, extensions {list(cfg.extensions)})")
    ids: dict[str, str] = {}
    for e in entries:
        other = ids.setdefault(e.video_id, e.uri)
        if other != e.uri:
            raise ValueError(f"video_id collision {e.video_id}: {other} and {e.uri}")
    return entries
