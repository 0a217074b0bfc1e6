"""The Ray execution of the tokenize job: the one module that wires steps into Ray.

Driver: plan -> reconcile with the output -> hand shards to tokenize actors (one per GPU,
or CPU actors) -> retry the shards of dead actors -> write the manifest last.
Actor: for its shard, decode videos in plan order, a bounded window at a time, isolated so a
crashed or hung native decoder kills only a task or child process: with a GPU model, in Ray
tasks running ahead of the model; on CPU, in the actor's own child processes between model
batches. Then batch, tokenize, write.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.decode.step import DecodeConfig, DecodedVideo, DecodeStep
from pipeline.decode.failures import VideoFailure
from pipeline.io.fetch import fetch_bytes
from pipeline.io.inputs import ManifestEntry
from pipeline.exec.job import ExecConfig, JobConfig
from pipeline.exec.prepare import prepare_output
from pipeline.io.storage import StorageConfig
from pipeline.io.writer import write_manifest
from schemas.tokens import TokenFileMeta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    output: str
    n_shards: int
    shards_run: int
    shards_skipped: int
    videos: int
    clips: int
    tokens: int
    errors: int
    shard_retries: int
    seconds: float
    tokenizer_id: str


# Fault drills: "crash=NEEDLE,hang=NEEDLE" makes the decode task of every uri containing NEEDLE
# abort its process or hang, as a native decoder can; used to test (and rehearse) recovery.
FAULT_ENV = "INFOTOK_FAULT_INJECT"


def _inject_fault(uri: str) -> None:
    for item in os.environ.get(FAULT_ENV, "").split(","):
        kind, _, needle = item.partition("=")
        if needle and needle in uri:
            logger.warning("%s: injecting decoder %s for %s", FAULT_ENV, kind, uri)
            if kind == "crash":
                os.abort()
            if kind == "hang":
                time.sleep(24 * 3600)


class FaultableDecode:
    """DecodeStep plus the FAULT_ENV drill: what runs in a Ray decode task or an isolated
    decoder process (picklable)."""

    def __init__(self, decode: dict[str, Any]) -> None:
        self.step = DecodeStep(DecodeConfig.from_dict(decode))

    def __call__(self, data: bytes, uri: str) -> DecodedVideo | VideoFailure:
        _inject_fault(uri)
        return self.step(data, uri)


def decode_video(uri: str, storage: dict[str, Any], decode: dict[str, Any]) -> DecodedVideo | VideoFailure:
    """Fetch and decode one video (runs as a Ray task)."""
    data = fetch_bytes(uri, StorageConfig.from_dict(storage))
    if isinstance(data, VideoFailure):
        return data
    return FaultableDecode(decode)(data, uri)


def _ordered_decodes(entries: list[ManifestEntry], job: JobConfig) -> Iterator[DecodedVideo | VideoFailure]:
    """Overlap mode: Ray decode tasks a sliding window of `decode_window` videos ahead of the
    consumer, which runs the model meanwhile (on a GPU); results in entry order (backpressure)."""
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    ex = job.execution
    remote = ray.remote(decode_video).options(num_cpus=ex.decode_cpus, max_retries=ex.decode_attempts - 1)
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


class LocalDecoders:
    """Alternate mode: the actor decodes a window of videos in its own crash-isolating child
    processes (one per core it may use), then hands the window to the model. On 2 cores this ran
    8.14 clips/s end to end vs 7.41 with one Ray task per video (medians, benchmarks/bench_pipeline.py):
    Ray's per-task dispatch and object transfer cost more than the decoding itself there. The
    children live as long as the actor and exit when its end of their pipe closes."""

    def __init__(self, job: JobConfig, slots: int) -> None:
        import queue

        from pipeline.decode.isolate import IsolatedDecoder, IsolationConfig

        ex = job.execution
        iso = IsolationConfig(timeout_s=ex.decode_timeout_s, attempts=ex.decode_attempts)
        self.job = job
        self.slots = max(1, slots)
        self.idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.slots):
            self.idle.put(IsolatedDecoder(FaultableDecode(job.decode.to_dict()), iso))

    def _one(self, entry: ManifestEntry) -> DecodedVideo | VideoFailure:
        data = fetch_bytes(entry.uri, self.job.storage)
        if isinstance(data, VideoFailure):
            return data
        decoder = self.idle.get()
        try:
            return decoder(data, entry.uri)
        finally:
            self.idle.put(decoder)

    def decodes(self, entries: list[ManifestEntry]) -> Iterator[DecodedVideo | VideoFailure]:
        """Results in entry order; a window of `decode_window` videos at a time, nothing in flight
        while the consumer works on a window."""
        from concurrent.futures import ThreadPoolExecutor

        window = self.job.execution.decode_window
        with ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="infotok-decode") as pool:
            for i in range(0, len(entries), window):
                yield from list(pool.map(self._one, entries[i : i + window]))


def decode_overlaps(ex: ExecConfig, model_on_gpu: bool) -> bool:
    """Whether decoding runs alongside the model (see ExecConfig.decode_overlap)."""
    if ex.decode_overlap == "auto":
        return model_on_gpu
    return ex.decode_overlap == "overlap"


def cpu_threads(ex: ExecConfig, node_cpus: int) -> int:
    """torch threads (and decoder processes) of a CPU tokenize actor: `torch_threads`, or (0) the
    node's cores shared by its actors. Decoding is ~20x cheaper than the model per clip and
    alternates with it, so both get every core."""
    if ex.torch_threads > 0:
        return ex.torch_threads
    return max(1, node_cpus // (ex.num_workers or 1))


def _assigned_gpus() -> bool:
    import ray

    return bool(ray.get_gpu_ids())


class ShardWorker:
    """Actor body: holds the tokenizer; tokenizes whole shards."""

    def __init__(self, job: dict[str, Any]) -> None:
        from pipeline.exec.tokenize_step import TokenizeStep

        self.job = JobConfig.from_dict(job)
        self.threads = cpu_threads(self.job.execution, os.cpu_count() or 1)
        if self.job.tokenize.device == "cpu" or (self.job.tokenize.device == "auto" and not _assigned_gpus()):
            # Ray starts workers with OMP_NUM_THREADS=1; start OpenMP with the actor's thread count
            # (set before torch and its OpenMP runtime load here) rather than raising it afterwards.
            os.environ["OMP_NUM_THREADS"] = str(self.threads)
            import torch

            torch.set_num_threads(self.threads)
        self.step = TokenizeStep(self.job.tokenize)
        self.local: LocalDecoders | None = None

    def file_meta(self) -> dict[str, Any]:
        return self.step.file_meta.to_dict()

    def pid(self) -> int:
        return os.getpid()

    def run_shard(self, shard_id: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        from pipeline.exec.shard import process_shard

        es = [ManifestEntry.from_dict(e) for e in entries]
        if decode_overlaps(self.job.execution, self.step.device.type == "cuda"):
            results = _ordered_decodes(es, self.job)
        else:
            if self.local is None:
                self.local = LocalDecoders(self.job, self.threads)
            results = self.local.decodes(es)
        commit = process_shard(shard_id, es, results, self.step, self.job.output, self.job.storage)
        return commit.to_dict()


def init_ray(address: str | None) -> bool:
    """Join a cluster (address given, or RAY_ADDRESS set, e.g. inside a submitted job) or start a local
    one. Returns False when Ray was already initialised by the caller (then it is left running)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None and not os.environ.get("RAY_ADDRESS"):
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    return True


