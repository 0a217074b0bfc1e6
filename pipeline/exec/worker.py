"""The tokenize actor (`ShardWorker`): holds the tokenizer and runs whole shards.

For its shard it decodes videos in plan order, a bounded window at a time, isolated so a
crashed or hung native decoder kills only a task or a child process: with a GPU model, in Ray
tasks running ahead of the model (`pipeline.exec.decode_tasks`); on CPU, in the actor's own
child processes between model batches (`IsolatedDecoderPool`). Then batch, tokenize, write
(`process_shard`), the same code a shard run without Ray goes through (`pipeline.tokenize.local`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from pipeline.decode.failures import VideoFailure
from pipeline.decode.isolate import IsolatedDecoderPool
from pipeline.decode.step import DecodedVideo
from pipeline.exec.decode_tasks import ordered_decodes
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import ManifestEntry
from pipeline.job.job import JobConfig, decode_overlaps
from pipeline.tokenize.local import local_decoder

logger = logging.getLogger(__name__)


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

        from pipeline.tokenize.step import TokenizeStep

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
                "device": str(self.step.device), "threads": self.threads, "note": self.note, "pid": os.getpid(),
                "passes": list(self.step.passes)}

    def file_meta(self) -> dict[str, Any]:
        return self.step.file_meta.to_dict()

    def pid(self) -> int:
        return os.getpid()

    def run_shard(self, shard_id: int, entries: list[dict[str, Any]], lease_token: str | None = None,
                  board: Any = None) -> dict[str, Any]:
        """Tokenize and commit one shard; its running totals go to `board` (a ProgressBoard actor) when given."""
        from pipeline.io.lease import check_lease
        from pipeline.tokenize.shard import process_shard

        es = [ManifestEntry.from_dict(e) for e in entries]
        ex = self.job.execution
        if decode_overlaps(ex, self.step.device.type == "cuda"):
            results: Iterator[DecodedVideo | VideoFailure] = ordered_decodes(es, self.job)
        else:
            if self.local is None:
                self.local = local_decoder(self.job, slots=self.threads)
            results = self.local.decodes([e.uri for e in es])
        check = None if lease_token is None else (lambda: check_lease(self.ds, lease_token))
        post = None if board is None else (lambda videos, clips: board.post.remote(shard_id, videos, clips))
        return process_shard(shard_id, es, results, self.step, self.ds, before_commit=check,
                             on_progress=post).to_dict()
