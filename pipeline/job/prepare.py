"""Before a job runs: plan the corpus, and check that an existing output is this job's.

A fresh output gets `job.json` (the settings that decide its rows) and `plan.json` (the
listed corpus and its shards). A rerun lists again and refuses, saying what differs, if the
corpus or the settings changed; `overwrite` deletes the old dataset first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from pipeline.job.job import JobConfig, content_diff
from pipeline.plan.copies import find_copies
from pipeline.plan.plan import Growth, Plan, make_plan
from pipeline.plan.files import is_generation_file
from pipeline.plan.store import load_plan, save_plan
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import canonical_input
from pipeline.io.writer import check_compatible
from schemas.layout import (
    COMMITS_DIR,
    JOB_FILE,
    MANIFEST_NAME,
    PART_FOLDERS,
    PLAN_DIR,
    PLAN_FILE,
    ROOT_FILES,
    TEMP_PREFIX,
    commit_marker,
    error_part,
    is_part_file,
)
from schemas.manifest import ShardCommit
from schemas.tokens import SCHEMA_NAME, TokenFileMeta

logger = logging.getLogger(__name__)

NAMED_NEW = 5  # new videos (and copies) a growth message names


class OutputMismatchError(ValueError):
    """The output holds a dataset made with other settings, from another corpus or tokenizer."""


class PreflightError(ValueError):
    """Something the job needs is missing or unusable; found before any worker starts."""


def preflight(job: JobConfig, need_mean: bool = True) -> Plan:
    """Check, before Ray starts, what can fail without it, and list the corpus once.

    The checkpoint must be a readable tokenizer checkpoint able to route with the job's router
    (with its E[signal] set, unless the job gives one or `need_mean` is False: `--beta auto`
    measures it on a sample); the input must exist and hold at
    least one video; the output must not be a file. Storage errors (missing credentials, an
    unreachable endpoint) surface here from the listing. Raises PreflightError naming the thing
    and the value; returns the plan, which `run_job` then uses instead of listing again.
    """
    from tokenizer.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, router_problem

    try:
        problem = router_problem(job.tokenize.checkpoint or DEFAULT_CHECKPOINT, job.tokenize.router,
                                 need_mean and job.tokenize.expected_info is None)
    except CheckpointError as exc:
        raise PreflightError(str(exc)) from None
    if problem:
        raise PreflightError(problem)
    ds = DatasetDir(job.output, job.storage)
    try:
        if ds.fs.isfile(ds.path()):
            raise PreflightError(f"output {job.output!r} is a file, not a folder or prefix")
        check_output_is_ours(ds)
        plan = make_plan(job.source, job.plan, job.storage)
    except PreflightError:
        raise
    except FileNotFoundError as exc:
        raise PreflightError(f"input {job.input!r} not found ({exc})") from None
    except (OSError, ValueError, PermissionError) as exc:
        raise PreflightError(f"cannot read {job.input!r}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - botocore's credential / endpoint errors are not OSErrors
        raise PreflightError(f"cannot reach storage for {job.input!r}: {type(exc).__name__}: {exc}") from None
    if not plan.n_videos:
        exts = "" if job.source.resolved_kind == "list" else f" with extensions {', '.join(job.source.extensions)}"
        raise PreflightError(f"no videos under input {job.input!r}{exts}")
    return plan


@dataclass(frozen=True)
class Prepared:
    """plan: as it stands after this run's listing; growth: how that listing differed from the
    plan the output held (None for a fresh output)."""

    plan: Plan
    done: frozenset[int]
    todo: tuple[int, ...]
    growth: Growth | None = None


def _apply_growth(ds: DatasetDir, job: JobConfig, plan: Plan, growth: Growth, redo: set[int]) -> None:
    """Record a grown plan before any new shard runs. Shards to redo lose the manifest first (a
    reader then waits for the run to end), then their commit markers."""
    logger.warning("%s: the input changed since the last run: %s", job.output, growth.describe())
    if (growth.removed or growth.changed) and not redo:
        logger.warning("%s: %d removed and %d changed videos keep the rows they were tokenized into "
                       "(--on-change retokenize redoes their shards)", job.output, growth.removed, growth.changed)
    if redo:
        ds.remove([MANIFEST_NAME])
        ds.remove([commit_marker(s) for s in sorted(redo)])
        ds.invalidate_cache()
        logger.warning("%s: redoing %d shards that hold removed or changed videos", job.output, len(redo))
    if growth.added:
        ids = plan.generation_shards()[-1]
        names: list[str] = []
        for shard in ids:
            names += [e.uri for e in plan.shard(shard).entries][: NAMED_NEW - len(names)]
            if len(names) >= NAMED_NEW:
                break
        more = f" and {growth.added - len(names)} more" if growth.added > len(names) else ""
        logger.warning("%s: generation %d: %d new videos in shards %d..%d: %s%s", job.output,
                       len(plan.generations) - 1, growth.added, ids.start, ids.stop - 1, ", ".join(names), more)
        copies = find_copies(plan, ids, job.storage)
        if copies:
            shown = ", ".join(f"{new} = {old}" for new, old in copies[:NAMED_NEW])
            logger.warning("%s: %d of the new videos are byte-identical copies of videos already planned, tokenized "
                           "again under their new names: %s%s", job.output, len(copies), shown,
                           " ..." if len(copies) > NAMED_NEW else "")
    save_plan(ds, plan)


def recorded_tokenize(job: JobConfig) -> dict[str, Any] | None:
    """The tokenize settings the dataset at job.output records (job.json), None when there is none or
    it cannot be read: what a rerun's unnamed options resume with (`recorded_router`, `resume_beta`,
    `pipeline.job.router_fit`)."""
    ds = DatasetDir(job.output, job.storage)
    try:
        tokenize = json.loads(ds.read(JOB_FILE)).get("content", {}).get("tokenize")
    except (OSError, ValueError, AttributeError):
        return None
    return tokenize if isinstance(tokenize, dict) else None


def recorded_router(job: JobConfig) -> str | None:
    """The router the dataset at job.output was made with (job.json; "elbo" for datasets from before
    routers were recorded), None when there is none or it cannot be read: what a rerun that names no
    --router resumes with, so that the same command keeps resuming when the default changes."""
    tokenize = recorded_tokenize(job)
    return str(tokenize.get("router", "elbo")) if tokenize is not None else None


def resume_beta(job: JobConfig, recorded: dict[str, Any]) -> JobConfig:
    """The job with the beta (and its E[signal] and tuning record, if tuned) that the `recorded`
    tokenize settings hold: what a rerun that names no --beta resumes with, so that a dataset made
    before the default beta changed keeps resuming with the same command (1.0, the old default, for
    a record without one)."""
    from pipeline.tuning.record import TuningRecord

    tuning = recorded.get("tuning")
    tok = dataclasses.replace(job.tokenize, beta=float(recorded.get("beta", 1.0)),
                              expected_info=recorded.get("expected_info"),
                              tuning=TuningRecord.from_dict(tuning) if tuning is not None else None)
    return dataclasses.replace(job, tokenize=tok)


def clear_output(ds: DatasetDir) -> None:
    """Delete the dataset's files (`--overwrite`): the manifest, job.json, plan.json, the plan's entry
    files and every part, marker and temp file the layout names. Nothing else: a user's own file in OUTPUT (or in
    OUTPUT/tokens) stays, and so does the tuning report `--beta auto` has just written."""
    ours = [name for name in (MANIFEST_NAME, JOB_FILE, PLAN_FILE) if ds.exists(name)]
    for folder, _ in PART_FOLDERS:
        ours += [f"{folder}/{name}" for name in ds.list(folder) if is_part_file(folder, name)]
    ours += [f"{PLAN_DIR}/{name}" for name in ds.list(PLAN_DIR) if is_generation_file(name)]
    ds.remove(ours)
    ds.invalidate_cache()
    logger.info("cleared %s (%d files)", ds.root, len(ours))


def check_output_is_ours(ds: DatasetDir) -> None:
    """Refuse an OUTPUT that holds files but no infotok dataset (not even a started one): the job
    would write among, and `--overwrite` would then clear around, someone else's files."""
    names = ds.list("")
    if not names:
        return
    if JOB_FILE in names or PLAN_FILE in names or COMMITS_DIR in names:
        return
    if PLAN_DIR in names and all(is_generation_file(n) for n in ds.list(PLAN_DIR)):  # a plan being written
        names = [n for n in names if n != PLAN_DIR]
    if MANIFEST_NAME in names:
        try:
            if ds.read_manifest().schema_name == SCHEMA_NAME:
                return
        except (ValueError, KeyError, TypeError):
            pass
    foreign = [n for n in names if n not in ROOT_FILES and not n.startswith(TEMP_PREFIX)]  # temp: a killed write
    if foreign or MANIFEST_NAME in names:
        shown = ", ".join(repr(n) for n in (foreign or [MANIFEST_NAME])[:5])
        raise PreflightError(f"output {ds.root!r} is a non-empty folder that is not an infotok dataset (it holds "
                             f"{shown}); choose an empty or new OUTPUT")


