"""Object storage access through fsspec (local paths, file://, s3://).

Credentials are never taken as arguments here: s3fs reads them from the usual
AWS sources (environment, profile, instance role). What is configurable, and
safe to log, lives in `StorageConfig`.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import fsspec

from schemas.config import FrozenConfig
from schemas.layout import TEMP_PREFIX

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class StorageConfig(FrozenConfig):
    """Where and how to reach object storage; contains no secrets.

    endpoint_url: S3-compatible endpoint (MinIO, moto, R2, ...); None for AWS.
    profile: AWS profile name from ~/.aws; None for the default chain.
    anon: anonymous access to public buckets.
    """

    endpoint_url: str | None = None
    profile: str | None = None
    anon: bool = False


def protocol_of(uri: str) -> str:
    """'s3' for s3://..., 'file' for local paths and file://..."""
    if "://" not in uri:
        return "file"
    return uri.split("://", 1)[0]


def filesystem(uri: str, config: StorageConfig = StorageConfig()) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return (filesystem, path-within-it) for a URI or local path."""
    proto = protocol_of(uri)
    if proto in ("s3", "s3a"):
        kwargs: dict[str, Any] = {"anon": config.anon}
        if config.endpoint_url:
            kwargs["client_kwargs"] = {"endpoint_url": config.endpoint_url}
        if config.profile:
            kwargs["profile"] = config.profile
        fs = fsspec.filesystem("s3", **kwargs)
        path = uri.split("://", 1)[1].rstrip("/")
        return fs, path
    if proto == "file":
        fs = fsspec.filesystem("file")
        path = uri.split("://", 1)[1] if "://" in uri else uri
        return fs, fs._strip_protocol(path)
    fs = fsspec.filesystem(proto)
    return fs, fs._strip_protocol(uri)


class TransientStorageError(Exception):
    """A storage failure that is worth retrying (timeouts, throttling, 5xx)."""


def is_transient(exc: BaseException) -> bool:
    """Best-effort classification of storage errors that may succeed on retry."""
    if isinstance(exc, (TransientStorageError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, ValueError)):
        return False
    text = f"{type(exc).__name__} {exc}".lower()
    markers = ("timeout", "timed out", "throttl", "slowdown", "503", "500 ", "internalerror", "connection")
    return any(m in text for m in markers)


def with_retries(
    fn: Callable[[], T],
    what: str,
    attempts: int = 5,
    base_delay_s: float = 0.2,
    max_delay_s: float = 10.0,
) -> T:
    """Call fn, retrying transient failures with jittered exponential backoff."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if attempt == attempts or not is_transient(exc):
                raise
            delay = min(max_delay_s, base_delay_s * 2 ** (attempt - 1)) * (0.5 + random.random())
            logger.warning("%s failed (attempt %d/%d, retrying in %.2fs): %s", what, attempt, attempts, delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")


def current_umask() -> int:
    """The process umask, read without changing it where /proc tells it (os.umask sets it to read it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def put_atomic_fs(fs: fsspec.AbstractFileSystem, path: str, data: bytes, local: bool, what: str,
                  exclusive: bool = False) -> bool:
    """Make `data` visible at `path` all at once: temp file, fsync and rename on a local disk; one PUT
    (or a multipart upload that s3fs completes only after the last part) on an object store.
    A local file gets the mode any new file gets (0666 less the umask), not the temp file's 0600:
    a dataset is read by other accounts (a training job's service user).

    exclusive: create only if nothing is at `path` (the temp file is hard-linked into place instead
    of renamed; on S3 a PUT with If-None-Match: *, what s3fs's "xb" mode sends). Returns False when
    something was there, True when `data` was written.
    """
    if local:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if exclusive:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return False
                finally:
                    os.unlink(tmp)
            else:
                os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return True
    if not exclusive:
        with_retries(lambda: fs.pipe_file(path, data), f"upload {what}")
        return True

    def create() -> bool:
        try:
            with fs.open(path, "xb") as f:
                f.write(data)
        except FileExistsError:
            return False
        except OSError as exc:  # a lost conditional PUT: 412 Precondition Failed
            if "precondition" in str(exc).lower() or "412" in str(exc):
                return False
            raise
        return True

    return with_retries(create, f"create {what}")


def put_atomic(uri: str, data: bytes, storage: StorageConfig = StorageConfig()) -> None:
    """put_atomic_fs for a URI (reports, one-off files); datasets go through `DatasetDir.put`."""
    fs, path = filesystem(uri, storage)
    put_atomic_fs(fs, path, data, protocol_of(uri) == "file", uri)
