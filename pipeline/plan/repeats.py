"""Which 64-bit keys repeat, out of core: video ids that collide, contents listed twice.

Keys are appended to one local file per top-6-bit bucket; `repeated` then sorts one bucket at a
time. Memory: one bucket (1/64 of the keys, 8 bytes each) while checking; nothing while adding.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

_BUCKET_BITS = 6


class KeyRepeats:
    """Add uint64 keys; `repeated()` returns the keys seen more than once and how many keys in
    all were such repeats' members. Files go to `folder` (created; the caller removes it)."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.n_keys = 0

    def _path(self, bucket: int) -> str:
        return os.path.join(self.folder, f"keys-{bucket:02d}.u64")

    def add(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        if keys.size == 0:
            return
        self.n_keys += int(keys.size)
        buckets = (keys >> np.uint64(64 - _BUCKET_BITS)).astype(np.int64)
        order = np.argsort(buckets, kind="stable")
        keys, buckets = keys[order], buckets[order]
        cuts = np.flatnonzero(np.diff(buckets)) + 1
        for part in np.split(np.arange(keys.size), cuts):
            with open(self._path(int(buckets[part[0]])), "ab") as f:
                keys[part].tofile(f)

    def repeated(self) -> tuple[np.ndarray, int]:
        """(the distinct keys seen more than once, the number of added keys equal to one of them)."""
        found: list[np.ndarray] = []
        members = 0
        for bucket in range(1 << _BUCKET_BITS):
            path = self._path(bucket)
            if not os.path.exists(path):
                continue
            keys = np.sort(np.fromfile(path, dtype=np.uint64))
            same = keys[1:] == keys[:-1]
            if same.any():
                dup = np.unique(keys[1:][same])
                found.append(dup)
                members += int(np.isin(keys, dup).sum())
        return (np.concatenate(found) if found else np.zeros(0, np.uint64)), members


def hex_keys(ids: list[str]) -> np.ndarray:
    """16-hex-digit ids (video_id) as uint64 keys."""
    return np.array([int(i, 16) for i in ids], dtype=np.uint64)


def check_unique_ids(tables: Callable[[list[str]], Iterable[Any]]) -> None:
    """Raise ValueError naming two uris with the same video_id. tables(columns): Arrow tables of
    those columns (`uri`, `video_id`) over the whole set, read twice at most."""
    import pyarrow.compute as pc

    from pipeline.plan.files import temp_folder

    folder = temp_folder("infotok-ids-")
    try:
        keys = KeyRepeats(folder)
        for table in tables(["video_id"]):
            keys.add(hex_keys(table.column("video_id").to_pylist()))
        repeated, _ = keys.repeated()
        if repeated.size:
            dup = f"{int(repeated[0]):016x}"
            uris = [u for t in tables(["uri", "video_id"])
                    for u in t.filter(pc.equal(t.column("video_id"), dup)).column("uri").to_pylist()]
            raise ValueError(f"video_id collision {dup}: {' and '.join(uris[:2])}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
