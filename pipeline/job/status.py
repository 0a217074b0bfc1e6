"""Progress of a dataset being written: plan, commit markers, errors, manifest."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.plan.store import read_plan_dict
from pipeline.io.dataset import DatasetDir
from schemas.layout import JOB_FILE, MANIFEST_NAME, PLAN_FILE, error_part


def dataset_status(ds: DatasetDir) -> dict[str, Any]:
    """Counts from the plan and commit markers; errors by kind and stage from committed error parts.

    Keys as `infotok inspect` names them (root, shards, clips, tokens, errors, errors_by_kind and
    errors_by_stage);
    `shards` is None before a job has written its plan. FileNotFoundError when `ds` holds neither a
    plan nor a job's settings nor a manifest: not a dataset, nor one being written.
    """
    if not any(ds.exists(name) for name in (PLAN_FILE, JOB_FILE, MANIFEST_NAME)):
        raise FileNotFoundError(f"no dataset at {ds.root!r}: it holds no {PLAN_FILE}, {JOB_FILE} or {MANIFEST_NAME}")
    plan = read_plan_dict(ds) if ds.exists(PLAN_FILE) else None  # the counts: no entry is read
    n_shards = int(plan["n_shards"]) if plan is not None else None
    # while a grown input's new generation runs, the previous manifest still stands (readers keep
    # the previous dataset): finished means the manifest covers every shard of the plan
    finished = ds.exists(MANIFEST_NAME) and (n_shards is None or len(ds.read_manifest().parts) == n_shards)
    commits = ds.commits()
    kinds: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for shard, commit in commits.items():
        if commit.n_errors:
            table = ds.read_table(error_part(shard), columns=["kind", "stage"])
            kinds.update(table.column("kind").to_pylist())
            stages.update(table.column("stage").to_pylist())
    return {
        "root": ds.root,
        "shards": n_shards,
        "generations": len(plan.get("generations", [0])) if plan is not None else None,
        "shards_done": len(commits),
        "clips": sum(c.n_rows for c in commits.values()),
        "tokens": sum(c.n_tokens for c in commits.values()),
        "errors": sum(c.n_errors for c in commits.values()),
        "errors_by_kind": dict(sorted(kinds.items())),
        "errors_by_stage": dict(sorted(stages.items())),
        "finished": finished,
    }
