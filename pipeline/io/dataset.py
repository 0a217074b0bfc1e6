"""One handle on a dataset's root: the URI and its filesystem, resolved once and passed down.

The writer, the resume check, `status`, `validate` and the loader all address files by their
path relative to the root (`schemas.layout` names them) through this handle, instead of each
leaf re-resolving storage from a URI. Every read and write is retried on transient errors.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from pipeline.io.storage import StorageConfig, current_umask, filesystem, protocol_of, put_atomic_fs, with_retries
from schemas.layout import COMMITS_DIR, MANIFEST_NAME, TEMP_PREFIX, join, shard_of

if TYPE_CHECKING:
    import fsspec
    import pyarrow as pa

    from schemas.manifest import DatasetManifest, ShardCommit

logger = logging.getLogger(__name__)

READ_THREADS = 16  # concurrent small reads (commit markers) against an object store


def read_parquet(data: bytes, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file held in memory, read on the calling thread.

    Arrow's thread pools abort the interpreter at exit now and then ("terminate called without an
    active exception", exit 134, after the command has printed its output): `pq.read_table`'s
    dataset scanner in 13 of 20 runs of a one-file read here (pyarrow 26), `ParquetFile.read` with
    threads in 1 of 40 runs of `infotok inspect`. Dataset parts are a few MB: one thread reads them
    fast enough, and a command that succeeded must exit 0.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns, use_threads=False)


class DatasetNotReadyError(FileNotFoundError):
    """The dataset has no manifest: it is unfinished (job still running or died) or not a dataset."""


class DatasetDir:
    """A dataset root (local folder or s3:// prefix). Paths given to methods are relative to it.

    Picklable (it travels to loader workers and Ray actors): the filesystem is resolved lazily
    and not pickled.
    """

    def __init__(self, root: str, storage: StorageConfig = StorageConfig()) -> None:
        self.root = root.rstrip("/") or root
        self.storage = storage
        self._fs: Any = None
        self._path = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "storage": self.storage, "_fs": None, "_path": ""}

    def __repr__(self) -> str:
        return f"DatasetDir({self.root!r})"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs, self._path = filesystem(self.root, self.storage)
        return self._fs

    @property
    def is_local(self) -> bool:
        return protocol_of(self.root) == "file"

    def uri(self, rel: str = "") -> str:
        """The URI of `rel` (as users and messages name it)."""
        return join(self.root, rel) if rel else self.root

    def path(self, rel: str = "") -> str:
        """The path of `rel` within the filesystem."""
        self.fs  # noqa: B018 - resolves _path
        return join(self._path, rel) if rel else self._path

    def read(self, rel: str) -> bytes:
        """Whole-object read; FileNotFoundError when absent."""
        return with_retries(lambda: self.fs.cat_file(self.path(rel)), f"read {self.uri(rel)}")

    def exists(self, rel: str) -> bool:
        return bool(with_retries(lambda: self.fs.exists(self.path(rel)), f"stat {self.uri(rel)}"))

    def list(self, rel: str) -> list[str]:
        """Sorted file names directly in folder `rel`; [] when it does not exist."""
        try:
            names = with_retries(lambda: self.fs.ls(self.path(rel), detail=False), f"list {self.uri(rel)}")
        except FileNotFoundError:
            return []
        return sorted(str(n).rsplit("/", 1)[-1] for n in names)

    def read_table(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        """A whole Parquet file of the dataset (see `read_parquet`)."""
        return read_parquet(self.read(rel), columns)

    def put(self, rel: str, data: bytes, exclusive: bool = False) -> bool:
        """Make `data` visible at `rel` all at once (temp + rename locally, one PUT on S3).
        exclusive: only if nothing is there (False then); see `put_atomic_fs`."""
        written = put_atomic_fs(self.fs, self.path(rel), data, self.is_local, self.uri(rel), exclusive)
        if exclusive:
            self.invalidate_cache()
        return written

    def upload(self, local: str, rel: str) -> None:
        """Copy a local file to `rel` without holding it in memory: a temp file renamed into place
        locally (mode by the umask), a streamed (multipart) upload on an object store."""
        if self.is_local:
            import shutil

            path = self.path(rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = os.path.join(os.path.dirname(path), f"{TEMP_PREFIX}{os.path.basename(path)}")
            shutil.copyfile(local, tmp)
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
        else:
            with_retries(lambda: self.fs.put_file(local, self.path(rel)), f"write {self.uri(rel)}")

    def download(self, rel: str, local: str) -> None:
        """Copy `rel` to a local file, streamed; FileNotFoundError when absent."""
        with_retries(lambda: self.fs.get_file(self.path(rel), local), f"read {self.uri(rel)}")

    def size(self, rel: str) -> int | None:
        """Bytes at `rel`, None when absent."""
        try:
            return int(with_retries(lambda: self.fs.size(self.path(rel)), f"stat {self.uri(rel)}"))
        except FileNotFoundError:
            return None

    def remove(self, rels: list[str]) -> None:
        """Delete the given files (paths relative to the root)."""
        if rels:
            self.fs.rm([self.path(r) for r in rels])

    def invalidate_cache(self) -> None:
        self.fs.invalidate_cache()

    def read_manifest(self) -> DatasetManifest:
        """ROOT/dataset.json; DatasetNotReadyError with a clear message if it is absent."""
        from schemas.manifest import DatasetManifest

        try:
            text = self.read(MANIFEST_NAME)
        except FileNotFoundError:
            raise DatasetNotReadyError(
                f"no manifest at {self.uri(MANIFEST_NAME)}: the dataset is unfinished (its job has not written "
                f"{MANIFEST_NAME} yet) or {self.root!r} is not an infotok dataset"
            ) from None
        return DatasetManifest.from_json(text.decode())

    def commits(self) -> dict[int, ShardCommit]:
        """Every commit marker, by shard id (empty when none). On an object store the markers are
        read READ_THREADS at a time (one GET each: a corpus of 1M shards has 1M of them)."""
        from concurrent.futures import ThreadPoolExecutor

        from schemas.manifest import ShardCommit

        names = [n for n in self.list(COMMITS_DIR) if n.endswith(".json") and not n.startswith(".")]

        def read(name: str) -> ShardCommit:
            commit = ShardCommit.from_json(self.read(f"{COMMITS_DIR}/{name}").decode())
            if commit.shard != shard_of(name):
                raise ValueError(f"commit marker {self.uri(COMMITS_DIR + '/' + name)} names shard {commit.shard}")
            return commit

        if self.is_local or len(names) < 2:
            commits = [read(n) for n in names]
        else:
            with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(names))) as pool:
                commits = list(pool.map(read, names))
        return {c.shard: c for c in commits}
