"""Training batches from a corpus of videos (folder or bucket).

Clips are decoded once into an in-memory pool (bounded by `max_clips`), then every batch
is a pure function of (seed, step): random clip, random crop, random horizontal flip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from pipeline.decode.clips import SourcedClip, iter_clips
from pipeline.decode.step import DecodeConfig
from pipeline.io.storage import StorageConfig

logger = logging.getLogger(__name__)


class VideoClipSampler:
    """Pool of decoded clips (T, R, R, 3) uint8 at working size `resolution`, sampled into crops."""

    def __init__(self, uri: str, storage: StorageConfig, frames: int, crop: int, seed: int,
                 resolution: int | None = None, max_clips: int = 2048) -> None:
        res = resolution or max(crop, 2 * crop)
        if res < crop:
            raise ValueError(f"resolution {res} is smaller than crop {crop}")
        decode = DecodeConfig(resolution=(res, res), clip_frames=frames, short_policy="pad")
        pool: list[np.ndarray] = []
        failures = 0
        for item in iter_clips(uri, decode, storage):
            if isinstance(item, SourcedClip):
                pool.append(item.clip.frames)
                if len(pool) >= max_clips:
                    break
            else:
                failures += 1
        if not pool:
            raise ValueError(f"no decodable clips of {frames} frames under {uri} ({failures} videos failed)")
        logger.info("training pool: %d clips from %s (%d videos failed)", len(pool), uri, failures)
        self.pool = np.stack(pool)
        self.crop = crop
        self.seed = seed

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        n, _, h, w, _ = self.pool.shape
        out = []
        for _ in range(batch_size):
            clip = self.pool[rng.integers(n)]
            y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
            c = clip[:, y : y + self.crop, x : x + self.crop]
            out.append(c[:, :, ::-1] if rng.random() < 0.5 else c)
        return np.ascontiguousarray(np.stack(out))

    def batch_fn(self, batch_size: int) -> Callable[[int], np.ndarray]:
        return lambda step: self.batch(step, batch_size)
