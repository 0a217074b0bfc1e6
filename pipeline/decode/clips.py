"""Clips from a corpus, for evaluation and training: list -> fetch -> decode, in order.

The Ray pipeline has its own parallel execution; this is the simple sequential path used
by `infotok eval` and `infotok train --data PATH`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.decode.step import Clip, DecodeConfig, DecodeStep
from pipeline.decode.failures import VideoFailure
from pipeline.decode.source import fetch_and_decode
from pipeline.io.inputs import InputConfig, list_inputs
from pipeline.io.storage import StorageConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourcedClip:
    uri: str
    clip: Clip


def iter_clips(
    uri: str, decode: DecodeConfig, storage: StorageConfig = StorageConfig(), max_videos: int | None = None
) -> Iterator[SourcedClip | VideoFailure]:
    """Yield every clip of every video under `uri` (a prefix or a list file), or a failure per bad video."""
    entries = list_inputs(InputConfig(uri=uri), storage)
    if max_videos is not None:
        entries = entries[:max_videos]
    step = DecodeStep(decode)
    for entry in entries:
        result = fetch_and_decode(entry.uri, storage, step)
        if isinstance(result, VideoFailure):
            logger.warning("%s", result.message)
            yield result
            continue
        for clip in result.clips:
            yield SourcedClip(uri=entry.uri, clip=clip)
