"""The plan: the listed source videos, in generations, each cut into fixed shards of K videos.

A generation is the videos one run saw first, sorted by uri; shard ids continue from one
generation to the next. Within generation g, shard first_shard(g) + i holds its entries
[i*K, (i+1)*K); files are named by `schemas.layout`. So a video's shard is a pure function of
its own uri and of the generation that first saw it: listing the same corpus twice, in any
order, gives the same shards, and a rerun over a grown corpus (`grow`) puts the new videos
in a new generation and leaves every earlier shard as it was. The shard is the unit of work
and of resume.

Out of core: the listing streams into a sorted spill (`pipeline.plan.spill`) and then into one
Parquet file per generation (`pipeline.plan.files`); a Plan is its small metadata and a
local folder of those files. Shards are read a row group at a time, and `diff`/`grow` walk the
old generations and the new listing side by side in uri order, so no step holds the corpus in
memory. `pipeline.plan.store` keeps a plan in the output (plan.json + plan/).

Fingerprints (SHA-256 over canonical JSON): a generation's is `entries_fingerprint` of its
entries (uri, size, version, sorted by uri); the plan's is its single generation's, or that of
the list of its generations' fingerprints. Same corpus <=> same value.

What a rerun does with videos that were removed or changed (new size or version) since their
generation is the caller's choice (`grow`, `ON_CHANGE`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.plan.files import (
    Generation,
    GenerationWriter,
    entry_schema,
    group_rows,
    iter_file,
    sha256_json,
    temp_folder,
)
from pipeline.plan.repeats import check_unique_ids
from pipeline.plan.spill import RunCursor, SortedSpill
from pipeline.io.inputs import (
    MISSING_VERSION,
    InputConfig,
    ListingCounts,
    ManifestEntry,
    iter_listing,
    listing_schema,
)
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig
from schemas.layout import part_stem

logger = logging.getLogger(__name__)

PLAN_VERSION = 3  # 1, 2: every entry inline in plan.json (still read)
# what a rerun does with listed videos that are gone or changed: keep their rows (append only), or
# redo the shards that hold them (a gone video then becomes an error row)
ON_CHANGE: tuple[str, ...] = ("keep", "retokenize")
_EXAMPLES = 3


@dataclass(frozen=True)
class PlanConfig(FrozenConfig):
    """videos_per_shard: K, the number of videos in every shard but the last."""

    videos_per_shard: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.videos_per_shard, bool) or not isinstance(self.videos_per_shard, int) or self.videos_per_shard < 1:
            raise ValueError(f"videos_per_shard must be an integer >= 1, got {self.videos_per_shard!r}")


def entries_fingerprint(entries: tuple[ManifestEntry, ...] | list[ManifestEntry]) -> str:
    """SHA-256 of the entries sorted by uri (video_id is derived from uri, so left out)."""
    return sha256_json(sorted(([e.uri, e.size, e.version] for e in entries), key=lambda r: r[0]))


def plan_fingerprint(generations: tuple[Generation, ...]) -> str:
    if len(generations) == 1:
        return generations[0].fingerprint
    return sha256_json([g.fingerprint for g in generations])


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
    """How a new listing differs from a plan: counts of uris added, removed, and changed
    (size/version), and a few of them to show."""

    added: int
    removed: int
    changed: int
    examples: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def describe(self) -> str:
        shown = ", ".join(self.examples) or "?"
        return f"{self.added} added, {self.removed} removed, {self.changed} changed, e.g. {shown}"


class _GroupCache:
    """The last row group read, so that consecutive shards of one group cost one read."""

    def __init__(self) -> None:
        self.key: tuple[str, int] | None = None
        self.rows: list[dict[str, Any]] = []


@dataclass(frozen=True)
class Plan:
    """A listed corpus in generations and its shards: metadata, and `folder`, the local folder of
    the generations' entry files (None: loaded without them; only counts then). Build with
    `make_plan`, extend with `grow`, store with `pipeline.plan.store`."""

    source: InputConfig
    config: PlanConfig
    generations: tuple[Generation, ...]
    fingerprint: str
    folder: str | None = field(default=None, compare=False, repr=False)
    version: int = PLAN_VERSION
    _cache: _GroupCache = field(default_factory=_GroupCache, compare=False, repr=False)

    def __post_init__(self) -> None:
        first = 0
        for g in self.generations:
            if g.first_shard != first or g.n_shards != -(-g.n_videos // self.config.videos_per_shard):
                raise ValueError(f"plan generation {g.file} has shards {g.first_shard}+{g.n_shards}, expected "
                                 f"{first}+{-(-g.n_videos // self.config.videos_per_shard)}")
            first += g.n_shards
        if self.generations and plan_fingerprint(self.generations) != self.fingerprint:
            raise ValueError(f"plan fingerprint {self.fingerprint} does not match its generations: plan edited or corrupted")

    # ---- counts -------------------------------------------------------------------------------
    @property
    def n_videos(self) -> int:
        return sum(g.n_videos for g in self.generations)

    @property
    def n_shards(self) -> int:
        return sum(g.n_shards for g in self.generations)

    def generation_shards(self) -> list[range]:
        """The shard ids of each generation."""
        return [g.shard_ids for g in self.generations]

    # ---- entries ------------------------------------------------------------------------------
    def path(self, g: Generation) -> str:
        if self.folder is None:
            raise ValueError("this plan was loaded without its entries (counts only)")
        return os.path.join(self.folder, g.file)

    def tables(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Every entry, generation after generation, as tables (`pipeline.plan.files.entry_schema`)."""
        for g in self.generations:
            yield from iter_file(self.path(g), columns)

    def shard(self, shard_id: int) -> Shard:
        if isinstance(shard_id, bool) or not isinstance(shard_id, int) or not 0 <= shard_id < self.n_shards:
            raise ValueError(f"shard_id must be in [0, {self.n_shards}), got {shard_id!r}")
        k = self.config.videos_per_shard
        g = next(g for g in self.generations if shard_id in g.shard_ids)
        offset = (shard_id - g.first_shard) * k
        group, start = divmod(offset, group_rows(k))
        key = (self.path(g), group)
        if self._cache.key != key:
            self._cache.rows = pq.ParquetFile(key[0], pre_buffer=False).read_row_group(group, use_threads=False).to_pylist()
            self._cache.key = key
        rows = self._cache.rows[start : start + k]
        return Shard(shard_id=shard_id, entries=tuple(ManifestEntry(uri=r["uri"], size=r["size"], version=r["version"],
                                                                    video_id=r["video_id"]) for r in rows))

    def shards(self) -> list[Shard]:
        """Every shard, in memory: for small plans."""
        return [self.shard(i) for i in range(self.n_shards)]

    @property
    def entries(self) -> tuple[ManifestEntry, ...]:
        """Every entry, in memory: for small plans (jobs read shards one at a time)."""
        return tuple(ManifestEntry(uri=r["uri"], size=r["size"], version=r["version"], video_id=r["video_id"])
                     for t in self.tables() for r in t.to_pylist())

    # ---- a new listing against this plan --------------------------------------------------------
    def _windows(self, listed: Plan) -> Iterator[tuple[pa.Table, pa.Table]]:
        """(listed rows, this plan's rows) over consecutive uri ranges that cover both, in order."""
        cursors = [RunCursor(self.path(g)) for g in self.generations]
        batches = listed.tables()
        cur = next(batches, None)
        if cur is None:
            old = [t for c in cursors for t in c.take_below(None)]
            yield _empty_entries(), pa.concat_tables(old) if old else _empty_entries()
            return
        while cur is not None:
            nxt = next(batches, None)
            bound = None if nxt is None else nxt.column("uri")[0].as_py()
            old = [t for c in cursors for t in c.take_below(bound)]
            yield cur, pa.concat_tables(old) if old else _empty_entries()
            cur = nxt

    def _compare(self, listed: Plan, added_to: GenerationWriter | None = None) -> tuple[Growth, list[pa.Table]]:
        """The growth of `listed` over this plan; added rows go to `added_to` (in uri order); also
        returns this plan's rows that changed (with the new size/version) or are gone (missing)."""
        n_added = n_removed = n_changed = 0
        examples: list[str] = []
        touched: list[pa.Table] = []
        for new, old in self._windows(listed):
            known = pc.is_in(new.column("uri"), value_set=old.column("uri"))
            added = new.filter(pc.invert(known))
            if added.num_rows:
                n_added += added.num_rows
                examples += added.column("uri").slice(0, _EXAMPLES).to_pylist()
                if added_to is not None:
                    added_to.write(added)
            listed_now = pc.is_in(old.column("uri"), value_set=new.column("uri"))
            gone = old.filter(pc.and_(pc.invert(listed_now), pc.not_equal(old.column("version"), MISSING_VERSION)))
            if gone.num_rows:
                n_removed += gone.num_rows
                examples += gone.column("uri").slice(0, _EXAMPLES).to_pylist()
                touched.append(gone.set_column(1, "size", pa.array([-1] * gone.num_rows, pa.int64()))
                               .set_column(2, "version", pa.array([MISSING_VERSION] * gone.num_rows, pa.string())))
            both = old.filter(listed_now).join(new.select(["uri", "size", "version"]), keys="uri", join_type="inner",
                                                     right_suffix="_new")
            moved = both.filter(pc.or_(pc.not_equal(both.column("size"), both.column("size_new")),
                                       pc.not_equal(both.column("version"), both.column("version_new"))))
            if moved.num_rows:
                n_changed += moved.num_rows
                examples += moved.column("uri").slice(0, _EXAMPLES).to_pylist()
                touched.append(pa.table({"uri": moved.column("uri"), "size": moved.column("size_new"),
                                         "version": moved.column("version_new"), "video_id": moved.column("video_id"),
                                         "shard": moved.column("shard")}))
        return Growth(n_added, n_removed, n_changed, tuple(examples[:_EXAMPLES])), touched

    def diff(self, listed: Plan) -> Growth:
        """What `listed` (a fresh listing) adds to, removes from and changes in this plan."""
        return self._compare(listed)[0]

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
        if self.folder is None:
            raise ValueError("this plan was loaded without its entries (counts only)")
        writer = GenerationWriter(self.folder, len(self.generations), self.n_shards, self.config.videos_per_shard)
        try:
            growth, touched = self._compare(listed, writer)
        except BaseException:
            writer.abort()
            raise
        new_gen = writer.close()
        gens, redo = list(self.generations), set()
        if on_change == "retokenize" and touched:
            changes = pa.concat_tables(touched)
            redo = set(changes.column("shard").to_pylist())
            gens = [self._rewrite(i, g, changes) if any(s in g.shard_ids for s in redo) else g
                    for i, g in enumerate(gens)]
        if new_gen is not None:
            gens.append(new_gen)
        if gens == list(self.generations):
            return self, growth, redo
        plan = Plan(source=self.source, config=self.config, generations=tuple(gens),
                    fingerprint=plan_fingerprint(tuple(gens)), folder=self.folder)
        check_ids(plan)
        return plan, growth, redo

    def _rewrite(self, index: int, g: Generation, changes: pa.Table) -> Generation:
        """Generation g again, with the rows of `changes` (by uri) replacing its own."""
        new = {r["uri"]: (r["size"], r["version"]) for r in changes.select(["uri", "size", "version"]).to_pylist()}
        writer = GenerationWriter(self.folder or "", index, g.first_shard, self.config.videos_per_shard)
        for table in iter_file(self.path(g)):
            hit = pc.is_in(table.column("uri"), value_set=changes.column("uri"))
            if pc.any(hit).as_py():
                rows = table.to_pylist()
                for r in rows:
                    if r["uri"] in new:
                        r["size"], r["version"] = new[r["uri"]]
                table = pa.Table.from_pylist(rows, schema=table.schema)
            writer.write(table)
        out = writer.close()
        assert out is not None and out.n_videos == g.n_videos
        return out

    def check_same_as(self, other: Plan) -> None:
        """Raise ValueError naming what differs if `other` would shard differently."""
        if self.config.videos_per_shard != other.config.videos_per_shard:
            raise ValueError(
                f"videos_per_shard differs: existing plan {other.config.videos_per_shard}, new {self.config.videos_per_shard}"
            )
        if self.fingerprint != other.fingerprint:
            raise ValueError(f"corpus changed since the existing plan (fingerprint {other.fingerprint[:12]} -> "
                             f"{self.fingerprint[:12]}): {other.diff(self).describe()}")

    # ---- metadata ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "source": self.source.to_dict(), "config": self.config.to_dict(),
                "fingerprint": self.fingerprint, "n_videos": self.n_videos, "n_shards": self.n_shards,
                "generations": [g.to_dict() for g in self.generations]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], folder: str | None = None) -> Plan:
        """A plan.json of this version (see `pipeline.plan.store.load_plan` for older ones)."""
        known = {"version", "source", "config", "fingerprint", "n_videos", "n_shards", "generations"}
        if set(d) != known:
            raise ValueError(f"plan keys must be {sorted(known)}, got {sorted(d)}")
        if d["version"] != PLAN_VERSION:
            raise ValueError(f"plan version {d['version']!r} is not supported here (expected {PLAN_VERSION})")
        plan = cls(source=InputConfig.from_dict(d["source"]), config=PlanConfig.from_dict(d["config"]),
                   generations=tuple(Generation.from_dict(g) for g in d["generations"]),
                   fingerprint=str(d["fingerprint"]), folder=folder)
        if (d["n_videos"], d["n_shards"]) != (plan.n_videos, plan.n_shards):
            raise ValueError(f"plan counts n_videos={d['n_videos']} n_shards={d['n_shards']} do not match its generations")
        return plan


