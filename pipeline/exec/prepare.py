"""Before a job runs: plan the corpus, and check that an existing output is this job's.

A fresh output gets `job.json` (the settings that decide its rows) and `plan.json` (the
listed corpus and its shards). A rerun lists again and refuses, saying what differs, if the
corpus or the settings changed; `overwrite` deletes the old dataset first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pipeline.exec.job import JobConfig, content_diff
from pipeline.exec.plan import Plan, make_plan
from pipeline.io.dataset import DatasetDir
from pipeline.io.writer import check_compatible
from schemas.layout import COMMITS_DIR, ERRORS_DIR, JOB_FILE, MANIFEST_NAME, PLAN_FILE, TOKENS_DIR
from schemas.tokens import TokenFileMeta

logger = logging.getLogger(__name__)


class OutputMismatchError(ValueError):
    """The output holds a dataset made with other settings, from another corpus or tokenizer."""


class PreflightError(ValueError):
    """Something the job needs is missing or unusable; found before any worker starts."""


def preflight(job: JobConfig) -> Plan:
    """Check, before Ray starts, what can fail without it, and list the corpus once.

    The checkpoint must be a readable tokenizer checkpoint; the input must exist and hold at
    least one video; the output must not be a file. Storage errors (missing credentials, an
    unreachable endpoint) surface here from the listing. Raises PreflightError naming the thing
    and the value; returns the plan, which `run_job` then uses instead of listing again.
    """
    from tokenizer.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, read_header

    try:
        read_header(job.tokenize.checkpoint or DEFAULT_CHECKPOINT)
    except CheckpointError as exc:
        raise PreflightError(str(exc)) from None
    ds = DatasetDir(job.output, job.storage)
    try:
        if ds.fs.isfile(ds.path()):
            raise PreflightError(f"output {job.output!r} is a file, not a folder or prefix")
        plan = make_plan(job.source, job.plan, job.storage)
    except PreflightError:
        raise
    except FileNotFoundError as exc:
        raise PreflightError(f"input {job.input!r} not found ({exc})") from None
    except (OSError, ValueError, PermissionError) as exc:
        raise PreflightError(f"cannot read {job.input!r}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - botocore's credential / endpoint errors are not OSErrors
        raise PreflightError(f"cannot reach storage for {job.input!r}: {type(exc).__name__}: {exc}") from None
    if not plan.entries:
        exts = "" if job.source.resolved_kind == "list" else f" with extensions {', '.join(job.source.extensions)}"
        raise PreflightError(f"no videos under input {job.input!r}{exts}")
    return plan


@dataclass(frozen=True)
class Prepared:
    plan: Plan
    done: frozenset[int]
    todo: tuple[int, ...]


def clear_output(ds: DatasetDir) -> None:
    """Delete what a job writes under the output (and nothing else)."""
    ds.remove([name for name in (MANIFEST_NAME, JOB_FILE, PLAN_FILE) if ds.exists(name)])
    for folder in (COMMITS_DIR, TOKENS_DIR, ERRORS_DIR):
        ds.remove(ds.find(folder))
    ds.invalidate_cache()
    logger.info("cleared %s", ds.root)


def prepare_output(job: JobConfig, file_meta: TokenFileMeta, overwrite: bool = False,
                   plan: Plan | None = None) -> Prepared:
    """Plan the job (unless `plan` is given: `preflight` listed it) and reconcile it with what the
    output already holds."""
    ds = DatasetDir(job.output, job.storage)
    if overwrite:
        clear_output(ds)
    if plan is None:
        plan = make_plan(job.source, job.plan, job.storage)
    has_job, has_plan = ds.exists(JOB_FILE), ds.exists(PLAN_FILE)
    if has_job:
        old = json.loads(ds.read(JOB_FILE))
        diff = content_diff(old.get("content", {}), job.content())
        if diff:
            raise OutputMismatchError(
                f"{job.output} holds a dataset made with other settings ({'; '.join(diff)}); "
                "rerun with the same settings to resume, or pass --overwrite to start over"
            )
    if has_plan:
        try:
            plan.check_same_as(Plan.from_json(ds.read(PLAN_FILE).decode("utf-8")))
        except ValueError as exc:
            raise OutputMismatchError(f"{job.output}: {exc}; pass --overwrite to start over") from None
    try:
        check_compatible(ds, file_meta)
    except ValueError as exc:
        raise OutputMismatchError(f"{exc}; or pass --overwrite") from None
    if not has_job:
        ds.put(JOB_FILE, json.dumps({"content": job.content()}, indent=1, sort_keys=True).encode())
    if not has_plan:
        ds.put(PLAN_FILE, plan.to_json().encode("utf-8"))
    commits = ds.commits()
    stray = sorted(set(commits) - set(range(plan.n_shards)))
    if stray:
        raise OutputMismatchError(f"{job.output} has commit markers for shards {stray[:10]} outside the plan")
    done = frozenset(commits)
    todo = tuple(i for i in range(plan.n_shards) if i not in done)
    logger.info("%s: %d of %d shards already committed", job.output, len(done), plan.n_shards)
    return Prepared(plan=plan, done=done, todo=todo)
