"""Beta tuning of a corpus (InfoTok, arXiv 2512.16975): a deterministic sample of clips read
through the pipeline's own listing, fetch and decode path, handed to `tokenizer.tuning.search`, and
the report (JSON + PNG) written to any storage.

Sampling: every listed video gets a draw, the first 64 bits of SHA-256(seed, uri); the listing
is streamed once, keeping the videos with the smallest draws (a few times more than the sample
needs, for the ones that fail), so memory does not grow with the corpus. Videos are taken in
draw order, each decoded with the job's DecodeConfig (at most `decode_clips` clips, the first
ones), and `clips_per_video` of its clips drawn with a generator seeded by (seed, draw), until
`clips` clips are held. A video's draw depends only on its own uri and the seed: the same corpus
in any listing order gives the same sample, and a grown corpus keeps the videos of the old sample
that still draw lowest. Clips of one video are one sampling unit for the confidence intervals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.decode.step import DecodeConfig, DecodeStep
from pipeline.decode.failures import VideoFailure
from pipeline.decode.source import fetch_and_decode
from pipeline.io.inputs import InputConfig, ManifestEntry, iter_listing
from pipeline.io.storage import StorageConfig
from schemas.config import FrozenConfig

logger = logging.getLogger(__name__)

REPORT_FORMAT = "infotok-beta-tuning"
REPORT_VERSION = "1"
CANDIDATES_PER_VIDEO = 4  # videos kept from the listing per video the sample needs (spares for failures)


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


def draw(seed: int, uri: str) -> int:
    """A video's place in the sample order: 64 bits of SHA-256 over the seed and its uri."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{uri}".encode("utf-8")).digest()[:8], "big")


def _candidates(source: InputConfig, storage: StorageConfig, seed: int,
                keep: int) -> tuple[list[ManifestEntry], list[int], int]:
    """The `keep` listed videos with the smallest draws, in draw order; their draws; and how many
    rows the listing had (a repeated uri counted each time)."""
    heap: list[tuple[int, str, int, str, str]] = []  # (-draw, uri, size, version, video_id): the largest draw on top
    members: set[str] = set()
    rows = 0
    for table in iter_listing(source, storage):
        for uri, size, version, vid in zip(*(table.column(c).to_pylist() for c in ("uri", "size", "version", "video_id"))):
            rows += 1
            if uri in members:  # a repeat of a candidate: the first listing stays
                continue
            item = (-draw(seed, uri), uri, size, version, vid)
            if len(heap) < keep:
                heapq.heappush(heap, item)
            elif item > heap[0]:  # draws lower than the highest kept
                members.discard(heapq.heappushpop(heap, item)[1])
            else:
                continue
            members.add(uri)
    ordered = sorted(heap, reverse=True)
    return ([ManifestEntry(uri=u, size=s, version=v, video_id=i) for _, u, s, v, i in ordered],
            [-d for d, *_ in ordered], rows)


def sample_clips(source: InputConfig, decode: DecodeConfig, storage: StorageConfig, cfg: SampleConfig) -> Sample:
    """Draw the sample (see the module doc). Bad videos are skipped and reported, never fatal."""
    needed = -(-cfg.clips // cfg.clips_per_video)
    entries, draws, listed = _candidates(source, storage, cfg.seed, CANDIDATES_PER_VIDEO * needed + cfg.workers)
    if not entries:
        raise ValueError(f"no videos found under {source.uri!r} to tune beta on")
    order = list(range(len(entries)))
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
                rng = np.random.default_rng([cfg.seed, draws[k]])
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
    if len(clips) < cfg.clips and len(entries) < listed:
        logger.warning("tuning sample: only %d of %d clips: %d of the %d videos drawn first failed", len(clips),
                       cfg.clips, len(failures), len(entries))
    logger.info("tuning sample: %d clips from %d of %d videos (seed %d)", len(clips), used, listed, cfg.seed)
    return Sample(clips=clips, videos_listed=listed, videos_used=used, failures=failures)
