"""Progress of a dataset being written: plan, commit markers, errors, manifest."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.exec.job import PLAN_FILE
from schemas.layout import error_part_path, manifest_path
from pipeline.exec.plan import Plan
from pipeline.io.storage import StorageConfig, filesystem, join, with_retries
from pipeline.io.writer import read_commits


def dataset_status(output: str, storage: StorageConfig = StorageConfig()) -> dict[str, Any]:
    """Counts from the plan and commit markers; errors by kind and stage from committed error parts."""
    import pyarrow.parquet as pq

    fs, _ = filesystem(output, storage)
    plan_uri = join(output, PLAN_FILE)
    _, plan_path = filesystem(plan_uri, storage)
    n_shards = Plan.load(plan_uri, storage).n_shards if fs.exists(plan_path) else None
    commits = read_commits(output, storage)
    kinds: Counter[str] = Counter()
    for shard, commit in commits.items():
        if commit.n_errors:
            _, path = filesystem(error_part_path(output, shard), storage)
            table = pq.read_table(fs.open(path, "rb"), columns=["kind", "stage"])
            for kind, stage in zip(table.column("kind").to_pylist(), table.column("stage").to_pylist()):
                kinds[f"{stage}/{kind}"] += 1
    _, mpath = filesystem(manifest_path(output), storage)
    return {
        "output": output,
        "n_shards": n_shards,
        "shards_done": len(commits),
        "clips": sum(c.n_rows for c in commits.values()),
        "tokens": sum(c.n_tokens for c in commits.values()),
        "errors": sum(c.n_errors for c in commits.values()),
        "errors_by_kind": dict(kinds),
        "finished": bool(with_retries(lambda: fs.exists(mpath), f"stat {mpath}")),
    }
