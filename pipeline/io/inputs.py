"""Listing the input corpus once: a prefix (local folder, s3://bucket/prefix) or a list file.

The result is a stream of Arrow tables of entries (uri, size, version, video_id) in no
particular order (`iter_listing`; `pipeline.plan.plan` sorts and de-duplicates it out of core),
or, for small inputs, a sorted list of `ManifestEntry` (`list_inputs`). An object-store prefix
is listed in parallel: delimiter listings split it into sub-prefixes (a few levels down, until
there are enough), each then listed flat on its own thread. A list file is streamed; rows that
carry `size` and `etag` columns are taken as they are (no HEAD request per video), the others
are stat'ed, many at a time. Everything downstream (shards, part names, fingerprints) is a pure
function of the set of entries, so the order in which a store lists objects never matters.

URIs are normalized before hashing: local paths become absolute POSIX paths (no
`file://`), `s3a://` becomes `s3://` (keys are kept byte for byte). A URI that
carries credentials (user:password@host, or a presigned query string) is refused, since
the plan is written to the output and to logs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline.io.list_files import LIST_FILE_SUFFIXES, ListRow, iter_list_file
from pipeline.io.storage import StorageConfig, filesystem, protocol_of, with_retries
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv",
)
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
    if "://" not in uri or ("@" not in uri and "?" not in uri):  # no user info, no query: nothing to hide
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


LIST_THREADS = 16  # concurrent listings / HEAD requests against an object store
_FANOUT_LEVELS = 3  # delimiter listings at most this deep before the flat listings


_PAGE_QUEUE = 8  # listing pages buffered between the listing threads and the consumer
_PAGE_KEYS = 1000  # keys per LIST request (S3's maximum)


def _s3_pages(fs: Any, path: str, delimiter: str) -> Iterator[tuple[list[dict[str, Any]], list[str]]]:
    """One S3 listing under `path` (bucket/key prefix), a page (<= 1,000 keys) at a time: (its
    objects as info dicts, its sub-prefixes when `delimiter` is "/")."""
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(path)
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{key.rstrip('/')}/" if key else "",
                              "MaxKeys": _PAGE_KEYS, **fs.req_kw}
    if delimiter:
        kwargs["Delimiter"] = delimiter
    while True:
        page = with_retries(lambda: sync(fs.loop, fs._call_s3, "list_objects_v2", **kwargs), f"list s3://{path}")
        objects = [{"name": f"{bucket}/{c['Key']}", "size": c.get("Size", 0), "ETag": c.get("ETag"), "type": "file",
                    "LastModified": c.get("LastModified")}
                   for c in page.get("Contents", []) if not c["Key"].endswith("/")]  # "dir/" markers are not files
        yield objects, [f"{bucket}/{p['Prefix'].rstrip('/')}" for p in page.get("CommonPrefixes", [])]
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def _parallel_pages(fs: Any, paths: list[str], delimiter: str) -> Iterator[tuple[list[dict[str, Any]], list[str]]]:
    """The pages of the listings of `paths`, LIST_THREADS listings at a time, as they come: at most
    _PAGE_QUEUE pages wait in memory (a listing thread waits while the consumer is behind)."""
    if len(paths) == 1:
        yield from _s3_pages(fs, paths[0], delimiter)
        return
    pages: queue.Queue[Any] = queue.Queue(maxsize=_PAGE_QUEUE)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def work(path: str) -> None:
        try:
            for page in _s3_pages(fs, path, delimiter) if not stop.is_set() else ():
                if not put(page):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(exc)
        finally:
            put(done)

    with ThreadPoolExecutor(max_workers=min(LIST_THREADS, len(paths))) as pool:
        for path in paths:
            pool.submit(work, path)
        try:
            left = len(paths)
            while left:
                item = pages.get()
                if item is done:
                    left -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()  # a listing thread waiting to hand over a page gives up


def _find(fs: Any, root: str, proto: str) -> Iterator[dict[str, dict[str, Any]]]:
    """Every object under root with its info, a piece at a time: one flat listing locally. On S3,
    delimiter listings (in parallel, a few levels down) split root into sub-prefixes until there
    are LIST_THREADS of them, which are then listed flat in parallel; every listing goes page by
    page, so memory holds a few pages, never the corpus (a flat bucket of 10M keys included)."""
    if proto == "file":
        yield with_retries(lambda: fs.find(root, detail=True), f"list {root}")
        return
    level = [root]
    for _ in range(_FANOUT_LEVELS):
        if len(level) >= LIST_THREADS:
            break
        deeper: list[str] = []
        for objects, dirs in _parallel_pages(fs, level, "/"):
            deeper += dirs
            yield {o["name"]: o for o in objects}
        if not deeper:
            return
        level = deeper
    for objects, _ in _parallel_pages(fs, level, ""):
        yield {o["name"]: o for o in objects}


@dataclass
class ListingCounts:
    """What a listing met besides the videos it yields; filled in as it runs."""

    rows: int = 0  # videos yielded (list-file rows, or objects kept), repeats included
    skipped: int = 0  # objects under a prefix that are not videos (other extension, hidden, not a file)
    missing: int = 0  # listed videos that do not exist (kept: each becomes an error row)
    stat_requests: int = 0  # HEAD requests made for list-file rows without size and etag


BATCH_ROWS = 1 << 15  # videos per table a listing yields


def listing_schema() -> Any:
    """The Arrow schema of the tables `iter_listing` yields."""
    import pyarrow as pa

    return pa.schema([("uri", pa.string()), ("size", pa.int64()), ("version", pa.string()), ("video_id", pa.string())])


def _to_table(rows: list[tuple[str, int, str]]) -> Any:
    """(normalized uri, size, version) rows as a listing table."""
    import pyarrow as pa

    uris = [r[0] for r in rows]
    return pa.table({"uri": pa.array(uris, pa.string()), "size": pa.array([r[1] for r in rows], pa.int64()),
                     "version": pa.array([r[2] for r in rows], pa.string()),
                     "video_id": pa.array([video_id_of(u) for u in uris], pa.string())}, schema=listing_schema())


def _iter_prefix(cfg: InputConfig, storage: StorageConfig, counts: ListingCounts) -> Iterator[Any]:
    fs, root = filesystem(normalize_uri(cfg.uri), storage)
    proto = protocol_of(normalize_uri(cfg.uri))
    if not with_retries(lambda: fs.exists(root), f"exists {cfg.uri}"):
        raise FileNotFoundError(f"input prefix not found: {cfg.uri}")
    rows: list[tuple[str, int, str]] = []
    for found in _find(fs, root, proto):
        for path, info in found.items():
            name = posixpath.basename(path)
            dangling = bool(info.get("islink")) and info.get("type") == "other"  # a link to nothing
            if ((info.get("type", "file") != "file" and not dangling) or (cfg.skip_hidden and name.startswith("."))
                    or not name.lower().endswith(cfg.extensions)):
                counts.skipped += 1
                continue
            norm = normalize_uri(_uri_of(proto, path))
            if dangling:  # listed like a missing list-file entry: its read fails, and it becomes an error row
                counts.missing += 1
                rows.append((norm, -1, MISSING_VERSION))
            else:
                rows.append((norm, int(info.get("size") or 0), _version_of(info)))
            if len(rows) >= BATCH_ROWS:
                counts.rows += len(rows)
                yield _to_table(rows)
                rows = []
    if rows:
        counts.rows += len(rows)
        yield _to_table(rows)
    logger.info("listed %s: %d videos, %d other objects skipped", cfg.uri, counts.rows, counts.skipped)


def _batched(rows: Iterable[ListRow]) -> Iterator[list[ListRow]]:
    batch: list[ListRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _stat_uris(uris: list[str], storage: StorageConfig, counts: ListingCounts,
               threads: int = LIST_THREADS) -> list[tuple[str, int, str]]:
    def stat(uri: str) -> tuple[str, int, str]:
        fs, path = filesystem(uri, storage)
        norm = normalize_uri(uri)
        try:
            info = with_retries(lambda: fs.info(path), f"stat {uri}")
        except FileNotFoundError:
            # Kept, not dropped: the decode stage turns it into a permanent "read" error row.
            logger.warning("listed video not found: %s", norm)
            counts.missing += 1
            return (norm, -1, MISSING_VERSION)
        return (norm, int(info.get("size") or 0), _version_of(info))

    counts.stat_requests += len(uris)
    if len(uris) <= 1:
        return [stat(u) for u in uris]
    # fs.info is one HEAD request per object on S3: overlap the round trips.
    with ThreadPoolExecutor(max_workers=min(threads, len(uris))) as pool:
        return list(pool.map(stat, uris))


def iter_listing(cfg: InputConfig, storage: StorageConfig = StorageConfig(),
                 counts: ListingCounts | None = None) -> Iterator[Any]:
    """The corpus as Arrow tables (`listing_schema`) of up to BATCH_ROWS videos, in no particular
    order, a repeated uri not yet dropped: what `pipeline.plan.plan` sorts out of core. List-file
    rows with size and etag are taken as listed; the others are stat'ed (one HEAD each on S3)."""
    counts = counts if counts is not None else ListingCounts()
    if cfg.resolved_kind != "list":
        yield from _iter_prefix(cfg, storage, counts)
        return
    for batch in _batched(iter_list_file(cfg.uri, storage, cfg.uri_column)):
        rows = [(normalize_uri(u), size, f"etag:{etag}") for u, size, etag in batch
                if size is not None and etag is not None]
        rows += _stat_uris([u for u, size, _ in batch if size is None], storage, counts)
        counts.rows += len(rows)
        yield _to_table(rows)


def list_inputs(cfg: InputConfig, storage: StorageConfig = StorageConfig()) -> list[ManifestEntry]:
    """The corpus in memory, for small inputs (a sample, a folder of clips): sorted by normalized uri,
    repeats removed (the last listed wins), ids checked unique. Jobs plan out of core instead."""
    by_uri: dict[str, ManifestEntry] = {}
    for table in iter_listing(cfg, storage):
        for row in table.to_pylist():
            by_uri[row["uri"]] = ManifestEntry(**row)
    entries = sorted(by_uri.values(), key=lambda e: e.uri)
    if not entries:
        raise ValueError(f"no videos found at {cfg.uri} (kind {cfg.resolved_kind}, extensions {list(cfg.extensions)})")
    ids: dict[str, str] = {}
    for e in entries:
        other = ids.setdefault(e.video_id, e.uri)
        if other != e.uri:
            raise ValueError(f"video_id collision {e.video_id}: {other} and {e.uri}")
    return entries
