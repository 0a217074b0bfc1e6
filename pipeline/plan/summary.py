"""What `infotok plan` reports about a listed corpus, computed in one pass over the plan's files.

videos, bytes, shards and generations; videos per extension; repeats (uris listed more than once,
dropped) and shared content (videos whose size and etag equal another's: copies under other
names); missing videos (listed but not found: each becomes an error row). Memory stays bounded:
the shared-content count goes through `pipeline.plan.repeats`.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.plan.plan import Plan
from pipeline.plan.files import temp_folder
from pipeline.plan.repeats import KeyRepeats
from pipeline.io.inputs import MISSING_VERSION, ListingCounts

logger = logging.getLogger(__name__)

TOP_EXTENSIONS = 12  # extensions listed by name; the rest are summed as "other"


@dataclass(frozen=True)
class PlanSummary:
    videos: int
    bytes: int
    shards: int
    generations: int
    videos_per_shard: int
    extensions: dict[str, int]
    listed_twice: int  # rows of the listing dropped because their uri came again
    shared_content: int  # videos whose (size, etag) another video also has
    missing: int
    skipped: int  # objects under a prefix that are not videos
    stat_requests: int
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(plan: Plan, counts: ListingCounts) -> PlanSummary:
    exts: Counter[str] = Counter()
    total = missing = 0
    folder = temp_folder("infotok-summary-")
    try:
        content = KeyRepeats(folder)
        for table in plan.tables(["uri", "size", "version"]):
            uris, sizes, versions = (table.column(c).to_pylist() for c in ("uri", "size", "version"))
            exts.update(posixpath.splitext(posixpath.basename(u))[1].lower() or "(none)" for u in uris)
            total += sum(s for s in sizes if s > 0)
            missing += sum(1 for v in versions if v == MISSING_VERSION)
            keys = [hash((s, v)) for s, v in zip(sizes, versions) if v.startswith("etag:")]
            content.add(np.array(keys, dtype=np.int64).view(np.uint64))
        _, shared = content.repeated()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    top = dict(exts.most_common(TOP_EXTENSIONS))
    if len(exts) > TOP_EXTENSIONS:
        top["other"] = sum(exts.values()) - sum(top.values())
    return PlanSummary(videos=plan.n_videos, bytes=total, shards=plan.n_shards, generations=len(plan.generations),
                       videos_per_shard=plan.config.videos_per_shard, extensions=top,
                       listed_twice=max(0, counts.rows - plan.n_videos), shared_content=shared, missing=missing,
                       skipped=counts.skipped, stat_requests=counts.stat_requests, fingerprint=plan.fingerprint)


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError("unreachable")
