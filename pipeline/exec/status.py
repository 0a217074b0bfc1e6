"""Progress of a dataset being written: plan, commit markers, errors, manifest."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from pipeline.exec.plan import Plan
from pipeline.io.dataset import DatasetDir
from schemas.layout import MANIFEST_NAME, PLAN_FILE, error_part


def dataset_status(ds: DatasetDir) -> dict[str, Any]:
    """Counts from the plan and commit markers; errors by kind and stage from committed error parts."""
    import pyarrow.parquet as pq

    n_shards = Plan.from_json(ds.read(PLAN_FILE).decode("utf-8")).n_shards if ds.exists(PLAN_FILE) else None
    commits = ds.commits()
    kinds: Counter[str] = Counter()
    for shard, commit in commits.items():
        if commit.n_errors:
            table = pq.read_table(io.BytesIO(ds.read(error_part(shard))), columns=["kind", "stage"])
            for kind, stage in zip(table.column("kind").to_pylist(), table.column("stage").to_pylist()):
                kinds[f"{stage}/{kind}"] += 1
    return {
        "output": ds.root,
        "n_shards": n_shards,
        "shards_done": len(commits),
        "clips": sum(c.n_rows for c in commits.values()),
        "tokens": sum(c.n_tokens for c in commits.values()),
        "errors": sum(c.n_errors for c in commits.values()),
        "errors_by_kind": dict(kinds),
        "finished": ds.exists(MANIFEST_NAME),
    }