def _empty_entries() -> pa.Table:
    return entry_schema().empty_table()


def check_ids(plan: Plan) -> None:
    """Raise ValueError naming two uris whose video_id (64 bits of their hash) is the same."""
    check_unique_ids(plan.tables)


def _write_plan(tables: Iterator[pa.Table], source: InputConfig, config: PlanConfig) -> Plan:
    folder = temp_folder("infotok-plan-")
    spill = SortedSpill(os.path.join(folder, "spill"), listing_schema())
    for table in tables:
        spill.add(table)
    writer = GenerationWriter(folder, 0, 0, config.videos_per_shard)
    try:
        for table in spill.sorted_tables():
            writer.write(table)
    except BaseException:
        writer.abort()
        raise
    gen = writer.close()
    shutil.rmtree(spill.folder, ignore_errors=True)
    gens = (gen,) if gen is not None else ()
    plan = Plan(source=source, config=config, generations=gens,
                fingerprint=plan_fingerprint(gens) if gens else sha256_json([]), folder=folder)
    check_ids(plan)
    return plan


def plan_from_entries(entries: list[ManifestEntry], source: InputConfig, config: PlanConfig) -> Plan:
    """Plan over already-listed entries (sorted and de-duplicated here; the last of a uri wins)."""
    rows = [(e.uri, e.size, e.version, e.video_id) for e in entries]
    table = pa.table(list(zip(*rows)) if rows else [[], [], [], []], schema=listing_schema())
    return _write_plan(iter([table]), source, config)


def make_plan(source: InputConfig, config: PlanConfig = PlanConfig(), storage: StorageConfig = StorageConfig(),
              counts: ListingCounts | None = None) -> Plan:
    """List the inputs once and shard them, out of core. counts: filled with what the listing met
    (rows listed, repeats included; objects skipped; missing videos; HEAD requests)."""
    counts = counts if counts is not None else ListingCounts()
    plan = _write_plan(iter_listing(source, storage, counts), source, config)
    logger.info("plan: %d videos, %d shards of <= %d, fingerprint %s", plan.n_videos, plan.n_shards,
                config.videos_per_shard, plan.fingerprint[:12])
    return plan
