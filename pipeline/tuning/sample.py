"""Beta tuning of a corpus (InfoTok, arXiv 2512.16975): a deterministic sample of clips read
through the pipeline's own listing, fetch and decode path, handed to `tokenizer.tuning.search`, and
the report (JSON + PNG) written to any storage.

Sampling: the sorted listing is permuted with `seed`; videos are taken in that order, each
decoded with the job's DecodeConfig (at most `decode_clips` clips, the first ones), and
`clips_per_video` of its clips drawn with a generator seeded by (seed, listing index),
until `clips` clips are held. Same listing + same seed -> the same sample, whatever the
timing. Clips of one video are one sampling unit for the confidence intervals.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.decode.step import DecodeConfig, DecodeStep
from pipeline.decode.failures import VideoFailure
from pipeline.decode.source import fetch_and_decode
from pipeline.io.inputs import InputConfig, list_inputs
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

REPORT_FORMAT = "infotok-beta-tuning"
REPORT_VERSION = "1"


@dataclass(frozen=True)
class SampleConfig(FrozenConfig):
    """clips: sample size; clips_per_video: clips drawn per sampled video (clips of one video are
    alike, so one each from more videos estimates the corpus better for the same model cost);
    seed: of the draw; decode_clips: clips decoded per sampled video to draw from (the first
    ones: bounds decoding, at the price of favouring the start of long videos);
    workers: parallel decodes."""

    clips: int = 160
    clips_per_video: int = 1
    seed: int = 0
    decode_clips: int = 8
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("clips", "clips_per_video", "decode_clips", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"sample {name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class SampledClip:
    """frames: uint8 (T, H, W, 3) as the pipeline would tokenize them."""

    video_id: str
    uri: str
    clip_index: int
    frame_start: int
    frames: np.ndarray

    def ident(self) -> dict[str, Any]:
        return {"video_id": self.video_id, "uri": self.uri, "clip_index": self.clip_index,
                "frame_start": self.frame_start}


@dataclass(frozen=True)
class Sample:
    clips: list[SampledClip]
    videos_listed: int
    videos_used: int
    failures: list[VideoFailure]


def sample_clips(source: InputConfig, decode: DecodeConfig, storage: StorageConfig, cfg: SampleConfig) -> Sample:
    """Draw the sample (see the module doc). Bad videos are skipped and reported, never fatal."""
    entries = list_inputs(source, storage)
    if not entries:
        raise ValueError(f"no videos found under {source.uri!r} to tune beta on")
    order = np.random.default_rng(cfg.seed).permutation(len(entries)).tolist()
    max_clips = min(decode.max_clips or cfg.decode_clips, cfg.decode_clips)
    step = DecodeStep(dataclasses.replace(decode, max_clips=max_clips))
    clips: list[SampledClip] = []
    failures: list[VideoFailure] = []
    used = 0
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        for start in range(0, len(order), cfg.workers):
            window = order[start : start + cfg.workers]
            results = list(pool.map(lambda k: fetch_and_decode(entries[k].uri, storage, step), window))
            for k, result in zip(window, results):
                if len(clips) >= cfg.clips:
                    break
                if isinstance(result, VideoFailure):
                    logger.warning("tuning sample: skipping %s", result.message)
                    failures.append(result)
                    continue
                if not result.clips:
                    continue
                rng = np.random.default_rng([cfg.seed, k])
                n = min(cfg.clips_per_video, len(result.clips), cfg.clips - len(clips))
                picked = sorted(rng.choice(len(result.clips), size=n, replace=False).tolist())
                used += 1
                clips += [SampledClip(video_id=entries[k].video_id, uri=entries[k].uri, clip_index=c.clip_index,
                                      frame_start=c.frame_start, frames=c.frames)
                          for c in (result.clips[i] for i in picked)]
            if len(clips) >= cfg.clips:
                break
    if not clips:
        raise ValueError(f"no decodable clips under {source.uri!r} ({len(failures)} of {len(entries)} videos failed)")
    logger.info("tuning sample: %d clips from %d of %d videos (seed %d)", len(clips), used, len(entries), cfg.seed)
    return Sample(clips=clips, videos_listed=len(entries), videos_used=used, failures=failures)
