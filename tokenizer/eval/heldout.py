"""Held-out evaluation clips of mixed kinds, made offline and deterministically.

Two sets, both built only from content the training corpus never shows:
- `procedural`: the training corpus's families (`tokenizer.data.procedural`) with held-out seeds
  and held-out photographs.
- `mixed`: the kinds a real corpus mixes (`tokenizer.data.mixed`), made from photographs training
  never saw (`tokenizer.data.photos.MIXED_PHOTOS`).

Each clip belongs to a "video" (its `video` name): the clips of one video share the source
and the motion, as consecutive clips of one real video would, so per-video figures (the
TokenBench convention) can be taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenizer.data.mixed import MIXED_KINDS, mixed_video
from tokenizer.data.photos import MIXED_PHOTOS, load_photo
from tokenizer.data.procedural import heldout_clips

HELDOUT_SETS: tuple[str, ...] = ("procedural", "mixed")


@dataclass(frozen=True)
class HeldoutClip:
    """kind: the content family; video: the source video's name; frames: uint8 (T, H, W, 3)."""

    kind: str
    video: str
    frames: np.ndarray


def mixed_clips(n_videos: int, clips_per_video: int, frames: int, height: int, width: int,
                seed: int = 2024, photos: tuple[str, ...] = MIXED_PHOTOS) -> list[HeldoutClip]:
    """n_videos videos cycling over MIXED_KINDS and `photos` (default the held-out MIXED_PHOTOS;
    training recipes pass training photographs); each video is one camera move of
    clips_per_video * frames frames, cut into consecutive clips."""
    out: list[HeldoutClip] = []
    for v in range(n_videos):
        kind = MIXED_KINDS[v % len(MIXED_KINDS)]
        name = photos[(v // len(MIXED_KINDS) + v) % len(photos)]
        rng = np.random.default_rng([seed, v])
        video = mixed_video(kind, load_photo(name), rng, frames * clips_per_video, height, width)
        for c in range(clips_per_video):
            out.append(HeldoutClip(kind=kind, video=f"{kind}-{name}-{v}", frames=video[c * frames : (c + 1) * frames]))
    return out


def procedural_clips(n: int, frames: int, height: int, width: int, seed: int = 1234) -> list[HeldoutClip]:
    """The training families with held-out seeds and photographs; each clip is its own video."""
    return [HeldoutClip(kind=k, video=f"{k}-{i}", frames=c)
            for i, (k, c) in enumerate(heldout_clips(n, frames, height, width, seed=seed))]


def heldout_set(name: str, n: int, frames: int, height: int, width: int, clips_per_video: int = 2
                ) -> list[HeldoutClip]:
    """`n` clips of the named set (HELDOUT_SETS); `mixed` rounds n up to whole videos."""
    if name == "procedural":
        return procedural_clips(n, frames, height, width)
    if name == "mixed":
        return mixed_clips(-(-n // clips_per_video), clips_per_video, frames, height, width)
    raise ValueError(f"unknown held-out set {name!r}; choose from {HELDOUT_SETS}")
