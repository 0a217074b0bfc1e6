"""A plan kept in a dataset's output: `plan.json` (metadata) and `plan/` (one entry file per generation).

Saving uploads the generation files the output lacks, then writes plan.json, then removes the
generation files plan.json no longer names (a rewritten generation has a new name), so a
reader of plan.json always finds the files it names. Loading downloads them to a local
folder and checks each against its fingerprint. Plans of versions 1 and 2 (every entry inline
in plan.json) are read and converted; their own fingerprint is checked first.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pipeline.plan.plan import PLAN_VERSION, Plan, PlanConfig, entries_fingerprint, plan_fingerprint
from pipeline.plan.files import EntriesHash, GenerationWriter, is_generation_file, iter_file, temp_folder
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import InputConfig, ManifestEntry, listing_schema
from schemas.layout import PLAN_DIR, PLAN_FILE

logger = logging.getLogger(__name__)


def save_plan(ds: DatasetDir, plan: Plan) -> None:
    """Write `plan` into the output (see module doc)."""
    for g in plan.generations:
        rel = f"{PLAN_DIR}/{g.file}"
        local = plan.path(g)
        if ds.size(rel) != os.path.getsize(local):
            ds.upload(local, rel)
    ds.put(PLAN_FILE, (json.dumps(plan.to_dict(), indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    named = {g.file for g in plan.generations}
    stale = [f"{PLAN_DIR}/{n}" for n in ds.list(PLAN_DIR) if is_generation_file(n) and n not in named]
    if stale:
        ds.remove(stale)


def read_plan_dict(ds: DatasetDir) -> dict[str, Any]:
    try:
        d = json.loads(ds.read(PLAN_FILE).decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{ds.uri(PLAN_FILE)} is not valid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{ds.uri(PLAN_FILE)} must hold a JSON object")
    return d


def load_plan(ds: DatasetDir, entries: bool = True) -> Plan:
    """The plan in the output. entries=False: metadata only (counts; a version 1/2 plan is still
    read whole). FileNotFoundError when there is none; ValueError when it is damaged."""
    d = read_plan_dict(ds)
    if d.get("version") in (1, 2):
        return _from_inline(d)
    plan = Plan.from_dict(d)
    if not entries:
        return plan
    folder = temp_folder("infotok-plan-")
    for g in plan.generations:
        local = os.path.join(folder, g.file)
        ds.download(f"{PLAN_DIR}/{g.file}", local)
        h, n = EntriesHash(), 0
        for table in iter_file(local, ["uri", "size", "version"]):
            h.update(table)
            n += table.num_rows
        if (h.hexdigest(), n) != (g.fingerprint, g.n_videos):
            raise ValueError(f"{ds.uri(PLAN_DIR + '/' + g.file)} does not match plan.json ({n} entries, fingerprint "
                             f"{h.hexdigest()[:12]}; expected {g.n_videos}, {g.fingerprint[:12]}): plan edited or corrupted")
    return Plan(source=plan.source, config=plan.config, generations=plan.generations,
                fingerprint=plan.fingerprint, folder=folder)


def _from_inline(d: dict[str, Any]) -> Plan:
    """A version 1 or 2 plan.json (entries inline), as a plan with entry files."""
    import pyarrow as pa

    known = {"version", "source", "config", "fingerprint", "n_videos", "n_shards", "entries"}
    if d.get("version") == 2:
        known.add("generations")
    if set(d) != known:
        raise ValueError(f"plan keys must be {sorted(known)}, got {sorted(d)}")
    entries = [ManifestEntry.from_dict(e) for e in d["entries"]]
    if entries_fingerprint(entries) != d["fingerprint"]:
        raise ValueError(f"plan fingerprint {d['fingerprint']} does not match its entries: plan edited or corrupted")
    config = PlanConfig.from_dict(d["config"])
    starts = [int(g["first_entry"]) for g in d.get("generations", [{"first_entry": 0}])] + [len(entries)]
    folder = temp_folder("infotok-plan-")
    gens, first = [], 0
    for i in range(len(starts) - 1):
        part = entries[starts[i] : starts[i + 1]]
        if [e.uri for e in part] != sorted(e.uri for e in part):
            raise ValueError(f"plan entries of generation {i} must be sorted by uri")
        writer = GenerationWriter(folder, i, first, config.videos_per_shard)
        writer.write(pa.Table.from_pylist([e.to_dict() for e in part], schema=listing_schema()))
        gen = writer.close()
        if gen is not None:
            gens.append(gen)
            first += gen.n_shards
    plan = Plan(source=InputConfig.from_dict(d["source"]), config=config, generations=tuple(gens),
                fingerprint=plan_fingerprint(tuple(gens)), folder=folder)
    if (d["n_videos"], d["n_shards"]) != (plan.n_videos, plan.n_shards):
        raise ValueError(f"plan counts n_videos={d['n_videos']} n_shards={d['n_shards']} do not match its entries")
    logger.info("read a version %s plan (%d videos inline); it is written as version %d when it next changes",
                d["version"], plan.n_videos, PLAN_VERSION)
    return plan
