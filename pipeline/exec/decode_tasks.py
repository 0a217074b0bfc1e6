"""The decode side of a GPU actor's shard: Ray tasks that fetch and decode videos a sliding window
ahead of the model, each isolated in its own worker process, so a crashed or hung native decoder
kills only its task (retried, then a failure row)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

from pipeline.decode.failures import VideoFailure
from pipeline.decode.source import FaultableDecode, fetch_and_decode
from pipeline.decode.step import DecodedVideo
from pipeline.io.inputs import ManifestEntry
from pipeline.io.storage import StorageConfig
from pipeline.job.job import JobConfig

logger = logging.getLogger(__name__)


def decode_task(uri: str, storage: dict[str, Any], decode: dict[str, Any]) -> DecodedVideo | VideoFailure:
    """Fetch and decode one video (the body of a Ray decode task)."""
    return fetch_and_decode(uri, StorageConfig.from_dict(storage), FaultableDecode(decode))


def ordered_decodes(entries: list[ManifestEntry], job: JobConfig) -> Iterator[DecodedVideo | VideoFailure]:
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
