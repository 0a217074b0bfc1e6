"""One shard of the tokenize job without Ray: decode, tokenize, commit.

The same functions the Ray actor (`pipeline.exec.worker.ShardWorker`) runs on CPU: the videos
decode in isolated child processes (`local_decoder`), the tokenize step batches their clips in
plan order and `process_shard` writes the part, then its marker. So a shard run here writes
the bytes the Ray job writes for it (tests/test_local_shard.py), which makes a shard debuggable
in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.decode.isolate import IsolatedDecoderPool
from pipeline.decode.source import FaultableDecode
from pipeline.io.dataset import DatasetDir
from pipeline.io.inputs import ManifestEntry
from pipeline.job.job import JobConfig
from pipeline.tokenize.shard import process_shard
from pipeline.tokenize.step import TokenizeStep
from schemas.manifest import ShardCommit

logger = logging.getLogger(__name__)


def local_decoder(job: JobConfig, slots: int) -> IsolatedDecoderPool:
    """The job's decoder in `slots` isolated child processes, a `decode_window` of videos at a time
    (what a CPU actor decodes with between model batches)."""
    ex = job.execution
    return IsolatedDecoderPool(FaultableDecode(job.decode.to_dict()), job.storage, ex.isolation, slots=slots,
                               window=ex.decode_window)


def run_local_shard(job: JobConfig, shard_id: int, entries: list[ManifestEntry], step: TokenizeStep | None = None,
                    slots: int = 1, on_progress: Callable[[int, int], None] | None = None) -> ShardCommit:
    """Decode, tokenize and commit shard `shard_id` (its plan entries, in plan order) into
    `job.output`, in this process. step: a tokenize step to reuse (None: built from
    `job.tokenize`); slots: decoder child processes; on_progress(videos, clips): the shard's
    running totals (`process_shard`)."""
    step = step if step is not None else TokenizeStep(job.tokenize)
    decoder = local_decoder(job, slots)
    results = decoder.decodes([e.uri for e in entries])
    commit = process_shard(shard_id, entries, results, step, DatasetDir(job.output, job.storage),
                           on_progress=on_progress)
    logger.info("shard %d committed locally: %d rows, %d errors", shard_id, commit.n_rows, commit.n_errors)
    return commit