def shards_with_transient_errors(ds: DatasetDir, commits: dict[int, ShardCommit]) -> set[int]:
    """Committed shards with an error row of kind "transient" (datasets written before transient
    failures stopped being committed): what `--retry-errors` redoes."""
    return {shard for shard, c in commits.items()
            if c.n_errors and "transient" in ds.read_table(error_part(shard), ["kind"]).column("kind").to_pylist()}


def prepare_output(job: JobConfig, file_meta: TokenFileMeta, overwrite: bool = False,
                   plan: Plan | None = None, retry_errors: bool = False) -> Prepared:
    """Plan the job (unless `plan` is given: `preflight` listed it) and reconcile it with what the
    output already holds. retry_errors: committed shards with transient error rows are redone."""
    ds = DatasetDir(job.output, job.storage)
    if overwrite:
        clear_output(ds)
    if plan is None:
        plan = make_plan(job.source, job.plan, job.storage)
    has_job, has_plan = ds.exists(JOB_FILE), ds.exists(PLAN_FILE)
    if has_job:
        old = json.loads(ds.read(JOB_FILE)).get("content", {})
        if isinstance(old.get("input"), str):  # written before INPUT was kept canonical
            old["input"] = canonical_input(old["input"])
        if isinstance(old.get("tokenize"), dict):  # written before the router was recorded: the paper's
            old["tokenize"].setdefault("router", "elbo")
        diff = content_diff(old, job.content())
        if diff:
            raise OutputMismatchError(
                f"{job.output} holds a dataset made with other settings ({'; '.join(diff)}); "
                "rerun with the same settings to resume, or pass --overwrite to start over"
            )
    growth: Growth | None = None
    redo: set[int] = set()
    if has_plan:
        try:
            old_plan = load_plan(ds)
            if not has_job and old_plan.source != job.source:  # planned by `infotok plan` for another input
                raise ValueError(f"the plan there lists {old_plan.source.uri!r} (extensions "
                                 f"{','.join(old_plan.source.extensions)}), not {job.source.uri!r} (extensions "
                                 f"{','.join(job.source.extensions)})")
            plan, growth, redo = old_plan.grow(plan, job.execution.on_change)
        except ValueError as exc:
            raise OutputMismatchError(f"{job.output}: {exc}; pass --overwrite to start over") from None
    try:
        check_compatible(ds, file_meta)
    except ValueError as exc:
        raise OutputMismatchError(f"{exc}; or pass --overwrite") from None
    if not has_job:
        ds.put(JOB_FILE, json.dumps({"content": job.content()}, indent=1, sort_keys=True).encode())
    if growth is not None and not growth.empty:
        _apply_growth(ds, job, plan, growth, redo)
    if not has_plan:
        save_plan(ds, plan)
    commits = ds.commits()
    stray = sorted(set(commits) - set(range(plan.n_shards)))
    if stray:
        raise OutputMismatchError(f"{job.output} has commit markers for shards {stray[:10]} outside the plan")
    done = frozenset(commits) - redo
    if retry_errors:
        redo = shards_with_transient_errors(ds, commits)
        if redo:
            logger.info("%s: redoing %d committed shards with transient error rows", job.output, len(redo))
        done -= redo
    todo = tuple(i for i in range(plan.n_shards) if i not in done)
    logger.info("%s: %d of %d shards already committed", job.output, len(done), plan.n_shards)
    return Prepared(plan=plan, done=done, todo=todo, growth=growth)
