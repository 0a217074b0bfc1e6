"""Before a job runs: plan the corpus, and check that an existing output is this job's.

A fresh output gets `job.json` (the settings that decide its rows) and `plan.json` (the
listed corpus and its shards). A rerun lists again and refuses, saying what differs, if the
corpus or the settings changed; `overwrite` deletes the old dataset first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pipeline.io.inputs import InputConfig
from pipeline.exec.job import JOB_FILE, PLAN_FILE, JobConfig, content_diff
from schemas.layout import COMMITS_DIR, ERRORS_DIR, MANIFEST_NAME, TOKENS_DIR
from pipeline.exec.plan import Plan, make_plan
from pipeline.io.storage import StorageConfig, filesystem, join, with_retries
from pipeline.io.writer import check_compatible, put_atomic, read_commits
from schemas.tokens import TokenFileMeta

logger = logging.getLogger(__name__)


class OutputMismatchError(ValueError):
    """The output holds a dataset made with other settings, from another corpus or tokenizer."""


@dataclass(frozen=True)
class Prepared:
    plan: Plan
    done: frozenset[int]
    todo: tuple[int, ...]


def _exists(uri: str, storage: StorageConfig) -> bool:
    fs, path = filesystem(uri, storage)
    return bool(with_retries(lambda: fs.exists(path), f"stat {uri}"))


def clear_output(output: str, storage: StorageConfig) -> None:
    """Delete what a job writes under output (and nothing else)."""
    fs, root = filesystem(output, storage)
    for name in (MANIFEST_NAME, JOB_FILE, PLAN_FILE):
        if fs.exists(join(root, name)):
            fs.rm(join(root, name))
    for folder in (COMMITS_DIR, TOKENS_DIR, ERRORS_DIR):
        path = join(root, folder)
        if fs.exists(path):
            files = fs.find(path)
            if files:
                fs.rm(files)
    fs.invalidate_cache()
    logger.info("cleared %s", output)


def prepare_output(job: JobConfig, file_meta: TokenFileMeta, overwrite: bool = False) -> Prepared:
    """Plan the job and reconcile it with what the output already holds."""
    storage = job.storage
    if overwrite:
        clear_output(job.output, storage)
    source = InputConfig(uri=job.input, **({"extensions": job.extensions} if job.extensions else {}))
    plan = make_plan(source, job.plan, storage)
    job_uri, plan_uri = join(job.output, JOB_FILE), join(job.output, PLAN_FILE)
    if _exists(job_uri, storage):
        fs, path = filesystem(job_uri, storage)
        old = json.loads(with_retries(lambda: fs.cat_file(path), f"read {job_uri}"))
        diff = content_diff(old.get("content", {}), job.content())
        if diff:
            raise OutputMismatchError(
                f"{job.output} holds a dataset made with other settings ({'; '.join(diff)}); "
                "rerun with the same settings to resume, or pass --overwrite to start over"
            )
    if _exists(plan_uri, storage):
        try:
            plan.check_same_as(Plan.load(plan_uri, storage))
        except ValueError as exc:
            raise OutputMismatchError(f"{job.output}: {exc}; pass --overwrite to start over") from None
    try:
        check_compatible(job.output, file_meta, storage)
    except ValueError as exc:
        raise OutputMismatchError(f"{exc}; or pass --overwrite") from None
    if not _exists(job_uri, storage):
        put_atomic(job_uri, json.dumps({"content": job.content()}, indent=1, sort_keys=True).encode(), storage)
    if not _exists(plan_uri, storage):
        plan.save(plan_uri, storage)
    commits = read_commits(job.output, storage)
    stray = sorted(set(commits) - set(range(plan.n_shards)))
    if stray:
        raise OutputMismatchError(f"{job.output} has commit markers for shards {stray[:10]} outside the plan")
    done = frozenset(commits)
    todo = tuple(i for i in range(plan.n_shards) if i not in done)
    logger.info("%s: %d of %d shards already committed", job.output, len(done), plan.n_shards)
    return Prepared(plan=plan, done=done, todo=todo)
