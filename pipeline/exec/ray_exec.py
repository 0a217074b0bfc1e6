"""The Ray driver of the tokenize job.

`run_job`: start the tokenize actors (`pipeline.exec.worker.ShardWorker`, sized by
`pipeline.exec.pool`) and learn the tokenizer from the first one, reconcile the output with the
plan (`prepare_output`), hand shards to the actors and retry the shards of dead ones
(`_dispatch`), then write the manifest last (`_finalise`). Joining or starting Ray is
`pipeline.exec.cluster`.
"""

from __future__ import annotations

import heapq
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.exec.cluster import init_ray, shutdown_ray
from pipeline.exec.pool import ActorPool
from pipeline.exec.worker import ShardWorker
from pipeline.io.dataset import DatasetDir
from pipeline.io.writer import write_manifest
from pipeline.job.job import ExecConfig, JobConfig, JobResult
from pipeline.job.prepare import Prepared, prepare_output
from pipeline.plan.plan import Plan
from schemas.tokens import TokenFileMeta

logger = logging.getLogger(__name__)

SHOW_EVERY_S = 0.25  # how often the driver reads the progress board while shards run


def run_job(job: JobConfig, address: str | None = None, overwrite: bool = False, progress: bool = True,
            workers_out: list[Any] | None = None, plan: Plan | None = None, retry_errors: bool = False,
            force_unlock: bool = False) -> JobResult:
    """Run (or resume) the job to a finished dataset. `workers_out` receives the live actor
    handles (for operational tooling and fault-injection tests); `plan`: the corpus as `preflight`
    listed it (listed again here when None)."""
    from pipeline.io.lease import Lease

    t0 = time.monotonic()
    lease = Lease(DatasetDir(job.output, job.storage), ttl_s=job.execution.lease_ttl_s)
    lease.acquire(force=force_unlock)  # before anything touches OUTPUT; LeaseHeldError names the holder
    try:
        started = init_ray(address)
        try:
            pool = ActorPool(job, ShardWorker, workers_out)
            meta = pool.start()
            prepared = prepare_output(job, meta, overwrite=overwrite, plan=plan, retry_errors=retry_errors)
            totals = _dispatch(job, prepared, pool, progress, lease.info.token)
            lease.check()
            return _finalise(job, prepared, pool, meta, totals, t0)
        finally:
            if started:
                shutdown_ray()
    finally:
        lease.release()


@dataclass
class _Totals:
    videos: int = 0
    clips: int = 0
    tokens: int = 0
    errors: int = 0
    retries: int = 0
    failed: dict[int, str] = field(default_factory=dict)  # shard -> last error, after every attempt
    nodes: set[str] = field(default_factory=set)  # nodes whose actors committed shards


class JobIncompleteError(RuntimeError):
    """Shards stayed uncommitted after every attempt; the dataset has no manifest. A rerun of the
    same command keeps the committed shards and retries these."""


def retry_delay_s(ex: ExecConfig, attempt: int) -> float:
    """Jittered exponential backoff before try `attempt + 1` of a shard: a storage outage or a lost
    node gets time to pass instead of burning every attempt within a second."""
    return min(ex.max_retry_delay_s, ex.retry_delay_s * 2 ** (attempt - 1)) * (0.5 + random.random())


def _cause(exc: BaseException) -> str:
    inner = getattr(exc, "cause", None) or exc
    return " ".join(f"{type(inner).__name__}: {inner}".split())[:500]


