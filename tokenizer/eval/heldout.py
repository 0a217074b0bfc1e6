"""Held-out evaluation clips of mixed kinds, made offline and deterministically.

Two sets, both built only from content the training corpus never shows:
- `procedural`: the training corpus's families (`tokenizer.data.procedural`) with held-out seeds
  and held-out photographs.
- `mixed`: the kinds a real corpus mixes (`tokenizer.data.mixed`), made from photographs training
  never saw (`tokenizer.data.photos.MIXED_PHOTOS`).
- `unseen`: kinds neither training nor `mixed` makes (`tokenizer.data.unseen`: handheld shake, roll,
  sensor grain, flat colour, upscaled low-resolution footage, fades, cuts, still texture), over
  held-out photographs and a graphic: the set furthest from what any router was fitted on.

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
from tokenizer.data.unseen import UNSEEN_KINDS, UNSEEN_PHOTOS, unseen_video

HELDOUT_SETS: tuple[str, ...] = ("procedural", "mixed", "unseen")
# the seeds of each set's clips; `fit_seed` draws other videos of the same kinds (a per-corpus fit's sample)
SET_SEEDS: dict[str, int] = {"procedural": 1234, "mixed": 2024, "unseen": 4242}


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


def unseen_clips(n_videos: int, clips_per_video: int, frames: int, height: int, width: int,
                 seed: int = SET_SEEDS["unseen"]) -> list[HeldoutClip]:
    """n_videos videos cycling over UNSEEN_KINDS and UNSEEN_PHOTOS, each cut into consecutive clips."""
    out: list[HeldoutClip] = []
    for v in range(n_videos):
        kind = UNSEEN_KINDS[v % len(UNSEEN_KINDS)]
        name = UNSEEN_PHOTOS[(v // len(UNSEEN_KINDS) + v) % len(UNSEEN_PHOTOS)]
        other = UNSEEN_PHOTOS[(v // len(UNSEEN_KINDS) + v + 1) % len(UNSEEN_PHOTOS)]
        rng = np.random.default_rng([seed, v])
        video = unseen_video(kind, load_photo(name), load_photo(other), rng, frames * clips_per_video, height, width)
        for c in range(clips_per_video):
            out.append(HeldoutClip(kind=kind, video=f"{kind}-{name}-{v}", frames=video[c * frames : (c + 1) * frames]))
    return out


def heldout_set(name: str, n: int, frames: int, height: int, width: int, clips_per_video: int = 2,
                seed: int | None = None) -> list[HeldoutClip]:
    """`n` clips of the named set (HELDOUT_SETS); `mixed` and `unseen` round n up to whole videos.
    seed: None for the set's own clips (SET_SEEDS), another for other videos of the same kinds."""
    if name not in SET_SEEDS:
        raise ValueError(f"unknown held-out set {name!r}; choose from {HELDOUT_SETS}")
    s = SET_SEEDS[name] if seed is None else seed
    if name == "procedural":
        return procedural_clips(n, frames, height, width, seed=s)
    videos = -(-n // clips_per_video)
    if name == "mixed":
        return mixed_clips(videos, clips_per_video, frames, height, width, seed=s)
    return unseen_clips(videos, clips_per_video, frames, height, width, seed=s)


def fit_seed(name: str) -> int:
    """The seed of a per-corpus fit's sample of the named set: other videos than its evaluation clips."""
    if name not in SET_SEEDS:
        raise ValueError(f"unknown held-out set {name!r}; choose from {HELDOUT_SETS}")
    return SET_SEEDS[name] + 7919
