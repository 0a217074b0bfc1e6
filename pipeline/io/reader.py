"""The one reader of a finished token dataset: manifest first, then parts checked against it.

The read side of the contract `pipeline.io.writer` writes: a dataset without its manifest is
refused (`DatasetNotReadyError`), and a part is handed out only after its size and SHA-256
equal the ones its commit recorded (the manifest lists them) and its Parquet metadata names
this schema version and the dataset's tokenizer. The loader, the LM probe's corpus read,
`inspect`, `demo` and `validate` all read through it; `validate` keeps its own deeper checks
(it reports every violation instead of stopping at the first) and reads the files through
`read` / `list`.

    reader = DatasetReader("s3://bucket/tokens")
    for part in reader.parts:
        table = reader.read_part(part.shard, ["tokens", "mask"])
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from pipeline.io.dataset import DatasetDir, read_parquet
from pipeline.io.storage import StorageConfig
from schemas.layout import error_part, token_part
from schemas.tokens import META_TOKENIZER, META_VERSION, SCHEMA_VERSION

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.manifest import DatasetManifest, PartInfo

logger = logging.getLogger(__name__)

HASH_BLOCK = 8 * 2**20  # bytes per read while hashing a part that is opened in place


class PartIntegrityError(ValueError):
    """A part differs from its commit (damaged or replaced) or from this reader's format; the one-line
    message names the file."""


class DatasetReader:
    """A finished dataset (local folder or s3:// prefix), read part by part and verified.

    Picklable (loader workers receive it): the manifest, once read, travels with it.
    """

    def __init__(self, root: str | DatasetDir, storage: StorageConfig = StorageConfig()) -> None:
        self.dir = root if isinstance(root, DatasetDir) else DatasetDir(root, storage)
        self._manifest: DatasetManifest | None = None
        self._by_shard: dict[int, PartInfo] = {}

    def __repr__(self) -> str:
        return f"DatasetReader({self.dir.root!r})"

    @property
    def root(self) -> str:
        return self.dir.root

    def uri(self, rel: str = "") -> str:
        """The URI of `rel` (as users and messages name it)."""
        return self.dir.uri(rel)

    def read(self, rel: str) -> bytes:
        """A whole file of the dataset, unchecked (for `validate`, which checks it its own way)."""
        return self.dir.read(rel)

    def list(self, rel: str) -> list[str]:
        """Sorted file names directly in folder `rel`; [] when it does not exist."""
        return self.dir.list(rel)

    @property
    def manifest(self) -> DatasetManifest:
        """The manifest, read once; DatasetNotReadyError without one, ValueError for another schema version."""
        if self._manifest is None:
            manifest = self.dir.read_manifest()
            if manifest.schema_version != SCHEMA_VERSION:
                raise ValueError(f"{self.root}: schema_version {manifest.schema_version}, this reader reads "
                                 f"{SCHEMA_VERSION}")
            self._manifest = manifest
            self._by_shard = {p.shard: p for p in manifest.parts}
        return self._manifest

    @property
    def parts(self) -> list[PartInfo]:
        """Every part the manifest lists, in shard order."""
        return list(self.manifest.parts)

    def part(self, shard: int) -> PartInfo:
        """The manifest's entry for `shard` (sizes, SHA-256s, row groups); ValueError when it has none."""
        self.manifest  # noqa: B018 - reads it (and indexes its parts) once
        if shard not in self._by_shard:
            raise ValueError(f"{self.root}: shard {shard} is not in the manifest")
        return self._by_shard[shard]

    # ---- whole parts, in memory -------------------------------------------------------------
    def part_bytes(self, shard: int, verify: bool = True) -> bytes:
        """The token part's bytes; verify: refuse them (PartIntegrityError) unless their size and
        SHA-256 equal the commit's."""
        rel = token_part(shard)
        data = self.dir.read(rel)
        if verify:
            p = self.part(shard)
            self._check_digest(rel, len(data), hashlib.sha256(data).hexdigest(), p.token_bytes, p.token_sha256)
        return data

    def read_part(self, shard: int, columns: list[str] | None = None, verify: bool = True) -> pa.Table:
        """The token part of `shard` (only `columns` when given), decoded on this thread (see
        `pipeline.io.dataset.read_parquet`). verify: size and SHA-256 against the commit. The schema
        version and tokenizer id in the file's metadata are always checked."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(pa.BufferReader(self.part_bytes(shard, verify)))
        self._check_metadata(token_part(shard), pf)
        return pf.read(columns=columns, use_threads=False)

    def read_errors(self, shard: int, columns: list[str] | None = None, verify: bool = True) -> pa.Table:
        """The error rows of `shard` (see `schemas.errors`); verify as in `read_part`."""
        rel = error_part(shard)
        data = self.dir.read(rel)
        if verify:
            p = self.part(shard)
            self._check_digest(rel, len(data), hashlib.sha256(data).hexdigest(), p.error_bytes, p.error_sha256)
        return read_parquet(data, columns)

    # ---- parts opened in place (the loader reads row groups) ---------------------------------
    def open_part(self, shard: int, verify: bool = True) -> pq.ParquetFile:
        """The token part as a ParquetFile for row-group reads, without holding it in memory.
        verify: the part is hashed first in HASH_BLOCK reads (one extra sequential read)."""
        import pyarrow.parquet as pq

        rel = token_part(shard)
        ds = self.dir
        if verify:
            p = self.part(shard)
            digest, size = hashlib.sha256(), 0
            with ds.fs.open(ds.path(rel), "rb", block_size=HASH_BLOCK) as f:
                while chunk := f.read(HASH_BLOCK):
                    digest.update(chunk)
                    size += len(chunk)
            self._check_digest(rel, size, digest.hexdigest(), p.token_bytes, p.token_sha256)
        if ds.is_local:
            pf = pq.ParquetFile(ds.path(rel))
        else:
            # No fsspec cache: pre_buffer coalesces a row group's column chunks into one GET.
            pf = pq.ParquetFile(ds.fs.open(ds.path(rel), "rb", cache_type="none"), pre_buffer=True)
        self._check_metadata(rel, pf)
        return pf

    # ---- checks ------------------------------------------------------------------------------
    def _check_digest(self, rel: str, size: int, sha256: str, want_size: int, want_sha256: str) -> None:
        if size != want_size or (want_sha256 and sha256 != want_sha256):
            raise PartIntegrityError(
                f"{self.uri(rel)}: {size} bytes with sha256 {sha256[:16]}..., its commit says {want_size} bytes "
                f"with sha256 {want_sha256[:16] or '(not recorded)'}...: the part was damaged or replaced after "
                "it was committed (infotok validate lists more)")

    def _check_metadata(self, rel: str, pf: pq.ParquetFile) -> None:
        meta = pf.schema_arrow.metadata or {}
        version = meta.get(META_VERSION)
        if version != str(SCHEMA_VERSION).encode():
            raise PartIntegrityError(f"{self.uri(rel)}: schema_version {version!r}, this reader reads {SCHEMA_VERSION}")
        tokenizer = meta.get(META_TOKENIZER)
        if tokenizer != self.manifest.tokenizer_id.encode():
            raise PartIntegrityError(f"{self.uri(rel)}: tokenizer_id {tokenizer!r}, the manifest says "
                                     f"{self.manifest.tokenizer_id!r}")