def _dispatch(job: JobConfig, prepared: Prepared, pool: ActorPool, progress: bool,
              lease_token: str | None = None) -> _Totals:
    """Every shard still to do, one at a time per actor. A shard whose actor died or whose task failed
    (a transient failure is never committed: `process_shard` raises) is tried again after a backoff,
    up to `max_shard_attempts` tries; then it is left uncommitted and the others go on."""
    import ray
    from ray.exceptions import RayActorError, RayError, RayTaskError

    from pipeline.exec.board import ProgressBoard
    from pipeline.job.progress import JobProgress, speed_line

    ex = job.execution
    plan = prepared.plan
    todo: deque[tuple[int, int]] = deque((s, 1) for s in prepared.todo)
    later: list[tuple[float, int, int]] = []  # heap of (due time, shard, attempt): retries after their backoff
    running: dict[Any, tuple[int, int, int]] = {}  # ref -> (shard, attempt, worker index)
    idle = list(pool.slots)
    totals = _Totals()
    refresh_at = time.monotonic() + ex.pool_refresh_s

    def refresh() -> None:
        # Nodes that joined get actors; actors of nodes that left are dropped. A busy one's shard then
        # fails and is retried elsewhere: also one sent to an actor replaced on its node in the seconds
        # before the cluster declared the node dead, which would otherwise wait for it forever.
        nonlocal refresh_at
        refresh_at = time.monotonic() + ex.pool_refresh_s
        for w in pool.gone():
            if w in idle:
                idle.remove(w)
            pool.drop(w)
        idle.extend(pool.grow())
        pool.look()
    first = pool.describe.get(next(iter(pool.slots)), {}) if pool.slots else {}
    line = speed_line(first.get("device", job.tokenize.device), len(pool.slots), tuple(job.decode.resolution),
                      job.decode.clip_frames, job.tokenize.router, tuple(first.get("passes", (1, 1, 0))))
    logger.info("%s", line)
    done_videos = sum(len(plan.shard(s).entries) for s in prepared.done)
    bar = JobProgress(plan.n_videos, done_videos, plan.n_shards, len(prepared.done), enabled=progress)
    if prepared.todo:
        bar.note(line)
    board = ray.remote(ProgressBoard).options(num_cpus=0).remote()  # running shards post (videos, clips) here
    show_at = 0.0

    def show() -> None:
        # at most every SHOW_EVERY_S: one small actor call
        nonlocal show_at
        if not progress or time.monotonic() < show_at:
            return
        show_at = time.monotonic() + SHOW_EVERY_S
        try:
            videos, clips = ray.get(board.totals.remote(), timeout=10)
        except RayError:  # the board is best effort: the job goes on without the line
            return
        bar.show(videos, clips, len(prepared.done) + committed, totals.errors)

    committed = 0

    def dispatch() -> None:
        while idle:
            if later and later[0][0] <= time.monotonic():
                _, shard, attempt = heapq.heappop(later)
            elif todo:
                shard, attempt = todo.popleft()
            else:
                return
            w = idle.pop()
            entries = [e.to_dict() for e in plan.shard(shard).entries]
            running[pool.handle(w).run_shard.remote(shard, entries, lease_token, board)] = (shard, attempt, w)

    try:
        dispatch()
        while running or later:
            if not running:  # only retries waiting out their backoff
                time.sleep(max(0.0, later[0][0] - time.monotonic()))
                dispatch()
                continue
            if time.monotonic() >= refresh_at:
                refresh()
            due = [refresh_at, time.monotonic() + SHOW_EVERY_S] + ([later[0][0]] if later and idle else [])
            ready, _ = ray.wait(list(running), num_returns=1, timeout=max(0.0, min(due) - time.monotonic()))
            show()
            if not ready:
                dispatch()
                continue
            shard, attempt, w = running.pop(ready[0])
            if w in pool.slots:  # not dropped by refresh() while busy
                idle.append(w)
            try:
                commit = ray.get(ready[0])
            except (RayActorError, RayTaskError) as exc:
                if isinstance(exc, RayActorError) and w in pool.slots and not pool.replace(w):
                    idle.remove(w)
                if attempt >= ex.max_shard_attempts:
                    logger.error("shard %d failed %d times, left uncommitted: %s", shard, attempt, _cause(exc))
                    totals.failed[shard] = _cause(exc)
                else:
                    delay = retry_delay_s(ex, attempt)
                    logger.warning("shard %d failed on worker %d (attempt %d): %s; retrying in %.1fs", shard, w,
                                   attempt, _cause(exc), delay)
                    totals.retries += 1
                    heapq.heappush(later, (time.monotonic() + delay, shard, attempt + 1))
                dispatch()
                continue
            totals.videos += commit["n_videos"]
            totals.clips += commit["n_rows"]
            totals.tokens += commit["n_tokens"]
            totals.errors += commit["n_errors"]
            totals.nodes.add(pool.describe.get(w, {}).get("node") or str(w))
            committed += 1
            show_at = 0.0
            show()
            dispatch()
    finally:
        bar.close()
        ray.kill(board)
    return totals


def _growth_counts(prepared: Prepared) -> dict[str, int]:
    g = prepared.growth
    return {"added": g.added, "removed": g.removed, "changed": g.changed} if g else {}


def _finalise(job: JobConfig, prepared: Prepared, pool: ActorPool, meta: TokenFileMeta, totals: _Totals,
              t0: float) -> JobResult:
    """Release the actors; then, if every shard is committed, write the manifest (last), else
    raise JobIncompleteError naming the shards left."""
    pool.kill()
    plan = prepared.plan
    if totals.failed:
        shards = sorted(totals.failed)
        raise JobIncompleteError(
            f"{len(shards)} of {plan.n_shards} shards are not committed (shards {shards[:20]}); last error of "
            f"shard {shards[0]}: {totals.failed[shards[0]]}. The {plan.n_shards - len(shards)} committed shards "
            "are kept: rerun the same command to retry the rest")
    manifest = write_manifest(DatasetDir(job.output, job.storage), params=job.to_dict(),
                              expected_shards=range(plan.n_shards))
    return JobResult(output=job.output, n_shards=plan.n_shards, shards_run=len(prepared.todo),
                     shards_skipped=len(prepared.done), videos=totals.videos, clips=manifest.n_clips,
                     tokens=manifest.n_tokens, errors=manifest.n_errors, shard_retries=totals.retries,
                     seconds=time.monotonic() - t0, tokenizer_id=meta.tokenizer_id, beta=meta.beta,
                     expected_info=meta.expected_info, router=meta.router, workers=pool.peak,
                     nodes=len(totals.nodes), generations=len(plan.generations), **_growth_counts(prepared))
