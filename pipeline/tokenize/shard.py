"""One shard, start to finish: ordered decode results -> batched tokens -> part + marker.

Clips are batched in plan order with a fixed batch size, so a shard's bytes depend only on
its videos and the job settings, never on timing: a retried or resumed shard is identical.

A transient failure (storage unreachable after its retries, a decoder out of memory) is never
committed: the shard raises `TransientShardError` instead, and the driver tries it again later.
Only permanent failures become committed error rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from pipeline.decode.step import DecodedVideo
from pipeline.decode.failures import VideoFailure
from pipeline.io.inputs import ManifestEntry
from pipeline.io.dataset import DatasetDir
from pipeline.tokenize.step import PendingClip, TokenizeStep
from pipeline.io.writer import write_shard
from schemas.errors import ErrorRow
from schemas.manifest import ShardCommit
from schemas.tokens import ClipTokens

logger = logging.getLogger(__name__)


class TransientShardError(RuntimeError):
    """A video of the shard failed in a way a retry may fix; nothing of the shard was written."""


def failure_row(entry: ManifestEntry, failure: VideoFailure, attempts: int = 1) -> ErrorRow:
    return ErrorRow(uri=entry.uri, stage=failure.stage, kind="permanent" if failure.permanent else "transient",
                    error_type=failure.error_type, message=failure.message, video_id=entry.video_id,
                    attempts=attempts)


def process_shard(
    shard_id: int,
    entries: list[ManifestEntry],
    results: Iterable[DecodedVideo | VideoFailure],
    step: TokenizeStep,
    ds: DatasetDir,
    before_commit: Callable[[], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ShardCommit:
    """Tokenize a shard from its decode results (one per entry, in entry order) and commit it.
    on_progress(videos, clips): the shard's running totals, after each video and each model batch."""
    rows: list[ClipTokens] = []
    errors: list[ErrorRow] = []
    pending: list[PendingClip] = []
    bs = step.config.batch_size
    n_results = 0

    def report() -> None:
        if on_progress is not None:
            on_progress(n_results, len(rows))

    for entry, result in zip(entries, results):
        n_results += 1
        if isinstance(result, VideoFailure):
            if not result.permanent:  # stop at once: the whole shard is tried again later
                raise TransientShardError(f"shard {shard_id}: {entry.uri} failed transiently at {result.stage} "
                                          f"({result.error_type}: {result.message}); nothing of the shard was "
                                          "committed")
            errors.append(failure_row(entry, result))
            report()
            continue
        for clip in result.clips:
            pending.append(PendingClip(video_id=entry.video_id, uri=entry.uri, source=result.source, clip=clip))
        while len(pending) >= bs:
            rows += step(pending[:bs])
            pending = pending[bs:]
            report()
        report()
    if n_results != len(entries):
        raise RuntimeError(f"shard {shard_id}: {n_results} decode results for {len(entries)} videos")
    if pending:
        rows += step(pending)
    report()
    return write_shard(ds, shard_id, rows, errors, step.file_meta, before_commit=before_commit)
