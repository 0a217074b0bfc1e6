"""The plan: a sorted manifest of source videos cut into fixed shards of K videos.

Shard i holds manifest entries [i*K, (i+1)*K); its files are named by `schemas.layout`. Both are
pure functions of the sorted manifest and K, so listing the same corpus twice, in any
order, gives the same shards. The shard is the unit of work and of resume.

Fingerprints (SHA-256 over canonical JSON):
- `fingerprint`: the sorted entries (uri, size, version). Same corpus <=> same value; a
  resume compares it (and K) before trusting any committed shard.
- `Shard.fingerprint`: the shard's own entries, for a commit marker to record.

Adding or removing one video shifts every later shard, which is why a resume of a
changed corpus is refused rather than patched (see `Plan.check_same_as`).

The plan is written as JSON (`OUTPUT/plan.json`); no credentials are ever in it: the
input uri and every entry uri are checked by `pipeline.io.inputs.check_no_credentials`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pipeline.io.inputs import InputConfig, ManifestEntry, list_inputs
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig
from schemas.layout import part_stem

logger = logging.getLogger(__name__)

PLAN_VERSION = 1


@dataclass(frozen=True)
class PlanConfig(FrozenConfig):
    """videos_per_shard: K, the number of videos in every shard but the last."""

    videos_per_shard: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.videos_per_shard, bool) or not isinstance(self.videos_per_shard, int) or self.videos_per_shard < 1:
            raise ValueError(f"videos_per_shard must be an integer >= 1, got {self.videos_per_shard!r}")


def _sha256_json(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def entries_fingerprint(entries: tuple[ManifestEntry, ...] | list[ManifestEntry]) -> str:
    """SHA-256 of the entries sorted by uri (video_id is derived from uri, so left out)."""
    rows = sorted(([e.uri, e.size, e.version] for e in entries), key=lambda r: r[0])
    return _sha256_json(rows)


@dataclass(frozen=True)
class Shard:
    shard_id: int
    entries: tuple[ManifestEntry, ...]

    @property
    def part_name(self) -> str:
        """The stem of this shard's files (`schemas.layout`, the one naming rule)."""
        return part_stem(self.shard_id)

    @property
    def fingerprint(self) -> str:
        return entries_fingerprint(self.entries)


@dataclass(frozen=True)
class Plan:
    """A listed corpus and its shards. Build with `make_plan`; round-trips through JSON."""

    source: InputConfig
    config: PlanConfig
    entries: tuple[ManifestEntry, ...]
    fingerprint: str
    version: int = PLAN_VERSION

    def __post_init__(self) -> None:
        uris = [e.uri for e in self.entries]
        if uris != sorted(uris) or len(set(uris)) != len(uris):
            raise ValueError("Plan.entries must be sorted by uri and unique")
        actual = entries_fingerprint(self.entries)
        if actual != self.fingerprint:
            raise ValueError(f"plan fingerprint {self.fingerprint} does not match its entries ({actual}): plan edited or corrupted")

    @property
    def n_shards(self) -> int:
        k = self.config.videos_per_shard
        return (len(self.entries) + k - 1) // k

    def shard(self, shard_id: int) -> Shard:
        if isinstance(shard_id, bool) or not isinstance(shard_id, int) or not 0 <= shard_id < self.n_shards:
            raise ValueError(f"shard_id must be in [0, {self.n_shards}), got {shard_id!r}")
        k = self.config.videos_per_shard
        return Shard(shard_id=shard_id, entries=self.entries[shard_id * k : (shard_id + 1) * k])

    def shards(self) -> list[Shard]:
        return [self.shard(i) for i in range(self.n_shards)]

    def check_same_as(self, other: Plan) -> None:
        """Raise ValueError naming what differs if `other` would shard differently (resume check)."""
        if self.config.videos_per_shard != other.config.videos_per_shard:
            raise ValueError(
                f"videos_per_shard differs: existing plan {other.config.videos_per_shard}, new {self.config.videos_per_shard}"
            )
        if self.fingerprint != other.fingerprint:
            mine, theirs = {e.uri: e for e in self.entries}, {e.uri: e for e in other.entries}
            added = sorted(set(mine) - set(theirs))
            removed = sorted(set(theirs) - set(mine))
            changed = sorted(u for u in set(mine) & set(theirs) if mine[u] != theirs[u])
            example = (added or removed or changed or ["?"])[0]
            raise ValueError(
                f"corpus changed since the existing plan (fingerprint {other.fingerprint[:12]} -> {self.fingerprint[:12]}): "
                f"{len(added)} added, {len(removed)} removed, {len(changed)} changed (size/version), e.g. {example}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source.to_dict(),
            "config": self.config.to_dict(),
            "fingerprint": self.fingerprint,
            "n_videos": len(self.entries),
            "n_shards": self.n_shards,
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        known = {"version", "source", "config", "fingerprint", "n_videos", "n_shards", "entries"}
        if set(d) != known:
            raise ValueError(f"plan keys must be {sorted(known)}, got {sorted(d)}")
        if d["version"] != PLAN_VERSION:
            raise ValueError(f"plan version {d['version']!r} is not supported (this code reads {PLAN_VERSION})")
        plan = cls(
            source=InputConfig.from_dict(d["source"]),
            config=PlanConfig.from_dict(d["config"]),
            entries=tuple(ManifestEntry.from_dict(e) for e in d["entries"]),
            fingerprint=str(d["fingerprint"]),
        )
        if (d["n_videos"], d["n_shards"]) != (len(plan.entries), plan.n_shards):
            raise ValueError(f"plan counts n_videos={d['n_videos']} n_shards={d['n_shards']} do not match its entries")
        return plan

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"plan is not valid JSON: {exc}") from None
        return cls.from_dict(d)


def plan_from_entries(entries: list[ManifestEntry], source: InputConfig, config: PlanConfig) -> Plan:
    """Plan over already-listed entries (sorted and de-duplicated here)."""
    unique = sorted({e.uri: e for e in entries}.values(), key=lambda e: e.uri)
    return Plan(source=source, config=config, entries=tuple(unique), fingerprint=entries_fingerprint(unique))


def make_plan(source: InputConfig, config: PlanConfig = PlanConfig(), storage: StorageConfig = StorageConfig()) -> Plan:
    """List the inputs once and shard them."""
    plan = plan_from_entries(list_inputs(source, storage), source, config)
    logger.info(
        "plan: %d videos, %d shards of <= %d, fingerprint %s",
        len(plan.entries), plan.n_shards, config.videos_per_shard, plan.fingerprint[:12],
    )
    return plan
