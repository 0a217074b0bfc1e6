"""Which of a run's new videos are byte-identical copies of videos the plan already holds.

A copy under a new name is a new uri, so it gets a new video_id and is tokenized again; growth says
so instead of counting it as new content. Candidates are the older entries of the same size (one
pass over the plan's entries, only sizes of new videos kept in memory); a candidate is a copy when
both objects carry the same S3 ETag, or else when their bytes hash alike (read only for sizes that
match, at most `max_pairs` pairs).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict

from pipeline.io.storage import StorageConfig, filesystem
from pipeline.plan.plan import Plan

logger = logging.getLogger(__name__)

HASH_BLOCK = 4 * 2**20


def _sha256(uri: str, storage: StorageConfig) -> str | None:
    fs, path = filesystem(uri, storage)
    digest = hashlib.sha256()
    try:
        with fs.open(path, "rb") as f:
            while chunk := f.read(HASH_BLOCK):
                digest.update(chunk)
    except OSError as exc:  # gone or unreadable since listing: not a copy we can show
        logger.debug("cannot hash %s: %s", uri, exc)
        return None
    return digest.hexdigest()


def find_copies(plan: Plan, new_shards: range, storage: StorageConfig = StorageConfig(),
                max_pairs: int = 50) -> list[tuple[str, str]]:
    """(new uri, earlier uri) for each video of `new_shards` whose bytes equal a video of an earlier shard."""
    import pyarrow.compute as pc

    new: dict[int, list[tuple[str, str]]] = defaultdict(list)  # size -> [(uri, version)]
    for s in new_shards:
        for e in plan.shard(s).entries:
            if e.size > 0:
                new[e.size].append((e.uri, e.version))
    if not new:
        return []
    sizes = list(new)
    copies: list[tuple[str, str]] = []
    found: set[str] = set()
    pairs = 0
    hashes: dict[str, str | None] = {}

    def digest(uri: str) -> str | None:
        if uri not in hashes:
            hashes[uri] = _sha256(uri, storage)
        return hashes[uri]

    for table in plan.tables(["uri", "size", "version", "shard"]):
        old = table.filter(pc.and_(pc.less(table.column("shard"), new_shards.start),
                                   pc.is_in(table.column("size"), value_set=pc.cast(sizes, "int64"))))
        for row in old.to_pylist():
            for uri, version in new[row["size"]]:
                if uri in found:
                    continue
                if version.startswith("etag:") and row["version"].startswith("etag:"):
                    same = version == row["version"]
                else:
                    if pairs >= max_pairs:
                        continue
                    pairs += 1
                    a, b = digest(uri), digest(row["uri"])
                    same = a is not None and a == b
                if same:
                    found.add(uri)
                    copies.append((uri, row["uri"]))
    return copies
