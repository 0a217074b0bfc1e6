"""The plan: the listed source videos, in generations, each cut into fixed shards of K videos.

A generation is the videos one run saw first, sorted by uri; shard ids continue from one
generation to the next. Within generation g, shard first_shard(g) + i holds its entries
[i*K, (i+1)*K); files are named by `schemas.layout`. So a video's shard is a pure function of
its own uri and of the generation that first saw it: listing the same corpus twice, in any
order, gives the same shards, and a rerun over a grown corpus (`grow`) puts the new videos
in a new generation and leaves every earlier shard as it was. The shard is the unit of work
and of resume.

Fingerprints (SHA-256 over canonical JSON):
- `fingerprint`: the sorted entries (uri, size, version). Same corpus <=> same value; a
  resume compares it (and K) before trusting any committed shard.
- `Shard.fingerprint`: the shard's own entries, for a commit marker to record.

What a rerun does with videos that were removed or changed (new size or version) since their
generation is the caller's choice (`grow`, `ON_CHANGE`).

The plan is written as JSON (`OUTPUT/plan.json`); no credentials are ever in it: the
input uri and every entry uri are checked by `pipeline.io.inputs.check_no_credentials`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from pipeline.io.inputs import MISSING_VERSION, InputConfig, ManifestEntry, list_inputs
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig
from schemas.layout import part_stem

logger = logging.getLogger(__name__)

PLAN_VERSION = 2  # 1: one generation, no "generations" key (still read)
# what a rerun does with listed videos that are gone or changed: keep their rows (append only), or
# redo the shards that hold them (a gone video then becomes an error row)
ON_CHANGE: tuple[str, ...] = ("keep", "retokenize")


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
class Growth:
    """How a new listing differs from a plan: uris added, removed, and changed (size/version)."""

    added: tuple[ManifestEntry, ...]
    removed: tuple[str, ...]
    changed: tuple[ManifestEntry, ...]  # the new listing's entries

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def describe(self) -> str:
        example = ([e.uri for e in self.added] or list(self.removed) or [e.uri for e in self.changed] or ["?"])[0]
        return f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed, e.g. {example}"


@dataclass(frozen=True)
class Plan:
    """A listed corpus in generations and its shards. Build with `make_plan`, extend with `grow`;
    round-trips through JSON. entries: generation after generation, each sorted by uri;
    starts: the index of each generation's first entry (starts[0] == 0)."""

    source: InputConfig
    config: PlanConfig
    entries: tuple[ManifestEntry, ...]
    fingerprint: str
    version: int = PLAN_VERSION
    starts: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.starts or self.starts[0] != 0 or list(self.starts) != sorted(set(self.starts)) or \
                self.starts[-1] > max(0, len(self.entries) - 1) and len(self.starts) > 1:
            raise ValueError(f"plan generation starts {self.starts} do not fit {len(self.entries)} entries")
        for g in range(len(self.starts)):
            uris = [e.uri for e in self.entries[self._bounds(g)]]
            if uris != sorted(uris):
                raise ValueError(f"Plan.entries of generation {g} must be sorted by uri")
        if len({e.uri for e in self.entries}) != len(self.entries):
            raise ValueError("Plan.entries must be unique, and sorted by uri within each generation")
        actual = entries_fingerprint(self.entries)
        if actual != self.fingerprint:
            raise ValueError(f"plan fingerprint {self.fingerprint} does not match its entries ({actual}): plan edited or corrupted")

    def _bounds(self, g: int) -> slice:
        return slice(self.starts[g], self.starts[g + 1] if g + 1 < len(self.starts) else len(self.entries))

    @property
    def generations(self) -> int:
        return len(self.starts)

    def generation_shards(self) -> list[range]:
        """The shard ids of each generation."""
        k = self.config.videos_per_shard
        out, first = [], 0
        for g in range(self.generations):
            b = self._bounds(g)
            n = (b.stop - b.start + k - 1) // k
            out.append(range(first, first + n))
            first += n
        return out

    @property
    def n_shards(self) -> int:
        gens = self.generation_shards()
        return gens[-1].stop if gens else 0

    def shard(self, shard_id: int) -> Shard:
        if isinstance(shard_id, bool) or not isinstance(shard_id, int) or not 0 <= shard_id < self.n_shards:
            raise ValueError(f"shard_id must be in [0, {self.n_shards}), got {shard_id!r}")
        k = self.config.videos_per_shard
        for g, ids in enumerate(self.generation_shards()):
            if shard_id in ids:
                b = self._bounds(g)
                i = b.start + (shard_id - ids.start) * k
                return Shard(shard_id=shard_id, entries=self.entries[i : min(i + k, b.stop)])
        raise AssertionError("unreachable")

    def shards(self) -> list[Shard]:
        return [self.shard(i) for i in range(self.n_shards)]

    def diff(self, listed: Plan) -> Growth:
        """What `listed` (a fresh listing) adds to, removes from and changes in this plan."""
        mine = {e.uri: e for e in self.entries}
        new = {e.uri: e for e in listed.entries}
        return Growth(added=tuple(e for e in listed.entries if e.uri not in mine),
                      # a video already recorded as missing (retokenized after it was removed) is not new news
                      removed=tuple(u for u, e in mine.items() if u not in new and e.version != MISSING_VERSION),
                      changed=tuple(new[u] for u in mine if u in new and (new[u].size, new[u].version) !=
                                    (mine[u].size, mine[u].version)))

    def grow(self, listed: Plan, on_change: str = "keep") -> tuple[Plan, Growth, set[int]]:
        """This plan extended by a fresh listing: added videos form a new generation (new shards
        after the last); with on_change "retokenize", changed videos take their new size/version
        and removed ones become missing entries in place (same shard). Returns the plan, the
        difference and the existing shards to redo (empty with "keep")."""
        if on_change not in ON_CHANGE:
            raise ValueError(f"on_change must be one of {ON_CHANGE}, got {on_change!r}")
        if self.config.videos_per_shard != listed.config.videos_per_shard:
            raise ValueError(f"videos_per_shard differs: existing plan {self.config.videos_per_shard}, new "
                             f"{listed.config.videos_per_shard}")
        growth = self.diff(listed)
        entries, redo = list(self.entries), set()
        if on_change == "retokenize" and (growth.changed or growth.removed):
            index = {e.uri: i for i, e in enumerate(entries)}
            for e in growth.changed:
                entries[index[e.uri]] = e
            for u in growth.removed:
                old = entries[index[u]]
                entries[index[u]] = ManifestEntry(uri=u, size=-1, version=MISSING_VERSION, video_id=old.video_id)
            touched = {e.uri for e in growth.changed} | set(growth.removed)
            redo = {s.shard_id for s in self.shards() if any(e.uri in touched for e in s.entries)}
        starts = self.starts
        if growth.added:
            starts = (*starts, len(entries))
            entries += sorted(growth.added, key=lambda e: e.uri)
        plan = Plan(source=self.source, config=self.config, entries=tuple(entries),
                    fingerprint=entries_fingerprint(entries), starts=starts)
        return plan, growth, redo

    def check_same_as(self, other: Plan) -> None:
        """Raise ValueError naming what differs if `other` would shard differently."""
        if self.config.videos_per_shard != other.config.videos_per_shard:
            raise ValueError(
                f"videos_per_shard differs: existing plan {other.config.videos_per_shard}, new {self.config.videos_per_shard}"
            )
        if self.fingerprint != other.fingerprint:
            raise ValueError(f"corpus changed since the existing plan (fingerprint {other.fingerprint[:12]} -> "
                             f"{self.fingerprint[:12]}): {other.diff(self).describe()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source.to_dict(),
            "config": self.config.to_dict(),
            "fingerprint": self.fingerprint,
            "n_videos": len(self.entries),
            "n_shards": self.n_shards,
            "generations": [{"first_entry": self.starts[g], "n_videos": self._bounds(g).stop - self.starts[g],
                             "first_shard": ids.start, "n_shards": len(ids)}
                            for g, ids in enumerate(self.generation_shards())],
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        known = {"version", "source", "config", "fingerprint", "n_videos", "n_shards", "entries"}
        if d.get("version") == PLAN_VERSION:
            known.add("generations")
        if set(d) != known:
            raise ValueError(f"plan keys must be {sorted(known)}, got {sorted(d)}")
        if d["version"] not in (1, PLAN_VERSION):
            raise ValueError(f"plan version {d['version']!r} is not supported (this code reads 1 and {PLAN_VERSION})")
        starts = tuple(int(g["first_entry"]) for g in d.get("generations", [{"first_entry": 0}]))
        plan = cls(
            source=InputConfig.from_dict(d["source"]),
            config=PlanConfig.from_dict(d["config"]),
            entries=tuple(ManifestEntry.from_dict(e) for e in d["entries"]),
            fingerprint=str(d["fingerprint"]),
            starts=starts,
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
