"""The Ray execution of the tokenize job: the one module that imports Ray.

Driver (`run_job`): start the tokenize actors and learn the tokenizer from the first one
(`_start_workers`), reconcile the output with the plan (`prepare_output`), hand shards to the
actors and retry the shards of dead ones (`_dispatch`), then write the manifest last
(`_finalise`).

Actor (`ShardWorker`): for its shard, decode videos in plan order, a bounded window at a time,
isolated so a crashed or hung native decoder kills only a task or a child process: with a GPU
model, in Ray tasks running ahead of the model; on CPU, in the actor's own child processes
between model batches (`IsolatedDecoderPool`). Then batch, tokenize, write (`process_shard`).
"""

from __future__ import annotations

import heapq
import logging
import os
import random
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.decode.failures import VideoFailure
from pipeline.decode.isolate import IsolatedDecoderPool
from pipeline.decode.source import FaultableDecode, fetch_and_decode
from pipeline.decode.step import DecodedVideo
from pipeline.exec.job import ExecConfig, JobConfig, JobResult, decode_overlaps
from pipeline.exec.plan import Plan
from pipeline.exec.pool import ActorPool
from pipeline.exec.prepare import Prepared, prepare_output
from pipeline.exec.reaper import start_reaper, stop_reaper
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import ManifestEntry
from pipeline.io.storage import StorageConfig
from pipeline.io.writer import write_manifest
from schemas.tokens import TokenFileMeta

logger = logging.getLogger(__name__)


def decode_task(uri: str, storage: dict[str, Any], decode: dict[str, Any]) -> DecodedVideo | VideoFailure:
    """Fetch and decode one video (the body of a Ray decode task)."""
    return fetch_and_decode(uri, StorageConfig.from_dict(storage), FaultableDecode(decode))


def _ordered_decodes(entries: list[ManifestEntry], job: JobConfig) -> Iterator[DecodedVideo | VideoFailure]:
    """Overlap mode: Ray decode tasks a sliding window of `decode_window` videos ahead of the
    consumer, which runs the model meanwhile (on a GPU); results in entry order (backpressure)."""
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    ex = job.execution
    remote = ray.remote(decode_task).options(num_cpus=ex.decode_cpus, max_retries=ex.decode_attempts - 1)
    storage, decode = job.storage.to_dict(), job.decode.to_dict()

    def submit(entry: ManifestEntry) -> Any:
        return remote.remote(entry.uri, storage, decode)

    def resolve(entry: ManifestEntry, ref: Any) -> DecodedVideo | VideoFailure:
        result: DecodedVideo | VideoFailure | None = None
        for attempt in range(1, ex.decode_attempts + 1):
            try:
                return ray.get(ref, timeout=ex.decode_timeout_s)
            except GetTimeoutError:
                ray.cancel(ref, force=True)
                logger.warning("decode of %s timed out after %.0fs (attempt %d/%d)", entry.uri,
                               ex.decode_timeout_s, attempt, ex.decode_attempts)
                result = VideoFailure(entry.uri, "decode", True, "DecoderTimeout",
                                      f"{entry.uri}: decoder did not finish within {ex.decode_timeout_s:g}s "
                                      f"in {attempt} attempts")
            except RayError as exc:  # the decode process crashed on every retry Ray made
                logger.warning("decode of %s crashed: %s", entry.uri, type(exc).__name__)
                return VideoFailure(entry.uri, "decode", True, "DecoderCrashed",
                                    f"{entry.uri}: decoder process died ({type(exc).__name__}) "
                                    f"in {ex.decode_attempts} attempts")
            if attempt < ex.decode_attempts:
                ref = submit(entry)
        assert result is not None
        return result

    queue: deque[tuple[ManifestEntry, Any]] = deque()
    upcoming = iter(entries)
    for entry in upcoming:
        queue.append((entry, submit(entry)))
        if len(queue) >= ex.decode_window:
            break
    while queue:
        entry, ref = queue.popleft()
        result = resolve(entry, ref)
        nxt = next(upcoming, None)
        if nxt is not None:
            queue.append((nxt, submit(nxt)))
        yield result


def _gpu_ids() -> list[str]:
    import ray

    return [str(g) for g in ray.get_gpu_ids()]


def _assigned_gpus() -> bool:
    return bool(_gpu_ids())