def _make_worker(job: JobConfig, index: int, gpus: bool) -> Any:
    import ray

    ex: ExecConfig = job.execution
    opts: dict[str, Any] = {"max_restarts": 0, "name": None, "num_cpus": ex.worker_cpus}
    if gpus:
        opts["num_gpus"] = 1
    return ray.remote(ShardWorker).options(**opts).remote(job.to_dict())


def run_job(job: JobConfig, address: str | None = None, overwrite: bool = False, progress: bool = True,
            workers_out: list[Any] | None = None) -> JobResult:
    """Run (or resume) the job to a finished dataset. `workers_out` receives the live actor
    handles (for operational tooling and fault-injection tests)."""
    import ray

    t0 = time.monotonic()
    started = init_ray(address)
    try:
        return _run(job, overwrite, progress, workers_out, t0)
    finally:
        if started:
            ray.shutdown()


def _run(job: JobConfig, overwrite: bool, progress: bool, workers_out: list[Any] | None, t0: float) -> JobResult:
    import ray
    from ray.exceptions import RayActorError, RayTaskError
    from tqdm import tqdm

    gpus = ray.cluster_resources().get("GPU", 0) >= 1 and job.tokenize.device != "cpu"
    n_workers = job.execution.num_workers or (int(ray.cluster_resources().get("GPU", 0)) if gpus else 1)
    workers = [_make_worker(job, i, gpus) for i in range(n_workers)]
    if workers_out is not None:
        workers_out[:] = workers
    meta = None
    for attempt in range(1, job.execution.max_shard_attempts + 1):
        try:
            meta = TokenFileMeta.from_dict(ray.get(workers[0].file_meta.remote()))
            break
        except RayActorError as exc:  # the actor died while starting (node lost, model failed to load, ...)
            if attempt == job.execution.max_shard_attempts:
                raise RuntimeError(f"tokenize worker failed to start {attempt} times: {exc}") from exc
            logger.warning("tokenize worker died while starting (attempt %d): %s", attempt, type(exc).__name__)
            workers[0] = _make_worker(job, 0, gpus)
    assert meta is not None
    if workers_out is not None:
        workers_out[:] = workers
    prepared = prepare_output(job, meta, overwrite=overwrite)
    plan = prepared.plan
    todo: deque[tuple[int, int]] = deque((s, 1) for s in prepared.todo)
    running: dict[Any, tuple[int, int, int]] = {}  # ref -> (shard, attempt, worker index)
    videos = clips = tokens = errors = retries = 0
    bar = tqdm(total=plan.n_shards, initial=len(prepared.done), desc="shards", unit="shard", disable=not progress)

    def dispatch(w: int) -> None:
        if todo:
            shard, attempt = todo.popleft()
            entries = [e.to_dict() for e in plan.shard(shard).entries]
            running[workers[w].run_shard.remote(shard, entries)] = (shard, attempt, w)

    for w in range(len(workers)):
        dispatch(w)
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        ref = ready[0]
        shard, attempt, w = running.pop(ref)
        try:
            commit = ray.get(ref)
        except (RayActorError, RayTaskError) as exc:
            if attempt >= job.execution.max_shard_attempts:
                bar.close()
                raise RuntimeError(f"shard {shard} failed {attempt} times, last: {exc}") from exc
            logger.warning("shard %d failed on worker %d (attempt %d): %s; retrying", shard, w, attempt,
                           type(exc).__name__)
            if isinstance(exc, RayActorError):
                workers[w] = _make_worker(job, w, gpus)
                if workers_out is not None:
                    workers_out[:] = workers
            retries += 1
            todo.appendleft((shard, attempt + 1))
            dispatch(w)
            continue
        videos += commit["n_videos"]
        clips += commit["n_rows"]
        tokens += commit["n_tokens"]
        errors += commit["n_errors"]
        elapsed = max(time.monotonic() - t0, 1e-9)
        bar.set_postfix(videos=videos, clips=clips, errors=errors, clips_s=f"{clips / elapsed:.2f}")
        bar.update(1)
        dispatch(w)
    bar.close()
    for worker in workers:
        ray.kill(worker)
    manifest = write_manifest(job.output, params=job.to_dict(), storage=job.storage,
                              expected_shards=range(plan.n_shards))
    return JobResult(output=job.output, n_shards=plan.n_shards, shards_run=len(prepared.todo),
                     shards_skipped=len(prepared.done), videos=videos, clips=manifest.n_clips,
                     tokens=manifest.n_tokens, errors=manifest.n_errors, shard_retries=retries, seconds=time.monotonic() - t0,
                     tokenizer_id=meta.tokenizer_id)
