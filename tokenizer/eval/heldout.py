"""Held-out evaluation clips of mixed kinds, made offline and deterministically.

Two sets, both built only from content the training corpus never shows:
- `procedural`: the training corpus's families (`tokenizer.train.corpus`) with held-out seeds and
  held-out photographs.
- `mixed`: the kinds a real corpus mixes, made from photographs training never saw: a still
  shot, soft footage (defocused, slow drift), fast motion (a fast pan), fine texture (a slow pan
  over a detailed photograph at full resolution), a zoom, and a low-quality encode (a pan
  through x264 at a high CRF and back, with its blocking).

Each clip belongs to a "video" (its `video` name): the clips of one video share the source
and the motion, as consecutive clips of one real video would, so per-video figures (the
TokenBench convention) can be taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

HELDOUT_SETS: tuple[str, ...] = ("procedural", "mixed")
MIXED_KINDS: tuple[str, ...] = ("still", "soft", "fast", "detail", "zoom", "lowq")
# photographs the training corpus never shows (see tokenizer.train.corpus.TRAIN_PHOTOS)
MIXED_PHOTOS: tuple[str, ...] = ("coffee", "rocket", "cell", "microaneurysms", "horse")


@dataclass(frozen=True)
class HeldoutClip:
    """kind: the content family; video: the source video's name; frames: uint8 (T, H, W, 3)."""

    kind: str
    video: str
    frames: np.ndarray


def _camera(img: np.ndarray, t: int, h: int, w: int, zoom0: float, zoom1: float, center: tuple[float, float],
            velocity: tuple[float, float]) -> np.ndarray:
    """Frames (t, h, w, 3) float in [0, 1] of a camera over img (H, W, 3): zoom in source pixels per
    output pixel, center and velocity (source pixels per frame) as (y, x)."""
    ih, iw = img.shape[:2]
    src = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    theta = torch.zeros(t, 2, 3)
    for i in range(t):
        z = zoom0 + (zoom1 - zoom0) * i / max(t - 1, 1)
        theta[i, 0, 0] = z * w / iw
        theta[i, 1, 1] = z * h / ih
        theta[i, 0, 2] = 2 * (center[1] + velocity[1] * i) / iw - 1
        theta[i, 1, 2] = 2 * (center[0] + velocity[0] * i) / ih - 1
    grid = F.affine_grid(theta, [t, 3, h, w], align_corners=False)
    out = F.grid_sample(src.expand(t, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection",
                        align_corners=False)
    return out.permute(0, 2, 3, 1).clamp(0, 1).numpy()


def _blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of every frame (t, h, w, 3) float."""
    r = int(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    v = torch.from_numpy(frames).permute(0, 3, 1, 2).reshape(-1, 1, *frames.shape[1:3])
    v = F.conv2d(F.pad(v, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    v = F.conv2d(F.pad(v, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return v.reshape(frames.shape[0], 3, *frames.shape[1:3]).permute(0, 2, 3, 1).numpy()


def _x264_round_trip(frames: np.ndarray, crf: int) -> np.ndarray:
    """uint8 frames (t, h, w, 3) through an in-memory H.264 encode at `crf` and back."""
    import io

    import av

    buf = io.BytesIO()
    t, h, w, _ = frames.shape
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as src:
        decoded = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    if len(decoded) != t:
        raise RuntimeError(f"x264 round trip returned {len(decoded)} frames, expected {t}")
    return np.stack(decoded)


def _mixed_video(kind: str, photo: np.ndarray, rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    ih, iw = photo.shape[:2]
    fit = min(ih / h, iw / w)
    center = (rng.uniform(0.35, 0.65) * ih, rng.uniform(0.35, 0.65) * iw)
    angle = rng.uniform(0, 2 * np.pi)
    direction = (np.sin(angle), np.cos(angle))
    if kind == "still":
        x = _camera(photo, t, h, w, fit * 0.8, fit * 0.8, center, (0.0, 0.0))
    elif kind == "soft":
        x = _blur(_camera(photo, t, h, w, fit * 0.6, fit * 0.6, center, (0.3 * direction[0], 0.3 * direction[1])), 2.5)
    elif kind == "fast":
        speed = rng.uniform(6, 10) * fit * 0.5
        x = _camera(photo, t, h, w, fit * 0.5, fit * 0.5, center, (speed * direction[0], speed * direction[1]))
    elif kind == "detail":
        x = _camera(photo, t, h, w, 1.0, 1.0, center, (0.8 * direction[0], 0.8 * direction[1]))
    elif kind == "zoom":
        x = _camera(photo, t, h, w, fit * 0.9, fit * 0.45, center, (0.0, 0.0))
    elif kind == "lowq":
        x = _camera(photo, t, h, w, fit * 0.6, fit * 0.6, center, (2.0 * direction[0], 2.0 * direction[1]))
        return _x264_round_trip((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8), crf=int(rng.integers(38, 44)))
    else:
        raise ValueError(f"unknown mixed kind {kind!r}; choose from {MIXED_KINDS}")
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def mixed_clips(n_videos: int, clips_per_video: int, frames: int, height: int, width: int,
                seed: int = 2024, photos: tuple[str, ...] = MIXED_PHOTOS) -> list[HeldoutClip]:
    """n_videos videos cycling over MIXED_KINDS and `photos` (default the held-out MIXED_PHOTOS;
    training recipes pass training photographs); each video is one camera move of
    clips_per_video * frames frames, cut into consecutive clips."""
    from tokenizer.train.corpus import _photo

    out: list[HeldoutClip] = []
    for v in range(n_videos):
        kind = MIXED_KINDS[v % len(MIXED_KINDS)]
        name = photos[(v // len(MIXED_KINDS) + v) % len(photos)]
        rng = np.random.default_rng([seed, v])
        video = _mixed_video(kind, _photo(name), rng, frames * clips_per_video, height, width)
        for c in range(clips_per_video):
            out.append(HeldoutClip(kind=kind, video=f"{kind}-{name}-{v}", frames=video[c * frames : (c + 1) * frames]))
    return out


def procedural_clips(n: int, frames: int, height: int, width: int, seed: int = 1234) -> list[HeldoutClip]:
    """The training families with held-out seeds and photographs; each clip is its own video."""
    from tokenizer.train.corpus import heldout_clips

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