class ShardWorker:
    """Actor body: holds the tokenizer; tokenizes whole shards."""

    def __init__(self, job: dict[str, Any], threads: int) -> None:
        # Ray starts workers with OMP_NUM_THREADS=1; start OpenMP with the actor's share of its
        # node's cores (set before torch and its OpenMP runtime load here), not raising it afterwards.
        # Decoding alternates with the model on CPU and is ~20x cheaper per clip: both get every core.
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        from pipeline.exec.tokenize_step import TokenizeStep

        self.job = JobConfig.from_dict(job)
        self.threads = threads
        torch.set_num_threads(threads)
        self.step = TokenizeStep(self.job.tokenize)
        self.ds = DatasetDir(self.job.output, self.job.storage)
        self.local: IsolatedDecoderPool | None = None
        self.note = ""
        if _assigned_gpus() and self.step.device.type != "cuda":
            self.note = (f"Ray assigned GPU {_gpu_ids()} but torch sees no CUDA device (torch {torch.__version__}, "
                         f"CUDA build: {torch.version.cuda or 'no'}): the model runs on the CPU")
            logger.warning("%s", self.note)

    def describe(self) -> dict[str, Any]:
        """Where this actor runs and on what: node id, Ray's GPU ids, torch device, threads, and why
        a GPU actor runs on the CPU (`note`)."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "gpu_ids": _gpu_ids(),
                "device": str(self.step.device), "threads": self.threads, "note": self.note, "pid": os.getpid()}

    def file_meta(self) -> dict[str, Any]:
        return self.step.file_meta.to_dict()

    def pid(self) -> int:
        return os.getpid()

    def run_shard(self, shard_id: int, entries: list[dict[str, Any]], lease_token: str | None = None) -> dict[str, Any]:
        from pipeline.exec.shard import process_shard
        from pipeline.io.lease import check_lease

        es = [ManifestEntry.from_dict(e) for e in entries]
        ex = self.job.execution
        if decode_overlaps(ex, self.step.device.type == "cuda"):
            results: Iterator[DecodedVideo | VideoFailure] = _ordered_decodes(es, self.job)
        else:
            if self.local is None:
                self.local = IsolatedDecoderPool(FaultableDecode(self.job.decode.to_dict()), self.job.storage,
                                                 ex.isolation, slots=self.threads, window=ex.decode_window)
            results = self.local.decodes([e.uri for e in es])
        check = None if lease_token is None else (lambda: check_lease(self.ds, lease_token))
        return process_shard(shard_id, es, results, self.step, self.ds, before_commit=check).to_dict()


_reaper: subprocess.Popen[bytes] | None = None


def init_ray(address: str | None) -> bool:
    """Join a cluster (address given, or RAY_ADDRESS set, e.g. inside a submitted job) or start a local
    one. Returns False when Ray was already initialised by the caller (then it is left running)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # Ray logs its token-auth mode (enabled by default, or the user's RAY_AUTH_MODE) at every local
        # start; it says nothing about this job, so it shows only with -v.
        if not logger.isEnabledFor(logging.INFO):
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
        global _reaper
        _reaper = start_reaper()  # ends this Ray node's processes if the driver is killed outright
    else:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    return True


def shutdown_ray() -> None:
    """End the Ray this process started (and tell its reaper the driver did so itself)."""
    import ray

    global _reaper
    ray.shutdown()
    stop_reaper(_reaper)
    _reaper = None


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
            totals = _dispatch(job, prepared, pool, progress, t0, lease.info.token)
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


def _dispatch(job: JobConfig, prepared: Prepared, pool: ActorPool, progress: bool, t0: float,
              lease_token: str | None = None) -> _Totals:
    """Every shard still to do, one at a time per actor. A shard whose actor died or whose task failed
    (a transient failure is never committed: `process_shard` raises) is tried again after a backoff,
    up to `max_shard_attempts` tries; then it is left uncommitted and the others go on."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError
    from tqdm import tqdm

    ex = job.execution
    plan = prepared.plan
    todo: deque[tuple[int, int]] = deque((s, 1) for s in prepared.todo)
    later: list[tuple[float, int, int]] = []  # heap of (due time, shard, attempt): retries after their backoff
    running: dict[Any, tuple[int, int, int]] = {}  # ref -> (shard, attempt, worker index)
    idle = list(pool.slots)
    totals = _Totals()
    refresh_at = time.monotonic() + ex.pool_refresh_s

    def refresh() -> None:
        # Nodes that joined get actors; idle actors of nodes that left are dropped (busy ones fail
        # their shard, which is retried elsewhere).
        nonlocal refresh_at
        refresh_at = time.monotonic() + ex.pool_refresh_s
        for w in pool.gone():
            if w in idle:
                idle.remove(w)
                pool.drop(w)
        idle.extend(pool.grow())
        pool.look()
    bar = tqdm(total=plan.n_shards, initial=len(prepared.done), desc="shards", unit="shard", disable=not progress)

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
            running[pool.handle(w).run_shard.remote(shard, entries, lease_token)] = (shard, attempt, w)

    try:
        dispatch()
        while running or later:
            if not running:  # only retries waiting out their backoff
                time.sleep(max(0.0, later[0][0] - time.monotonic()))
                dispatch()
                continue
            if time.monotonic() >= refresh_at:
                refresh()
            due = [refresh_at] + ([later[0][0]] if later and idle else [])
            ready, _ = ray.wait(list(running), num_returns=1, timeout=max(0.0, min(due) - time.monotonic()))
            if not ready:
                dispatch()
                continue
            shard, attempt, w = running.pop(ready[0])
            idle.append(w)
            try:
                commit = ray.get(ready[0])
            except (RayActorError, RayTaskError) as exc:
                if isinstance(exc, RayActorError) and not pool.replace(w):
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
            elapsed = max(time.monotonic() - t0, 1e-9)
            bar.set_postfix(videos=totals.videos, clips=totals.clips, errors=totals.errors,
                            clips_s=f"{totals.clips / elapsed:.2f}")
            bar.update(1)
            dispatch()
    finally:
        bar.close()
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
